"""Bytes of a LoRA vector in low-rank form against the same φ stored dense; 7B extrapolation.

    python benchmarks/low_rank_bytes.py [--workdir /tmp/lowrank] [--rank 4] [--steps 3]
        [--out benchmarks/results/2026-11-29-low-rank-bytes.json]

Builds the tiny test Llama, trains the `verbose` plugin's φ with `--lora-rank R` (stored as
its factors, rank 2R), writes the same φ expanded (B·A, exactly as the store reads it) as a
dense float32 θ+ with θ− = 0 and imports it: both vectors must have the same digest. Prints
and records the stored bytes of both, and extrapolates to Llama-2-7B shapes (rank 16 on every
linear layer: φ of rank 32) with the codec's measured bytes per trained factor value (plus
1 KiB of metadata and headers per array), against the
dense codec's 2.3213 bytes/param for trained φ (benchmarks/results/2026-11-24-codec-limits.json).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
from pathlib import Path

import numpy as np

# Llama-2-7B: hidden 4096, MLP 11008, 32 layers, vocabulary 32000, untied head
LLAMA2_7B = {"hidden": 4096, "intermediate": 11008, "layers": 32, "vocab": 32000}
DENSE_BYTES_PER_PARAM = 2.3213


def llama2_7b(rank: int) -> dict:
    h, m, n, v = (LLAMA2_7B[k] for k in ("hidden", "intermediate", "layers", "vocab"))
    linear = [(h, h)] * 4 + [(m, h), (m, h), (h, m)]  # q k v o, gate up (out × in), down
    k = 2 * rank  # φ = [s·B₊, −s·B₋]·[A₊; A₋]
    factor_values = n * sum(k * (o + i) for o, i in linear)
    params = n * (sum(o * i for o, i in linear) + 2 * h) + 2 * v * h + h  # + norms, embeddings, head
    return {
        "lora_rank": rank,
        "phi_rank": k,
        "param_count": params,
        "factor_values": factor_values,
        "factor_bytes_float32": 4 * factor_values,
        "dense_bytes_at_2.3213": round(params * DENSE_BYTES_PER_PARAM),
        "zero_tensors": 2 * v * h + (2 * n + 1) * h,  # stored dense: φ = 0 there
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/lowrank")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from safetensors.numpy import save_file

    from registry import Registry
    from registry.storage.codec import encode
    from registry.storage.tensor_io import BLOCK_BYTES
    from registry.testing.tiny_model import build_tiny_llama
    from registry.training.options import TrainingOptions

    root = Path(args.workdir)
    shutil.rmtree(root, ignore_errors=True)
    base = build_tiny_llama(root / "base", seed=0)
    reg = Registry.init(root / "home")
    reg.add_base("tiny", str(base))
    opts = TrainingOptions(steps=args.steps, lora_rank=args.rank, learning_rate=1e-3)
    low = reg.add_preference("verbose", "tiny", name="lora", options=opts)
    data = reg.store.open(low.store_key)
    phi = {n: data.read_rows(n, 0, data.spec(n).shape[0]) for n in data.names()}
    for role in ("plus", "minus"):
        d = root / role
        d.mkdir()
        shutil.copy(base / "config.json", d)
        values = phi if role == "plus" else {n: np.zeros_like(x) for n, x in phi.items()}
        save_file(values, d / "model.safetensors", metadata={"format": "pt"})
    dense = reg.import_vector("dense", "tiny", root / "plus", root / "minus")
    assert dense.digest == low.digest, "the dense form must have the same digest"

    factor_files = [f for f in reg.store.files(low.store_key) if ".lora_" in f.split("/")[0]]
    factor_stored = sum(len(reg.store.read_file(low.store_key, f)) for f in factor_files)
    factor_values = sum(
        math.prod(data.factors(t.name)[0].shape) + math.prod(data.factors(t.name)[1].shape)
        for t in low.tensors
        if t.factors
    )
    zero_chunk = len(encode(np.zeros(BLOCK_BYTES // 4, np.float32))) + 4  # + crc32c
    ext = llama2_7b(16)
    # the codec on the trained factors' values, without the tiny arrays' metadata and headers
    values = np.concatenate([x.ravel() for t in low.tensors if t.factors for x in data.factors(t.name)])
    per_value = len(encode(values)) / values.size
    arrays = 2 * 7 * LLAMA2_7B["layers"]
    ext["codec_bytes_per_factor_value"] = per_value
    ext["factor_bytes_stored_est"] = round(ext["factor_values"] * per_value) + arrays * 1024
    ext["zero_tensor_bytes_est"] = math.ceil(ext["zero_tensors"] * 4 / BLOCK_BYTES) * zero_chunk
    ext["ratio_dense_over_factors"] = ext["dense_bytes_at_2.3213"] / ext["factor_bytes_stored_est"]
    result = {
        "what": "stored bytes of a LoRA-trained φ in low-rank form vs the same φ dense",
        "machine": platform.platform(),
        "tiny": {
            "lora_rank": args.rank,
            "phi_rank": low.rank,
            "steps": args.steps,
            "param_count": low.param_count,
            "digest_equal": dense.digest == low.digest,
            "low_rank_stored_bytes": low.stored_bytes,
            "dense_stored_bytes": dense.stored_bytes,
            "dense_bytes_per_param": dense.stored_bytes / dense.param_count,
            "ratio_dense_over_low_rank": dense.stored_bytes / low.stored_bytes,
            "factor_values": factor_values,
            "factor_arrays_stored_bytes": factor_stored,
            "factor_stored_bytes_per_value_with_metadata": factor_stored / factor_values,
        },
        "llama2_7b_rank16_all_linear": ext,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
