"""`verbose`: prefer thorough, explanatory answers over terse ones.

The pinned base writes both sides itself: each training prompt is answered once under an
instruction to answer thoroughly and once under one to answer in a sentence (one of three
paraphrased pairs, drawn per prompt), and DPO trains on the bare prompt. A pair whose
thorough answer is not longer than its terse one did not keep the contrast and is dropped.
"""

from __future__ import annotations

from typing import Any

from registry.plugins.spec import Contrast, InstructedPlugin, PairGeneration
from registry_plugins.instructed import OPTIONS, generation_settings, read_prompts, split

CONTRASTS = [
    Contrast(
        "Answer thoroughly: explain step by step, give the reasons and an example, in several paragraphs.",
        "Answer in one short sentence.",
    ),
    Contrast(
        "Give a detailed, complete answer: explain how and why, with an example, over several paragraphs.",
        "Reply with a single brief sentence and nothing else.",
    ),
    Contrast(
        "Answer at length: cover the background, the steps and an example, in several paragraphs.",
        "Answer as briefly as possible, in one sentence.",
    ),
]


def word_count(text: str) -> int:
    return len(text.split())


class Verbose(InstructedPlugin):
    def contrasts(self, **_: Any) -> list[Contrast]:
        return list(CONTRASTS)

    def prompts(self, prompts: str | None = None, **_: Any) -> list[str]:
        return split(read_prompts(prompts))[0]

    def heldout_prompts(self, prompts: str | None = None, **_: Any) -> list[str]:
        return split(read_prompts(prompts))[1]

    def generation(self, **options: Any) -> PairGeneration:
        # thorough answers must not be cut shorter than the base's own (SmolLM2-135M-Instruct:
        # ~176 words unprompted); at a 200-token cap they averaged 155 words and η = +1
        # could not lengthen answers (docs/training.md)
        return generation_settings(options, max_new_tokens_positive=400)

    def contrast_held(self, chosen: str, rejected: str) -> str | None:
        return None if word_count(chosen) > word_count(rejected) else "thorough answer not longer"


plugin = Verbose(
    name="verbose",
    version="2.1.0",
    description="Prefer thorough, explanatory answers over terse ones (pairs written by the base itself).",
    options=list(OPTIONS),
)
