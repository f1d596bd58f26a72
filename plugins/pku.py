"""`helpful` and `harmless`: the PKU-SafeRLHF format, as in the paper.

Rows: prompt, response_0, response_1, better_response_id (helpfulness), safer_response_id
(harmlessness). The two plugins read the same file and differ only in which id they follow.
"""

from __future__ import annotations

import click

from registry.errors import PluginError
from registry.plugins.spec import PreferencePair
from registry_plugins.jsonl import SplitPlugin, read_jsonl

FIELDS = ("prompt", "response_0", "response_1")


class PkuSafeRLHF(SplitPlugin):
    def __init__(self, *, label: str, **kw):
        super().__init__(**kw)
        self.label = label

    def all_pairs(self, data: str, **_) -> list[PreferencePair]:
        out = []
        for n, row in enumerate(read_jsonl(data, (*FIELDS, self.label)), start=1):
            best = row[self.label]
            if best not in (0, 1):
                raise PluginError(f"{data}:{n}: {self.label} must be 0 or 1, not {best!r}")
            out.append(
                PreferencePair(
                    row["prompt"], " " + row[f"response_{best}"], " " + row[f"response_{1 - best}"]
                )
            )
        return out


def _options():
    return [
        click.Option(
            ["--data"], required=True, type=click.Path(dir_okay=False), help="PKU-SafeRLHF JSONL file."
        )
    ]


helpful = PkuSafeRLHF(
    label="better_response_id",
    name="helpful",
    version="1.0.0",
    description="PKU-SafeRLHF: prefer the more helpful response (better_response_id).",
    options=_options(),
)
harmless = PkuSafeRLHF(
    label="safer_response_id",
    name="harmless",
    version="1.0.0",
    description="PKU-SafeRLHF: prefer the safer response (safer_response_id).",
    options=_options(),
)
