"""Recorded evaluations made up for console tests: known numbers and answers (some hostile),
written through the library's own recording path (so digests and checks are the real ones)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "safe\u202etxt.exe\u2066hidden\u2069",  # a right-to-left override and an isolate
)
PROMPTS = ("Explain rain.", "Name a colour.")


def answer(prompt: str, etas: dict[str, float]) -> str:
    return f"{prompt} @ " + ", ".join(f"{k}={v:g}" for k, v in etas.items())


def metrics(etas: dict[str, float]) -> dict[str, float]:
    s = sum((i + 1) * v for i, v in enumerate(etas.values()))
    return {"answer_length": 20 + 10 * s, "ppl_drift": 4 * s * s, "mattr": 0.5 + 0.1 * s}


def record(
    reg,
    kind: str,
    ref: str,
    grid: dict[str, list[float]],
    answers: Callable[[str, dict[str, float]], str] = answer,
    prompts: tuple[str, ...] = PROMPTS,
    **fields,
):
    """Record an evaluation of `ref` (its exact digest, on its base) with `metrics` at every point."""
    subject = reg.vector(ref) if kind == "vector" else reg.recipe(ref)
    points = []
    for etas in itertools.product(*grid.values()):
        e = dict(zip(grid, etas, strict=True))
        samples = [{"prompt": q, "answer": answers(q, e)} for q in prompts]
        points.append({"etas": e, "metrics": metrics(e), "samples": samples})
    values = {
        "subject_kind": kind,
        "subject_ref": subject.ref,
        "subject_digest": subject.digest if kind == "vector" else subject.content_digest,
        "base_name": subject.base.name,
        "base_digest": subject.base.digest,
        "evaluators": {"answer_length": "1", "ppl_drift": "1", "mattr": "1"},
        "prompts_digest": "ab" * 32,
        "prompts_source": "plugin verbose 2.1.0 held-out split (2 prompts)",
        "seed": 7,
        "decoding": {"max_new_tokens": 32, "temperature": 0},
        "grid": grid,
        "points": points,
        "library_versions": {"torch": "2.5.0", "transformers": "4.46.0"},
        "seconds": 12.5,
        "created_by": "carol",
        **fields,
    }
    return reg.record_evaluation(**values)
