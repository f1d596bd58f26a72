"""A linear recipe as a PEFT LoRA adapter: Σ ηᵢ·φᵢ served over the base, not a full model.

Serving stacks (vLLM, TGI, LoRAX) load many LoRA adapters over one base. A recipe whose
vectors are low-rank *is* such an adapter: each term's factors are stacked, η folded into
B (lora_B = [η₁B₁, η₂B₂, …], lora_A = [A₁; A₂; …]), exact. A dense term of a linear weight
gets a truncated SVD of its share Σ ηⱼφⱼ at `rank`; its relative error
‖Σηφ − adapter‖_F / ‖Σηφ‖_F (over the whole recipe) is recorded in the lock and the card.
Tensors a LoRA adapter cannot carry (norm scales, biases, embeddings) are left out and
counted in that error. Every module's scaling is 1 (lora_alpha = its rank).

The folder gets the same model card, `registry-lock.json`, materialization record and
optional signature as a full output; `registry verify --lock` checks it the same way.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.db import outbox
from registry.db.models import Materialization, Vector
from registry.errors import IntegrityError, RegistryError
from registry.governance.signing import sign_folder
from registry.records.bases import checked_base
from registry.records.hub import hub_id
from registry.records.recipes import get_recipe
from registry.records.verified_reads import open_checked
from registry.release.lockfile import build_lock, cached_card
from registry.release.materialize import require_all_approved
from registry.release.output_folders import (
    LOCK_NAME,
    _swap_into_place,
    check_replaceable,
    output_event,
    prepare_out,
)
from registry.storage.tensor_io import row_blocks
from registry.storage.vector_store import StoredVector
from registry.util.digests import ArrayHasher, array_sha256, content_digest, file_sha256, weights_digest

if TYPE_CHECKING:
    from registry.core import Core

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
WARN_ERROR = 0.1  # a relative error above this is reported as a warning: the adapter is not the recipe
EMBEDDINGS = ("embed", "wte", "wpe", "word_embeddings")


def adapts(name: str, shape: tuple[int, ...]) -> bool:
    """A tensor a LoRA module can carry: a linear layer's 2-D weight (not an embedding table)."""
    module = name.removesuffix(".weight")
    return len(shape) == 2 and name.endswith(".weight") and not any(e in module for e in EMBEDDINGS)


def _read_checked(data: StoredVector, v: Vector, name: str) -> np.ndarray:
    """A dense tensor whole (an SVD needs all of it), sha256-checked against its record."""
    t = next(t for t in v.tensors if t.name == name)
    shape = tuple(t.shape)
    h, parts = ArrayHasher(), []
    for a, b in row_blocks(shape, data.chunk_rows(name)):
        block = data.read_rows(name, a, b)
        h.update(block)
        parts.append(block)
    if h.hexdigest() != t.sha256:
        raise IntegrityError(
            f"vector {v.ref}: array {name} sha256 mismatch (its data changed since it was recorded)"
        )
    return np.concatenate(parts).reshape(shape) if shape else parts[0]


def _factors_checked(
    data: StoredVector, v: Vector, name: str, recorded: dict
) -> tuple[np.ndarray, np.ndarray]:
    b, a = data.factors(name)
    found = {"lora_A": array_sha256([a]), "lora_B": array_sha256([b])}
    if found != recorded.get("sha256"):
        raise IntegrityError(f"vector {v.ref}: array {name} factors sha256 mismatch")
    return b, a


def adapter_factors(
    vecs: list[Vector], data: list[StoredVector], weights: list[float], rank: int | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """{tensor name: (lora_B, lora_A)} equal to Σ ηᵢ·φᵢ (dense shares at `rank`), and the report."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lost = total = 0.0  # squared Frobenius norms: dropped by truncation or omission, and Σηφ's
    omitted, svd_modules = [], 0
    rows = [{t.name: t for t in v.tensors} for v in vecs]
    for name in sorted(rows[0]) if rows else []:
        shape = tuple(rows[0][name].shape)
        low, dense = [], None
        for v, d, w, r in zip(vecs, data, weights, rows, strict=True):
            t = r[name]
            if w == 0.0 or t.norm == 0.0:
                continue
            if t.factors:
                b, a = _factors_checked(d, v, name, t.factors)
                low.append((np.float32(w) * b, a))
            else:
                x = _read_checked(d, v, name).astype(np.float64) * w
                dense = x if dense is None else dense + x
        if not low and (dense is None or not dense.any()):
            continue
        l_b = np.concatenate([b for b, _ in low], axis=1) if low else np.zeros((shape[0], 0), np.float32)
        l_a = np.concatenate([a for _, a in low], axis=0) if low else np.zeros((0, shape[-1]), np.float32)
        lb64, la64 = l_b.astype(np.float64), l_a.astype(np.float64)
        norm2 = float(np.sum((lb64.T @ lb64) * (la64 @ la64.T)))  # ‖BA‖² without forming BA
        if dense is not None:
            norm2 += float(np.sum(dense * dense)) + 2.0 * float(np.sum(lb64 * (dense @ la64.T)))
        total += norm2
        if not adapts(name, shape):
            omitted.append(name)
            lost += norm2
            continue
        if dense is not None and dense.any():
            if rank is None:
                raise RegistryError(f"tensor {name} has dense terms: pass --rank R for their truncated SVD")
            u, s, vt = np.linalg.svd(dense, full_matrices=False)
            k = min(rank, int(np.count_nonzero(s)))
            lost += float(np.sum(s[k:] ** 2))
            root = np.sqrt(s[:k])
            l_b = np.concatenate([l_b, (u[:, :k] * root).astype(np.float32)], axis=1)
            l_a = np.concatenate([l_a, (root[:, None] * vt[:k]).astype(np.float32)], axis=0)
            svd_modules += 1
        out[name] = (np.ascontiguousarray(l_b), np.ascontiguousarray(l_a))
    report = {
        "format": "peft-lora",
        "dtype": "float32",  # the factors' dtype as written (whatever the recipe's output dtype)
        "svd_rank": rank,
        "relative_error": float(np.sqrt(lost / total)) if total > 0 else 0.0,
        "exact": lost == 0.0,
        "modules": len(out),
        "svd_modules": svd_modules,
        "omitted": omitted,
    }
    return out, report


def adapter_config(factors: dict[str, tuple[np.ndarray, np.ndarray]], base_model: str) -> dict[str, Any]:
    """PEFT's LoRA config: every module at its own rank with scaling 1 (alpha = rank)."""
    ranks = {n.removesuffix(".weight"): int(b.shape[1]) for n, (b, _) in factors.items()}
    r = max(ranks.values(), default=1)
    odd = {m: k for m, k in sorted(ranks.items()) if k != r}
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": r,
        "lora_alpha": r,
        "rank_pattern": odd,
        "alpha_pattern": odd,
        "target_modules": sorted(ranks),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "inference_mode": True,
    }


def materialize_adapter(
    core: Core,
    ref: str,
    out: str | Path,
    rank: int | None = None,
    force: bool = False,
    require_approved: bool = False,
    sign_key: str | Path | None = None,
    max_error: float | None = None,
) -> Materialization:
    """Write recipe `ref` (linear) to `out` as a PEFT LoRA adapter; see the module docstring.

    With `max_error`, an adapter whose relative error exceeds it is refused before anything is written."""
    import ml_dtypes  # noqa: F401 - registers numpy's "bfloat16", which safetensors.numpy needs
    from safetensors.numpy import save_file

    out = Path(out).resolve()
    r = get_recipe(core, ref)
    if r.method != "linear":
        raise RegistryError(f"--as-adapter writes linear recipes only; {r.ref} uses method {r.method}")
    if rank is not None and rank < 1:
        raise RegistryError(f"--rank must be at least 1, not {rank}")
    if max_error is not None and not 0.0 <= max_error < 1.0:
        raise RegistryError(f"--max-error is a relative error in [0, 1), not {max_error}")
    if require_approved:
        require_all_approved(r)
    if force:
        check_replaceable(core, out)
    prepare_out(out, force)
    t0 = time.perf_counter()
    b, base_w = checked_base(core, r.base.name)
    vecs = [t.vector for t in r.terms]
    data = [open_checked(core, v, base_w.names()) for v in vecs]
    factors, report = adapter_factors(vecs, data, [t.weight for t in r.terms], rank)
    if not factors:
        raise RegistryError(f"recipe {r.ref} changes no linear weight: a LoRA adapter would be empty")
    if max_error is not None and report["relative_error"] > max_error:
        raise RegistryError(
            f"adapter of {r.ref} refused: relative error {report['relative_error']:.4g}"
            + (f" at SVD rank {rank}" if rank is not None else "")
            + f" exceeds --max-error {max_error:g} (raise --rank, or materialize the full model); nothing written"
        )
    notes = {"adapter": report}
    # what peft's loaders open: the Hub id, else this host's folder (a registry name opens nothing)
    base_model = hub_id(b) or str(Path(b.path).resolve())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {}
        for name, (lb, la) in factors.items():
            stem = "base_model.model." + name.removesuffix(".weight")
            tensors[f"{stem}.lora_A.weight"], tensors[f"{stem}.lora_B.weight"] = la, lb
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        config = adapter_config(factors, base_model)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(cached_card(r, b, core.home / ".cache", notes))
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
        lock = {**build_lock(r, b, notes), "files": files, "output_digest": weights_digest(files)}
        (tmp / LOCK_NAME).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
        _swap_into_place(tmp, out, durable=False, force=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    m = Materialization(
        recipe_id=r.id,
        out_path=str(out),
        output_digest=weights_digest(files),
        # not the recipe's digest: a full materialization must never reuse an adapter folder
        inputs_digest=content_digest({"recipe": r.content_digest, "adapter": {"svd_rank": rank}}),
        files=files,
        seconds=time.perf_counter() - t0,
    )

    def write() -> Materialization:
        with core.Session.begin() as s:
            s.add(m)
            details = {"out": str(out), "output_digest": m.output_digest, "adapter": report}
            core.audit(s, "materialize.adapter", r.ref, details)
            outbox.emit(s, "output.materialized", r.ref, output_event(r, m, "adapter"), core.actor)
        return m

    m = core.write(write)
    m.recipe = r
    if sign_key is not None:
        sign_folder(out, sign_key)
    return m


def adapter_report(m: Materialization) -> dict[str, Any]:
    """The adapter section of an output's lock (what the CLI prints)."""
    return json.loads((Path(m.out_path) / LOCK_NAME).read_text())["notes"]["adapter"]
