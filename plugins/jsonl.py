"""Reading JSONL preference files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.errors import PluginError
from registry.plugins.spec import Plugin, PreferencePair


def read_jsonl(path: str | Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"data file not found: {path}")
    with path.open() as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise PluginError(f"{path.name}:{n}: invalid JSON ({e.msg})") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise PluginError(f"{path.name}:{n}: missing field(s) {', '.join(missing)}")
            yield row


class SplitPlugin(Plugin):
    """A plugin with one pool of pairs: every fifth is held out for the evaluator."""

    def all_pairs(self, **options: Any) -> list[PreferencePair]:
        raise NotImplementedError

    def pairs(self, **options: Any) -> list[PreferencePair]:
        return split_heldout(self.all_pairs(**options))[0]

    def heldout(self, **options: Any) -> list[PreferencePair]:
        return split_heldout(self.all_pairs(**options))[1]


def split_heldout(items: list, fraction: float = 0.2) -> tuple[list, list]:
    """Deterministic split: every k-th item is held out, so both halves cover the file."""
    k = max(2, round(1 / fraction))
    return [x for i, x in enumerate(items) if i % k != k - 1], [
        x for i, x in enumerate(items) if i % k == k - 1
    ]
