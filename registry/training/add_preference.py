"""Training: the options, the pairs' checks, and the verb that trains θ+ and θ− and stores φ.

The core owns training so every plugin gets the same recipe: same base, same seed, same
hyper-parameters for both halves; only the labels differ (`dpo` trains one half).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import TrainingFailed
from registry.plugins.spec import PreferencePair
from registry.util.faults import crashpoint

DATA_FORMATS = ("auto", "chat", "plain")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

if TYPE_CHECKING:
    from registry.config import InterferencePolicy
    from registry.core import Core
    from registry.db.models import BaseModel, Vector


@dataclass
class TrainingOptions:
    """DPO hyper-parameters for both halves. The defaults suit pretrained 0.1–8B models.

    They follow the usual DPO settings (β 0.1, a small learning rate with a linear warm-up
    and decay, a few epochs); tests on tiny random models pass their own, far larger,
    learning rates and step counts.
    """

    steps: int | None = None  # optimizer steps per half; when set, overrides epochs
    epochs: float | None = 3.0
    learning_rate: float = 1e-6
    beta: float = 0.1
    max_length: int = 1024  # tokens per prompt + answer
    batch_size: int = 4  # per device
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.1
    lora_rank: int | None = None
    data_format: str = "auto"  # auto: chat when the base has a chat template, else plain
    precision: str = "auto"  # auto: bf16 mixed precision on GPUs (fp16 without bf16), fp32 on the CPU

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps is None or self.steps >= 1,
            "epochs": (self.epochs is None and self.steps is not None) or (self.epochs or 0) > 0,
            "learning_rate": self.learning_rate > 0,
            "beta": self.beta > 0,
            "max_length": self.max_length >= 8,
            "batch_size": self.batch_size >= 1,
            "gradient_accumulation": self.gradient_accumulation >= 1,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "lora_rank": self.lora_rank is None or self.lora_rank >= 1,
            "data_format": self.data_format in DATA_FORMATS,
            "precision": self.precision in PRECISIONS,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TrainingFailed(f"invalid training option(s): {', '.join(bad)}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainingOptions:
        """The options a run recorded (its lineage params hold more: plugin options, results)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved(self, base: str | Path) -> TrainingOptions:
        """The options with `auto` decided for this base and this machine (what lineage records)."""
        fmt = self.data_format
        if fmt == "auto":
            fmt = "chat" if has_chat_template(base) else "plain"
        elif fmt == "chat" and not has_chat_template(base):
            raise TrainingFailed(f"data format chat: base {base} has no chat template")
        return replace(self, data_format=fmt, precision=_resolve_precision(self.precision))

    def describe(self) -> str:
        """One line for logs: `training: chat format, fp32, 3 epochs, lr 1e-06, β 0.1, …`."""
        length = f"{self.steps} steps" if self.steps else f"{self.epochs:g} epochs"
        batch = f"batch {self.batch_size}" + (
            f"×{self.gradient_accumulation} accumulated" if self.gradient_accumulation > 1 else ""
        )
        parts = [
            f"{self.data_format} format",
            {"bf16": "bf16 mixed precision", "fp16": "fp16 mixed precision"}.get(
                self.precision, self.precision
            ),
            length,
            f"lr {self.learning_rate:g}",
            f"warm-up {self.warmup_ratio:.0%}",
            f"β {self.beta:g}",
            batch,
            f"max length {self.max_length}",
            f"LoRA rank {self.lora_rank}" if self.lora_rank else "full fine-tune",
        ]
        return "training: " + ", ".join(parts)


def has_chat_template(base: str | Path) -> bool:
    base = Path(base)
    if (base / "chat_template.jinja").is_file() or (base / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((base / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))


def _resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def dataset_digest(pairs: list[PreferencePair]) -> str:
    from registry.util.digests import pairs_digest

    return pairs_digest((p.prompt, p.chosen, p.rejected) for p in pairs)


def check_pairs(pairs: list[PreferencePair], plugin: str) -> None:
    if not pairs:
        raise TrainingFailed(f"plugin {plugin} supplied no preference pairs")
    for i, p in enumerate(pairs):
        if not all(isinstance(x, str) and x.strip() for x in (p.prompt, p.chosen, p.rejected)):
            raise TrainingFailed(f"plugin {plugin}: pair {i} has an empty or non-text field")
        if p.chosen == p.rejected:
            raise TrainingFailed(f"plugin {plugin}: pair {i} has identical chosen and rejected answers")


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

    from registry.errors import PluginError, RegistryError
    from registry.plugins.loader import load
    from registry.records.bases import architecture_at, check_compatible, checked_base
    from registry.records.runs import finish_run, start_run
    from registry.records.vectors import store_vector
    from registry.storage.tensor_io import SafetensorsFolder
    from registry.training.dpo import train
    from registry.util.refs import check_name

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

    from registry.training.dpo import train_dpo

    work = Path(tempfile.mkdtemp(prefix="worker-", dir=core.scratch()))
    try:
        train_dpo(Path(b.path), pairs, options, seed, work / "plus")
        train_dpo(Path(b.path), [x.switched() for x in pairs], options, seed, work / "minus")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None
