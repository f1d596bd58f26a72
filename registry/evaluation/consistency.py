"""Cross-seed consistency: retrain a vector's plugin with other seeds and compare the results.

The paper's robustness claim, measured per registry: pairwise cosines (global and per layer)
of φ trained from the same plugin, data and options with different seeds. Replicas are stored
as `NAME-seedS` vectors (interference policy off) and reused when their lineage matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry.config import InterferencePolicy
from registry.errors import NotFound, RegistryError
from registry.records.interference import compare
from registry.records.vectors import get_vector
from registry.training.add_preference import add_preference
from registry.training.options import TrainingOptions
from registry.util.extras import require

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Vector


def _replica(core: Core, v: Vector, seed: int) -> Vector | None:

    try:
        r = get_vector(core, f"{v.name}-seed{seed}", v.base.name)
    except NotFound:
        return None
    same = r.run is not None and (
        r.run.plugin,
        how_trained(r.run.params),
        r.run.dataset_digest,
        r.run.seed,
    ) == (
        v.run.plugin,
        how_trained(v.run.params),
        v.run.dataset_digest,
        seed,
    )
    return r if same else None


def how_trained(params: dict[str, Any]) -> dict[str, Any]:
    """A run's params without what it measured (phase times, whether pairs came from a work folder)."""
    out = {k: v for k, v in params.items() if k != "phase_seconds"}
    if isinstance(out.get("pair_generation"), dict):
        measured = {"seconds", "reused_from_work_folder"}
        out["pair_generation"] = {k: v for k, v in out["pair_generation"].items() if k not in measured}
    return out


def consistency(
    core: Core,
    name: str,
    seeds: int = 3,
    base: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Train `seeds − 1` replicas of vector `name` (its own seed is the first) and compare all pairs."""
    if seeds < 2:
        raise RegistryError("consistency needs at least 2 seeds")
    v = get_vector(core, name, base)
    run = v.run
    if run is None or run.kind != "dpo" or not run.plugin:
        raise RegistryError(f"vector {v.ref} was not trained by a plugin here: nothing to retrain")
    options = TrainingOptions.from_params(run.params)
    plugin_options = run.params.get("plugin_options", {})
    s0 = run.seed or 0
    replicas = {seed: _replica(core, v, seed) for seed in range(s0 + 1, s0 + seeds)}
    if None in replicas.values():  # one line naming this command, before any training starts
        require("train", "torch", "transformers", "trl", "accelerate", what="vector consistency")
    vecs = [v]
    for seed, replica in replicas.items():
        if replica is None:
            log(f"training {run.plugin} with seed {seed}")
            replica = add_preference(
                core, run.plugin, v.base.name, f"{v.name}-seed{seed}", seed, options, plugin_options,
                InterferencePolicy("off"), log,
            )  # fmt: skip
        vecs.append(replica)
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(vecs), 2):
        c = compare(core, a.ref, b.ref, v.base.name)
        pairs.append(
            {
                "a": a.ref,
                "b": b.ref,
                "seeds": [s0 + i, s0 + j],
                "global": c["global"],
                "per_layer": c["per_layer"],
            }
        )
    cosines = [p["global"] for p in pairs]
    result = {
        "vector": v.ref,
        "plugin": run.plugin,
        "seeds": list(range(s0, s0 + seeds)),
        "vectors": [x.ref for x in vecs],
        "pairs": pairs,
        "min_global": min(cosines),
        "mean_global": sum(cosines) / len(cosines),
    }
    # recorded with the vector (global cosines only), so the console can show it later
    summary = {k: result[k] for k in ("seeds", "vectors", "min_global", "mean_global")}
    summary["pairs"] = [{k: p[k] for k in ("a", "b", "seeds", "global")} for p in pairs]
    core.audit_now("vector.consistency", v.ref, summary)
    return result
