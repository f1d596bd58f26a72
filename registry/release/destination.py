"""One writer per output folder: an exclusive lock beside `--out`, held until recorded.

Two materializations to one folder both used to exit 0, the folder holding the second
while lineage named the first. Now the second is refused while the first runs (or, after
it, finds the folder taken); the lock is `.registry-writing-NAME` in the folder's parent
(an advisory `flock`: it holds between processes on one machine and on NFS v4 locks,
not on file systems without locking). The file is removed when the writer is done.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from registry.errors import OutputExists


def lock_path(out: Path) -> Path:
    return out.parent / f".registry-writing-{out.name}"


@contextmanager
def claim(out: Path) -> Iterator[None]:
    """Hold `out` for this process, or refuse in one line if another writer holds it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(out)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputExists(
                f"{out} is being written by another materialize right now; wait for it, then "
                "choose another --out (or --force to replace its result)"
            ) from None
        try:  # the file we locked must still be the one at `path` (a finishing writer unlinks it)
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)
