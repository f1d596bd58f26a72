"""Scoring models on held-out preference pairs, and building merged models in memory.

Sweeps (and later automatic η) evaluate many merges: they are built here as float32
state dicts, never written as folders.

The DPO margin of a policy π against the base on a pair (x, c, r) is
[log π(c|x) − log πbase(c|x)] − [log π(r|x) − log πbase(r|x)]: zero at η = 0, larger when
the policy prefers what the preference prefers. On a chat base (its tokenizer has a chat
template) the pair is scored the way a chat model sees it, as training saw it: the prompt as
a user turn, the answer as the assistant's turn (`chat=None`, the default, decides by the
tokenizer; True/False force it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from registry.merging.methods import get_method
from registry.plugins.loader import load
from registry.plugins.spec import PreferencePair
from registry.records.bases import checked_base, get_base
from registry.records.vectors import get_vector
from registry.records.verified_reads import merge_names, verified_vectors
from registry.storage.tensor_io import FLOATS, read_whole, to_f32
from registry.training.generation import Decoding, generate_answers, has_chat_template
from registry.util.extras import require

if TYPE_CHECKING:
    from registry.core import Core


def _chat_prompt(tok, prompt: str) -> list[int]:
    return list(
        tok.apply_chat_template(
            [{"role": "user", "content": prompt.strip()}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
    )


def _chat_full(tok, prompt: str, answer: str) -> list[int]:
    return list(
        tok.apply_chat_template(
            [{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": answer.strip()}],
            tokenize=True,
            return_dict=True,
        )["input_ids"]
    )


def use_chat(tok, chat: bool | None) -> bool:
    """Whether pairs are scored through the chat template: by default when the base has one."""
    return has_chat_template(tok) if chat is None else chat


def completion_logprobs(
    model, tok, pairs: list[PreferencePair], which: str, chat: bool | None = None
) -> list[float]:
    """Sum of log-probabilities of the completion tokens given the prompt, per pair."""
    import torch

    chat = use_chat(tok, chat)
    out = []
    model.eval()
    with torch.no_grad():
        for p in pairs:
            if chat:
                prompt_ids, full = _chat_prompt(tok, p.prompt), _chat_full(tok, p.prompt, getattr(p, which))
            else:
                prompt_ids = tok(p.prompt, add_special_tokens=False).input_ids
                full = tok(p.prompt + getattr(p, which), add_special_tokens=False).input_ids
            ids = torch.tensor([full])
            logits = model(ids).logits.float()
            logp = torch.log_softmax(logits[0, :-1], dim=-1)
            target = ids[0, 1:]
            token_lp = logp.gather(1, target[:, None])[:, 0]
            out.append(float(token_lp[len(prompt_ids) - 1 :].sum()))
    return out


def dpo_margin(model, base_model, tok, pairs: list[PreferencePair], chat: bool | None = None) -> float:
    pc, pr = (
        completion_logprobs(model, tok, pairs, "chosen", chat),
        completion_logprobs(model, tok, pairs, "rejected", chat),
    )
    bc, br = (
        completion_logprobs(base_model, tok, pairs, "chosen", chat),
        completion_logprobs(base_model, tok, pairs, "rejected", chat),
    )
    margins = [(a - b) - (c - d) for a, b, c, d in zip(pc, bc, pr, br, strict=True)]
    return sum(margins) / len(margins)


def chat_answers(model, tok, prompts: list[str], max_new_tokens: int = 256) -> list[list[int]]:
    """Greedy chat answers (token ids, without the end-of-turn token), in the order of `prompts`."""
    answers = generate_answers(model, tok, prompts, Decoding(max_new_tokens=max_new_tokens))
    return [list(a.ids) for a in answers]


def load_model(folder: str | Path, state: dict | None = None):
    """A model from a base folder, optionally with replaced (merged) weights, in float32."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if state is not None:
        _missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"unexpected tensors {unexpected[:3]}")
    return model


def merged_state(
    core: Core, base: str, terms: list[tuple[str, float]], method: str = "linear", params: dict | None = None
):
    """θ in memory (float32 torch tensors) for evaluation and sweeps: no folder written."""
    import numpy as np
    import torch

    _b, base_w = checked_base(core, base)
    vecs = [get_vector(core, ref, base) for ref, _ in terms]
    # the database's tensor rows say what must exist; every array is checked as it is read
    data = verified_vectors(core, vecs, base_w)
    m = get_method(method)(params=dict(params or {}))
    names = set(merge_names(base_w)) if vecs else set()
    state = {}
    for n in base_w.names():
        spec = base_w.spec(n)
        x = read_whole(base_w, n)
        if spec.tag in FLOATS:
            x = to_f32(x, spec.tag)
        if n in names:
            x = m.merge(n, x, [read_whole(d, n).reshape(x.shape) for d in data], [w for _, w in terms])
        state[n] = torch.from_numpy(np.ascontiguousarray(x))
    return state


def heldout_margin(
    core: Core,
    base: str,
    terms: list[tuple[str, float]],
    plugin: str,
    method: str = "linear",
    params: dict | None = None,
    plugin_options: dict | None = None,
) -> float:
    """The mean held-out DPO margin (vs the base) of a plugin's pairs under an in-memory merge."""
    require("train", "torch", "transformers", what="held-out evaluation")
    from transformers import AutoTokenizer

    pairs = load(plugin).heldout(**(plugin_options or {}))
    path = get_base(core, base).path
    tok = AutoTokenizer.from_pretrained(path)
    merged = load_model(path, merged_state(core, base, terms, method, params))
    return dpo_margin(merged, load_model(path), tok, pairs)
