"""Importing a bundle: all checks first, then one transaction that adds everything or nothing.

Order: the manifest is read from the tar without extracting; bases are resolved (here, or
from a local folder, registered only inside the final transaction); each vector's tensor
list must be exactly its base's float tensors; every tar member is then checked against the
layout this implies (archive.py) before any is written; arrays are re-hashed and must be
finite; recipes are validated as `recipe add` does; statuses land as landing.py says. Each
item's outcome is reported.

A new vector's interference and plausibility are recomputed here, against this registry's
vectors of its base (and those the bundle brought before it), and judged by this team's
policy exactly as `vector import` judges them: the bundle's own report is never kept. The
keys an approval or a note rests on are re-read, locked, inside the write transaction, so a
`trust remove` that commits first leaves them draft, and one that waits sees them.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.db import outbox
from registry.db.models import BaseModel, Recipe
from registry.errors import AlreadyExists, IntegrityError, NotFound, RegistryError
from registry.exchange.archive import Archive, one_line
from registry.exchange.bundle_evaluations import checked_evaluations, record_imported
from registry.exchange.bundle_notes import checked_notes, record_notes, verify_notes
from registry.exchange.checks import (
    FORMAT,
    checked_lineage,
    confined,
    hub_origin,
    judged,
    recompute,
    source_creator,
)
from registry.exchange.landing import (
    Landing,
    apply_existing,
    checked_aliases,
    claimed,
    hold,
    keep_signatures,
    land_aliases,
    land_existing,
    land_new,
    recheck_keys,
    vouch,
)
from registry.exchange.layout import Layout, check_tensors, float_tensors, version_of
from registry.governance.signing import statement
from registry.records.bases import base_norm, base_row, get_base, inspect_folder, lookup_base, remember_pins
from registry.records.recipes import DTYPES, recipe_event, recipe_row, resolved_content, validate_parameters
from registry.records.runs import run_from_lineage
from registry.records.vectors import get_vector, lookup_vector, vector_row
from registry.storage.tensor_io import SafetensorsFolder
from registry.util.digests import content_digest, named_digest
from registry.util.faults import pause
from registry.util.finite import finite32
from registry.util.refs import Ref, check_name

if TYPE_CHECKING:
    from registry.core import Core


def import_bundle(core: Core, path: str | Path, base_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """Verify and add a bundle's contents; identical objects are skipped, conflicts refused.

    Returns the refs added (`vectors`, `recipes`) and, per item, what happened (`items`)."""
    try:
        return _import(core, Path(path), base_paths or {})
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        if isinstance(e, RegistryError):
            raise
        raise RegistryError(
            f"{path}: malformed bundle manifest ({type(e).__name__}: {one_line(e)})"
        ) from None


def _manifest(path: Path, doc: Any) -> dict[str, Any]:
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt != FORMAT:
        raise RegistryError(f"{path}: unsupported bundle format {str(fmt)[:40]!r}")
    for key in ("bases", "vectors", "recipes"):
        if not isinstance(doc.get(key), list) or not all(isinstance(x, dict) for x in doc[key]):
            raise RegistryError(f"{path}: malformed bundle manifest ({key} must be a list of objects)")
    return doc


def _bases(core: Core, manifest: dict, base_paths: dict[str, str]):
    """Each base: here already with the same pins, or a local folder (registered at commit)."""
    bases, pending = {}, {}
    for b in manifest["bases"]:
        name = check_name(b["name"], "base name")
        try:
            here = get_base(core, name)
            digest, folder = here.digest, Path(here.path)
        except NotFound:
            if name not in base_paths:
                raise NotFound("base", name, f"pass --base-path {name}=DIR with its files") from None
            folder = Path(base_paths[name]).expanduser().resolve()
            info = inspect_folder(folder)
            digest = named_digest({f: d for f, (d, _n) in info.files.items()})
            hub = hub_origin(manifest, name) or {
                "source": base_paths[name],
                "revision": None,
                "revision_sha": None,
            }
            pending[name] = (hub, folder, info)
        if digest != b["digest"]:
            raise AlreadyExists(
                f"base {name} here has other files than the bundle's (digest {digest[:12]} != {str(b['digest'])[:12]})"
            )
        bases[name] = SimpleNamespace(
            name=name, digest=digest, path=str(folder), weights=SafetensorsFolder(folder)
        )
    return bases, pending


def _import(core: Core, path: Path, base_paths: dict[str, str]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bundle-", dir=core.scratch())).resolve()
    created_keys: list[str] = []
    try:
        with Archive(path) as arc:
            manifest = _manifest(path, arc.manifest())
            bases, pending = _bases(core, manifest, base_paths)
            layout, refs = Layout(path), []
            for e in manifest["vectors"]:
                name = check_name(e["name"], "vector name")
                ref = f"{name}@v{version_of(e['version'], 'vector ' + name)}"
                if e["base"] not in bases:
                    raise IntegrityError(f"bundle vector {ref}: its base is not among the bundle's bases")
                wanted = float_tensors(bases[e["base"]].weights)
                listed = check_tensors(e, ref, e["base"], wanted)
                layout.add_vector(ref, e["data"], wanted, listed)
                refs.append(ref)
            arc.extract(work, layout.limit_of, layout.total)  # every member checked, then written

        vectors: list[tuple[dict, Landing, str | None, dict | None, int | None]] = []
        digests: dict[tuple[str, str], str] = {}
        policy = core.policy().interference  # the team's, as `vector import` applies it
        brought: dict[str, list] = {}  # base -> rows of the new vectors judged so far
        for e, ref in zip(manifest["vectors"], refs, strict=True):
            status, base = claimed(e, f"vector {ref}"), bases[e["base"]]

            def stmt(digest, e=e, base=base):
                return lambda st: statement(
                    "vector",
                    e["name"],
                    int(e["version"]),
                    digest,
                    st,
                    base=base.name,
                    base_digest=base.digest,
                )

            try:
                existing = get_vector(core, ref, e["base"])
            except NotFound:
                existing = None
            if existing is not None:
                if existing.digest != e["digest"]:
                    raise AlreadyExists(f"vector {ref} of base {e['base']} exists here with other data")
                digests[(e["base"], ref)] = existing.digest
                landing = land_existing(
                    core, "vector", ref, existing.status, status, stmt(existing.digest), e.get("signatures")
                )
                vectors.append((e, landing, None, None, existing.id))
                continue
            e["lineage"] = checked_lineage(e, ref)
            e["created_by"] = source_creator(e, f"vector {ref}")
            data = confined(work, e["data"], f"vector {ref} data")
            key = uuid.uuid4().hex
            core.store.put_group(data, key)  # moves a folder of our own scratch space only
            created_keys.append(key)
            fields = recompute(core, key, e, base.weights, ref)
            fields["interference"] = judged(core, base, e, key, fields, policy, pending, brought)
            digests[(e["base"], ref)] = fields["digest"]
            landing = land_new(core, "vector", ref, status, stmt(fields["digest"]), e.get("signatures"))
            vectors.append((e, landing, key, fields, None))

        for e, ref in zip(manifest["vectors"], refs, strict=True):  # evaluations: checked before any write
            digest, base_digest = digests[(e["base"], ref)], bases[e["base"]].digest
            e["checked_evaluations"] = checked_evaluations(core, "vector", e, ref, digest, base_digest)
        recipes = [_check_recipe(core, rc, bases, digests) for rc in manifest["recipes"]]
        vouch(vectors, recipes)
        hold(core, vectors, recipes)
        pause("import:before-write")

        protected = core.policy().protected_aliases  # read before the write transaction

        def write() -> dict[str, Any]:
            added_vectors, added_recipes, added_notes, unverified = [], [], 0, 0
            made, skipped = [], []  # aliases recreated, and those not (with why)
            with core.Session.begin() as s:
                recheck_keys(core, s, vectors, recipes)
                pause("import:keys-locked")
                for name, (hub, folder, info) in pending.items():
                    if s.scalar(select(BaseModel.id).where(BaseModel.name == name)) is not None:
                        raise AlreadyExists(f"base {name} was added meanwhile; import the bundle again")
                    row = base_row(name, hub["source"], hub["revision"], hub["revision_sha"], folder, info)
                    s.add(row)
                    details = {
                        "source": hub["source"],
                        "revision_sha": hub["revision_sha"],
                        "digest": row.digest,
                    }
                    core.audit(s, "base.add", name, {**details, "bundle": str(path)})
                s.flush()
                for e, landing, key, fields, existing_id in vectors:
                    if existing_id is not None:
                        if landing.outcome != "already present":
                            apply_existing(core, s, landing, existing_id, e, str(path))
                        continue
                    _add_vector(core, s, path, e, landing, key, fields)
                    added_vectors.append(landing.ref)
                s.flush()
                for rc, params, terms, landing, existing_id in recipes:
                    if existing_id is not None:
                        if landing.outcome != "already present":
                            apply_existing(core, s, landing, existing_id, rc, str(path))
                        n, u = _notes(core, s, landing.ref, rc, str(path))
                        added_notes, unverified = added_notes + n, unverified + u
                        got = land_aliases(core, s, rc, landing, existing_id, protected, str(path))
                        made, skipped = made + got[0], skipped + got[1]
                        continue
                    if s.scalar(
                        select(Recipe.id).where(
                            Recipe.name == rc["name"], Recipe.version == int(rc["version"])
                        )
                    ):
                        raise AlreadyExists(
                            f"recipe {landing.ref} was added meanwhile; import the bundle again"
                        )
                    base = lookup_base(s, rc["base"])
                    rows = [(lookup_vector(s, Ref.parse(v.ref), base_id=base.id), w) for v, w in terms]
                    r = recipe_row(
                        rc["name"], int(rc["version"]), base.id, rc["method"], rc["dtype"], params,
                        rc["content_digest"], rows, status=landing.status, created_by=rc["created_by"],
                    )  # fmt: skip
                    r.status_reason, r.imported_by = landing.reason, core.actor
                    s.add(r)
                    s.flush()
                    keep_signatures(core, s, "recipe", r.id, landing.kid, rc)
                    core.audit(s, "recipe.import-bundle", landing.ref, _details(path, landing, rc))
                    event = {**recipe_event(r, base, rows), "bundle": str(path)}
                    outbox.emit(s, "recipe.created", r.ref, event, core.actor)
                    added_recipes.append(landing.ref)
                    n, u = _notes(core, s, landing.ref, rc, str(path))
                    added_notes, unverified = added_notes + n, unverified + u
                    got = land_aliases(core, s, rc, landing, r.id, protected, str(path))
                    made, skipped = made + got[0], skipped + got[1]
                evaluations = sum(
                    record_imported(core, s, x.get("checked_evaluations"), str(path))
                    for x in [*manifest["vectors"], *manifest["recipes"]]
                )
            items = [x[1].view() for x in vectors] + [x[3].view() for x in recipes]
            return {
                "evaluations": evaluations,
                "vectors": added_vectors,
                "recipes": added_recipes,
                "notes": added_notes,
                "unverified_notes": unverified,
                "aliases": made,
                "aliases_skipped": skipped,
                "items": items,
            }

        result = core.write(write, attempts=3)
        created_keys.clear()  # committed: the data now belongs to rows
        for name, (_hub, folder, info) in pending.items():
            remember_pins(core, folder, info)
            base_norm(core, get_base(core, name), bases[name].weights)
        return result
    finally:
        for key in created_keys:
            core.store.delete(key)
        shutil.rmtree(work, ignore_errors=True)


def _details(path: Path, landing: Landing, entry: dict, **more: Any) -> dict[str, Any]:
    out = {"bundle": str(path), "status": landing.status, "outcome": landing.outcome, **more}
    if landing.reason:
        out["status_reason"] = landing.reason
    if landing.source_status:
        out["source_status"] = landing.source_status
    if isinstance(entry.get("history"), list):
        out["source_history"] = entry["history"][:50]
    return out


def _add_vector(core: Core, s, path: Path, e: dict, landing: Landing, key: str, fields: dict) -> None:
    base = lookup_base(s, e["base"])
    origin = {"bundle": str(path), "source_run": e["lineage"].get("id")}
    run = run_from_lineage(e["lineage"], base.id, e["name"], origin)
    s.add(run)
    s.flush()
    row_fields = {
        "name": e["name"],
        **fields,  # with the interference report computed here, never the bundle's
        "base_id": base.id,
        "store_key": key,
        "stored_bytes": core.store.nbytes(key),
    }
    row = vector_row(
        row_fields, fields["tensors"], version=int(e["version"]), run_id=run.id,
        status=landing.status, created_by=e["created_by"], imported_by=core.actor,
        status_reason=landing.reason,
    )  # fmt: skip
    s.add(row)
    s.flush()
    keep_signatures(core, s, "vector", row.id, landing.kid, e)
    core.audit(s, "vector.import-bundle", landing.ref, _details(path, landing, e, digest=fields["digest"]))
    event = {"vector": row.ref, "base": base.name, "digest": row.digest, "run": run.id, "how": "bundle"}
    outbox.emit(s, "vector.created", row.ref, {**event, "status": row.status}, core.actor)


def _check_recipe(core: Core, rc: dict, bases: dict, digests: dict) -> tuple:
    """A recipe entry validated as `recipe add` does, its content digest recomputed, its landing."""
    name = check_name(rc["name"], "recipe name")
    ref = f"{name}@v{version_of(rc['version'], 'recipe ' + name)}"
    params = validate_parameters(rc["method"], rc["parameters"], f"bundle recipe {ref}")
    if rc["dtype"] not in DTYPES:
        raise IntegrityError(f"bundle recipe {ref}: unknown dtype {str(rc['dtype'])[:40]!r}")
    base = bases.get(rc["base"]) or get_base(core, rc["base"])
    terms = []
    for t in rc["terms"]:
        tref = (
            f"{check_name(t['vector'], 'vector name')}@v{version_of(t['version'], 'recipe ' + ref + ' term')}"
        )
        w = t["weight"]
        if not finite32(w):
            raise IntegrityError(f"bundle recipe {ref}: weight {str(w)[:40]!r} is not finite as float32")
        if (rc["base"], tref) not in digests:
            digests[(rc["base"], tref)] = get_vector(core, tref, rc["base"]).digest
        terms.append((SimpleNamespace(ref=tref, digest=digests[(rc["base"], tref)]), float(w)))
    content = resolved_content(base, rc["method"], params, rc["dtype"], terms)
    if content_digest(content) != rc["content_digest"]:
        raise IntegrityError(f"bundle recipe {ref}: content digest does not match its resolved terms")
    vecs = [{"ref": v.ref, "digest": v.digest} for v, _ in terms]
    rc["created_by"] = source_creator(rc, f"recipe {ref}")
    rc["notes"] = checked_notes(rc, ref)  # tune and retention records, re-recorded with the recipe
    rc["notes_kid"], rc["notes_why"] = verify_notes(core, rc, rc["notes"])
    rc["aliases"] = checked_aliases(rc, ref)
    rc["checked_evaluations"] = checked_evaluations(
        core, "recipe", rc, ref, rc["content_digest"], base.digest
    )

    def stmt(st: str) -> dict:
        return statement("recipe", rc["name"], int(rc["version"]), rc["content_digest"], st, vectors=vecs)

    status = claimed(rc, f"recipe {ref}")
    with core.Session() as s:
        existing = s.scalar(
            select(Recipe).where(Recipe.name == rc["name"], Recipe.version == int(rc["version"]))
        )
        if existing is not None and existing.content_digest != rc["content_digest"]:
            raise AlreadyExists(f"recipe {ref} exists here with other content")
        here = (existing.id, existing.status) if existing is not None else None
    if here is not None:
        landing = land_existing(core, "recipe", ref, here[1], status, stmt, rc.get("signatures"))
    else:
        landing = land_new(core, "recipe", ref, status, stmt, rc.get("signatures"))
    return rc, params, terms, landing, here[0] if here else None


def _notes(core: Core, s, ref: str, rc: dict, bundle: str) -> tuple[int, int]:
    return record_notes(core, s, ref, rc["notes"], bundle, rc.get("notes_kid"), rc.get("notes_why"))
