"""New vectors: φ = θ+ − θ− written to the store first, then made visible by one committed row.

Data is written under a random key before the row exists, so a crash leaves only an
unreferenced group for `gc`, never a visible half-vector. Before the row is written the vector
is checked for loss, plausibility (‖φ‖/‖θbase‖) and interference with the base's others.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select

from registry.config import InterferencePolicy
from registry.db import outbox
from registry.db.models import BaseModel, TrainingRun, Vector, utcnow
from registry.errors import IncompatibleWeights
from registry.records.bases import architecture_at, base_norm, check_compatible, checked_base
from registry.records.interference import check_interference
from registry.records.low_rank_vectors import (
    Factors,
    check_factors,
    expanded_record,
    factor_blocks,
    vector_rank,
)
from registry.records.runs import copy_run, new_run, stop_heartbeat
from registry.records.vectors import lookup_vector, vector_row
from registry.storage.delta import delta_block
from registry.storage.low_rank import factor_arrays
from registry.storage.tensor_io import FLOATS, TAG_NAMES, SafetensorsFolder, TensorReader, row_blocks
from registry.util.digests import named_digest
from registry.util.faults import crashpoint
from registry.util.memory import recycle_large_blocks
from registry.util.refs import Ref, check_name

if TYPE_CHECKING:
    from registry.core import Core


def import_vector(
    core: Core,
    name: str,
    base: str,
    positive: str | Path,
    negative: str | Path | None = None,
    policy: InterferencePolicy | None = None,
    require_lossless: bool = False,
    on_tensor: Callable[[int], None] | None = None,
) -> Vector:
    """φ = θ+ − θ− (θ− defaults to the base), streamed tensor block by tensor block.

    Whether φ is exact both ways is recorded (`lineage.params.lossless`); with
    `require_lossless` an inexact tensor refuses the import instead. `on_tensor(total)`
    hears each tensor as its data pass starts (progress).
    """
    check_name(name, "vector name")
    b, base_w = checked_base(core, base)

    sources: dict[str, Any] = {}
    folders = []
    # θ±'s files are hashed for the lineage on a thread beside the data pass, not before it
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-sha256")
    cache = core.stat_cache()
    pending: dict[str, dict[str, Any]] = {}
    for role, path in (("positive", positive), ("negative", negative)):
        if path is None:
            folders.append(base_w)
            sources[role] = {"base": b.name, "digest": b.digest}
            continue
        path = Path(path).resolve()
        w = SafetensorsFolder(path)
        check_compatible(base_w, w, architecture_at(path), b.architecture)
        folders.append(w)
        sources[role] = {"path": str(path)}
        pending[role] = {f.name: hashing.submit(cache.sha256, f) for f in w.files}
    pos_w, neg_w = folders
    # an import's run is committed together with its vector: a refused import leaves no trace
    run = new_run("import", b, name, sources=sources)

    def hashed() -> None:
        done = {
            role: {**run.sources[role], "files": {n: f.result() for n, f in fs.items()}}
            for role, fs in pending.items()
        }
        run.sources = {**run.sources, **done}

    try:
        return store_vector(
            core, name, b, run, base_w, pos_w, neg_w, policy, require_lossless, hashed, on_tensor=on_tensor
        )
    finally:
        hashing.shutdown(cancel_futures=True)


def import_low_rank(
    core: Core,
    name: str,
    base: str,
    factors: Factors,
    policy: InterferencePolicy | None = None,
    sources: dict[str, Any] | None = None,
) -> Vector:
    """A vector in low-rank form: the listed tensors are B·A (kept as factors), φ = 0 elsewhere."""
    check_name(name, "vector name")
    b, base_w = checked_base(core, base)
    factors = check_factors(base_w, factors)
    run = new_run("import", b, name, sources={"low_rank": sorted(factors), **(sources or {})})
    return store_vector(core, name, b, run, base_w, base_w, base_w, policy, low_rank=factors)


# ‖φ‖/‖θbase‖ above this is not a fine-tune of the base: docs/concepts.md says how it was chosen
RELATIVE_NORM_LIMIT = 1.0


def _matrix(shape) -> bool:
    """Matrices only: norm scales start at 1.0 in every model, so they would hide a foreign base."""
    return len(shape) >= 2


def plausibility(
    core: Core, b: BaseModel, ref_norm: float, tensors: list[dict], policy: InterferencePolicy | None
) -> dict[str, Any]:
    """‖φ‖/‖θbase‖ over the matrices, judged like interference (warn / refuse / off) above the limit."""
    policy = policy or core.config.interference
    norm = float(np.sqrt(sum(t["norm"] ** 2 for t in tensors if _matrix(t["shape"]))))
    rel = norm / ref_norm if ref_norm > 0 else 0.0
    report: dict[str, Any] = {"relative_norm": rel, "base_norm": ref_norm, "limit": RELATIVE_NORM_LIMIT}
    if rel > RELATIVE_NORM_LIMIT and policy.action != "off":
        message = (
            f"φ's norm is {rel:.3g}× the base's (fine-tunes of one base stay far below "
            f"{RELATIVE_NORM_LIMIT}): were θ+ and θ− fine-tuned from base {b.name}?"
        )
        report["warning"] = policy.judge(message, IncompatibleWeights)
    return report


def store_vector(
    core: Core,
    name: str,
    b: BaseModel,
    run: TrainingRun,
    base_w: TensorReader,
    pos_w: TensorReader,
    neg_w: TensorReader,
    policy: InterferencePolicy | None = None,
    require_lossless: bool = False,
    before_commit: Callable[[], None] | None = None,
    low_rank: Factors | None = None,
    on_tensor: Callable[[int], None] | None = None,
) -> Vector:
    """Write φ = θ+ − θ− for every float tensor, then make it visible in one transaction.

    `before_commit` finishes work that ran beside the data pass (import's source hashes);
    tensors in `low_rank` (checked factors) are stored as their factors B, A instead."""
    low_rank = low_rank or {}

    recycle_large_blocks()
    crashpoint("store:before-data")
    writer = core.store.writer()
    # ‖θbase‖ (for the plausibility check) is read on a thread beside the data pass
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="base-norm")
    base_norm_future = side.submit(base_norm, core, b, base_w)
    inexact: list[str] = []  # tensors whose φ does not give θ+ and θ− back exactly
    try:
        names = [n for n in base_w.names() if base_w.spec(n).tag in FLOATS]

        def blocks():
            for k, tname in enumerate(names):
                if k:
                    crashpoint("store:mid-data")
                if on_tensor is not None:
                    on_tensor(len(names))
                if tname in low_rank:
                    yield from factor_blocks(tname, *low_rank[tname])
                    continue
                shape = base_w.spec(tname).shape
                yield (
                    tname,
                    shape,
                    (
                        functools.partial(delta_block, pos_w, neg_w, tname, a, c, inexact, require_lossless)
                        for a, c in row_blocks(shape)
                    ),
                )

        writer.write(blocks())
        # Σx² of finite float32 values cannot overflow float64: a non-finite norm is a NaN or inf in φ
        bad = [n for n, sq in writer.norms.items() if not math.isfinite(sq)]
        if bad:
            raise IncompatibleWeights(
                f"tensor {bad[0]}: φ holds NaN or infinite values (θ+ − θ− overflows float32)"
            )

        def record(tname: str) -> dict[str, Any]:
            if tname in low_rank:
                a_name, b_name = factor_arrays(tname)
                digests = {"lora_A": writer.digests[a_name], "lora_B": writer.digests[b_name]}
                return expanded_record(tname, *low_rank[tname], digests)
            return {
                "name": tname,
                "shape": list(base_w.spec(tname).shape),
                "source_dtype": TAG_NAMES.get(pos_w.spec(tname).tag, pos_w.spec(tname).tag),
                "norm": writer.norms[tname],
                "sha256": writer.digests[tname],
            }

        tensors = [record(tname) for tname in names]
        writer.close()
        fields = {
            "rank": vector_rank(tensors),
            "name": name,
            "base_id": b.id,
            "store_key": writer.key,
            "digest": named_digest({t["name"]: t["sha256"] for t in tensors}),
            "param_count": sum(int(np.prod(t["shape"])) if t["shape"] else 1 for t in tensors),
            "norm": float(np.sqrt(sum(t["norm"] ** 2 for t in tensors))),
            "stored_bytes": core.store.nbytes(writer.key),
        }
        plausible = plausibility(core, b, base_norm_future.result(), tensors, policy)
        fields["interference"] = check_interference(core, b, vector_row(fields, tensors, version=0), policy)
        fields["interference"]["plausibility"] = plausible
        if before_commit:
            before_commit()
        crashpoint("store:before-commit")
        run_persisted = run.id is not None

        def commit() -> Vector:
            # fresh rows on every attempt: a retried transaction must not reuse objects
            # whose keys were assigned by the attempt that lost the race
            with core.Session.begin() as s:
                latest = s.scalar(
                    select(func.max(Vector.version)).where(Vector.base_id == b.id, Vector.name == name)
                )
                r = s.get(TrainingRun, run.id) if run_persisted else copy_run(run)
                if not run_persisted:
                    s.add(r)
                r.status, r.ended_at = "succeeded", utcnow()
                # the run's in-memory params may have grown since it started (how θ± were made)
                r.params = {**(r.params or {}), **(run.params or {}), "lossless": not inexact}
                if inexact:
                    r.params["inexact_tensors"] = sorted(set(inexact))
                s.flush()
                row = vector_row(
                    fields, tensors, version=(latest or 0) + 1, run_id=r.id, created_by=core.actor
                )
                s.add(row)
                core.audit(
                    s,
                    f"vector.{run.kind}",
                    f"{name}@v{row.version}",
                    {"base": b.name, "digest": row.digest, "run": r.id},
                )
                outbox.emit(
                    s,
                    "vector.created",
                    row.ref,
                    {"vector": row.ref, "base": b.name, "digest": row.digest, "run": r.id, "how": run.kind},
                    core.actor,
                )
                s.flush()
                return lookup_vector(s, Ref(name, row.version), base_id=b.id)

        vec = core.write(commit)
        stop_heartbeat(run.id)  # the run ended with its vector's commit
        crashpoint("store:after-commit")
        _vouch(core, writer.key, {t["name"]: t["sha256"] for t in tensors if not t.get("factors")})
        return vec
    except BaseException:
        writer.abort()
        raise
    finally:
        side.shutdown(cancel_futures=True)


def _vouch(core: Core, key: str, digests: dict[str, str]) -> None:
    """Arrays just hashed as they were written: the stat cache may vouch for them until changed."""
    if core.store.path is None:
        return
    cache = core.stat_cache()
    for name, digest in digests.items():
        cache.remember_tree(core.store.path / "data" / key / name, digest)
