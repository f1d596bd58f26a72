"""On-policy preference pairs from two instructions (contrastive distillation, as RLCD does).

Hand-written pairs teach a chat model text it would never write; DPO then moves weights the
model does not use when it answers, and η·φ changes nothing a user sees. Here the pinned
base itself answers each training prompt twice, once under a positive and once under a
negative instruction (the system message), and DPO trains on the bare prompt with those
two answers: the vector learns to do, unprompted, what the instruction made the base do.

Generation is deterministic for a sample seed (each answer seeded by its prompt and
instruction), so the pairs are reproducible and can be cached, audited and replayed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from registry.errors import PluginError, RegistryError, TrainingFailed
from registry.plugins.spec import Contrast, InstructedPlugin, PairGeneration, PreferencePair
from registry.records.run_pairs import generated_pairs_digest
from registry.training.generation import Decoding, generate_answers
from registry.training.progress import quiet_third_party
from registry.training.progress import settings as progress_settings
from registry.util.digests import content_digest, pairs_digest

CACHE_FORMAT = 1


@dataclass(frozen=True)
class GeneratedPair:
    prompt: str
    chosen: str
    rejected: str
    contrast: int  # index into the plugin's contrasts
    dropped_because: str | None = None

    @property
    def kept(self) -> bool:
        return self.dropped_because is None


@dataclass
class GeneratedPairs:
    """A run's generated pairs with how they were made; `kept` is what DPO trains on."""

    rows: list[GeneratedPair]
    settings: PairGeneration
    contrasts: list[Contrast]
    seconds: float = 0.0
    reused: bool = False

    @property
    def kept(self) -> list[PreferencePair]:
        return [PreferencePair(r.prompt, r.chosen, r.rejected) for r in self.rows if r.kept]

    def counts(self) -> dict[str, Any]:
        dropped = Counter(r.dropped_because for r in self.rows if not r.kept)
        return {"generated": len(self.rows), "kept": len(self.kept), "dropped": dict(sorted(dropped.items()))}

    def digest(self) -> str:
        return generated_pairs_digest(self.rows)

    def lineage(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "contrasts": [asdict(c) for c in self.contrasts],
            "prompts_digest": pairs_digest((r.prompt,) for r in self.rows),
            "pairs_digest": self.digest(),
            "counts": self.counts(),
            "seconds": round(self.seconds, 1),
            "reused_from_work_folder": self.reused,
        }


def contrast_index(prompt: str, seed: int, n: int) -> int:
    """Which instruction pair a prompt draws: seeded, stable, independent of the other prompts."""
    h = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return int.from_bytes(h[:8], "little") % n


def core_drop_reason(chosen: str, rejected: str) -> str | None:
    if not chosen.strip() or not rejected.strip():
        return "empty answer"
    if chosen.strip() == rejected.strip():
        return "identical answers"
    return None


def plan(
    plugin: InstructedPlugin, options: dict[str, Any]
) -> tuple[list[str], list[Contrast], PairGeneration]:
    """The prompts, instruction pairs and settings a plugin asks for, checked."""
    try:
        settings = plugin.generation(**options)
        contrasts = list(plugin.contrasts(**options))
        prompts = list(plugin.prompts(**options))
    except RegistryError:
        raise
    except Exception as e:
        raise PluginError(f"plugin {plugin.name} failed to supply prompts: {type(e).__name__}: {e}") from e
    if not contrasts:
        raise TrainingFailed(f"plugin {plugin.name} supplied no instructions")
    for c in contrasts:
        if not (
            isinstance(c.positive, str)
            and c.positive.strip()
            and isinstance(c.negative, str)
            and c.negative.strip()
        ):
            raise TrainingFailed(f"plugin {plugin.name}: an instruction is empty")
        if c.positive.strip() == c.negative.strip():
            raise TrainingFailed(f"plugin {plugin.name}: the positive and negative instructions are the same")
    prompts = [p for p in prompts if isinstance(p, str) and p.strip()]
    if settings.pairs < 1:
        raise TrainingFailed(f"plugin {plugin.name}: the number of pairs must be at least 1")
    if not prompts:
        raise TrainingFailed(f"plugin {plugin.name} supplied no prompts")
    return prompts[: settings.pairs], contrasts, settings


def inputs_key(base_digest: str, plugin: InstructedPlugin, prompts, contrasts, settings) -> str:
    """What generated pairs depend on: a work folder's pairs are reused only when this matches."""
    return content_digest(
        {
            "format": CACHE_FORMAT,
            "base": base_digest,
            "plugin": [plugin.name, plugin.version],
            "prompts": prompts,
            "contrasts": [asdict(c) for c in contrasts],
            "settings": asdict(settings),
        }
    )


def generate_pairs(
    base: Path,
    base_digest: str,
    plugin: InstructedPlugin,
    options: dict[str, Any],
    cache: Path | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> GeneratedPairs:
    """The base answers each prompt under its drawn positive and negative instruction.

    With `cache` (a work folder's file), pairs generated earlier from the same inputs are
    reused instead of generated again.
    """
    prompts, contrasts, settings = plan(plugin, options)
    key = inputs_key(base_digest, plugin, prompts, contrasts, settings)
    if cache is not None and cache.is_file():
        try:
            doc = json.loads(cache.read_text())
        except ValueError:
            doc = {}
        if doc.get("key") == key:
            rows = [GeneratedPair(**r) for r in doc["rows"]]
            log(f"pairs: reusing {len(rows)} generated pairs from {cache}")
            return GeneratedPairs(rows, settings, contrasts, doc.get("seconds", 0.0), reused=True)
    started = time.monotonic()
    rows = _generate(base, plugin, prompts, contrasts, settings, log)
    result = GeneratedPairs(rows, settings, contrasts, time.monotonic() - started)
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp")
        tmp.write_text(json.dumps({"key": key, "seconds": result.seconds, "rows": [asdict(r) for r in rows]}))
        tmp.replace(cache)
    c = result.counts()
    log(
        f"pairs: {c['kept']} of {c['generated']} kept in {result.seconds:.0f}s"
        + (
            f" (dropped: {', '.join(f'{n} {why}' for why, n in c['dropped'].items())})"
            if c["dropped"]
            else ""
        )
    )
    return result


def _generate(base, plugin, prompts, contrasts, settings: PairGeneration, log) -> list[GeneratedPair]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_third_party(progress_settings().interactive()):  # no loading bar among --json lines
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(
            base, dtype=torch.float32
        )  # bf16 matmuls are slow on CPUs
    drawn = [contrast_index(p, settings.sample_seed, len(contrasts)) for p in prompts]
    answers: dict[tuple[int, str], str] = {}
    total = 2 * len(prompts)
    done = 0
    for side, cap in (
        ("positive", settings.max_new_tokens_positive),
        ("negative", settings.max_new_tokens_negative),
    ):
        decoding = Decoding(
            max_new_tokens=cap,
            temperature=settings.temperature,
            top_p=settings.top_p,
            batch_size=settings.batch_size,
            seed=settings.sample_seed,
        )
        for ci, contrast in enumerate(contrasts):
            idx = [i for i, d in enumerate(drawn) if d == ci]
            if not idx:
                continue
            system = getattr(contrast, side)

            def progress(n: int, _total: int, before: int = done) -> None:
                log(f"pairs: {before + n}/{total} answers generated")

            out = generate_answers(
                model, tok, [prompts[i] for i in idx], decoding, system=system, on_batch=progress
            )
            for i, a in zip(idx, out, strict=True):
                answers[(i, side)] = a.text
            done += len(idx)
    rows = []
    for i, p in enumerate(prompts):
        chosen, rejected = answers[(i, "positive")], answers[(i, "negative")]
        why = core_drop_reason(chosen, rejected) or plugin.contrast_held(chosen, rejected)
        rows.append(GeneratedPair(p, chosen, rejected, drawn[i], why))
    return rows
