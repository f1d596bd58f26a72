"""The model card and `registry-lock.json` of a materialized folder.

Both are pure functions of the recipe and the base (no clock, no paths), so re-running a
recipe reproduces the folder byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from registry.db.models import BaseModel, Recipe
from registry.records.hub import hub_id
from registry.version import VERSION

LOCK_VERSION = 1
CARD_FORMAT = 2  # part of the card cache's key: a changed layout is never served from an old cache


def build_lock(r: Recipe, b: BaseModel, notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """`notes`: measurements recorded with the output (a tune search, a retention check)."""
    lock = {
        "lock_version": LOCK_VERSION,
        "generator": f"registry {VERSION}",
        "recipe": recipe_metadata(r),
        "base": {
            "name": b.name,
            "source": b.source,
            "revision": b.revision,
            "architecture": b.architecture,
            "digest": b.digest,
            "files": {f.filename: f.sha256 for f in b.files},
        },
    }
    if getattr(b, "revision_sha", None):  # a Hub base: the commit its revision resolved to
        lock["base"]["revision_sha"] = b.revision_sha
    if notes:
        lock["notes"] = notes
    return lock


def cached_card(r: Recipe, b: BaseModel, cache: Path, notes: dict[str, Any] | None = None) -> str:
    """The card is a pure function of the recipe and base: build it once per content.

    Building it imports huggingface_hub's Hub client (~0.7 s here), which would otherwise
    compete with every materialization's merge for the CPU.
    """
    key = hashlib.sha256(
        json.dumps(
            [
                VERSION,
                CARD_FORMAT,
                r.name,
                r.version,
                r.content_digest,
                b.name,
                b.source,
                hub_id(b),
                b.architecture,
                notes,
                r.description,
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    path = cache / f"card-{key[:32]}.md"
    try:
        return path.read_text()
    except OSError:
        pass
    text = build_card(r, b, notes)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:  # a read-only home only loses the shortcut
        pass
    return text


def recipe_metadata(r: Recipe) -> dict[str, Any]:
    """The recipe as the card's machine-readable metadata (`preference_recipe`)."""
    return {
        "name": r.name,
        "version": r.version,
        "method": r.method,
        "parameters": r.params,
        "dtype": r.dtype,
        "content_digest": r.content_digest,
        "terms": [
            {
                "vector": t.vector.name,
                "version": t.vector.version,
                "weight": t.weight,
                "digest": t.vector.digest,
            }
            for t in r.terms
        ],
    }


def build_card(r: Recipe, b: BaseModel, notes: dict[str, Any] | None = None) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    base_model = hub_id(b) or b.name  # the Hub id, never a folder of the machine that added it
    evaluations = (notes or {}).get("evaluations") or []
    results = eval_results(r, evaluations)  # model-index needs a model name; cards without stay as they were
    index = {"model_name": f"{r.name}-v{r.version}", "eval_results": results} if results else {}
    data = ModelCardData(
        **index,
        base_model=base_model,
        base_model_relation="adapter" if "adapter" in (notes or {}) else "merge",  # --as-adapter
        tags=[
            "preference-vectors",
            "merge",
            f"method-{r.method}",
            *(["lora"] if "adapter" in (notes or {}) else []),
        ],
        preference_recipe=recipe_metadata(r),
        **({"preference_notes": notes} if notes else {}),
    )
    rows = "\n".join(
        f"| {t.vector.name} | v{t.vector.version} | {t.weight:+g} | `{t.vector.digest[:16]}` |"
        for t in r.terms
    )
    adapter = (notes or {}).get("adapter")
    dtype_line = (
        f"Adapter tensors (LoRA factors): `{adapter.get('dtype', 'float32')}`; the base keeps its own dtype"
        if adapter
        else f"Output dtype: `{r.dtype}`"
    )
    body = f"""
# {r.name} v{r.version}

Materialized by the preference-vector registry: θ = θbase + Σ ηᵢ·φᵢ (method `{r.method}`).

- Base: **{card_text(b.name)}** ({card_text(b.architecture)}), digest `{b.digest}`
- {dtype_line}
- Recipe digest: `{r.content_digest}`
{_described(r)}
| vector | version | weight η | digest |
|---|---|---|---|
{rows}

`registry-lock.json` lists every input and output digest; `registry verify --lock` re-checks it.
"""
    if evaluations:
        body += evaluation_tables(evaluations)
    for key, note in sorted((notes or {}).items()):
        if key == "evaluations":
            continue
        lines = (f"- {card_text(k.replace('_', ' '))}: {card_text(note_text(v))}" for k, v in note.items())
        body += f"\n## {card_text(key)}\n\n" + "\n".join(lines) + "\n"
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def note_text(value: Any) -> str:
    """A note's value as a person reads it (never raw JSON): `none`, `yes`, `0.8779`, `a, b`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(note_text(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={note_text(v)}" for k, v in value.items()) or "none"
    return str(value)


def evaluation_tables(evaluations: list[dict[str, Any]]) -> str:
    """One Markdown table per recorded evaluation: every metric at every grid point."""
    out = "\n## Recorded evaluations\n"
    for e in evaluations:
        names = sorted({m for p in e["points"] for m in p["metrics"]})
        varied = list(e["points"][0]["etas"]) if e["points"] else []
        head = [*(f"η {card_text(n)}" for n in varied), *(card_text(m) for m in names)]
        rows = [
            "| "
            + " | ".join(
                [f"{p['etas'][n]:+g}" for n in varied]
                + ["–" if p["metrics"].get(m) is None else f"{p['metrics'][m]:.4g}" for m in names]
            )
            + " |"
            for p in e["points"]
        ]
        out += (
            f"\nEvaluation {e['id']} by {card_text(e['created_by'])} at {card_text(e['created_at'])}: "
            f"{card_text(e['prompts_source'])}, greedy, at most {e.get('max_new_tokens')} new tokens, "
            f"seed {e['seed']} (record digest `{card_text(e['digest'][:16])}`).\n\n"
            f"| {' | '.join(head)} |\n|{'---|' * len(head)}\n" + "\n".join(rows) + "\n"
        )
    return out


def eval_results(r: Recipe, evaluations: list[dict[str, Any]]) -> list:
    """Hub `model-index` results: each metric of the newest evaluation at the recipe itself
    (its own weights), when that point is on the evaluation's grid."""
    from huggingface_hub import EvalResult

    for e in evaluations:
        own = e.get("subject_point")
        point = next((p for p in e["points"] if p["etas"] == own), None)
        if point is None:
            continue
        return [
            EvalResult(
                task_type="text-generation",
                dataset_type="preference-registry/heldout-prompts",
                dataset_name=str(e["prompts_source"]),
                dataset_revision=str(e["prompts_digest"]),
                metric_type=str(name),
                metric_value=value,
                metric_name=f"{name} (evaluation {e['id']})",
            )
            for name, value in sorted(point["metrics"].items())
            if value is not None
        ]
    return []


def _described(r: Recipe) -> str:
    """The recipe's description as a card line (inert text), when it has one.

    Tags are not in the card: they change often, and the card is part of the output's bytes."""
    text = getattr(r, "description", None)
    return f"- Description: {card_text(text)}\n" if text else ""


_MARKDOWN = "\\`*_{}[]()<>#+-.!|~"


def card_text(value: Any) -> str:
    """Any text shown in a model card's body, inert: one line, no HTML, no Markdown syntax.

    Notes and names can come from elsewhere (a bundle, a config file); a card is rendered by
    the Hub and by editors, so nothing in it may open a tag, a link or a code span."""
    text = " ".join(str(value).split())
    return "".join("&amp;" if c == "&" else f"\\{c}" if c in _MARKDOWN else c for c in text)
