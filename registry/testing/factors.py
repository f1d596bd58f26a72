"""Random low-rank factors for a tiny model's linear weights (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def random_factors(base: Path, rank: int = 4, seed: int = 0, scale: float = 0.05) -> dict:
    """{weight name: (B, A)} float32 for every attention and MLP projection of `base`."""
    import ml_dtypes  # noqa: F401 - registers numpy's "bfloat16", which safetensors.numpy needs
    from safetensors.numpy import load_file

    rng = np.random.default_rng(seed)
    shapes = {
        n: t.shape
        for n, t in load_file(Path(base) / "model.safetensors").items()
        if any(f".{m}." in n for m in LINEAR)
    }
    return {
        n: (
            rng.standard_normal((s[0], rank)).astype(np.float32) * scale,
            rng.standard_normal((rank, s[1])).astype(np.float32) * scale,
        )
        for n, s in sorted(shapes.items())
    }
