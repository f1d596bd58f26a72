"""Bundles: move bases' pins, vectors (data and lineage) and recipes between registries.

A bundle is a plain tar (vector chunks are already compressed): `manifest.json` and one
folder per vector holding its Zarr group, plus the approval signatures and each item's
status history. A bundle is untrusted input (importer.py): every tar member is checked
against the layout its manifest implies before anything is written, then written by us
into the registry's scratch space (no links, nothing outside is ever moved or deleted); every digest is
recomputed from the data (arrays, vectors, recipes' resolved terms) and methods and
parameters are validated as `recipe add` does; an `approved` status is kept only when its
signature verifies against a key this registry trusts, otherwise it lands as draft with the
source status recorded. Names and versions are kept, identical objects are skipped, any
conflict is refused. Base weights are not carried: the target registers them from a local
folder, and their pins must match.
"""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.db.as_json import run_view, tensor_view
from registry.db.models import Recipe
from registry.errors import DataCollected, NotFound
from registry.exchange.bundle_evaluations import export_evaluations, sign_evaluations
from registry.exchange.bundle_notes import export_notes, sign_notes
from registry.exchange.checks import FORMAT
from registry.exchange.importer import import_bundle
from registry.governance.aliases import list_aliases
from registry.governance.lifecycle import audit_log
from registry.governance.signing import signatures_of
from registry.records.bases import get_base
from registry.records.recipes import get_recipe
from registry.records.vectors import get_vector

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Vector

__all__ = ["export_bundle", "import_bundle"]


def status_history(core: Core, kind: str, ref: str) -> list[dict[str, Any]]:
    """The item's status changes here, oldest first (carried so the target sees them)."""
    return [
        {"status": e.action.split(".", 1)[1], "actor": e.actor, "at": e.at.isoformat(),
         "reason": (e.details or {}).get("reason")}
        for e in audit_log(core, ref)
        if e.object == ref and e.action in (f"{kind}.approved", f"{kind}.deprecated", f"{kind}.approval-revoked")
    ]  # fmt: skip


def _vector_entry(core: Core, v: Vector, index: int) -> dict[str, Any]:

    return {
        "name": v.name,
        "version": v.version,
        "base": v.base.name,
        "digest": v.digest,
        "param_count": v.param_count,
        "norm": v.norm,
        "status": v.status,
        "created_by": v.created_by,  # authorship travels: four-eyes at the target refuses the author
        "interference": v.interference,
        "lineage": run_view(v.run),
        "tensors": [tensor_view(t) for t in v.tensors],
        "data": f"vectors/{index}",
        "signatures": signatures_of(core, "vector", v.id),
        "history": status_history(core, "vector", v.ref),
        "evaluations": export_evaluations(core, "vector", v.digest, v.base.digest),
    }


def _recipe_entry(core: Core, r: Recipe) -> dict[str, Any]:

    return {
        "signatures": signatures_of(core, "recipe", r.id),
        "history": status_history(core, "recipe", r.ref),
        "name": r.name,
        "version": r.version,
        "base": r.base.name,
        "method": r.method,
        "dtype": r.dtype,
        "parameters": r.params,
        "content_digest": r.content_digest,
        "status": r.status,
        "created_by": r.created_by,
        "evaluations": export_evaluations(core, "recipe", r.content_digest, r.base.digest),
        "terms": [
            {"vector": t.vector.name, "version": t.vector.version, "weight": t.weight} for t in r.terms
        ],
    }


def export_bundle(
    core: Core, refs: list[str], out: str | Path, sign_key: str | Path | None = None
) -> dict[str, Any]:
    """Write recipes (with their vectors and bases) and vectors named by `refs` to `out`.

    With `sign_key`, each recipe's tune and retention records are signed (with its content
    digest): a registry that trusts the key records them; unsigned, they land unverified."""
    recipes: dict[str, Recipe] = {}
    vectors: dict[tuple[str, str], Vector] = {}

    for ref in refs:
        try:
            r = get_recipe(core, ref)
            recipes[r.ref] = r
            for t in r.terms:
                v = get_vector(core, t.vector.ref, r.base.name)
                vectors[(v.base.name, v.ref)] = v
        except NotFound:
            v = get_vector(core, ref)
            vectors[(v.base.name, v.ref)] = v
    bases = {name: get_base(core, name) for name, _ in vectors}
    for r in recipes.values():
        bases[r.base.name] = get_base(core, r.base.name)
    entries = [_vector_entry(core, v, i) for i, v in enumerate(vectors.values())]
    recipe_entries = [_recipe_entry(core, r) for r in recipes.values()]
    left_behind = _left_behind(core, entries, recipe_entries, list(recipes.values()))
    manifest = {
        "format": FORMAT,
        "source_registry": core.id,
        "bases": [
            {
                "name": b.name,
                "source": b.source,
                "revision": b.revision,
                "revision_sha": b.revision_sha,
                "architecture": b.architecture,
                "dtype": b.dtype,
                "param_count": b.param_count,
                "digest": b.digest,
                "files": {f.filename: f.sha256 for f in b.files},
            }
            for b in bases.values()
        ],
        "vectors": entries,
        "recipes": recipe_entries,
    }
    notes = export_notes(core, list(recipes))  # tune and retention records travel with their recipe
    for entry in manifest["recipes"]:
        entry["notes"] = notes[f"{entry['name']}@v{entry['version']}"]
        if sign_key is not None:
            entry["notes_signatures"] = sign_notes(core, entry, str(sign_key))
    gone = [v.ref for v in vectors.values() if getattr(v, "collected_at", None) is not None]
    if gone:
        raise DataCollected(f"cannot export {', '.join(gone)}: `registry gc` removed their archived data")
    if sign_key is not None:  # recorded evaluations travel under the same key
        for kind, items, field in (
            ("vector", entries, "digest"),
            ("recipe", manifest["recipes"], "content_digest"),
        ):
            for entry in items:
                entry["evaluations_signatures"] = sign_evaluations(
                    core, kind, entry, entry[field], str(sign_key)
                )
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w") as tar:
            raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(raw)
            tar.addfile(info, fileobj=_BytesReader(raw))
            for entry, v in zip(entries, vectors.values(), strict=True):
                for rel in core.store.files(v.store_key):
                    data = core.store.read_file(v.store_key, rel)
                    info = tarfile.TarInfo(f"{entry['data']}/{rel}")
                    info.size = len(data)
                    tar.addfile(info, fileobj=_BytesReader(data))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "out": str(out),
        "bases": list(bases),
        "vectors": [v.ref for v in vectors.values()],
        "recipes": list(recipes),
        "left_behind": left_behind,
    }


def _left_behind(core: Core, vectors: list[dict], recipes: list[dict], rows: list[Recipe]) -> list[str]:
    """What the target will not get, said at export: approvals without a signature land as
    draft there, and an alias travels only with its recipe's signed approval (it is added to
    the entry here, so the target recreates it)."""
    out = []
    covered = {  # a signed recipe approval vouches for its vectors' digests at the target
        (rc["base"], t["vector"], t["version"])
        for rc in recipes
        if rc["status"] == "approved" and rc["signatures"]
        for t in rc["terms"]
    }
    for kind, entry in [*(("vector", e) for e in vectors), *(("recipe", e) for e in recipes)]:
        ref = f"{entry['name']}@v{entry['version']}"
        if kind == "vector" and (entry["base"], entry["name"], entry["version"]) in covered:
            continue
        if entry["status"] == "approved" and not entry["signatures"]:
            flag = "" if kind == "recipe" else " --vector"
            out.append(
                f"approval of {kind} {ref}: not signed, it lands as draft "
                f"(sign it: registry sign {ref}{flag} --key KEY)"
            )
    for entry, r in zip(recipes, rows, strict=True):
        names = [a.alias for a in list_aliases(core, r.name) if a.recipe_id == r.id]
        if entry["status"] == "approved" and entry["signatures"]:
            entry["aliases"] = names
        else:
            out += [f"alias {r.name}@{a}: its recipe's approval is not signed" for a in names]
    return out


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk
