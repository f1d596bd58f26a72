"""Training: the pairs' checks and the verb that trains θ+ and θ− and stores φ.

The core owns training so every plugin gets the same recipe: same base, same seed, same
hyper-parameters for both halves; only the labels differ (`dpo` trains one half).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import PluginError, RegistryError, TrainingFailed
from registry.plugins.loader import load
from registry.plugins.spec import PreferencePair
from registry.records.bases import architecture_at, check_compatible, checked_base
from registry.records.low_rank_vectors import Factors, check_factors
from registry.records.runs import finish_run, start_run
from registry.records.vector_import import store_vector
from registry.storage.low_rank import FACTOR_A, FACTOR_B, stack
from registry.storage.tensor_io import SafetensorsFolder
from registry.training.dpo import train, train_dpo
from registry.training.options import TrainingOptions, is_main_process
from registry.util.digests import pairs_digest
from registry.util.extras import require
from registry.util.faults import crashpoint
from registry.util.refs import check_name

if TYPE_CHECKING:
    from registry.config import InterferencePolicy
    from registry.core import Core
    from registry.db.models import BaseModel, Vector


def dataset_digest(pairs: list[PreferencePair]) -> str:

    return pairs_digest((p.prompt, p.chosen, p.rejected) for p in pairs)


def check_pairs(pairs: list[PreferencePair], plugin: str) -> None:
    if not pairs:
        raise TrainingFailed(f"plugin {plugin} supplied no preference pairs")
    for i, p in enumerate(pairs):
        if not all(isinstance(x, str) and x.strip() for x in (p.prompt, p.chosen, p.rejected)):
            raise TrainingFailed(f"plugin {plugin}: pair {i} has an empty or non-text field")
        if p.chosen == p.rejected:
            raise TrainingFailed(f"plugin {plugin}: pair {i} has identical chosen and rejected answers")


# -- verbs -------------------------------------------------------------------------------
def add_preference(
    core: Core,
    plugin: str,
    base: str,
    name: str | None = None,
    seed: int = 0,
    options: TrainingOptions | None = None,
    plugin_options: dict[str, Any] | None = None,
    policy: InterferencePolicy | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> Vector | None:
    """Train θ+ (DPO) and θ− (labels switched) from a pinned base; store φ = θ+ − θ−.

    Returns None in the non-main processes of a distributed launch.
    """
    require("train", "torch", "transformers", "trl", "accelerate", what="add-preference")
    if options is not None and options.lora_rank:
        require("train", "peft", what="add-preference --lora-rank")
    p = load(plugin)
    name = check_name(name or p.name, "vector name")
    b, _ = checked_base(core, base)
    options = (options or TrainingOptions()).resolved(b.path)  # lineage records what was used
    plugin_options = plugin_options or {}
    try:
        pairs = list(p.pairs(**plugin_options))
    except RegistryError:
        raise
    except Exception as e:
        raise PluginError(f"plugin {plugin} failed to supply pairs: {type(e).__name__}: {e}") from e
    check_pairs(pairs, plugin)
    if not is_main_process():
        # under `accelerate launch` every process trains (the collectives need them all);
        # only the main one records the run and writes the vector
        return _train_as_worker(core, b, pairs, options, seed)
    run = start_run(
        core,
        "dpo",
        b,
        name,
        plugin=p.name,
        plugin_version=p.version,
        dataset_digest=dataset_digest(pairs),
        dataset_size=len(pairs),
        params={**options.as_dict(), "plugin_options": plugin_options},
        seed=seed,
        sources={"base": b.name, "base_digest": b.digest},
    )
    work = Path(tempfile.mkdtemp(prefix=f"run{run.id}-", dir=core.scratch()))
    try:
        log(f"run {run.id}: θ+ ({p.name}: chosen preferred)")
        plus = train(Path(b.path), pairs, options, seed, work / "plus", log)
        crashpoint("train:after-plus")
        log(f"run {run.id}: θ− (labels switched)")
        switched = [x.switched() for x in pairs]
        minus = train(Path(b.path), switched, options, seed, work / "minus", log)
        run.params = {**run.params, "trained": plus.lineage()}  # how θ± were made (φ from fp32)
        _, base_w = checked_base(core, base)  # the base must not have changed during training
        pos_w, neg_w = SafetensorsFolder(plus.folder), SafetensorsFolder(minus.folder)
        for w in (pos_w, neg_w):
            check_compatible(base_w, w, architecture_at(w.folder), b.architecture)
        low_rank = None
        if options.lora_rank:  # φ = s·(B₊A₊ − B₋A₋) exactly: kept as its factors
            low_rank = check_factors(base_w, lora_difference(plus.factors, minus.factors))
        log(f"run {run.id}: extracting φ = θ+ − θ−" + (" (LoRA weights as factors)" if low_rank else ""))
        return store_vector(core, name, b, run, base_w, pos_w, neg_w, policy, low_rank=low_rank)
    except BaseException as e:
        finish_run(core, run, "failed", error=f"{type(e).__name__}: {e}".rstrip(": "))
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def lora_difference(plus: Path | None, minus: Path | None) -> Factors:
    """φ's factors from θ±'s: [s·B₊, −s·B₋] · [A₊; A₋] for every adapted weight (rank ≤ 2r)."""
    from safetensors.numpy import load_file

    if plus is None or minus is None:
        raise TrainingFailed("a LoRA run wrote no adapter factors")
    pos, neg = load_file(plus), load_file(minus)
    names = sorted(k.removesuffix(FACTOR_A) for k in pos if k.endswith(FACTOR_A))
    if sorted(k.removesuffix(FACTOR_A) for k in neg if k.endswith(FACTOR_A)) != names:
        raise TrainingFailed("θ+ and θ− adapted different weights")
    return {
        n: stack([(pos[n + FACTOR_B], pos[n + FACTOR_A]), (-neg[n + FACTOR_B], neg[n + FACTOR_A])])
        for n in names
    }


def _train_as_worker(core: Core, b: BaseModel, pairs, options: TrainingOptions, seed: int) -> None:

    work = Path(tempfile.mkdtemp(prefix="worker-", dir=core.scratch()))
    try:
        train_dpo(Path(b.path), pairs, options, seed, work / "plus")
        train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None
