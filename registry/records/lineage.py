"""Lineage: base → training runs → vectors → recipe versions → aliases, approvals, outputs.

One JSON-ready tree per reference (a recipe, a vector or a base), read from the rows and
the audit log; `lineage_of_lock` walks upward from a materialized folder's lock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import defer, selectinload

from registry.db.as_json import run_view, tags_of, timestamp
from registry.db.models import Alias, AuditEvent, Evaluation, Materialization, Recipe, RecipeTerm, Vector
from registry.errors import IntegrityError, NotFound
from registry.records.bases import get_base
from registry.records.recipes import get_recipe
from registry.records.vectors import get_vector

if TYPE_CHECKING:
    from registry.core import Core

LIFECYCLE = (".approved", ".deprecated", ".draft")


def _resolve(core: Core, ref: str) -> tuple[str, Any]:
    """(kind, row) for a recipe reference, else a vector reference, else a base name."""
    for kind, get in (("recipe", get_recipe), ("vector", get_vector), ("base", get_base)):
        if kind == "base" and "@" in ref:
            break
        try:
            return kind, get(core, ref)
        except NotFound:
            continue
    raise NotFound("recipe, vector or base", ref)


def _events(s, objects: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not objects:
        return out
    for e in s.scalars(select(AuditEvent).where(AuditEvent.object.in_(objects)).order_by(AuditEvent.id)):
        if e.action.endswith(LIFECYCLE):
            refused = e.action.startswith("refused.")  # a rule refused it: nothing changed
            out.setdefault(e.object, []).append(
                {
                    "status": "refused" if refused else e.action.rsplit(".", 1)[1],
                    "attempted": e.action.rsplit(".", 1)[1],
                    "actor": e.actor,
                    "at": timestamp(e.at),
                    "reason": (e.details or {}).get("reason"),
                }
            )
    return out


def _evaluations(s, subjects: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(kind, digest) -> its recorded evaluations, newest first, in brief."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    digests = {d for _k, d in subjects}
    if not digests:
        return out
    q = select(Evaluation).where(Evaluation.subject_digest.in_(digests)).order_by(Evaluation.id.desc())
    for e in s.scalars(q):
        out.setdefault((e.subject_kind, e.subject_digest), []).append(
            {
                "id": e.id,
                "digest": e.digest,
                "base_digest": e.base_digest,
                "grid": e.grid,
                "metrics": sorted({m for p in e.points for m in p["metrics"]}),
                "prompts_source": e.prompts_source,
                "created_by": e.created_by,
                "at": timestamp(e.created_at),
                "imported_by": e.imported_by,
            }
        )
    return out


UNKNOWN_RUN = {"id": None, "kind": "unknown"}  # a vector whose run row is gone


def _annotations(obj: Recipe | Vector) -> dict[str, Any]:
    """Description, tags and archived time of a node (an archived version stays in its lineage)."""
    return {"description": obj.description, "tags": tags_of(obj), "archived_at": _iso(obj.archived_at)}


def _iso(t: Any) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def lineage(core: Core, ref: str) -> dict[str, Any]:
    """The lineage tree of `ref` (recipe NAME[@vN|@ALIAS], vector NAME[@vN], or base NAME)."""
    kind, row = _resolve(core, ref)
    base_id = row.id if kind == "base" else row.base_id
    with core.Session() as s:
        # only the rows the tree shows, without the columns it never reads (interference, tensors):
        # a base with a thousand vectors would otherwise be decoded whole for one recipe
        vq = (
            select(Vector)
            .options(selectinload(Vector.run), selectinload(Vector.base), defer(Vector.interference))
            .where(Vector.base_id == base_id)
        )
        rq = (
            select(Recipe)
            .options(
                selectinload(Recipe.base),
                selectinload(Recipe.terms).selectinload(RecipeTerm.vector).defer(Vector.interference),
            )
            .where(Recipe.base_id == base_id)
        )
        if kind == "recipe":
            vq = vq.where(Vector.id.in_([t.vector_id for t in row.terms]))
            rq = rq.where(Recipe.id == row.id)
        elif kind == "vector":
            vq = vq.where(Vector.id == row.id)
            rq = rq.where(Recipe.id.in_(select(RecipeTerm.recipe_id).where(RecipeTerm.vector_id == row.id)))
        vecs = list(s.scalars(vq.order_by(Vector.name, Vector.version)))
        recipes = list(s.scalars(rq.order_by(Recipe.name, Recipe.version)))
        ids = [r.id for r in recipes]
        aliases = (
            list(s.scalars(select(Alias).where(Alias.recipe_id.in_(ids)).order_by(Alias.alias)))
            if ids
            else []
        )
        mats = (
            list(
                s.scalars(
                    select(Materialization)
                    .where(Materialization.recipe_id.in_(ids), Materialization.replaced_at.is_(None))
                    .order_by(Materialization.id)
                )
            )
            if ids
            else []
        )
        events = _events(s, {v.ref for v in vecs} | {r.ref for r in recipes})
        evals = _evaluations(
            s, [("vector", v.digest) for v in vecs] + [("recipe", r.content_digest) for r in recipes]
        )
        b = vecs[0].base if vecs else (row if kind == "base" else row.base)
    recipe_nodes = {
        r.id: {
            "ref": r.ref,
            "method": r.method,
            "status": r.status,
            "content_digest": r.content_digest,
            **_annotations(r),
            "terms": [{"vector": t.vector.ref, "weight": t.weight} for t in r.terms],
            "aliases": [f"{a.recipe_name}@{a.alias}" for a in aliases if a.recipe_id == r.id],
            "approvals": events.get(r.ref, []),
            "evaluations": evals.get(("recipe", r.content_digest), []),
            "materializations": [
                {
                    "id": m.id,
                    "out_path": m.out_path,
                    "output_digest": m.output_digest,
                    "at": timestamp(m.created_at),
                    "reused_from": m.reused_from_id,
                    "adapter": "adapter_config.json" in (m.files or {}),  # materialize --as-adapter
                }
                for m in mats
                if m.recipe_id == r.id
            ],
        }
        for r in recipes
    }
    runs: dict[Any, dict[str, Any]] = {}
    for v in vecs:
        node = runs.setdefault(v.run_id, {**(run_view(v.run) or UNKNOWN_RUN), "vectors": []})
        node["vectors"].append(
            {
                "ref": v.ref,
                "digest": v.digest,
                "status": v.status,
                **_annotations(v),
                "approvals": events.get(v.ref, []),
                "evaluations": evals.get(("vector", v.digest), []),
                "recipes": [recipe_nodes[r.id] for r in recipes if any(t.vector_id == v.id for t in r.terms)],
            }
        )
    return {
        "ref": ref,
        "kind": kind,
        "base": {"name": b.name, "source": b.source, "revision": b.revision, "digest": b.digest},
        "runs": sorted(runs.values(), key=lambda r: (r["id"] is None, r["id"] or 0)),  # oldest first
    }


def lineage_of_lock(core: Core, lock_path: str | Path) -> dict[str, Any]:
    """Walk upward from a materialized folder: its lock → the recipe version → … → the base."""
    lock_path = Path(lock_path)
    if lock_path.is_dir():
        lock_path = lock_path / "registry-lock.json"
    try:
        lock = json.loads(lock_path.read_text())
        rec = lock["recipe"]
        ref, digest, output = f"{rec['name']}@v{rec['version']}", rec["content_digest"], lock["output_digest"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{lock_path}: not a registry lock file ({e})") from None
    try:
        tree = lineage(core, ref)
    except NotFound:
        raise NotFound(
            "recipe", ref, f"the lock {lock_path} names a recipe this registry does not hold"
        ) from None
    node = tree["runs"][0]["vectors"][0]["recipes"][0] if tree["runs"] else None
    tree["lock"] = {
        "path": str(lock_path.resolve()),
        "recipe": ref,
        "output_digest": output,
        "content_matches": node is not None and node["content_digest"] == digest,
        "materialization": next(
            (m["id"] for m in (node or {}).get("materializations", []) if m["output_digest"] == output), None
        ),
    }
    return tree


def nodes_and_edges(tree: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The tree as a DAG: (id, column, label) nodes and (from, to) edges, each node once."""
    base = tree["base"]
    nodes: dict[str, tuple[str, str, str]] = {
        "base": ("base", "base", f"{base['name']}\n{base['digest'][:12]}")
    }
    edges: set[tuple[str, str]] = set()
    for run in tree["runs"]:
        rid = f"run:{run['id']}"
        what = run.get("plugin") or run["kind"]
        nodes[rid] = (rid, "run", f"run {run['id']}: {what}\nseed {run.get('seed')}")
        edges.add(("base", rid))
        for v in run["vectors"]:
            vid = f"vector:{v['ref']}"
            nodes[vid] = (vid, "vector", f"{v['ref']}\n{v['status']}")
            edges.add((rid, vid))
            for r in v["recipes"]:
                cid = f"recipe:{r['ref']}"
                aliases = ",".join(a.split("@", 1)[1] for a in r["aliases"])
                nodes[cid] = (
                    cid,
                    "recipe",
                    f"{r['ref']} ({r['method']})\n{r['status']}" + (f" @{aliases}" if aliases else ""),
                )
                edges.add((vid, cid))
                for m in r["materializations"]:
                    mid = f"out:{m['id']}"
                    kind = " (adapter)" if m.get("adapter") else ""
                    nodes[mid] = (
                        mid, "output", f"{Path(m['out_path']).name}{kind}\n{m['output_digest'][:12]}"
                    )  # fmt: skip
                    edges.add((cid, mid))
    return list(nodes.values()), sorted(edges)
