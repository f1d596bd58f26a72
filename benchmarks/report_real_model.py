"""Markdown tables for docs/training.md from a real_model.py result file (numbers quoted as stored).

python benchmarks/report_real_model.py benchmarks/results/2026-12-07-real-model-steering.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(label: str, m: dict, base: dict) -> str:
    return (
        f"| {label} | {m['answer_words']:.1f} | {m['answer_words'] / base['answer_words']:.2f}× "
        f"| {m['hit_max_new_tokens']} | {m['mattr']:.3f} ({m['mattr'] / base['mattr']:.2f}×) "
        f"| {m['repeated_4grams']:.3f} | {m['long_words']:.3f} | {m['words_per_sentence']:.1f} "
        f"| {m['perplexity_drift']:+.2%} | {m['bf16_weights_changed_fraction']:.1%} |"
    )


def main(path: str) -> None:
    doc = json.loads(Path(path).read_text())
    v = doc["verbose"]
    by_eta = v["by_eta"]
    base = by_eta["+0"]
    cap = doc["max_new_tokens"]
    print(
        f"| recipe | mean answer words | vs base | answers cut at {cap} tokens | MATTR (50 words) "
        "| repeated 4-grams | words of 9+ letters | words per sentence | perplexity drift | bf16 weights changed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for eta in ("-1", "-0.5", "+0", "+0.5", "+1"):
        print(row("base (η = 0)" if eta == "+0" else f"verbose η = {eta}", by_eta[eta], base))
    second = doc.get("second_preference") or {}
    for key in ("eli5+1", "eli5-1", "verbose+1_eli5+1"):
        if key in second:
            label = {
                "eli5+1": "eli5 η = +1",
                "eli5-1": "eli5 η = −1",
                "verbose+1_eli5+1": "verbose +1 and eli5 +1",
            }[key]
            print(row(label, second[key], base))
    print()
    t = v["train"]["result"]
    print(
        f"pairs: {json.dumps(t['pair_generation']['counts'])}; phase seconds: {json.dumps(t['phase_seconds'])}"
    )
    print(
        f"verbose training wall seconds (pairs included): {v['train']['wall_seconds']}, load {v['train']['load_before']} → {v['train']['load_after']}"
    )
    if second.get("train"):
        s = second["train"]
        print(
            f"eli5 training wall seconds: {s['wall_seconds']}; phase seconds {json.dumps(s['result']['phase_seconds'])}"
        )
        print(f"cosine verbose vs eli5: {second['cosine_with_verbose']['global']:.4f}")
        print(
            f"interference recorded at training: {json.dumps(s['result']['interference'].get('cosines', {}))}"
        )
    cross = doc.get("cross_seed") or {}
    if cross.get("cosine"):
        print(f"cross-seed cosine (seeds 0 and 1, same pairs): {cross['cosine']['result']['global']:.4f}")
    for eta, r in v.get("materialize_rounding", {}).items():
        print(f"materialize at η = {eta}: {r['rounding_warning']}")
    print(
        f"machine: {doc['machine']['cpu']}, {doc['machine']['cpus']} cores, load at start {doc['machine']['load_average_at_start']}, at end {doc['machine']['load_average_at_end']}"
    )
    print()
    for eta in ("-1", "+0", "+1"):
        s = v["samples"][eta][0]
        print(f"- η = {eta}, *{s['prompt']}*: {' '.join(s['answer'].split())}")


if __name__ == "__main__":
    main(sys.argv[1])
