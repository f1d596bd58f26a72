"""`orthogonal` vs `linear` on the tiny model: how much of a preference survives an opposed one.

Trains `verbose` and `terse` (verbose with its labels switched, another seed) on a tiny local
Llama, then scores the held-out `verbose` DPO margin of `verbose` alone and of
`verbose + η·terse` merged with each method. Writes benchmarks/results/orthogonal-vs-linear.json.

    python benchmarks/orthogonal_vs_linear.py [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from registry import Registry
from registry.evaluation.scoring import heldout_margin
from registry.merging.gram import orthogonal_removed
from registry.testing.tiny_model import build_tiny_llama
from registry.training.options import TrainingOptions
from registry_plugins.verbose import DATA

OUT = Path(__file__).parent / "results" / "orthogonal-vs-linear.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = build_tiny_llama(tmp / "base", seed=0)
        reg = Registry.init(tmp / "home")
        reg.add_base("tiny", str(base))
        opts = TrainingOptions(steps=args.steps, batch_size=4, learning_rate=1e-3)
        rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
        terse = tmp / "terse.jsonl"
        terse.write_text(
            "".join(json.dumps({**r, "detailed": r["terse"], "terse": r["detailed"]}) + "\n" for r in rows)
        )
        reg.add_preference("verbose", "tiny", seed=0, options=opts)
        reg.add_preference(
            "verbose", "tiny", name="terse", seed=1, options=opts, plugin_options={"data": str(terse)}
        )
        cosine = reg.compare("verbose", "terse")["global"]
        reg.add_recipe(
            {
                "name": "vt",
                "base": "tiny",
                "terms": [{"vector": "verbose", "weight": 1}, {"vector": "terse", "weight": 1}],
            }
        )
        _vecs, g = reg.recipe_interference("vt")
        removed = orthogonal_removed(g)
        alone = heldout_margin(reg, "tiny", [("verbose", 1.0)], "verbose")
        table = []
        for eta in (0.25, 0.5, 1.0):
            row = {"eta_terse": eta}
            for method in ("linear", "orthogonal"):
                m = heldout_margin(reg, "tiny", [("verbose", 1.0), ("terse", eta)], "verbose", method)
                row[f"{method}_margin"] = m
                row[f"{method}_loss"] = alone - m
            table.append(row)
        reg.close()
    result = {
        "benchmark": "orthogonal-vs-linear",
        "model": "tiny llama (registry.tinymodel, seed 0)",
        "training": {"steps": args.steps, "batch_size": 4, "learning_rate": 1e-3, "seeds": [0, 1]},
        "cosine_verbose_terse": cosine,
        "orthogonal_removed": removed,
        "verbose_alone_margin": alone,
        "rows": table,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
