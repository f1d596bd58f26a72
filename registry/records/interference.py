"""Cosine similarity between vectors of one base: global, per layer, per module.

One streaming pass: for every tensor and row block, the N vectors' blocks are read and
their Gram matrix accumulated in float64, so data is read once (time ∝ N·size) and memory
holds only a few blocks per vector. Blocks run on the same ordered thread pipeline as
materialize (decoding, the float64 products and file reads release the GIL) and their
partial Gram matrices are summed in a fixed order, so the result does not depend on timing.
Cosines for any grouping follow from per-tensor Gram matrices.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.storage.tensor_io import row_blocks
from registry.storage.vector_store import StoredVector

if TYPE_CHECKING:
    from registry.config import InterferencePolicy
    from registry.core import Core
    from registry.db.models import BaseModel, Vector

_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_of(name: str) -> str:
    m = _LAYER.search(name)
    return f"layer.{int(m.group(1))}" if m else "other"


def module_of(name: str) -> str:
    """`model.layers.3.self_attn.q_proj.weight` → `self_attn.q_proj.weight`."""
    m = _LAYER.search(name)
    return name[m.end() :] if m else name


@dataclass
class Gram:
    labels: list[str]
    per_tensor: dict[str, np.ndarray]  # tensor name -> N×N float64 Gram matrix

    def _cos(self, names: list[str]) -> np.ndarray:
        g = sum((self.per_tensor[n] for n in names), np.zeros((len(self.labels),) * 2))
        norms = np.sqrt(np.clip(np.diag(g), 0, None))
        denom = np.outer(norms, norms)
        return np.divide(g, denom, out=np.zeros_like(g), where=denom > 0)

    def cosine(self) -> np.ndarray:
        return self._cos(sorted(self.per_tensor))

    def grouped(self, key: Callable[[str], str]) -> dict[str, np.ndarray]:
        groups: dict[str, list[str]] = {}
        for n in self.per_tensor:
            groups.setdefault(key(n), []).append(n)
        return {k: self._cos(v) for k, v in sorted(groups.items(), key=lambda kv: _natural(kv[0]))}


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


SLICE = 1 << 15  # elements per float64 product: N×SLICE×8 bytes stays in cache


def _block_gram(vectors: list[StoredVector], name: str, a: int, b: int) -> tuple[str, np.ndarray]:
    rows = [v.read_rows(name, a, b).reshape(-1) for v in vectors]
    n, size = len(rows), rows[0].size
    g = np.zeros((n, n))
    x = np.empty((n, min(SLICE, size)))
    for s in range(0, size, SLICE):
        m = min(SLICE, size - s)
        for i, r in enumerate(rows):
            x[i, :m] = r[s : s + m]  # widened to float64 while copied
        g += x[:, :m] @ x[:, :m].T
    return name, g


def gram(vectors: list[StoredVector], labels: list[str], shapes: dict[str, tuple[int, ...]]) -> Gram:
    import functools
    import os
    from concurrent.futures import ThreadPoolExecutor

    from registry.util.pipeline import ordered

    per_tensor = {name: np.zeros((len(vectors), len(vectors))) for name in sorted(shapes)}
    if not vectors:
        return Gram(labels, per_tensor)
    remote = getattr(vectors[0].blobs, "remote", False)
    workers = 8 if remote else max(2, os.cpu_count() or 2)
    jobs = (
        functools.partial(_block_gram, vectors, name, a, b)
        for name, shape in sorted(shapes.items())
        for a, b in row_blocks(shape)
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gram") as pool:
        for name, g in ordered(pool, jobs, 2 * workers):
            per_tensor[name] += g
    return Gram(labels, per_tensor)


def summary(g: Gram, i: int, j: int) -> dict:
    """Cosine of vectors i and j: global, per layer and per module."""
    return {
        "global": float(g.cosine()[i, j]),
        "per_layer": {k: float(c[i, j]) for k, c in g.grouped(layer_of).items()},
        "per_module": {k: float(c[i, j]) for k, c in g.grouped(module_of).items()},
    }


# -- verbs -------------------------------------------------------------------------------
def vector_gram(core: Core, vecs: list[Vector], labels: list[str] | None = None) -> Gram:
    shapes = {t.name: tuple(t.shape) for t in vecs[0].tensors}
    data = [core.store.open(v.store_key, label=f"vector {v.ref}") for v in vecs]
    return gram(data, labels or [v.ref for v in vecs], shapes)


def check_interference(
    core: Core, b: BaseModel, vec: Vector, policy: InterferencePolicy | None
) -> dict[str, Any]:
    """Cosines of a new vector with the base's others, judged by the policy (warn/refuse/off)."""
    from registry.errors import InterferenceRefused
    from registry.records.vectors import list_vectors

    policy = policy or core.config.interference
    others = list_vectors(core, b.name)
    if not others or policy.action == "off":
        return {"cosines": {}, "policy": policy.action, "threshold": policy.threshold}
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
    if abs(worst[1]["global"]) > policy.threshold:
        message = (
            f"vector {vec.name} interferes with {worst[0]}: |cosine| {abs(worst[1]['global']):.4f} "
            f"> threshold {policy.threshold}"
        )
        report["warning"] = policy.judge(message, InterferenceRefused)
    return report


def interference(core: Core, base: str | None = None) -> tuple[list[Vector], Gram]:
    """All vectors of a base and their Gram data (one streaming pass over the store)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from registry.db.models import Vector
    from registry.errors import NotFound, RegistryError
    from registry.records.bases import list_bases, lookup_base

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
                .where(Vector.base_id == b.id)
                .order_by(Vector.name, Vector.version)
            )
        )
    if not vecs:
        raise NotFound("vectors of base", base)
    return vecs, vector_gram(core, vecs)


def compare(core: Core, a: str, b: str, base: str | None = None) -> dict[str, Any]:
    from registry.errors import IncompatibleWeights
    from registry.records.vectors import get_vector

    va, vb = get_vector(core, a, base), get_vector(core, b, base)
    if va.base_id != vb.base_id:
        raise IncompatibleWeights(f"{va.ref} and {vb.ref} belong to different bases")
    return {"a": va.ref, "b": vb.ref, "base": va.base.name, **summary(vector_gram(core, [va, vb]), 0, 1)}


def orthogonal_removed(g: Gram) -> dict[str, float]:
    """Per vector (in the Gram's order), the share of its norm `orthogonal` merging removes.

    Projections are per tensor, as the method does them: 1 − ‖Σₜ uₖ,ₜ‖ / ‖φₖ‖ over all tensors.
    """
    from registry.merging.methods.orthogonal import residuals

    kept = np.zeros(len(g.labels))
    total = np.zeros(len(g.labels))
    for name in sorted(g.per_tensor):
        gt = g.per_tensor[name]
        r = residuals(gt)
        kept += np.einsum("ki,ij,kj->k", r, gt, r)
        total += np.diag(gt)
    frac = np.divide(
        np.sqrt(np.clip(kept, 0, None)), np.sqrt(total), out=np.ones_like(total), where=total > 0
    )
    return {label: float(1.0 - f) for label, f in zip(g.labels, frac, strict=True)}


def recipe_interference(core: Core, ref: str) -> tuple[list[Vector], Gram]:
    """The Gram data of one recipe's vectors, in term order (the order `orthogonal` uses)."""
    from registry.records.recipes import get_recipe
    from registry.records.vectors import get_vector

    r = get_recipe(core, ref)
    vecs = [get_vector(core, t.vector.ref, r.base.name) for t in r.terms]
    return vecs, vector_gram(core, vecs)
