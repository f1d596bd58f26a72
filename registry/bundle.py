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

from registry.errors import AlreadyExists, IntegrityError, NotFound, RegistryError
from registry.refs import Ref

if TYPE_CHECKING:
    from registry.api import Registry
    from registry.models import Recipe, Vector

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


def export_bundle(reg: Registry, refs: list[str], out: str | Path) -> dict[str, Any]:
    """Write recipes (with their vectors and bases) and vectors named by `refs` to `out`."""
    recipes: dict[str, Recipe] = {}
    vectors: dict[tuple[str, str], Vector] = {}
    for ref in refs:
        try:
            r = reg.recipe(ref)
            recipes[r.ref] = r
            for t in r.terms:
                v = reg.vector(t.vector.ref, r.base.name)
                vectors[(v.base.name, v.ref)] = v
        except NotFound:
            v = reg.vector(ref)
            vectors[(v.base.name, v.ref)] = v
    bases = {name: reg.base(name) for name, _ in vectors}
    for r in recipes.values():
        bases[r.base.name] = reg.base(r.base.name)
    entries = [_vector_entry(v, i) for i, v in enumerate(vectors.values())]
    manifest = {
        "format": FORMAT,
        "source_registry": reg.id,
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
                for rel in reg.store.files(v.store_key):
                    data = reg.store.read_file(v.store_key, rel)
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


def import_bundle(
    reg: Registry, path: str | Path, base_paths: dict[str, str] | None = None
) -> dict[str, Any]:
    """Verify and add a bundle's contents; identical objects are skipped, conflicts refused."""
    from sqlalchemy import select

    from registry import db as dbmod
    from registry.api import vector_digest
    from registry.models import Recipe, RecipeTerm, TrainingRun, Vector, VectorTensor, utcnow

    base_paths = base_paths or {}
    path = Path(path)
    from registry.training import scratch_dir

    work = Path(tempfile.mkdtemp(prefix="bundle-", dir=scratch_dir(reg.home)))
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
                here = reg.base(b["name"])
            except NotFound:
                if b["name"] not in base_paths:
                    raise NotFound(
                        "base", b["name"], f"pass --base-path {b['name']}=DIR with its files"
                    ) from None
                here = reg.add_base(b["name"], base_paths[b["name"]])
            if here.digest != b["digest"]:
                raise AlreadyExists(
                    f"base {b['name']} here has other files than the bundle's (digest {here.digest[:12]} != {b['digest'][:12]})"
                )

        # vectors: verify every array before anything becomes visible
        todo = []
        for e in manifest["vectors"]:
            try:
                existing = reg.vector(f"{e['name']}@v{e['version']}", e["base"])
            except NotFound:
                existing = None
            if existing is not None:
                if existing.digest != e["digest"]:
                    raise AlreadyExists(
                        f"vector {e['name']}@v{e['version']} of base {e['base']} exists here with other data"
                    )
                continue
            src = work / e["data"]
            key = uuid.uuid4().hex
            reg.store.put_group(src, key)
            created_keys.append(key)
            stored = reg.store.open(key, label=f"bundle vector {e['name']}@v{e['version']}")
            digests = {}
            for t in e["tensors"]:
                got = stored.sha256(t["name"])
                if got != t["sha256"]:
                    raise IntegrityError(
                        f"bundle vector {e['name']}@v{e['version']}: array {t['name']} sha256 mismatch"
                    )
                digests[t["name"]] = got
            if vector_digest(digests) != e["digest"]:
                raise IntegrityError(f"bundle vector {e['name']}@v{e['version']}: digest mismatch")
            todo.append((e, key))

        def write() -> dict[str, Any]:
            added_vectors, added_recipes = [], []
            with reg.Session.begin() as s:
                for e, key in todo:
                    base = reg._base(s, e["base"])
                    lin = e.get("lineage") or {}
                    run = TrainingRun(
                        kind=lin.get("kind") or "import",
                        base_id=base.id,
                        vector_name=e["name"],
                        plugin=lin.get("plugin"),
                        plugin_version=lin.get("plugin_version"),
                        dataset_digest=lin.get("dataset_digest"),
                        dataset_size=lin.get("dataset_size"),
                        params=lin.get("params") or {},
                        seed=lin.get("seed"),
                        sources={
                            **(lin.get("sources") or {}),
                            "bundle": str(path),
                            "source_run": lin.get("id"),
                        },
                        library_versions=lin.get("library_versions") or {},
                        status="succeeded",
                        started_at=utcnow(),
                        ended_at=utcnow(),
                    )
                    s.add(run)
                    s.flush()
                    s.add(
                        Vector(
                            name=e["name"],
                            version=e["version"],
                            base_id=base.id,
                            run_id=run.id,
                            store_key=key,
                            digest=e["digest"],
                            param_count=e["param_count"],
                            norm=e["norm"],
                            stored_bytes=reg.store.nbytes(key),
                            status=e["status"],
                            interference=e["interference"],
                            tensors=[VectorTensor(**t) for t in e["tensors"]],
                        )
                    )
                    reg._audit(
                        s,
                        "vector.import-bundle",
                        f"{e['name']}@v{e['version']}",
                        {"bundle": str(path), "digest": e["digest"]},
                    )
                    added_vectors.append(f"{e['name']}@v{e['version']}")
                s.flush()
                for rc in manifest["recipes"]:
                    existing = s.scalar(
                        select(Recipe).where(Recipe.name == rc["name"], Recipe.version == rc["version"])
                    )
                    if existing is not None:
                        if existing.content_digest != rc["content_digest"]:
                            raise AlreadyExists(
                                f"recipe {rc['name']}@v{rc['version']} exists here with other content"
                            )
                        continue
                    base = reg._base(s, rc["base"])
                    terms = []
                    for i, t in enumerate(rc["terms"]):
                        v = reg._vector(s, Ref(t["vector"], t["version"]), None, base_id=base.id)
                        terms.append(RecipeTerm(position=i, vector_id=v.id, weight=t["weight"]))
                    s.add(
                        Recipe(
                            name=rc["name"],
                            version=rc["version"],
                            base_id=base.id,
                            method=rc["method"],
                            dtype=rc["dtype"],
                            params=rc["parameters"],
                            content_digest=rc["content_digest"],
                            status=rc["status"],
                            terms=terms,
                        )
                    )
                    reg._audit(
                        s, "recipe.import-bundle", f"{rc['name']}@v{rc['version']}", {"bundle": str(path)}
                    )
                    added_recipes.append(f"{rc['name']}@v{rc['version']}")
            return {"vectors": added_vectors, "recipes": added_recipes}

        result = dbmod.retrying(write, attempts=3)
        created_keys.clear()  # committed: the data now belongs to rows
        return result
    finally:
        for key in created_keys:
            reg.store.delete(key)
        shutil.rmtree(work, ignore_errors=True)
