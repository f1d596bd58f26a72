"""Shared parts of the preferences defined by instructions: shipped prompts, their split, options.

The shipped prompts (plugins/data/prompts.jsonl, 240 questions over 24 topics) are split
once and for all: every sixth is held out for evaluations and never trained on, so every
run, every seed and every registry uses the same training and held-out prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from registry.errors import PluginError
from registry.plugins.spec import PairGeneration

PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
HELDOUT_EVERY = 6  # prompts 5, 11, 17, …: 40 of the 240 shipped ones


def read_prompts(path: str | Path | None = None) -> list[str]:
    """Prompts from a JSONL file (a `prompt` field per line) or a text file (one per line)."""
    path = Path(path) if path else PROMPTS
    if not path.is_file():
        raise PluginError(f"prompts file not found: {path}")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                prompt = json.loads(line)["prompt"]
            except (ValueError, KeyError, TypeError):
                raise PluginError(f"{path.name}:{n}: a JSON line needs a string `prompt` field") from None
            if not isinstance(prompt, str):
                raise PluginError(f"{path.name}:{n}: a JSON line needs a string `prompt` field")
            line = prompt.strip()
        if line:
            out.append(line)
    if not out:
        raise PluginError(f"{path.name}: no prompts")
    return out


def split(prompts: list[str]) -> tuple[list[str], list[str]]:
    """(training, held-out): every sixth prompt is held out, so both cover every topic."""
    held = {i for i in range(len(prompts)) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1}
    return [p for i, p in enumerate(prompts) if i not in held], [
        p for i, p in enumerate(prompts) if i in held
    ]


DEFAULTS = PairGeneration()

OPTIONS = [
    click.Option(
        ["--prompts"],
        type=click.Path(dir_okay=False),
        help="Prompts to answer (JSONL with `prompt`, or one per line; default: 240 shipped questions; every 6th held out).",
    ),
    click.Option(
        ["--pairs"],
        type=click.IntRange(min=1),
        default=DEFAULTS.pairs,
        show_default=True,
        help="Training prompts the base answers (the first N of the training split).",
    ),
    click.Option(
        ["--sample-seed"],
        type=int,
        default=DEFAULTS.sample_seed,
        show_default=True,
        help="Seed of the answers' sampling (the pairs' seed; --seed is training's).",
    ),
]


def generation_settings(options: dict[str, Any], **overrides: Any) -> PairGeneration:
    values = {"pairs": options.get("pairs") or DEFAULTS.pairs, "sample_seed": options.get("sample_seed") or 0}
    return PairGeneration(**{**values, **overrides})
