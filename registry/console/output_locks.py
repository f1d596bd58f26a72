"""Reading an output folder's `registry-lock.json` for display, from a folder nobody vetted.

The folder belongs to whoever materialized, not to the registry (issue 31.12).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from registry.util import bounded_json

LOCK_LIMIT = 1 << 20  # a lock file read for display: at most 1 MiB, parsed as JSON only
LOCK_DEPTH = 16  # a lock nests a few levels; deeper is refused before anything walks it


def output_lock(path: str) -> dict[str, Any]:
    """What the output folder's lock says now.

    The folder belongs to whoever materialized, not to the registry: its lock may be a FIFO
    (an open that never returns), a link to /dev/zero (a read that never ends), a directory,
    or JSON nested to break the parser. Only a regular file, opened without following a link
    and without blocking, read up to LOCK_LIMIT and parsed with bounded nesting, is shown.
    """
    lock = os.path.join(path, "registry-lock.json")
    return {"path": lock, **_lock_state(lock)}


def _lock_state(lock: str) -> dict[str, str]:
    """`state` and, when present, the `output_digest` the lock records; never blocks or raises."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock, flags | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        return {"state": "missing", "output_digest": ""}
    except OSError as e:  # ELOOP (EMLINK on some systems): the lock is a symbolic link
        link = e.errno in (errno.ELOOP, errno.EMLINK)
        return {"state": "not a regular file" if link else "unreadable", "output_digest": ""}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return {"state": "not a regular file", "output_digest": ""}
        raw = b"" if info.st_size > LOCK_LIMIT else _read_at_most(fd, LOCK_LIMIT + 1)
        if info.st_size > LOCK_LIMIT or len(raw) > LOCK_LIMIT:  # also when it grew after the stat
            return {"state": "too large to show", "output_digest": ""}
        data = bounded_json.loads(raw, LOCK_DEPTH)
        if not isinstance(data, dict):
            return {"state": "unreadable", "output_digest": ""}
        digest = data.get("output_digest")
        return {"state": "present", "output_digest": digest if isinstance(digest, str) else ""}
    except (OSError, ValueError):
        return {"state": "unreadable", "output_digest": ""}
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    parts, got = [], 0
    while got < limit:
        part = os.read(fd, min(1 << 16, limit - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
