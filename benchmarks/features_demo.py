"""The worked example in docs/recipes.md: tune, retention, lineage on the tiny model, for real.

Writes benchmarks/results/features-demo.json, docs/tune.png and docs/lineage.png.

    python benchmarks/features_demo.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from registry import Registry
from registry.evaluation.plots import lineage_plot, tune_plot
from registry.testing.tiny_model import build_tiny_llama
from registry.training.options import TrainingOptions

ROOT = Path(__file__).parent.parent
OUT = ROOT / "benchmarks" / "results" / "features-demo.json"


def main() -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reg = Registry.init(tmp / "home")
        reg.add_base("tiny", str(build_tiny_llama(tmp / "base", seed=0)))
        reg.add_preference("verbose", "tiny", seed=0, options=TrainingOptions(steps=12, batch_size=4))
        reg.add_recipe(
            {
                "name": "concise-ish",
                "base": "tiny",
                "dtype": "float32",
                "terms": [{"vector": "verbose", "weight": 1}],
            }
        )
        tune = reg.tune("concise-ish", "verbose_margin", 10.0, lo=0.0, hi=1.0)
        tune_plot(tune, ROOT / "docs" / "tune.png")
        reg.approve(tune["recipe"], "margin 10 on held-out pairs")
        reg.set_alias(tune["recipe"], "prod")
        retention = reg.retention(tune["recipe"]).note()
        m = reg.materialize("concise-ish@prod", tmp / "out", max_ppl_drift=0.05)
        tree = reg.lineage_of_lock(tmp / "out" / "registry-lock.json")
        lineage_plot(tree, ROOT / "docs" / "lineage.png")
        reg.close()
    result = {
        "benchmark": "features-demo",
        "model": "tiny llama (registry.tinymodel, seed 0)",
        "training": {"plugin": "verbose", "steps": 12, "batch_size": 4, "seed": 0},
        "tune": tune,
        "retention": retention,
        "output_digest": m.output_digest,
        "seconds": time.perf_counter() - t0,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
