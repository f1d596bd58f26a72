"""Bundles: move bases' pins, vectors (data and lineage) and recipes between registries.

A bundle is a plain tar (vector chunks are already compressed): `manifest.json` and one
folder per vector holding its Zarr group, plus the approval signatures. A bundle is
untrusted input: every path in it is confined to the extraction folder in the registry's
scratch space (no links, nothing outside is ever moved or deleted); every digest is
recomputed from the data (arrays, vectors, recipes' resolved terms) and methods and
parameters are validated as `recipe add` does; an `approved` status is kept only when its
signature verifies against a key this registry trusts, otherwise it lands as draft with the
source status recorded. Names and versions are kept, identical objects are skipped, any
conflict is refused. Base weights are not carried: the target registers them from a local
folder, and their pins must match.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.db.as_json import run_view, tensor_view
from registry.db.models import Recipe
from registry.errors import AlreadyExists, IntegrityError, NotFound, RegistryError
from registry.exchange.bundle_notes import checked_notes, export_notes, record_notes
from registry.exchange.checks import confined, extract, hub_origin, landing_status, recompute
from registry.governance.signing import record_signature, signatures_of, statement
from registry.records.bases import add_base, get_base, inspect_folder, lookup_base
from registry.records.recipes import DTYPES, get_recipe, recipe_row, resolved_content, validate_parameters
from registry.records.runs import run_from_lineage
from registry.records.vectors import get_vector, lookup_vector, vector_row
from registry.storage.tensor_io import SafetensorsFolder
from registry.util.digests import content_digest, named_digest
from registry.util.refs import Ref, check_name

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Vector

from registry.exchange.checks import FORMAT


def _vector_entry(core: Core, v: Vector, index: int) -> dict[str, Any]:

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
        "signatures": signatures_of(core, "vector", v.id),
    }


def _recipe_entry(core: Core, r: Recipe) -> dict[str, Any]:

    return {
        "signatures": signatures_of(core, "recipe", r.id),
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
        "recipes": [_recipe_entry(core, r) for r in recipes.values()],
    }
    notes = export_notes(core, list(recipes))  # tune and retention records travel with their recipe
    for entry in manifest["recipes"]:
        entry["notes"] = notes[f"{entry['name']}@v{entry['version']}"]
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
    try:
        return _import(core, Path(path), base_paths or {})
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise RegistryError(f"{path}: malformed bundle manifest ({type(e).__name__}: {e})") from None


def _import(core: Core, path: Path, base_paths: dict[str, str]) -> dict[str, Any]:

    work = Path(tempfile.mkdtemp(prefix="bundle-", dir=core.scratch())).resolve()
    created_keys: list[str] = []
    try:
        manifest = extract(path, work)
        # bases: must already be here with the same pins, or come from a local folder (registered
        # only once everything else has passed, so a refused bundle leaves no base behind)
        bases, pending = {}, []
        for b in manifest["bases"]:
            try:
                here = get_base(core, b["name"])
            except NotFound:
                if b["name"] not in base_paths:
                    raise NotFound(
                        "base", b["name"], f"pass --base-path {b['name']}=DIR with its files"
                    ) from None
                folder = Path(base_paths[b["name"]]).expanduser().resolve()
                pins = {f: d for f, (d, _n) in inspect_folder(folder).files.items()}
                here = SimpleNamespace(name=b["name"], digest=named_digest(pins), path=str(folder))
                pending.append(b["name"])
            bases[b["name"]] = here
            if here.digest != b["digest"]:
                raise AlreadyExists(
                    f"base {b['name']} here has other files than the bundle's (digest {here.digest[:12]} != {b['digest'][:12]})"
                )

        # vectors: every path confined, every digest recomputed, before anything is visible
        todo, digests = [], {}
        for e in manifest["vectors"]:
            ref = f"{check_name(e['name'], 'vector name')}@v{int(e['version'])}"
            data = confined(work, e["data"], f"vector {ref} data")
            try:
                existing = get_vector(core, ref, e["base"])
            except NotFound:
                existing = None
            if existing is not None:
                if existing.digest != e["digest"]:
                    raise AlreadyExists(f"vector {ref} of base {e['base']} exists here with other data")
                digests[(e["base"], ref)] = existing.digest
                continue
            key = uuid.uuid4().hex
            core.store.put_group(data, key)  # moves a folder of our own scratch space only
            created_keys.append(key)
            fields = recompute(core, key, e, SafetensorsFolder(bases[e["base"]].path), ref)
            digests[(e["base"], ref)] = fields["digest"]
            todo.append((e, key, fields))

        # recipes: validated as `recipe add` does, content digest recomputed from the terms
        checked = []
        for rc in manifest["recipes"]:
            ref = f"{check_name(rc['name'], 'recipe name')}@v{int(rc['version'])}"
            params = validate_parameters(rc["method"], rc["parameters"], f"bundle recipe {ref}")
            if rc["dtype"] not in DTYPES:
                raise IntegrityError(f"bundle recipe {ref}: unknown dtype {rc['dtype']!r}")
            base = bases.get(rc["base"]) or get_base(core, rc["base"])
            terms = []
            for t in rc["terms"]:
                tref = f"{t['vector']}@v{int(t['version'])}"
                w = t["weight"]
                if isinstance(w, bool) or not isinstance(w, int | float) or w != w or abs(w) == float("inf"):
                    raise IntegrityError(f"bundle recipe {ref}: weight {w!r} is not a finite number")
                if (rc["base"], tref) not in digests:
                    digests[(rc["base"], tref)] = get_vector(core, tref, rc["base"]).digest
                terms.append((SimpleNamespace(ref=tref, digest=digests[(rc["base"], tref)]), float(w)))
            content = resolved_content(base, rc["method"], params, rc["dtype"], terms)
            if content_digest(content) != rc["content_digest"]:
                raise IntegrityError(f"bundle recipe {ref}: content digest does not match its resolved terms")
            vecs = [{"ref": v.ref, "digest": v.digest} for v, _ in terms]
            status, kid = landing_status(
                core,
                rc["status"],
                lambda st, rc=rc, vecs=vecs: statement(
                    "recipe", rc["name"], int(rc["version"]), rc["content_digest"], st, vectors=vecs
                ),
                rc.get("signatures"),
                f"recipe {ref}",
            )
            checked.append((rc, ref, params, terms, content, status, kid))
            rc["notes"] = checked_notes(rc, ref)
        vouched = set()  # vectors whose digests a verified recipe signature covers
        for rc, _ref, _params, terms, _content, status, _kid in checked:
            if status == "approved":
                vouched |= {(rc["base"], v.ref) for v, _w in terms}

        landed = []
        for e, key, fields in todo:
            ref = f"{e['name']}@v{int(e['version'])}"
            status, kid = landing_status(
                core,
                e["status"],
                lambda st, e=e, fields=fields: statement(
                    "vector", e["name"], int(e["version"]), fields["digest"], st, base=e["base"]
                ),
                e.get("signatures"),
                f"vector {ref}",
            )
            if e["status"] == "approved" and status == "draft" and (e["base"], ref) in vouched:
                status = "approved"  # a verified recipe signature covers this vector's digest
            landed.append((e, key, fields, status, kid))

        def note(claimed: str, status: str, kid: str | None) -> dict[str, Any]:
            if claimed == "approved" and status != "approved":
                return {"status_reason": f"imported as draft: the bundle said {claimed}, but no signature "
                        "verified against a trusted key", "source_status": claimed}  # fmt: skip
            return {"status_reason": f"imported approved, signature by key {kid[:16]}"} if kid else {}

        def write() -> dict[str, Any]:
            added_vectors, added_recipes, added_notes = [], [], 0
            with core.Session.begin() as s:
                for e, key, fields, status, kid in landed:
                    base = lookup_base(s, e["base"])
                    origin = {"bundle": str(path), "source_run": (e.get("lineage") or {}).get("id")}
                    run = run_from_lineage(e.get("lineage") or {}, base.id, e["name"], origin)
                    s.add(run)
                    s.flush()
                    row_fields = {
                        "name": e["name"],
                        "interference": e.get("interference") or {},
                        **fields,
                        "base_id": base.id,
                        "store_key": key,
                        "stored_bytes": core.store.nbytes(key),
                    }
                    extra = note(e["status"], status, kid)
                    row = vector_row(
                        row_fields, fields["tensors"], version=int(e["version"]), run_id=run.id,
                        status=status, created_by=core.actor, status_reason=extra.get("status_reason"),
                    )  # fmt: skip
                    s.add(row)
                    s.flush()
                    _keep_signatures(core, s, "vector", row.id, kid, e)
                    ref = f"{e['name']}@v{int(e['version'])}"
                    core.audit(s, "vector.import-bundle", ref,
                               {"bundle": str(path), "digest": fields["digest"], "status": status, **extra})  # fmt: skip
                    added_vectors.append(ref)
                s.flush()
                for rc, ref, params, terms, _content, status, kid in checked:
                    existing = s.scalar(
                        select(Recipe).where(Recipe.name == rc["name"], Recipe.version == int(rc["version"]))
                    )
                    if existing is not None:
                        if existing.content_digest != rc["content_digest"]:
                            raise AlreadyExists(f"recipe {ref} exists here with other content")
                        added_notes += record_notes(core, s, ref, rc["notes"], str(path))
                        continue
                    base = lookup_base(s, rc["base"])
                    rows = [(lookup_vector(s, Ref.parse(v.ref), base_id=base.id), w) for v, w in terms]
                    extra = note(rc["status"], status, kid)
                    r = recipe_row(
                        rc["name"], int(rc["version"]), base.id, rc["method"], rc["dtype"], params,
                        rc["content_digest"], rows, status=status, created_by=core.actor,
                    )  # fmt: skip
                    r.status_reason = extra.get("status_reason")
                    s.add(r)
                    s.flush()
                    _keep_signatures(core, s, "recipe", r.id, kid, rc)
                    core.audit(
                        s, "recipe.import-bundle", ref, {"bundle": str(path), "status": status, **extra}
                    )
                    added_recipes.append(ref)
                    added_notes += record_notes(core, s, ref, rc["notes"], str(path))
            return {"vectors": added_vectors, "recipes": added_recipes, "notes": added_notes}

        for name in pending:
            add_base(core, name, base_paths[name], hub=hub_origin(manifest, name))
        result = core.write(write, attempts=3)
        created_keys.clear()  # committed: the data now belongs to rows
        return result
    finally:
        for key in created_keys:
            core.store.delete(key)
        shutil.rmtree(work, ignore_errors=True)


def _keep_signatures(core: Core, s, kind: str, row_id: int, kid: str | None, entry: dict) -> None:
    """Record the entry's signatures made with the key that verified its approval."""
    for sig in entry.get("signatures") or []:
        if isinstance(sig, dict) and sig.get("key_id") == kid:
            record_signature(core, s, kind, row_id, kid, sig.get("statement") or {}, sig["bundle"])
