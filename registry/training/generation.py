"""Chat decoding on the CPU without waste: KV cache, left-padded batches, finished rows dropped.

Pair generation (the base answering under two instructions) and behaviour evaluations
(answers at each η) both decode hundreds of answers on a small machine. `model.generate`
keeps computing every row of a batch until the longest answer ends; a one-sentence answer
then costs as much as a ten-paragraph one. Here a row leaves the batch (and its KV cache)
as soon as it ends, prompts are batched by length so padding stays small, and sampling is
seeded per prompt, so an answer does not depend on which other prompts share its batch.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Decoding:
    """How answers are decoded; recorded with every generated pair and every evaluation."""

    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        if not (self.temperature >= 0 and 0 < self.top_p <= 1):
            raise ValueError("temperature must be ≥ 0 and top_p in (0, 1]")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str
    ids: tuple[int, ...]
    finished: bool  # ended on its own (end of turn), not cut at max_new_tokens


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def prompt_ids(tok, prompt: str, system: str | None = None) -> list[int]:
    """The tokens a chat model sees before its answer: the chat template when the tokenizer has
    one (system message first when given), else the plain prompt (the instruction prepended)."""
    if has_chat_template(tok):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt.strip()})
        out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(out["input_ids"])
    text = f"{system.strip()}\n\n{prompt}" if system else prompt
    return list(tok(text, add_special_tokens=False).input_ids)


def stop_ids(tok, model=None) -> set[int]:
    """End-of-turn tokens: the tokenizer's eos, the generation config's, and ChatML's <|im_end|>."""
    ids: set[int] = set()
    candidates: list[Any] = [tok.eos_token_id]
    config = getattr(model, "generation_config", None)
    if config is not None:
        candidates.append(config.eos_token_id)
    end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    candidates.append(end)
    for c in candidates:
        if isinstance(c, int):
            ids.add(c)
        elif isinstance(c, list | tuple):
            ids.update(x for x in c if isinstance(x, int))
    return ids


def row_seed(seed: int, prompt: str, system: str | None) -> int:
    """A per-answer seed: the same prompt under the same instruction and seed samples the same
    answer whatever else is in its batch."""
    h = hashlib.sha256(f"{seed}\0{system or ''}\0{prompt}".encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def generate_answers(
    model,
    tok,
    prompts: list[str],
    decoding: Decoding = Decoding(),
    system: str | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[Answer]:
    """Answers in the order of `prompts`. `on_batch(done, total)` reports progress."""
    import torch

    encoded = [prompt_ids(tok, p, system) for p in prompts]
    stops = stop_ids(tok, model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else next(iter(stops), 0)
    # batches of similar length: less padding, and rows of a batch tend to end together
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    answers: dict[int, Answer] = {}
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), decoding.batch_size):
            batch = order[start : start + decoding.batch_size]
            rows = _decode_batch(
                model, [encoded[i] for i in batch], decoding, stops, pad, prompts, batch, system
            )
            for i, (ids, finished) in zip(batch, rows, strict=True):
                text = tok.decode(ids, skip_special_tokens=True).strip()
                answers[i] = Answer(prompts[i], text, tuple(ids), finished)
            if on_batch is not None:
                on_batch(min(start + decoding.batch_size, len(order)), len(order))
    return [answers[i] for i in range(len(prompts))]


def _decode_batch(model, encoded, decoding: Decoding, stops, pad: int, prompts, batch, system):
    import torch
    from transformers import DynamicCache

    width = max(len(x) for x in encoded)
    ids = torch.tensor([[pad] * (width - len(x)) + x for x in encoded])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in encoded])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = None
    if decoding.temperature > 0:
        generators = []
        for i in batch:
            g = torch.Generator()
            g.manual_seed(row_seed(decoding.seed, prompts[i], system))
            generators.append(g)
    cache = DynamicCache()
    kv = {_cache_keyword(model): cache}  # transformers 5.25 renamed past_key_values to cache
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kv)
    logits = out.logits[:, -1, :].float()
    live = list(range(len(encoded)))  # which of the batch's rows are still decoding
    tokens: list[list[int]] = [[] for _ in encoded]
    finished = [False] * len(encoded)
    last_pos = positions[:, -1]
    for _step in range(decoding.max_new_tokens):
        nxt = _next_tokens(logits, decoding, generators, live)
        keep = []
        for j, row in enumerate(live):
            t = int(nxt[j])
            if t in stops:
                finished[row] = True
                continue
            tokens[row].append(t)
            if len(tokens[row]) < decoding.max_new_tokens:
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(live):  # drop ended rows from the batch and from the cache
            index = torch.tensor(keep)
            cache.batch_select_indices(index)
            mask, last_pos, nxt = mask[index], last_pos[index], nxt[index]
            live = [live[j] for j in keep]
        mask = torch.cat([mask, torch.ones(len(live), 1, dtype=mask.dtype)], dim=1)
        last_pos = last_pos + 1
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=last_pos[:, None],
            use_cache=True,
            **kv,
        )
        logits = out.logits[:, -1, :].float()
    return [(tokens[r], finished[r]) for r in range(len(encoded))]


def _cache_keyword(model) -> str:
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _next_tokens(logits, decoding: Decoding, generators, live):
    """Greedy argmax, or nucleus sampling with each row's own generator."""
    import torch

    if decoding.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / decoding.temperature, dim=-1)
    if decoding.top_p < 1:
        sorted_p, sorted_i = probs.sort(dim=-1, descending=True)
        cut = sorted_p.cumsum(-1) - sorted_p > decoding.top_p  # keep the smallest set reaching top_p
        sorted_p = sorted_p.masked_fill(cut, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, sorted_i, sorted_p)
    picks = [torch.multinomial(probs[j], 1, generator=generators[row]) for j, row in enumerate(live)]
    return torch.cat(picks)
