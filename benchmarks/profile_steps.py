"""Where import's and materialize's time goes: CPU ns/param of each step, on one thread.

    python benchmarks/profile_steps.py MODELS_DIR [--out results/DATE-steps.json]

MODELS_DIR holds base/, plus/ and minus/ from make_models.py. Each step of the two data paths
is timed with the thread's CPU clock (so machine load matters less than for wall times),
blosc's own threads off, one row block at a time exactly as the registry does it. The sum is
the CPU cost per parameter of the data path; whole processes add start-up (~1 s), and the
pipeline spreads the steps over every core.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
from report import emit


def main() -> None:
    import google_crc32c
    from ml_dtypes import bfloat16
    from numcodecs import blosc

    from registry import codec
    from registry._memory import recycle_large_blocks
    from registry.delta import delta_block
    from registry.digests import file_sha256
    from registry.store import sum_squares
    from registry.tensor_io import SafetensorsFolder, from_f32, row_blocks, to_f32

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    blosc.use_threads = False
    recycle_large_blocks()
    base, plus, minus = (SafetensorsFolder(args.models / n) for n in ("base", "plus", "minus"))
    imp: collections.Counter = collections.Counter()
    mat: collections.Counter = collections.Counter()
    n = 0
    chunks: list[tuple[str, int, int, Path]] = []

    def tick(c, key, t0):
        t = time.thread_time()
        c[key] += t - t0
        return t

    with tempfile.TemporaryDirectory(dir=args.models) as tmp:
        t = time.thread_time()
        for f in [*plus.files, *minus.files]:
            file_sha256(f)
        t = tick(imp, "sha256 of the θ± files (lineage; on a thread beside the pass)", t)
        h = hashlib.sha256()
        for name in plus.names():
            for a, b in row_blocks(plus.spec(name).shape):
                t = time.thread_time()
                d = delta_block(plus, minus, name, a, b, [])
                t = tick(imp, "φ block: read θ± rows, widen, subtract, finite + exactness checks", t)
                body = codec.encode(d)
                t = tick(imp, "split16 encode", t)
                crc = google_crc32c.value(body)
                path = Path(tmp) / f"c{len(chunks)}"
                path.write_bytes(body + crc.to_bytes(4, "little"))
                t = tick(imp, "crc32c + write chunk", t)
                h.update(d)
                t = tick(imp, "sha256 of φ's float32 bytes", t)
                sum_squares(d)
                t = tick(imp, "norm (Σφ²: float32 rows, float64 total)", t)
                chunks.append((name, a, b, path))
                n += d.size
        out = open(Path(tmp) / "out", "wb")  # noqa: SIM115 - closed below, timed per write
        h = hashlib.sha256()
        for name, a, b, path in chunks:
            t = time.thread_time()
            data = path.read_bytes()
            body = data[:-4]
            assert google_crc32c.value(body) == int.from_bytes(data[-4:], "little")
            t = tick(mat, "read chunk + crc32c", t)
            raw = base.read_rows(name, a, b)
            t = tick(mat, "read base rows", t)
            acc = to_f32(raw, "BF16").reshape(-1)
            t = tick(mat, "widen base to float32", t)
            parts = codec.parts(body)
            t = tick(mat, "split16 decompress (high halves)", t)
            np.add(acc, parts.hi[: acc.size].view(bfloat16), out=acc, dtype=np.float32)
            t = tick(mat, "θ += φ (bf16 high halves added in float32)", t)
            o = from_f32(acc, "BF16")
            t = tick(mat, "round to bf16", t)
            h.update(o)
            t = tick(mat, "sha256 of the output", t)
            out.write(o)
            t = tick(mat, "write the output", t)
        out.close()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "params": n,
        "import_ns_per_param": {k: round(v / n * 1e9, 2) for k, v in imp.items()},
        "materialize_linear_ns_per_param": {k: round(v / n * 1e9, 2) for k, v in mat.items()},
    }
    report["import_total_ns_per_param"] = round(sum(report["import_ns_per_param"].values()), 2)
    report["materialize_total_ns_per_param"] = round(
        sum(report["materialize_linear_ns_per_param"].values()), 2
    )
    emit(report, args.out)


if __name__ == "__main__":
    main()
