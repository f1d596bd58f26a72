"""Fault injection for the crash and race drills.

`REGISTRY_CRASH_AT=point` kills the process there (tests/test_crash_safety.py SIGKILLs a
real registry process at each point and checks that nothing is half-visible).

`pause(point)` holds a process at a point so a test can run a competing writer in the
gap (tests/test_concurrency.py races approve against deprecate): in-process through
`set_pause(point, hook)`, across processes with `REGISTRY_PAUSE_AT=point` and
`REGISTRY_PAUSE_FILE=F` (it creates `F.reached`, then waits until `F` exists).
Each costs one dictionary and one environment lookup per point when unset.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

_HOOKS: dict[str, Callable[[], None]] = {}


def crashpoint(name: str) -> None:
    if os.environ.get("REGISTRY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def set_pause(name: str, hook: Callable[[], None] | None) -> None:
    """Run `hook` whenever a thread reaches pause point `name` (None removes it)."""
    if hook is None:
        _HOOKS.pop(name, None)
    else:
        _HOOKS[name] = hook


def pause(name: str, timeout: float = 120.0) -> None:
    hook = _HOOKS.get(name)
    if hook is not None:
        hook()
        return
    if os.environ.get("REGISTRY_PAUSE_AT") != name:
        return
    release = Path(os.environ["REGISTRY_PAUSE_FILE"])
    Path(f"{release}.reached").touch()
    deadline = time.monotonic() + timeout
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
