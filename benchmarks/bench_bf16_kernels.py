"""ns per element of every bf16 widen / add / round variant, on one thread and on two.

    python benchmarks/bench_bf16_kernels.py [--elems 262144] [--out results/DATE-bf16-kernels.json]

One slice of `--elems` values (materialize's sub-block: it and its temporaries stay in L2)
is processed over and over; each variant's fastest of three rounds is kept. "2 threads" runs
the same work in two threads at once and reports ns per element processed: a variant that
holds the GIL (or saturates memory) shows no gain there. Every variant's output is checked
against the reference (ml_dtypes' casts, as torch rounds) before it is timed.
"""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from pathlib import Path

import numpy as np
from report import cpu, emit, load


def timed(f, n: int, reps: int, threads: int) -> float:
    f()

    def loop():
        for _ in range(reps):
            f()

    best = float("inf")
    for _ in range(3):
        ts = [threading.Thread(target=loop) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, (time.perf_counter() - t0) / (reps * threads) / n * 1e9)
    return round(best, 3)


def main() -> None:
    import torch
    from ml_dtypes import bfloat16

    from registry.storage import bf16

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--elems", type=int, default=1 << 18)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    n = args.elems
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(0.02)
    raw = x.astype(bfloat16).view(np.uint16)
    ref_round, ref_widen = raw.copy(), raw.view(bfloat16).astype(np.float32)
    acc, u32, o16 = np.empty(n, np.float32), np.empty(n, np.uint32), np.empty(n, np.uint16)
    tmp = np.empty(min(n, bf16.STEP), np.uint32)
    tx = torch.from_numpy(x)
    t16 = torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
    tout = torch.empty(n, dtype=torch.bfloat16)
    tacc = torch.from_numpy(acc)

    def widen_ml():
        np.copyto(acc, raw.view(bfloat16), casting="unsafe")
        return acc

    def round_ml():
        np.copyto(o16.view(bfloat16), x, casting="unsafe")
        return o16

    def round_int():
        bf16.round_into(x, o16, tmp)
        return o16

    def round_torch():
        tout.copy_(tx)
        return tout.view(torch.int16).numpy().view(np.uint16)

    def widen_torch():
        tacc.copy_(t16)
        return acc

    widen = {
        "ml_dtypes cast (today)": widen_ml,
        "integer shift (storage.bf16.widen)": lambda: bf16.widen(raw, u32),
        "torch copy_ (1 intra-op thread)": widen_torch,
    }
    rounding = {
        "ml_dtypes cast (today)": round_ml,
        "integer RNE + range check (storage.bf16.round_into)": round_int,
        "torch copy_ (1 intra-op thread)": round_torch,
    }
    add = {
        "ml_dtypes: np.add(acc, bf16, dtype=float32) (today)": lambda: np.add(
            acc, raw.view(bfloat16), out=acc, dtype=np.float32
        ),
        "widen by shift, then float32 add": lambda: np.add(acc, bf16.widen(raw, u32), out=acc),
    }
    other = {
        "float32 add (in cache)": lambda: np.add(acc, x, out=acc),
        "min + max (the range check)": lambda: bf16.in_range(x),
        "sha256 of the bf16 output (2 bytes/element)": lambda: hashlib.sha256(o16),
    }
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu(), "load_before": load()}
    report["numpy"], report["torch"] = np.__version__, torch.__version__
    report["elems"] = n
    for label, variants, want in (
        ("widen", widen, ref_widen.view(np.uint32)),
        ("round", rounding, ref_round),
        ("add", add, None),
        ("other", other, None),
    ):
        report[label] = {}
        for name, f in variants.items():
            got = f()
            if want is not None:
                got = np.asarray(got).view(want.dtype)
                assert np.array_equal(got, want), f"{label}: {name} differs from the reference"
            report[label][name] = {
                "1 thread": timed(f, n, args.reps, 1),
                "2 threads": timed(f, n, args.reps, 2),
            }
    report["load_after"] = load()
    emit(report, args.out)


if __name__ == "__main__":
    main()
