"""Retention: the merged model's perplexity on a neutral text corpus, relative to the base.

The paper's concern: a preference vector must not damage general ability. The drift is
ppl(merged) / ppl(base) − 1 on short neutral passages (a shipped default, or the file named
by `retention_corpus` in registry.toml), measured on the in-memory merge before anything is
written; `materialize --max-ppl-drift` refuses above a threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError, RetentionRefused
from registry.evaluation.scoring import load_model, merged_state
from registry.records.bases import get_base
from registry.records.recipes import get_recipe
from registry.util.digests import file_sha256
from registry.util.extras import require

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Recipe

DEFAULT_CORPUS = Path(__file__).parent / "data" / "retention.txt"


@dataclass
class RetentionCheck:
    recipe: str
    corpus: str
    corpus_digest: str
    passages: int
    tokens: int
    base_ppl: float
    merged_ppl: float
    drift: float  # ppl(merged) / ppl(base) − 1
    max_drift: float | None = None

    def note(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "recipe"}


def parse_drift(text: str | float) -> float:
    """'5%' or '5' → 0.05 (a percentage)."""
    try:
        value = float(str(text).strip().removesuffix("%")) / 100.0
    except ValueError:
        raise RegistryError(f"invalid drift {text!r}: give a percentage such as 5%") from None
    if not math.isfinite(value) or value < 0:
        raise RegistryError(f"invalid drift {text!r}: give a percentage such as 5%")
    return value


def corpus_path(core: Core) -> Path:
    chosen = core.config.retention_corpus
    return (core.home / chosen).resolve() if chosen else DEFAULT_CORPUS


def load_corpus(path: Path) -> list[str]:
    """Passages separated by blank lines."""
    try:
        text = path.read_text()
    except OSError as e:
        raise RegistryError(f"cannot read retention corpus {path}: {e.strerror}") from None
    passages = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    if not passages:
        raise RegistryError(f"retention corpus {path} holds no passages")
    return passages


def perplexity(model, tok, passages: list[str]) -> tuple[float, int]:
    """exp(mean negative log-likelihood per predicted token) over all passages, and the token count."""
    import torch

    nll, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for text in passages:
            ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
            if ids.shape[1] < 2:
                continue
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
            nll -= float(logp.gather(1, ids[0, 1:, None]).sum())
            count += ids.shape[1] - 1
    return math.exp(nll / max(count, 1)), count


def measure(core: Core, ref: str | Recipe) -> RetentionCheck:
    """Perplexity drift of a recipe's in-memory merge on the registry's retention corpus."""
    require("train", "torch", "transformers", what="the retention gate (--max-ppl-drift)")
    from transformers import AutoTokenizer

    r = get_recipe(core, ref) if isinstance(ref, str) else ref
    path = corpus_path(core)
    passages = load_corpus(path)
    base = get_base(core, r.base.name)  # this host's folder of the base
    tok = AutoTokenizer.from_pretrained(base.path)
    base_ppl, tokens = perplexity(load_model(base.path), tok, passages)
    state = merged_state(core, base.name, [(t.vector.ref, t.weight) for t in r.terms], r.method, r.params)
    merged_ppl, _ = perplexity(load_model(base.path, state), tok, passages)
    return RetentionCheck(
        recipe=r.ref,
        corpus="default" if path == DEFAULT_CORPUS else str(path),
        corpus_digest=file_sha256(path),
        passages=len(passages),
        tokens=tokens,
        base_ppl=base_ppl,
        merged_ppl=merged_ppl,
        drift=merged_ppl / base_ppl - 1.0,
    )


def gate(core: Core, r: Recipe, max_drift: float) -> dict[str, Any]:
    """Measure, record in the audit log, and refuse when the drift exceeds `max_drift`."""
    check = measure(core, r)
    check.max_drift = max_drift
    passed = check.drift <= max_drift
    core.audit_now("recipe.retention", r.ref, {**check.note(), "passed": passed})
    if not passed:
        raise RetentionRefused(
            f"recipe {r.ref}: perplexity drift {check.drift:+.2%} on the retention corpus exceeds "
            f"{max_drift:.2%} (base {check.base_ppl:.4g}, merged {check.merged_ppl:.4g}); nothing written"
        )
    return check.note()
