"""What every benchmark script records the same way: the load average and its JSON report."""

from __future__ import annotations

import json
import os
from pathlib import Path


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages: a result is only comparable on a quiet machine."""
    return [round(x, 2) for x in os.getloadavg()]


def emit(report: dict, out: Path | None) -> None:
    """Print the report; with `out`, also write it there (what benchmarks/results/ holds)."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
