"""Training options: DPO hyper-parameters shared by both halves, and who runs them (the process rank)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from registry.errors import TrainingFailed

DATA_FORMATS = ("auto", "chat", "plain")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class TrainingOptions:
    """DPO hyper-parameters for both halves, chosen from measurements on a real chat model.

    At the usual DPO settings (lr 1e-6, 3 epochs) θ+ and θ− barely leave the base: on
    SmolLM2-135M-Instruct φ changed 1.28 % of the bf16 weights at η = ±1 and answers kept
    their length. On the base's own answers (on-policy pairs), lr 1e-5 for 2 epochs moves
    behaviour along η and keeps perplexity within a few percent (docs/training.md). Tests on
    tiny random models pass their own, far larger, learning rates and step counts.
    """

    steps: int | None = None  # optimizer steps per half; when set, overrides epochs
    epochs: float | None = 2.0
    learning_rate: float = 1e-5
    beta: float = 0.1
    max_length: int = 512  # tokens per prompt + answer
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


def is_main_process() -> bool:
    """Rank 0 of a torchrun / `accelerate launch` job, or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0
