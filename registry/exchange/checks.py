"""Bundle checks: what an untrusted bundle's data must pass before anything of it becomes visible.

Paths are confined to the extraction folder (archive.py wrote nothing but regular files and
folders there), arrays re-hashed (digests and norms recomputed from the data, never copied)
and every value must be finite (a NaN or inf would poison every merge that uses it).
Lineage fields must fit their columns, and a new vector's interference and plausibility
are computed here and judged by this team's policy (`judged`), never copied.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import IntegrityError
from registry.records.bases import base_norm
from registry.records.hub import COMMIT, repo_id_shaped
from registry.records.interference import check_interference
from registry.records.vector_import import plausibility
from registry.records.vectors import list_vectors, vector_row
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
        if not math.isfinite(sq):  # Σx² of finite float32 values cannot overflow float64
            raise IntegrityError(f"bundle vector {ref}: array {name} holds NaN or infinite values; refused")
        digests[name] = h.hexdigest()
        if digests[name] != t["sha256"]:
            raise IntegrityError(f"bundle vector {ref}: array {name} sha256 mismatch")
        shape = list(stored.spec(name).shape)
        factors = None
        if stored.is_low_rank(name):  # the factor digests are recomputed too, never copied
            factors = {"rank": stored.rank(name), "sha256": stored.factor_sha256(name)}
            if factors != t.get("factors"):
                raise IntegrityError(f"bundle vector {ref}: array {name} factors do not match its manifest")
        t = {**t, "source_dtype": checked_source_dtype(t, ref)}
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


DB_INT = (-(2**31), 2**31 - 1)  # an Integer column on every database the registry runs on
_LINEAGE_TEXT = {"kind": 16, "plugin": 128, "plugin_version": 64, "dataset_digest": 64}
_LINEAGE_MAPS = ("params", "sources", "library_versions")


def checked_lineage(e: dict[str, Any], ref: str) -> dict[str, Any]:
    """A bundle vector's lineage, every field the run row stores checked against its column.

    A seed of 2**70 or a 300-character plugin name would otherwise reach the database and come
    back as an OverflowError or a driver error instead of one line."""
    lineage = e.get("lineage") or {}
    if not isinstance(lineage, dict):
        raise IntegrityError(f"bundle vector {ref}: lineage is not an object")
    for key, most in _LINEAGE_TEXT.items():
        v = lineage.get(key)
        if v is not None and (not isinstance(v, str) or len(v) > most):
            raise IntegrityError(
                f"bundle vector {ref}: lineage {key} is not text of at most {most} characters"
            )
    for key in ("seed", "dataset_size"):
        v = lineage.get(key)
        ok = isinstance(v, int) and not isinstance(v, bool) and DB_INT[0] <= v <= DB_INT[1]
        if v is not None and not ok:
            raise IntegrityError(
                f"bundle vector {ref}: lineage {key} {str(v)[:40]!r} is not a whole number in "
                f"{DB_INT[0]}..{DB_INT[1]}"
            )
    for key in _LINEAGE_MAPS:
        if not isinstance(lineage.get(key) or {}, dict):
            raise IntegrityError(f"bundle vector {ref}: lineage {key} is not an object")
    return lineage


def checked_source_dtype(t: dict[str, Any], ref: str) -> str | None:
    """A tensor entry's `source_dtype` (a dtype name, stored in a 16-character column)."""
    v = t.get("source_dtype")
    if v is not None and (not isinstance(v, str) or not v.isidentifier() or len(v) > 16):
        raise IntegrityError(f"bundle vector {ref}: array {t['name'][:100]} has a malformed source_dtype")
    return v


def source_creator(entry: dict[str, Any], what: str) -> str | None:
    """Who created a bundle item at the source (None: the bundle does not say).

    A claim, not a proof: it can only add a name that four-eyes refuses; the importer is
    refused as an approver whatever the bundle says."""
    v = entry.get("created_by")
    if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 128 or not v.isprintable()):
        raise IntegrityError(f"bundle {what}: created_by is not an account name")
    return v


def judged(
    core: Core, base: Any, e: dict, key: str, fields: dict, policy: Any, pending: dict, brought: dict
) -> dict[str, Any]:
    """A new bundle vector's interference and plausibility, computed here and judged by this
    team's policy (refuse raises, as it does for `vector import`). It is compared with this
    registry's vectors of its base (none while the base is `pending`) and with the vectors
    the bundle brought before it (`brought`, to which it is added)."""
    row = vector_row(
        {**fields, "name": e["name"], "store_key": key}, fields["tensors"], version=int(e["version"])
    )
    here = [] if base.name in pending else list_vectors(core, base.name)
    others = here + brought.setdefault(base.name, [])
    report = check_interference(core, base, row, policy, others=others)
    report["plausibility"] = plausibility(
        core, base, base_norm(core, base, base.weights), fields["tensors"], policy
    )
    brought[base.name].append(row)
    return report
