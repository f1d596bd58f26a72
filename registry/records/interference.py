"""Cosine similarity between vectors of one base: global, per layer, per module.

One streaming pass: for every tensor and row block, the N vectors' blocks are read and
their Gram matrix accumulated in float64, so data is read once (time ∝ N·size) and memory
holds only a few blocks per vector. Blocks run on the same ordered thread pipeline as
materialize (decoding, the float64 products and file reads release the GIL) and their
partial Gram matrices are summed in a fixed order, so the result does not depend on timing.
Cosines for any grouping follow from per-tensor Gram matrices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.db.models import Vector
from registry.errors import DataCollected, IncompatibleWeights, InterferenceRefused, NotFound, RegistryError
from registry.merging.gram import Gram, gram, summary
from registry.records.bases import list_bases, lookup_base
from registry.records.recipes import get_recipe
from registry.records.vectors import get_vector, list_vectors

if TYPE_CHECKING:
    from registry.config import InterferencePolicy
    from registry.core import Core
    from registry.db.models import BaseModel, Vector


# -- verbs -------------------------------------------------------------------------------
def vector_gram(core: Core, vecs: list[Vector], labels: list[str] | None = None) -> Gram:
    gone = [v.ref for v in vecs if getattr(v, "collected_at", None) is not None]
    if gone:
        raise DataCollected(f"{', '.join(gone)}: archived, and `registry gc` removed the store data")
    shapes = {t.name: tuple(t.shape) for t in vecs[0].tensors}
    data = [core.store.open(v.store_key, label=f"vector {v.ref}") for v in vecs]
    return gram(data, labels or [v.ref for v in vecs], shapes)


def check_interference(
    core: Core,
    b: BaseModel,
    vec: Vector,
    policy: InterferencePolicy | None,
    others: list[Vector] | None = None,
) -> dict[str, Any]:
    """Cosines of a new vector with the base's others, judged by the policy (warn/refuse/off).

    `others` defaults to the base's vectors here (a bundle adds those it brings before this one)."""
    policy = policy or core.config.interference
    others = list_vectors(core, b.name) if others is None else others
    digest = getattr(vec, "digest", None)
    identical = [o.ref for o in others if digest and o.digest == digest]
    if not others or policy.action == "off":
        report = {"cosines": {}, "policy": policy.action, "threshold": policy.threshold}
        if identical:
            report["identical_to"] = identical
            report["warning"] = _identical(vec, identical, digest)
        return report
    g = vector_gram(core, [vec, *others], ["new"] + [o.ref for o in others])
    cosines = {o.ref: summary(g, 0, i + 1) for i, o in enumerate(others)}
    worst = max(cosines.items(), key=lambda kv: abs(kv[1]["global"]))
    report = {
        "cosines": cosines,
        "max_abs_cosine": abs(worst[1]["global"]),
        "most_similar": worst[0],
        "policy": policy.action,
        "threshold": policy.threshold,
    }
    over = sorted(
        ((ref, abs(c["global"])) for ref, c in cosines.items() if abs(c["global"]) > policy.threshold),
        key=lambda rc: -rc[1],
    )
    messages = []
    if len(over) == 1:
        messages.append(
            f"vector {vec.name} interferes with {over[0][0]}: |cosine| {over[0][1]:.4f} > threshold {policy.threshold}"
        )
    elif over:
        named = ", ".join(f"{ref} ({c:.4f})" for ref, c in over)
        messages.append(
            f"vector {vec.name} interferes with {len(over)} vectors (|cosine| > threshold {policy.threshold}): {named}"
        )
    if identical:
        report["identical_to"] = identical
        messages.append(_identical(vec, identical, digest))
    if over:
        report["conflicts"] = [ref for ref, _ in over]
    if messages:
        report["warning"] = policy.judge("; ".join(messages), InterferenceRefused)
    return report


def _identical(vec: Vector, refs: list[str], digest: str) -> str:
    return f"vector {vec.name} is byte-identical to {', '.join(refs)} (same digest {digest[:16]}…)"


def interference(core: Core, base: str | None = None) -> tuple[list[Vector], Gram]:
    """All vectors of a base and their Gram data (one streaming pass over the store)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    if base is None:
        bases = list_bases(core)
        if len(bases) != 1:
            raise RegistryError(f"{len(bases)} bases registered; pass --base")
        base = bases[0].name
    with core.Session() as s:
        b = lookup_base(s, base)
        vecs = list(
            s.scalars(
                select(Vector)
                .options(selectinload(Vector.tensors), selectinload(Vector.base))
                .where(Vector.base_id == b.id, Vector.archived_at.is_(None))
                .order_by(Vector.name, Vector.version)
            )
        )
    if not vecs:
        raise NotFound("vectors of base", base)
    return vecs, vector_gram(core, vecs)


def compare(core: Core, a: str, b: str, base: str | None = None) -> dict[str, Any]:

    va, vb = get_vector(core, a, base), get_vector(core, b, base)
    if va.base_id != vb.base_id:
        raise IncompatibleWeights(f"{va.ref} and {vb.ref} belong to different bases")
    return {"a": va.ref, "b": vb.ref, "base": va.base.name, **summary(vector_gram(core, [va, vb]), 0, 1)}


def recipe_interference(core: Core, ref: str) -> tuple[list[Vector], Gram]:
    """The Gram data of one recipe's vectors, in term order (the order `orthogonal` uses)."""
    r = get_recipe(core, ref)
    vecs = [get_vector(core, t.vector.ref, r.base.name) for t in r.terms]
    return vecs, vector_gram(core, vecs)
