"""`verbose`: prefer the detailed, explanatory answer over the terse one.

Pairs come from a shipped file of real questions, each with a detailed and a terse answer.
"""

from __future__ import annotations

from pathlib import Path

import click

from registry.plugins.spec import PreferencePair
from registry_plugins.jsonl import SplitPlugin, read_jsonl

DATA = Path(__file__).parent / "data" / "verbose.jsonl"


class Verbose(SplitPlugin):
    def all_pairs(self, data: str | None = None, **_) -> list[PreferencePair]:
        rows = read_jsonl(data or DATA, ("prompt", "detailed", "terse"))
        return [PreferencePair(r["prompt"], " " + r["detailed"], " " + r["terse"]) for r in rows]


plugin = Verbose(
    name="verbose",
    version="1.0.0",
    description="Prefer detailed, explanatory answers over terse ones (shipped data).",
    options=[
        click.Option(
            ["--data"],
            type=click.Path(dir_okay=False),
            help="JSONL with prompt/detailed/terse (default: shipped file).",
        )
    ],
)
