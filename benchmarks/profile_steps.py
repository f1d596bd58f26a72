"""Where import's and materialize's time goes: CPU ns/param of each step, on one thread.

    python benchmarks/profile_steps.py MODELS_DIR [--out results/DATE-steps.json]
        [--bounds results/DATE-SMALL.json results/DATE-LARGE.json]

MODELS_DIR holds base/, plus/ and minus/ from make_models.py. Each step of the two data paths
is timed with the thread's CPU clock (so machine load matters less than for wall times),
blosc's own threads off, one row block at a time exactly as the registry does it, the fastest
of --repeat rounds kept per step. The sum is
the CPU cost per parameter of the data path; whole processes add start-up (~1 s), and the
pipeline spreads the steps over every core.

The floor is the part no implementation can skip while keeping the registry's promises
(every input byte hashed, every output byte hashed, φ stored compressed and crc-checked): the
reads, writes, hashes and the codec, with the arithmetic counted as free. With --bounds (two
bench_materialize.py reports of one model family), the floor becomes the best wall time per
parameter two perfectly used cores could reach, set against the per-parameter walls measured
for us and mergekit: the best speed-up large models allow, and the smallest import /
materialize ratio.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from report import emit, load


def main() -> None:
    import google_crc32c
    from ml_dtypes import bfloat16
    from numcodecs import blosc

    from registry.storage import codec
    from registry.storage.delta import delta_block
    from registry.storage.tensor_io import SafetensorsFolder, from_f32, row_blocks, to_f32
    from registry.storage.vector_store import sum_squares
    from registry.util.digests import file_sha256
    from registry.util.memory import recycle_large_blocks

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--repeat", type=int, default=3, help="rounds; each step's fastest round is kept")
    p.add_argument(
        "--bounds",
        type=Path,
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="bench_materialize.py reports, one family",
    )
    args = p.parse_args()
    blosc.use_threads = False
    recycle_large_blocks()
    base, plus, minus = (SafetensorsFolder(args.models / n) for n in ("base", "plus", "minus"))

    def tick(c, key, t0):
        t = time.thread_time()
        c[key] += t - t0
        return t

    def measure() -> tuple[collections.Counter, collections.Counter, collections.Counter, int]:
        imp: collections.Counter = collections.Counter()
        mat: collections.Counter = collections.Counter()
        floor: collections.Counter = collections.Counter()  # steps timed alone, only for the floor
        n = 0
        chunks: list[tuple[str, int, int, Path]] = []
        with tempfile.TemporaryDirectory(dir=args.models) as tmp:
            t = time.thread_time()
            for f in [*plus.files, *minus.files]:
                file_sha256(f)
            t = tick(imp, "sha256 of the θ± files (lineage; on a thread beside the pass)", t)
            h = hashlib.sha256()
            for name in plus.names():
                for a, b in row_blocks(plus.spec(name).shape):
                    t = time.thread_time()
                    plus.read_rows(name, a, b), minus.read_rows(name, a, b)
                    t = tick(floor, "read θ± rows", t)
                    d = delta_block(plus, minus, name, a, b, [])
                    t = tick(imp, "φ block: read θ± rows, widen, subtract, finite + exactness checks", t)
                    body = codec.encode(d)
                    t = tick(imp, "split16 encode", t)
                    hi = d.view("<u2")[1::2].copy()
                    t = time.thread_time()
                    blosc.compress(hi, codec.CNAME, codec.CLEVEL, blosc.BITSHUFFLE, 0)
                    t = tick(floor, "compress the high halves (alone)", t)
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
        return imp, mat, floor, n

    load_before = load()
    rounds = [measure() for _ in range(args.repeat)]
    n = rounds[0][3]
    imp, mat, floor = ({k: min(r[i][k] for r in rounds) for k in rounds[0][i]} for i in range(3))
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "load_before": load_before,
        "params": n,
        "import_ns_per_param": {k: round(v / n * 1e9, 2) for k, v in imp.items()},
        "materialize_linear_ns_per_param": {k: round(v / n * 1e9, 2) for k, v in mat.items()},
    }
    report["import_total_ns_per_param"] = round(sum(report["import_ns_per_param"].values()), 2)
    report["materialize_total_ns_per_param"] = round(
        sum(report["materialize_linear_ns_per_param"].values()), 2
    )
    steps = {**report["import_ns_per_param"], **report["materialize_linear_ns_per_param"]}
    steps.update({k: round(v / n * 1e9, 2) for k, v in floor.items()})
    report["floor_ns_per_param"] = {
        kind: {k: steps[k] for k in keys} | {"total": round(sum(steps[k] for k in keys), 2)}
        for kind, keys in FLOOR_STEPS.items()
    }
    if args.bounds:
        runs = sorted((json.loads(f.read_text()) for f in args.bounds), key=lambda r: r["params"])
        report["bounds_from"] = [f.name for f in args.bounds]
        report["bounds"] = bounds(runs, report["floor_ns_per_param"])
    emit(report, args.out)


# what each command cannot skip: reads, writes, the sha256 of every input and output byte, and
# the codec (φ stored compressed and crc-checked); widening, adding and rounding count as free
FLOOR_STEPS = {
    "import": [
        "sha256 of the θ± files (lineage; on a thread beside the pass)",
        "read θ± rows",
        "compress the high halves (alone)",
        "crc32c + write chunk",
        "sha256 of φ's float32 bytes",
    ],
    "materialize": [
        "read chunk + crc32c",
        "read base rows",
        "split16 decompress (high halves)",
        "sha256 of the output",
        "write the output",
    ],
}


def bounds(runs: list[dict], floor: dict, cores: int = 2) -> dict:
    """What the floor allows per parameter, against the measured runs' per-parameter walls.

    Per-parameter walls are slopes between two sizes of one model family (start-up cancels):
    for large models the wall ratio tends to the ratio of slopes. The floor's wall assumes
    every core busy all the time on floor work, so it is a bound no implementation beats."""
    small, large = runs[0], runs[1]
    dn = large["params"] - small["params"]

    def slope(key: str) -> float:
        return (large[key]["wall_s"] - small[key]["wall_s"]) / dn * 1e9

    ours, imp, theirs = slope("materialize"), slope("import"), slope("mergekit_bf16")
    best_mat, best_imp = floor["materialize"]["total"] / cores, floor["import"]["total"] / cores
    return {
        "sizes": [small["params"], large["params"]],
        "wall_ns_per_param": {
            "mergekit_bf16 (measured)": round(theirs, 2),
            "materialize (measured)": round(ours, 2),
            "import (measured)": round(imp, 2),
            f"materialize floor ({cores} cores)": round(best_mat, 2),
            f"import floor ({cores} cores)": round(best_imp, 2),
        },
        "speedup_vs_mergekit_bf16 for large models": {
            "measured": round(theirs / ours, 2),
            "best the floor allows": round(theirs / best_mat, 2),
        },
        "import_over_materialize for large models": {
            "measured": round(imp / ours, 2),
            "both at their floors": round(best_imp / best_mat, 2),
            "import at its floor, materialize as measured": round(best_imp / ours, 2),
        },
    }


if __name__ == "__main__":
    main()
