"""Bundles: move bases' pins, vectors (data and lineage) and recipes between registries.

A bundle is a plain tar (vector chunks are already compressed): `manifest.json` and one
folder per vector holding its Zarr group. Importing verifies every array against the
sha256 in the manifest before anything becomes visible, keeps names and version numbers,
accepts what is already there identically and refuses any conflict. Base weights are not
carried (they are usually public and large): the target registers them from a local folder,
and their pins must match.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.errors import AlreadyExists, IntegrityError, NotFound, RegistryError
from registry.models import Recipe
from registry.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core
    from registry.models import Vector

FORMAT = 1


def _vector_entry(v: Vector, index: int) -> dict[str, Any]:
    from registry.views import run_view, tensor_view

    return {
        "name": v.name,
        "version": v.version,
        "base": v.base.name,
        "digest": v.digest,
        "param_count": v.param_count,
        "norm": v.norm,
        "status": v.status,
        "interference": v.interference,
        "lineage": run_view(v.run),
        "tensors": [tensor_view(t) for t in v.tensors],
        "data": f"vectors/{index}",
    }


def _recipe_entry(r: Recipe) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "base": r.base.name,
        "method": r.method,
        "dtype": r.dtype,
        "parameters": r.params,
        "content_digest": r.content_digest,
        "status": r.status,
        "terms": [
            {"vector": t.vector.name, "version": t.vector.version, "weight": t.weight} for t in r.terms
        ],
    }


def export_bundle(core: Core, refs: list[str], out: str | Path) -> dict[str, Any]:
    """Write recipes (with their vectors and bases) and vectors named by `refs` to `out`."""
    recipes: dict[str, Recipe] = {}
    vectors: dict[tuple[str, str], Vector] = {}
    from registry.bases import get_base
    from registry.recipes import get_recipe
    from registry.vectors import get_vector

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
    entries = [_vector_entry(v, i) for i, v in enumerate(vectors.values())]
    manifest = {
        "format": FORMAT,
        "source_registry": core.id,
        "bases": [
            {
                "name": b.name,
                "source": b.source,
                "revision": b.revision,
                "architecture": b.architecture,
                "dtype": b.dtype,
                "param_count": b.param_count,
                "digest": b.digest,
                "files": {f.filename: f.sha256 for f in b.files},
            }
            for b in bases.values()
        ],
        "vectors": entries,
        "recipes": [_recipe_entry(r) for r in recipes.values()],
    }
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
    }


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk


def import_bundle(core: Core, path: str | Path, base_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """Verify and add a bundle's contents; identical objects are skipped, conflicts refused."""
    from registry.bases import add_base, get_base, lookup_base
    from registry.digests import named_digest
    from registry.recipes import recipe_row
    from registry.runs import run_from_lineage
    from registry.vectors import get_vector, lookup_vector, vector_row

    base_paths = base_paths or {}
    path = Path(path)
    work = Path(tempfile.mkdtemp(prefix="bundle-", dir=core.scratch()))
    created_keys: list[str] = []
    try:
        try:
            with tarfile.open(path, "r") as tar:
                tar.extractall(work, filter="data")  # refuses absolute paths, '..' and links out
        except (OSError, tarfile.TarError) as e:
            raise RegistryError(f"{path}: not a registry bundle ({e})") from None
        try:
            manifest = json.loads((work / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            raise RegistryError(f"{path}: not a registry bundle (manifest: {e})") from None
        if manifest.get("format") != FORMAT:
            raise RegistryError(f"{path}: unsupported bundle format {manifest.get('format')!r}")

        # bases: must already be here with the same pins, or be registered from a local folder
        for b in manifest["bases"]:
            try:
                here = get_base(core, b["name"])
            except NotFound:
                if b["name"] not in base_paths:
                    raise NotFound(
                        "base", b["name"], f"pass --base-path {b['name']}=DIR with its files"
                    ) from None
                here = add_base(core, b["name"], base_paths[b["name"]])
            if here.digest != b["digest"]:
                raise AlreadyExists(
                    f"base {b['name']} here has other files than the bundle's (digest {here.digest[:12]} != {b['digest'][:12]})"
                )

        # vectors: verify every array before anything becomes visible
        todo = []
        for e in manifest["vectors"]:
            ref = f"{e['name']}@v{e['version']}"
            try:
                existing = get_vector(core, ref, e["base"])
            except NotFound:
                existing = None
            if existing is not None:
                if existing.digest != e["digest"]:
                    raise AlreadyExists(f"vector {ref} of base {e['base']} exists here with other data")
                continue
            key = uuid.uuid4().hex
            core.store.put_group(work / e["data"], key)
            created_keys.append(key)
            stored = core.store.open(key, label=f"bundle vector {ref}")
            digests = {}
            for t in e["tensors"]:
                got = stored.sha256(t["name"])
                if got != t["sha256"]:
                    raise IntegrityError(f"bundle vector {ref}: array {t['name']} sha256 mismatch")
                digests[t["name"]] = got
            if named_digest(digests) != e["digest"]:
                raise IntegrityError(f"bundle vector {ref}: digest mismatch")
            todo.append((e, key))

        def write() -> dict[str, Any]:
            added_vectors, added_recipes = [], []
            with core.Session.begin() as s:
                for e, key in todo:
                    base = lookup_base(s, e["base"])
                    origin = {"bundle": str(path), "source_run": (e.get("lineage") or {}).get("id")}
                    run = run_from_lineage(e.get("lineage") or {}, base.id, e["name"], origin)
                    s.add(run)
                    s.flush()
                    fields = {
                        **e,
                        "base_id": base.id,
                        "store_key": key,
                        "stored_bytes": core.store.nbytes(key),
                    }
                    s.add(
                        vector_row(
                            fields, e["tensors"], version=e["version"], run_id=run.id, status=e["status"]
                        )
                    )
                    ref = f"{e['name']}@v{e['version']}"
                    core.audit(s, "vector.import-bundle", ref, {"bundle": str(path), "digest": e["digest"]})
                    added_vectors.append(ref)
                s.flush()
                for rc in manifest["recipes"]:
                    ref = f"{rc['name']}@v{rc['version']}"
                    existing = s.scalar(
                        select(Recipe).where(Recipe.name == rc["name"], Recipe.version == rc["version"])
                    )
                    if existing is not None:
                        if existing.content_digest != rc["content_digest"]:
                            raise AlreadyExists(f"recipe {ref} exists here with other content")
                        continue
                    base = lookup_base(s, rc["base"])
                    terms = [
                        (lookup_vector(s, Ref(t["vector"], t["version"]), base_id=base.id), t["weight"])
                        for t in rc["terms"]
                    ]
                    s.add(
                        recipe_row(
                            rc["name"],
                            rc["version"],
                            base.id,
                            rc["method"],
                            rc["dtype"],
                            rc["parameters"],
                            rc["content_digest"],
                            terms,
                            status=rc["status"],
                        )
                    )
                    core.audit(s, "recipe.import-bundle", ref, {"bundle": str(path)})
                    added_recipes.append(ref)
            return {"vectors": added_vectors, "recipes": added_recipes}

        result = core.write(write, attempts=3)
        created_keys.clear()  # committed: the data now belongs to rows
        return result
    finally:
        for key in created_keys:
            core.store.delete(key)
        shutil.rmtree(work, ignore_errors=True)
