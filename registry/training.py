"""Training: DPO θ+ and the label-switched θ− with trl from a pinned base, stored as φ.

The core owns training so every plugin gets the same recipe: same base, same seed, same
hyper-parameters for both halves; only the labels differ. θ± are saved in the base's dtype
(so φ = θ+ − θ− is exact in float32) and then imported like any other pair of folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import TrainingFailed
from registry.faults import crashpoint
from registry.plugin_spec import PreferencePair

if TYPE_CHECKING:
    from registry.config import InterferencePolicy
    from registry.core import Core
    from registry.models import BaseModel, Vector


@dataclass
class TrainingOptions:
    steps: int = 20
    epochs: float | None = None  # when set, overrides steps
    learning_rate: float = 1e-3
    beta: float = 0.1
    max_length: int = 256
    batch_size: int = 4
    lora_rank: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "learning_rate": self.learning_rate > 0,
            "beta": self.beta > 0,
            "max_length": self.max_length >= 8,
            "batch_size": self.batch_size >= 1,
            "epochs": self.epochs is None or self.epochs > 0,
            "lora_rank": self.lora_rank is None or self.lora_rank >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TrainingFailed(f"invalid training option(s): {', '.join(bad)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_digest(pairs: list[PreferencePair]) -> str:
    from registry.digests import pairs_digest

    return pairs_digest((p.prompt, p.chosen, p.rejected) for p in pairs)


def check_pairs(pairs: list[PreferencePair], plugin: str) -> None:
    if not pairs:
        raise TrainingFailed(f"plugin {plugin} supplied no preference pairs")
    for i, p in enumerate(pairs):
        if not all(isinstance(x, str) and x.strip() for x in (p.prompt, p.chosen, p.rejected)):
            raise TrainingFailed(f"plugin {plugin}: pair {i} has an empty or non-text field")
        if p.chosen == p.rejected:
            raise TrainingFailed(f"plugin {plugin}: pair {i} has identical chosen and rejected answers")


def train_dpo(
    base: Path,
    pairs: list[PreferencePair],
    options: TrainingOptions,
    seed: int,
    out: Path,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Train one DPO policy from `base` on `pairs`; save it (safetensors, base dtype) to `out`."""
    import datasets
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    transformers.logging.set_verbosity_error()
    transformers.enable_full_determinism(seed, warn_only=True)
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    save_dtype = _config_dtype(base)
    data = Dataset.from_dict(
        {
            "prompt": [p.prompt for p in pairs],
            "chosen": [p.chosen for p in pairs],
            "rejected": [p.rejected for p in pairs],
        }
    )
    peft_config = None
    if options.lora_rank:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=options.lora_rank,
            lora_alpha=2 * options.lora_rank,
            target_modules="all-linear",
            lora_dropout=0.0,
        )
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    args = DPOConfig(
        output_dir=str(out.parent / f"{out.name}-trainer"),
        max_steps=-1 if options.epochs else options.steps,
        num_train_epochs=options.epochs or 1,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        beta=options.beta,
        max_length=options.max_length,
        seed=seed,
        data_seed=seed,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not sys.stderr.isatty(),
        dataloader_num_workers=0,
        bf16=False,
        fp16=False,
    )
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
    steps = f"{options.epochs} epochs" if options.epochs else f"{options.steps} steps"
    # trainers print metrics to stdout; keep stdout for the command's own (JSON) output
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_config
        )
        log(f"training on {len(pairs)} pairs, {steps}")
        trainer.train()
    trained = trainer.model
    if options.lora_rank:
        trained = trained.merge_and_unload()
    if trainer.accelerator.is_main_process:
        trained = trained.to(getattr(torch, save_dtype))
        trained.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
    return out


def _config_dtype(base: Path) -> str:
    config = json.loads((base / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return dtype if dtype in {"bfloat16", "float16", "float32"} else "float32"


def is_main_process() -> bool:
    """Rank 0 of a torchrun / `accelerate launch` job, or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


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
    import shutil
    import tempfile

    from registry.bases import architecture_at, check_compatible, checked_base
    from registry.errors import PluginError, RegistryError
    from registry.plugins import load
    from registry.refs import check_name
    from registry.runs import finish_run, start_run
    from registry.tensor_io import SafetensorsFolder
    from registry.vectors import store_vector

    options = options or TrainingOptions()
    plugin_options = plugin_options or {}
    p = load(plugin)
    name = check_name(name or p.name, "vector name")
    b, _ = checked_base(core, base)
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
        plus = train_dpo(Path(b.path), pairs, options, seed, work / "plus", log)
        crashpoint("train:after-plus")
        log(f"run {run.id}: θ− (labels switched)")
        minus = train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus", log)
        _, base_w = checked_base(core, base)  # the base must not have changed during training
        pos_w, neg_w = SafetensorsFolder(plus), SafetensorsFolder(minus)
        for w in (pos_w, neg_w):
            check_compatible(base_w, w, architecture_at(w.folder), b.architecture)
        log(f"run {run.id}: extracting φ = θ+ − θ−")
        return store_vector(core, name, b, run, base_w, pos_w, neg_w, policy)
    except BaseException as e:
        finish_run(core, run, "failed", error=f"{type(e).__name__}: {e}".rstrip(": "))
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_as_worker(core: Core, b: BaseModel, pairs, options: TrainingOptions, seed: int) -> None:
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="worker-", dir=core.scratch()))
    try:
        train_dpo(Path(b.path), pairs, options, seed, work / "plus")
        train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None
