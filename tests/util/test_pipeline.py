"""registry.util.pipeline: results in submission order, never more than `window` in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from registry.util.pipeline import labelled, ordered


def test_results_come_in_order_with_a_bounded_window():
    running, peak, lock = 0, 0, threading.Lock()

    def job(i: int):
        def run():
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.002 * (5 - i % 5))  # later jobs finish first
            with lock:
                running -= 1
            return i * i

        return run

    with ThreadPoolExecutor(4) as pool:
        got = list(ordered(pool, (job(i) for i in range(20)), window=3))
    assert got == [i * i for i in range(20)]
    assert peak <= 3


def test_labelled_jobs_carry_their_label():
    with ThreadPoolExecutor(2) as pool:
        got = list(ordered(pool, [labelled("a", lambda: 1), labelled("b", lambda: 2)], window=2))
    assert got == [("a", 1), ("b", 2)]
