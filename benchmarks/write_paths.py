"""What writing a large output costs on this machine: page cache, O_DIRECT, directory fsync.

    python benchmarks/write_paths.py [--dir /work/bench] [--gb 2] [--out benchmarks/results/DATE-write-paths.json]

Measures, for one file of --gb GiB written in 8 MiB pieces:
- buffered writes into a new file (the page cache takes fresh pages), wall and system time;
- the same right after deleting that file (the kernel reuses the pages it just freed);
- O_DIRECT writes (no page cache; the disk's own speed);
- fsync of the parent folder after renaming a freshly written folder into place, right after
  an earlier output of the same size: on ext4 the journal commit that fsync forces waits for
  data whose writeback has begun (materialize does it only with durable).
Linux only (O_DIRECT).
"""

from __future__ import annotations

import argparse
import mmap
import os
import platform
import resource
import shutil
import time
from pathlib import Path

from report import emit, load

from registry.release.output_folders import fsync_dir

PIECE = 8 << 20


def timed(fn) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": round(wall, 3),
        "user_s": round(after.ru_utime - before.ru_utime, 3),
        "system_s": round(after.ru_stime - before.ru_stime, 3),
    }


def write(path: Path, buf: mmap.mmap, total: int, direct: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o644)
    try:
        for off in range(0, total, PIECE):
            os.pwrite(fd, buf, off)
    finally:
        os.close(fd)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp"))
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    work = args.dir / "write-paths"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = int(args.gb * (1 << 30)) // PIECE * PIECE
    buf = mmap.mmap(-1, PIECE)  # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(PIECE))
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}",
        "bytes": total,
        "load_before": load(),
    }
    f = work / "file"
    os.sync()
    report["buffered_new_pages"] = timed(lambda: write(f, buf, total, False))
    os.sync()
    f.unlink()
    report["buffered_after_delete"] = timed(lambda: write(f, buf, total, False))
    f.unlink()
    os.sync()
    report["o_direct"] = timed(lambda: write(f, buf, total, True))
    report["o_direct"]["mb_per_s"] = round(total / 1e6 / report["o_direct"]["wall_s"], 1)
    f.unlink()
    os.sync()
    # as in a run of materializations: an earlier output still being written back, then this one
    (work / "earlier").mkdir()
    write(work / "earlier" / "model.safetensors", buf, total, False)
    tmp, final = work / ".out.tmp", work / "out"
    tmp.mkdir()
    write(tmp / "model.safetensors", buf, total, False)
    os.rename(tmp, final)
    report["fsync_parent_after_rename"] = timed(lambda: fsync_dir(work))
    shutil.rmtree(work)
    emit(report, args.out)


if __name__ == "__main__":
    main()
