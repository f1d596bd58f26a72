"""The store's codecs on real DPO deltas and synthetic ones: bytes/param and single-core speed.

    python benchmarks/bench_codec.py [--workdir /work/bench-codec] [--out results/DATE-codec.json]

Real DPO deltas: a tiny bf16 Llama is built locally and `add-preference verbose` trains θ+
and the label-switched θ− with DPO (trl), as a user would; the stored vector's bytes/param
comes from the registry. Synthetic: the fine-tune-like variants of make_models.py (the
benchmark fixtures), and float32 noise (every low half non-zero: the worst case). Speeds are
single-core (blosc's own threads off) CPU ns/param, split16 against the first format.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from report import emit

HERE = Path(__file__).resolve().parent


def speed(deltas: list[np.ndarray]) -> dict:
    from numcodecs import blosc

    from registry.storage import codec

    blosc.use_threads = False
    n = sum(d.size for d in deltas)
    out: dict = {}
    for label, enc, dec in (
        ("split16", codec.encode, codec.decode),
        (
            "blosc_lz4hc1_shuffle (first format)",
            lambda d: blosc.compress(d, b"lz4hc", 1, blosc.SHUFFLE, 0),
            lambda c: np.frombuffer(blosc.decompress(c), "<f4"),
        ),
    ):
        te = td = 0.0
        size = 0
        for d in deltas:
            t0 = time.thread_time()
            c = enc(d)
            t1 = time.thread_time()
            back = dec(c)
            t2 = time.thread_time()
            assert np.array_equal(back.view(np.uint32), d.reshape(-1).view(np.uint32))
            te, td, size = te + t1 - t0, td + t2 - t1, size + len(c)
        out[label] = {
            "bytes_per_param": round(size / n, 4),
            "encode_ns_per_param": round(te / n * 1e9, 2),
            "decode_ns_per_param": round(td / n * 1e9, 2),
        }
    bits = np.concatenate([d.reshape(-1) for d in deltas]).view(np.uint32)
    out["share_low_half_nonzero"] = float(np.count_nonzero(bits & 0xFFFF) / n)
    out["share_zero"] = float(np.count_nonzero((bits & 0x7FFFFFFF) == 0) / n)
    out["params"] = n
    return out


def entropy_bits(symbols: np.ndarray) -> float:
    """Order-0 (empirical) entropy of a sample, in bits per symbol."""
    counts = np.bincount(symbols.reshape(-1))
    p = counts[counts > 0] / symbols.size
    return float(-(p * np.log2(p)).sum())


def limits(deltas: list[np.ndarray]) -> dict:
    """How small any lossless code can make these values: entropy per byte plane and what the
    strongest general-purpose codecs reach (slow settings, for the bound, not for the store).

    If the low 16 bits are (close to) 16 bits of entropy, a lossless store needs (close to)
    2 bytes/param for them alone, before the sign, exponent and top mantissa bits."""
    import lzma

    from numcodecs import blosc

    bits = np.concatenate([d.reshape(-1) for d in deltas]).view(np.uint32)
    planes = [((bits >> (8 * k)) & 0xFF).astype(np.uint8) for k in range(4)]  # byte 0: lowest
    shuffled = np.concatenate(planes).tobytes()
    n = bits.size
    return {
        "entropy_bits_per_byte_plane (low to high)": [round(entropy_bits(p), 4) for p in planes],
        "order0_bytes_per_param": round(sum(entropy_bits(p) for p in planes) / 8, 4),
        "entropy_bits_low_16": round(entropy_bits((bits & 0xFFFF).astype(np.uint16)), 4),
        "lzma9e_byte_planes_bytes_per_param": round(
            len(lzma.compress(shuffled, preset=9 | lzma.PRESET_EXTREME)) / n, 4
        ),
        "blosc_zstd9_bitshuffle_bytes_per_param": round(
            len(blosc.compress(bits, b"zstd", 9, blosc.BITSHUFFLE, 0)) / n, 4
        ),
    }


def real_dpo(work: Path, learning_rate: float, steps: int) -> dict:
    from registry import Registry
    from registry.testing.tiny_model import build_tiny_llama
    from registry.training.options import TrainingOptions

    home = work / f"home-lr{learning_rate:g}"
    shutil.rmtree(home, ignore_errors=True)
    base = work / "tiny-base"
    if not (base / "config.json").exists():
        build_tiny_llama(base, hidden=256, layers=4, intermediate=688, heads=8)
    reg = Registry.init(home)
    reg.add_base("tiny", str(base))
    t0 = time.perf_counter()
    v = reg.add_preference(
        "verbose", "tiny", seed=0, options=TrainingOptions(steps=steps, learning_rate=learning_rate)
    )
    seconds = time.perf_counter() - t0
    data = reg.store.open(v.store_key)
    deltas = [data.read_rows(t.name, 0, t.shape[0] if t.shape else 1) for t in v.tensors]
    result = {
        "learning_rate": learning_rate,
        "steps": steps,
        "train_and_store_s": round(seconds, 1),
        "stored_bytes_per_param": v.stored_bytes / v.param_count,
        **speed(deltas),
        "limits": limits(deltas),
    }
    reg.close()
    return result


def synthetic(work: Path) -> dict:
    from registry.storage.tensor_io import SafetensorsFolder, to_f32

    models = work / "synthetic"
    if not (models / "minus" / "config.json").exists():
        subprocess.run(
            [sys.executable, str(HERE / "make_models.py"), str(models), "--layers", "2"],
            check=True,
            stdout=sys.stderr,
        )
    p, m = SafetensorsFolder(models / "plus"), SafetensorsFolder(models / "minus")
    deltas = []
    for name in p.names():
        rows = p.spec(name).shape[0]
        deltas.append(to_f32(p.read_rows(name, 0, rows), "BF16") - to_f32(m.read_rows(name, 0, rows), "BF16"))
    return speed(deltas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/registry-bench-codec"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    noise = [np.random.default_rng(i).standard_normal((512, 1024)).astype(np.float32) for i in range(4)]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "real_dpo": [real_dpo(args.workdir, lr, 30) for lr in (1e-6, 5e-5, 1e-3)],
        "synthetic_fixture_deltas": synthetic(args.workdir),
        "float32_noise": {**speed(noise), "limits": limits(noise)},
    }
    shutil.rmtree(args.workdir, ignore_errors=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
