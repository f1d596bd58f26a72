"""`pairs`: any JSONL file of {prompt, chosen, rejected}."""

from __future__ import annotations

import click

from registry.plugins.spec import Plugin, PreferencePair
from registry_plugins.jsonl import read_jsonl, split_heldout


class Pairs(Plugin):
    def _all(self, data: str) -> list[PreferencePair]:
        return [
            PreferencePair(r["prompt"], r["chosen"], r["rejected"])
            for r in read_jsonl(data, ("prompt", "chosen", "rejected"))
        ]

    def pairs(self, data: str, heldout_fraction: float = 0.0, **_) -> list[PreferencePair]:
        items = self._all(data)
        return split_heldout(items, heldout_fraction)[0] if heldout_fraction else items

    def heldout(self, data: str, heldout_fraction: float = 0.0, **_) -> list[PreferencePair]:
        return split_heldout(self._all(data), heldout_fraction)[1] if heldout_fraction else []


plugin = Pairs(
    name="pairs",
    version="1.0.0",
    description="Any JSONL file with prompt / chosen / rejected fields.",
    options=[
        click.Option(
            ["--data"],
            required=True,
            type=click.Path(dir_okay=False),
            help="JSONL with prompt/chosen/rejected.",
        ),
        click.Option(
            ["--heldout-fraction"],
            type=float,
            default=0.0,
            show_default=True,
            help="Share kept out of training for the evaluator.",
        ),
    ],
)
