"""Vector rows: NAME@vN of one base, built the one way (`vector_row`) and looked up by reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from registry.db.filters import Filter
from registry.db.models import Vector, VectorTensor
from registry.errors import NotFound, RegistryError
from registry.records.bases import lookup_base
from registry.records.catalogue import where
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core

VECTOR_FIELDS = (
    "name",
    "base_id",
    "store_key",
    "digest",
    "param_count",
    "norm",
    "stored_bytes",
    "rank",
    "interference",
)
TENSOR_FIELDS = ("name", "shape", "source_dtype", "norm", "sha256", "factors")


def vector_row(fields: dict[str, Any], tensors: list[dict[str, Any]], **overrides: Any) -> Vector:
    """A new Vector row with its tensor rows (used by import, training and bundles alike)."""
    return Vector(
        **{c: fields[c] for c in VECTOR_FIELDS if c in fields},
        **overrides,
        tensors=[VectorTensor(**{c: t.get(c) for c in TENSOR_FIELDS}) for t in tensors],
    )


def list_vectors(core: Core, base: str | None = None, f: Filter | None = None) -> list[Vector]:
    """Vectors by name and version; archived ones only as `f` asks (default: live ones)."""
    f = f or Filter()
    with core.Session() as s:
        q = select(Vector).options(selectinload(Vector.base), selectinload(Vector.run))
        if base:
            q = q.where(Vector.base_id == lookup_base(s, base).id)
        if f.base:
            lookup_base(s, f.base)  # an unknown base is an error, not an empty list
        return list(s.scalars(q.where(*where(Vector, f)).order_by(Vector.name, Vector.version)))


def get_vector(core: Core, ref: str, base: str | None = None) -> Vector:
    with core.Session() as s:
        return lookup_vector(s, Ref.parse(ref, "vector reference"), base)


def lookup_vector(s: Session, ref: Ref, base: str | None = None, base_id: int | None = None) -> Vector:
    if ref.alias:
        raise NotFound("vector", str(ref), "vectors are referenced as NAME or NAME@vN")
    q = (
        select(Vector)
        .options(selectinload(Vector.base), selectinload(Vector.run), selectinload(Vector.tensors))
        .where(Vector.name == ref.name)
    )
    if base_id is None and base:
        base_id = lookup_base(s, base).id
    if base_id is not None:
        q = q.where(Vector.base_id == base_id)
    if ref.version is not None:
        q = q.where(Vector.version == ref.version)
    else:  # NAME means the newest version that is neither deprecated nor archived
        q = q.where(Vector.status != "deprecated", Vector.archived_at.is_(None))
    rows = list(s.scalars(q.order_by(Vector.version.desc())))
    if not rows:
        hint = ""
        same_base = [Vector.base_id == base_id] if base_id is not None else []
        if ref.version is None and s.scalar(select(Vector.id).where(Vector.name == ref.name, *same_base)):
            hint = "every version is deprecated or archived; pin one as NAME@vN"
        elif base_id is not None and s.scalar(select(Vector.id).where(Vector.name == ref.name)):
            hint = "it exists, but for another base"
        raise NotFound("vector", str(ref), hint)
    if len({v.base_id for v in rows}) > 1:
        raise RegistryError(f"vector {ref} exists for several bases; pass --base")
    return rows[0]
