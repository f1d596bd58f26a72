"""Bundle checks: what an untrusted bundle must pass before anything of it becomes visible.

Paths are confined to the extraction folder, links refused, arrays re-hashed (digests and
norms recomputed from the data, never copied), and an `approved` status is kept only with
a signature that a trusted key verifies.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import IntegrityError, RegistryError
from registry.governance.signing import verified_by_trusted
from registry.records.hub import COMMIT, repo_id_shaped
from registry.storage.tensor_io import row_blocks
from registry.storage.vector_store import sum_squares
from registry.util.digests import ArrayHasher, named_digest

if TYPE_CHECKING:
    from registry.core import Core

FORMAT = 1


def confined(work: Path, rel: Any, what: str) -> Path:
    """A manifest path as a folder inside the extraction folder; anything else is refused."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise IntegrityError(f"bundle: {what} path {rel!r} leaves the bundle")
    p = (work / rel).resolve()
    if not p.is_relative_to(work) or p == work or (work / rel).is_symlink() or not p.is_dir():
        raise IntegrityError(f"bundle: {what} path {rel!r} is not a folder inside the bundle")
    return p


def extract(path: Path, work: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, "r") as tar:
            tar.extractall(work, filter="data")  # refuses absolute paths, '..' and links out
    except (OSError, tarfile.TarError, EOFError) as e:
        raise RegistryError(f"{path}: not a registry bundle ({e})") from None
    links = [p for p in work.rglob("*") if p.is_symlink()]
    if links:
        raise IntegrityError(f"{path}: bundle holds a link ({links[0].relative_to(work)}); links are refused")
    try:
        manifest = json.loads((work / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise RegistryError(f"{path}: not a registry bundle (manifest: {e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RegistryError(
            f"{path}: unsupported bundle format {getattr(manifest, 'get', dict().get)('format')!r}"
        )
    for key in ("bases", "vectors", "recipes"):
        if not isinstance(manifest.get(key), list):
            raise RegistryError(f"{path}: malformed bundle manifest ({key} must be a list)")
    return manifest


def recompute(core: Core, key: str, e: dict[str, Any], base_w: Any, ref: str) -> dict[str, Any]:
    """The vector's fields from its data: per-array sha256 and norms, digest, parameter count."""
    import numpy as np

    stored = core.store.open(key, label=f"bundle vector {ref}")
    listed = {t["name"]: t for t in e["tensors"]}
    extra = sorted(set(stored.names()) - set(listed))
    if extra:
        raise IntegrityError(f"bundle vector {ref}: array {extra[0]} is not in its manifest")
    tensors, digests = [], {}
    for name, t in sorted(listed.items()):
        if name not in base_w.names() or tuple(base_w.spec(name).shape) != stored.spec(name).shape:
            raise IntegrityError(f"bundle vector {ref}: array {name} does not fit the base")
        h, sq = ArrayHasher(), 0.0
        for a, b in row_blocks(stored.spec(name).shape, stored.chunk_rows(name)):
            x = stored.read_rows(name, a, b)
            h.update(x)
            sq += sum_squares(x)
        digests[name] = h.hexdigest()
        if digests[name] != t["sha256"]:
            raise IntegrityError(f"bundle vector {ref}: array {name} sha256 mismatch")
        shape = list(stored.spec(name).shape)
        factors = None
        if stored.is_low_rank(name):  # the factor digests are recomputed too, never copied
            factors = {"rank": stored.rank(name), "sha256": stored.factor_sha256(name)}
            if factors != t.get("factors"):
                raise IntegrityError(f"bundle vector {ref}: array {name} factors do not match its manifest")
        tensors.append({**t, "shape": shape, "norm": sq**0.5, "sha256": digests[name], "factors": factors})
    digest = named_digest(digests)
    if digest != e["digest"]:
        raise IntegrityError(f"bundle vector {ref}: digest mismatch")
    ranks = [t["factors"]["rank"] for t in tensors if t["factors"]]
    return {
        "digest": digest,
        "rank": max(ranks) if ranks else None,
        "tensors": tensors,
        "norm": float(np.sqrt(sum(t["norm"] ** 2 for t in tensors))),
        "param_count": sum(int(np.prod(t["shape"])) if t["shape"] else 1 for t in tensors),
    }


def landing_status(
    core: Core, claimed: Any, statement_for, signatures: Any, what: str
) -> tuple[str, str | None]:
    """approved only with a signature a trusted key verifies; draft and deprecated as stated."""
    if claimed not in {"draft", "approved", "deprecated"}:
        raise IntegrityError(f"bundle {what}: unknown status {claimed!r}")
    if claimed != "approved":
        return claimed, None
    sigs = signatures if isinstance(signatures, list) else []
    kid = verified_by_trusted(core, statement_for("approved"), [x for x in sigs if isinstance(x, dict)])
    if kid:
        return "approved", kid
    return "draft", None


def hub_origin(manifest: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A bundle base's Hub origin (repo id, revision, commit), when it names a well-formed one.

    Kept only for a base registered from a folder whose pins matched the bundle's, so it
    names the content exactly; anything malformed is dropped, never trusted.
    """
    b = next((b for b in manifest["bases"] if b.get("name") == name), {})
    source, revision, sha = b.get("source"), b.get("revision"), b.get("revision_sha")
    if not (
        isinstance(source, str) and repo_id_shaped(source) and isinstance(sha, str) and COMMIT.match(sha)
    ):
        return None
    return {
        "source": source,
        "revision": revision[:128] if isinstance(revision, str) else None,
        "revision_sha": sha,
    }
