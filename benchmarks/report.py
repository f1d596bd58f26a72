"""What every benchmark script records the same way: the load average and its JSON report."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# the vector extensions that decide the speed of numpy's loops, blosc's shuffles and sha256
EXTENSIONS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "sha_ni", "vaes")


def cpu() -> dict:
    """The CPU every figure was measured on: model name, family/model, vector extensions, cores."""
    info: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - read once, first processor only
            if not line.strip():
                break
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    return {
        "model": info.get("model name", platform.processor() or platform.machine()),
        "family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "extensions": [f for f in EXTENSIONS if f in flags],
        "avx512": "avx512f" in flags,
        "cores": os.cpu_count(),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages: a result is only comparable on a quiet machine."""
    return [round(x, 2) for x in os.getloadavg()]


def emit(report: dict, out: Path | None) -> None:
    """Print the report; with `out`, also write it there (what benchmarks/results/ holds)."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
