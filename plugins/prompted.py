"""`prompted`: a new preference defined in two sentences.

    registry add-preference prompted --name eli5 --base smol \
        --positive "Explain it to a five-year-old." \
        --negative "Answer as a professor, with precise technical terms."

The pinned base answers each prompt under both instructions; DPO trains on the bare prompt
with the positive answer preferred. The instructions are recorded in the run's lineage.
"""

from __future__ import annotations

from typing import Any

import click

from registry.errors import PluginError
from registry.plugins.spec import Contrast, InstructedPlugin, PairGeneration
from registry_plugins.instructed import OPTIONS, generation_settings, read_prompts, split


class Prompted(InstructedPlugin):
    def contrasts(self, positive: str | None = None, negative: str | None = None, **_: Any) -> list[Contrast]:
        if not (positive and positive.strip() and negative and negative.strip()):
            raise PluginError("prompted needs --positive TEXT and --negative TEXT")
        return [Contrast(positive.strip(), negative.strip())]

    def prompts(self, prompts: str | None = None, **_: Any) -> list[str]:
        return split(read_prompts(prompts))[0]

    def heldout_prompts(self, prompts: str | None = None, **_: Any) -> list[str]:
        return split(read_prompts(prompts))[1]

    def generation(self, max_new_tokens: int | None = None, **options: Any) -> PairGeneration:
        cap = max_new_tokens or 160
        return generation_settings(options, max_new_tokens_positive=cap, max_new_tokens_negative=cap)


plugin = Prompted(
    name="prompted",
    version="1.0.0",
    description="A preference defined by two instructions: the base answers under each, DPO learns the difference.",
    example='registry add-preference prompted --base smol --name eli5 --positive "Explain it to a five-year-old." --negative "Answer as a professor, with precise technical terms."',
    options=[
        click.Option(["--positive"], required=True, help="Instruction whose answers are preferred."),
        click.Option(["--negative"], required=True, help="Instruction whose answers are rejected."),
        click.Option(
            ["--max-new-tokens"],
            type=click.IntRange(min=1),
            default=160,
            show_default=True,
            help="Answer length cap.",
        ),
        *OPTIONS,
    ],
)
