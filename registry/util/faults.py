"""Fault injection for the crash drills: `REGISTRY_CRASH_AT=point` kills the process there.

The drills in tests/test_crash_safety.py SIGKILL a real registry process at each point
(before, during and after data writes) and then check that nothing is half-visible.
Costs one environment lookup per point when unset.
"""

from __future__ import annotations

import os
import signal


def crashpoint(name: str) -> None:
    if os.environ.get("REGISTRY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
