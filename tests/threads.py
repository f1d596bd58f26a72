"""Helpers for the race tests: run a call in a thread and hold a thread at a pause point."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from registry.util.faults import set_pause


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Start `fn` in a daemon thread; its return value or exception lands in the dict."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # handed to the test, which checks type and message
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


@contextmanager
def holding() -> Iterator[Callable[[str], tuple[threading.Event, threading.Event]]]:
    """arm(point) -> (reached, release): the first thread other than the test's own to reach
    `point` waits there until released. Every armed point is disarmed on exit."""
    armed: list[str] = []

    def arm(point: str) -> tuple[threading.Event, threading.Event]:
        reached, release, first = threading.Event(), threading.Event(), []

        def hook() -> None:
            if threading.current_thread() is threading.main_thread() or first:
                return
            first.append(True)
            reached.set()
            assert release.wait(120)

        set_pause(point, hook)
        armed.append(point)
        return reached, release

    try:
        yield arm
    finally:
        for point in armed:
            set_pause(point, None)
