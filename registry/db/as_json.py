"""Plain, JSON-ready views of registry objects for `--json`, tables and bundles.

The one renderer of rows: ORM objects and the fast DB-API listings (`catalog`) alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the fast listings render rows without loading the ORM
    from registry.db.models import (
        Alias,
        AuditEvent,
        BaseModel,
        Materialization,
        Recipe,
        TrainingRun,
        Vector,
        VectorTensor,
    )


# audit actions whose details are notes of the recipe version they name -> the note's key
NOTE_ACTIONS = {"recipe.tune": "tune", "recipe.retention": "retention"}


def timestamp(x: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with `Z`, the one form every output uses."""
    return x.isoformat(timespec="seconds") + "Z" if x else None


_t = timestamp


def tags_of(obj: Any) -> dict[str, str]:
    """{key: value} of a row's tags: loaded ORM rows or fast-listing rows alike ({} when unloaded)."""
    rows = vars(obj).get("tags") or ()
    return dict(rows) if isinstance(rows, dict) else {t.key: t.value for t in rows}


def base_view(b: BaseModel, files: bool = False) -> dict[str, Any]:
    out = {
        "name": b.name,
        "source": b.source,
        "revision": b.revision,
        "revision_sha": b.revision_sha,  # the Hub commit `revision` resolved to (None: local folder)
        "path": b.path,
        "architecture": b.architecture,
        "dtype": b.dtype,
        "param_count": b.param_count,
        "digest": b.digest,
        "created_at": _t(b.created_at),
    }
    if files:
        out["files"] = {f.filename: {"sha256": f.sha256, "size": f.size} for f in b.files}
    return out


def run_view(r: TrainingRun | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "id": r.id,
        "kind": r.kind,
        "plugin": r.plugin,
        "plugin_version": r.plugin_version,
        "dataset_digest": r.dataset_digest,
        "dataset_size": r.dataset_size,
        "params": r.params,
        "seed": r.seed,
        "sources": r.sources,
        "library_versions": r.library_versions,
        "status": r.status,
        "error": r.error,
        "started_at": _t(r.started_at),
        "ended_at": _t(r.ended_at),
        "seconds": (r.ended_at - r.started_at).total_seconds() if r.ended_at else None,
    }


def tensor_view(t: VectorTensor) -> dict[str, Any]:
    """Also the bundle format's tensor entry: keys are VectorTensor's columns."""
    return {
        "name": t.name,
        "shape": t.shape,
        "source_dtype": t.source_dtype,
        "norm": t.norm,
        "sha256": t.sha256,
        "factors": getattr(t, "factors", None),
    }


def vector_view(v: Vector, detail: bool = False) -> dict[str, Any]:
    out = {
        "ref": f"{v.name}@v{v.version}",
        "name": v.name,
        "version": v.version,
        "base": v.base.name,
        "status": v.status,
        "digest": v.digest,
        "param_count": v.param_count,
        "norm": v.norm,
        "stored_bytes": v.stored_bytes,
        "bytes_per_param": v.stored_bytes / max(v.param_count, 1),
        "rank": getattr(v, "rank", None),
        "description": getattr(v, "description", None),
        "tags": tags_of(v),
        "archived_at": _t(getattr(v, "archived_at", None)),
        "created_at": _t(v.created_at),
    }
    if detail:
        out.update(governance_view(v))
        out["archived_by"] = v.archived_by
        out["collected_at"] = _t(v.collected_at)  # `registry gc` removed its store data
        out["lineage"] = run_view(v.run)
        out["interference"] = v.interference
        out["tensors"] = [tensor_view(t) for t in v.tensors]
    return out


def governance_view(obj: Vector | Recipe) -> dict[str, Any]:
    """Who made a vector or recipe version, and who set its status and why (as REST shows it)."""
    return {
        "created_by": obj.created_by,
        "status_actor": obj.status_actor,
        "status_reason": obj.status_reason,
    }


def recipe_view(r: Recipe, aliases: list[Alias] | None = None, detail: bool = False) -> dict[str, Any]:
    out = {
        "ref": r.ref,
        "name": r.name,
        "version": r.version,
        "base": r.base.name,
        "method": r.method,
        "parameters": r.params,
        "dtype": r.dtype,
        "status": r.status,
        "content_digest": r.content_digest,
        "terms": [
            {"vector": t.vector.ref, "weight": t.weight, "digest": t.vector.digest, "status": t.vector.status}
            for t in r.terms
        ],
        # a recipe on a deprecated vector still merges, but must not look healthy where it is listed
        "deprecated_vectors": [t.vector.ref for t in r.terms if t.vector.status == "deprecated"],
        "aliases": sorted(a.alias for a in (aliases or []) if a.recipe_id == r.id),
        "description": r.description,
        "tags": tags_of(r),
        "archived_at": _t(r.archived_at),
        "created_at": _t(r.created_at),
    }
    if detail:
        out.update(governance_view(r))
    return out


def annotation_view(obj: Recipe | Vector, kind: str) -> dict[str, Any]:
    """What `tag`, `untag`, `describe`, `archive` and `unarchive` answer, on every path."""
    return {
        "ref": obj.ref,
        "kind": kind,
        "base": obj.base.name,
        "status": obj.status,
        "description": obj.description,
        "tags": tags_of(obj),
        "archived_at": _t(obj.archived_at),
        "archived_by": obj.archived_by,
    }


def materialization_view(m: Materialization) -> dict[str, Any]:
    return {
        "recipe": m.recipe.ref,
        "out": m.out_path,
        "output_digest": m.output_digest,
        "files": m.files,
        "seconds": round(m.seconds, 3),
        "reused": m.reused_from_id is not None,
        "created_at": _t(m.created_at),
    }


def event_view(e: AuditEvent) -> dict[str, Any]:
    return {
        "at": _t(e.at),
        "actor": e.actor,
        "actor_source": e.actor_source,
        "authenticated_as": e.authenticated_as,
        "action": e.action,
        "object": e.object,
        "details": e.details,
    }
