"""`registry vector consistency`: replicas with other seeds, compared pairwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from registry.errors import RegistryError
from registry.training.options import TrainingOptions

FAST = TrainingOptions(steps=6, batch_size=4, learning_rate=1e-3)


def _flat(reg, ref, layer=None) -> np.ndarray:
    v = reg.vector(ref)
    group = zarr.open_group(store=str(reg.store.path / "data" / v.store_key), mode="r")
    return np.concatenate(
        [
            np.asarray(a[:], np.float64).ravel()
            for n, a in sorted(group.arrays())
            if layer is None or f".layers.{layer}." in n
        ]
    )


def test_consistency_trains_replicas_and_reports_cosines(sqlite_reg, cli):
    sqlite_reg.add_preference("verbose", "tiny", seed=5, options=FAST)
    res = sqlite_reg.consistency("verbose", seeds=2)
    assert res["seeds"] == [5, 6] and res["vectors"] == ["verbose@v1", "verbose-seed6@v1"]
    replica = sqlite_reg.vector("verbose-seed6")
    original = sqlite_reg.vector("verbose").run
    # the same options and the same generated pairs; only the seed (and timings) differ
    timing = {"phase_seconds", "pair_generation"}
    assert replica.run.seed == 6
    same = {k: v for k, v in original.params.items() if k not in timing}
    assert {k: v for k, v in replica.run.params.items() if k not in timing} == same
    assert (
        replica.run.params["pair_generation"]["pairs_digest"]
        == original.params["pair_generation"]["pairs_digest"]
    )
    assert replica.run.dataset_digest == original.dataset_digest
    a, b = _flat(sqlite_reg, "verbose"), _flat(sqlite_reg, "verbose-seed6")
    [pair] = res["pairs"]
    assert pair["global"] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-9)
    a1, b1 = _flat(sqlite_reg, "verbose", 1), _flat(sqlite_reg, "verbose-seed6", 1)
    assert pair["per_layer"]["layer.1"] == pytest.approx(
        a1 @ b1 / np.linalg.norm(a1) / np.linalg.norm(b1), abs=1e-9
    )
    assert res["mean_global"] == res["min_global"] == pair["global"]
    # recorded with the vector, for the console's vector page
    [note] = [e.details for e in sqlite_reg.log("verbose@v1") if e.action == "vector.consistency"]
    assert note["min_global"] == pair["global"] and note["pairs"][0]["b"] == "verbose-seed6@v1"
    # the replica is reused, not retrained
    code, out, err = cli("--json", "vector", "consistency", "verbose", "--seeds", "2")
    assert (
        code == 0
        and "training" not in err
        and json.loads(out)["pairs"] == json.loads(json.dumps(res["pairs"]))
    )
    assert [v.ref for v in sqlite_reg.vectors()] == ["verbose@v1", "verbose-seed6@v1"]


def test_consistency_refusals(sqlite_reg, models, cli):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    code, _, err = cli("vector", "consistency", "helpful")
    assert code == 1 and "vector helpful@v1 was not trained by a plugin here: nothing to retrain" in err
    with pytest.raises(RegistryError, match="at least 2 seeds"):
        sqlite_reg.consistency("helpful", seeds=1)
