"""Four processes import vectors under one name and add recipes at once: all succeed,
versions are distinct and consecutive, and no row or chunk is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WORKER = r"""
import sys
from registry import Registry
home, positive, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
reg = Registry.open(home)
v = reg.import_vector("shared", "tiny", positive)
r, _ = reg.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": v.ref, "weight": 0.25 * (index + 1)}]})
print(v.ref, r.ref)
"""


def test_four_writers_at_once(reg, models):
    reg.add_base("tiny", str(models["base"]))
    env = {**os.environ, "REGISTRY_DB": reg.config.db_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(reg.home), str(models["plus" if i % 2 else "plus2"]), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in results]
    vectors = sorted(line.split()[0] for out, _ in results for line in out.splitlines())
    recipes = sorted(line.split()[1] for out, _ in results for line in out.splitlines())
    assert vectors == ["shared@v1", "shared@v2", "shared@v3", "shared@v4"]
    assert recipes == ["mix@v1", "mix@v2", "mix@v3", "mix@v4"]
    stored = reg.vectors("tiny")
    assert [v.ref for v in stored] == vectors
    assert sorted(v.store_key for v in stored) == reg.store.group_keys()  # no chunk group lost or orphaned
    assert reg.verify() == []
    weights = sorted(r.terms[0].weight for r in reg.recipes())
    assert weights == [0.25, 0.5, 0.75, 1.0]
    assert len([e for e in reg.log() if e.action == "vector.import"]) == 4
    assert json.dumps([v.digest for v in stored])  # rows are complete
