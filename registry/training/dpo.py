"""DPO of one half (θ+ or θ−) with trl: chat or plain pairs, float32 master weights, one writer.

θ± are trained with float32 master weights (bf16 autocast on GPUs, plain float32 on the
CPU) and saved in float32, so φ = θ+ − θ− keeps every update: rounding θ± to a bf16 base's
dtype first would drop each update smaller than half a bf16 ulp, which at the small
learning rates pretrained models need is most of them. The full state dict is gathered on
every rank (DDP, FSDP, DeepSpeed ZeRO-3) and written once, by rank 0.

Chat models are trained as chat models: when the base has a chat template, pairs go to
trl as conversations (the prompt as a user message, each answer as an assistant message),
so the vector acts on the format the model is used in.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import TrainingFailed
from registry.plugins.spec import PreferencePair
from registry.training.options import TrainingOptions, is_main_process
from registry.training.progress import TrainingProgress, quiet_third_party, settings, trainer_callback
from registry.training.reference_logps import ReferenceLogps, trainer_class


@dataclass
class TrainResult:
    """One trained half. `folder` holds θ in float32 (the master weights): use it for φ."""

    folder: Path
    options: TrainingOptions  # resolved: data_format and precision are concrete
    steps: int
    seconds: float
    world_size: int = 1
    folder_16bit: Path | None = None  # θ rounded to the base's dtype, only when asked
    factors: Path | None = None  # LoRA runs: each adapted weight's s·B and A (beside `folder`)
    final: dict[str, float] = field(default_factory=dict)  # last step's loss, margin, accuracy
    # the base's log-probs of each pair's chosen and rejected answer (the DPO reference),
    # computed once before training: the other half reuses them with the labels switched
    reference: ReferenceLogps | None = None
    reference_seconds: float = 0.0

    def lineage(self) -> dict[str, Any]:
        """What a run records besides the options: how the weights were produced."""
        return {
            "data_format": self.options.data_format,
            "precision": self.options.precision,
            "phi_from": "float32",
            "optimizer_steps": self.steps,
            "world_size": self.world_size,
            "reference_logps": "precomputed once, shared by θ+ and θ−",
        }


def preference_rows(pairs: list[PreferencePair], data_format: str) -> dict[str, list]:
    """Columns for trl: strings (plain) or conversations (chat: user prompt, assistant answers)."""
    if data_format == "plain":
        return {
            "prompt": [p.prompt for p in pairs],
            "chosen": [p.chosen for p in pairs],
            "rejected": [p.rejected for p in pairs],
        }
    if data_format != "chat":
        raise TrainingFailed(f"unresolved data format {data_format!r}")

    def said(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text.strip()}]

    return {
        "prompt": [[{"role": "user", "content": p.prompt.strip()}] for p in pairs],
        "chosen": [said(p.chosen) for p in pairs],
        "rejected": [said(p.rejected) for p in pairs],
    }


def train_dpo(
    base: Path,
    pairs: list[PreferencePair],
    options: TrainingOptions,
    seed: int,
    out: Path,
    log: Callable[[str], None] = lambda _msg: None,
    **kwargs: Any,
) -> Path:
    """Train one DPO policy; return the folder of its float32 weights (see `train`)."""
    return train(base, pairs, options, seed, out, log, **kwargs).folder


def train(
    base: Path,
    pairs: list[PreferencePair],
    options: TrainingOptions,
    seed: int,
    out: Path,
    log: Callable[[str], None] = lambda _msg: None,
    label: str | None = None,
    save_16bit: bool = False,
    reference: ReferenceLogps | None = None,
) -> TrainResult:
    """Train one DPO policy from `base` on `pairs`; write θ in float32 to `out`.

    The reference log-probs are computed once before training (no reference forward per
    step); pass `reference` (the other half's, switched) to skip even that. With
    `save_16bit`, θ rounded to the base's dtype also goes to `<out>-<dtype>`. Every process
    of a distributed launch must call this; only the main one writes.
    """
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback
    from trl import DPOConfig, DPOTrainer

    base, out = Path(base), Path(out)
    options = options.resolved(base)
    label = label or out.name
    report = settings()
    main = is_main_process()
    cuda = torch.cuda.is_available()
    started = time.monotonic()

    transformers.logging.set_verbosity_error()
    with (
        deterministic(seed),
        quiet_third_party(report.interactive()),
        contextlib.redirect_stdout(sys.stderr),  # keep stdout for the command's own (JSON) output
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", FutureWarning)
        # the config comes first: under DeepSpeed ZeRO-3 it makes from_pretrained load partitioned
        args = DPOConfig(
            output_dir=str(out.parent / f"{out.name}-trainer"),
            max_steps=options.steps or -1,
            num_train_epochs=options.epochs or 1,
            per_device_train_batch_size=options.batch_size,
            gradient_accumulation_steps=options.gradient_accumulation,
            learning_rate=options.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=options.warmup_ratio,  # below 1: a fraction of the steps
            beta=options.beta,
            max_length=options.max_length,
            seed=seed,
            data_seed=seed,
            report_to=[],
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=1,
            use_cpu=not cuda,
            disable_tqdm=True,  # our own bar or log lines, with loss and margin
            dataloader_num_workers=0,
            bf16=options.precision == "bf16",
            fp16=options.precision == "fp16",
            gradient_checkpointing=cuda,  # memory on GPUs; on the CPU it only costs time
            precompute_ref_log_probs=True,
        )
        tok = AutoTokenizer.from_pretrained(base)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # float32 master weights; autocast supplies bf16/fp16 compute on GPUs
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        data = Dataset.from_dict(preference_rows(pairs, options.data_format))
        peft_config = None
        if options.lora_rank:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=options.lora_rank,
                lora_alpha=2 * options.lora_rank,
                target_modules="all-linear",
                lora_dropout=0.0,
            )
        if reference is not None and len(reference.chosen) != len(pairs):
            raise TrainingFailed(f"{len(reference.chosen)} reference log-probs for {len(pairs)} pairs")
        ref_started = time.monotonic()
        trainer = trainer_class(DPOTrainer)(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tok,
            peft_config=peft_config,
            given_reference=reference,
        )
        ref_seconds = time.monotonic() - ref_started
        computed = ReferenceLogps(
            tuple(float(x) for x in trainer.train_dataset["ref_chosen_logps"]),
            tuple(float(x) for x in trainer.train_dataset["ref_rejected_logps"]),
        )
        trainer.remove_callback(PrinterCallback)  # it prints raw dicts to stdout
        trainer.remove_callback(ProgressCallback)
        progress = TrainingProgress(label, active=trainer.accelerator.is_main_process)
        trainer.add_callback(trainer_callback(progress))
        world = trainer.accelerator.num_processes
        if main:
            log(
                f"{label}: {len(pairs)} pairs, {options.data_format} format, {options.precision}"
                + (f", {world} processes" if world > 1 else "")
            )
        trainer.train()
        state = _gathered_state(trainer)  # collective: every rank takes part
        dtype16 = _config_dtype(base)
        folder16 = out.parent / f"{out.name}-{dtype16}" if save_16bit else None
        if trainer.accelerator.is_main_process:
            skeleton = trainer.accelerator.unwrap_model(trainer.model)
            if options.lora_rank:
                skeleton = skeleton.get_base_model()
                save_factors(lora_factors(state, scaling=2.0), factors_path(out))
                state = merge_lora(state, scaling=2.0)
            state = {k: v for k, v in state.items() if k not in tied_duplicates(skeleton)}
            _save(skeleton, {k: v.to(torch.float32) for k, v in state.items()}, out, tok)
            if folder16 is not None:
                _save(skeleton, {k: v.to(getattr(torch, dtype16)) for k, v in state.items()}, folder16, tok)
        trainer.accelerator.wait_for_everyone()
    result = TrainResult(
        folder=out,
        options=options,
        steps=trainer.state.global_step,
        seconds=time.monotonic() - started,
        world_size=world,
        folder_16bit=folder16,
        factors=factors_path(out) if options.lora_rank else None,
        final={k: progress.last[k] for k in ("loss", "margin", "accuracy") if k in progress.last},
        reference=computed,
        reference_seconds=0.0 if reference is not None else ref_seconds,
    )
    if main:
        summary = ", ".join(f"{k} {v:.4f}" for k, v in result.final.items())
        log(
            f"{label}: {result.steps} steps in {result.seconds:.1f}s"
            + (f", last step {summary}" if summary else "")
        )
    return result


@contextlib.contextmanager
def deterministic(seed: int):
    """Seeded, deterministic kernels for the block; the process's previous settings after it.

    Unlike transformers' `enable_full_determinism` this leaves CUDA_LAUNCH_BLOCKING alone
    (synchronous launches would slow GPU training for nothing) and undoes what it set.
    """
    import torch
    from transformers import set_seed

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # required by deterministic cuBLAS
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    set_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def _gathered_state(trainer) -> dict[str, Any]:
    """The full float32 state dict on the main process ({} elsewhere), under any launcher.

    DeepSpeed keeps the float32 master weights in the optimizer (the module holds 16-bit
    copies), so each parameter's master copy is gathered; FSDP and DDP keep float32
    parameters, which accelerate gathers into a full state dict.
    """
    from accelerate.utils import DistributedType

    acc = trainer.accelerator
    if acc.distributed_type == DistributedType.DEEPSPEED:
        from deepspeed.utils import safe_get_full_fp32_param

        inner = acc.unwrap_model(trainer.model_wrapped)
        state = {}
        for name, p in inner.named_parameters():
            full = safe_get_full_fp32_param(p)  # a collective under ZeRO-3: every rank calls it
            if acc.is_main_process and full is not None:
                state[name] = full.detach().cpu()
        persistent = set(inner.state_dict().keys())
        for name, b in inner.named_buffers():
            if acc.is_main_process and name in persistent:
                state[name] = b.detach().cpu()
        return state
    state = acc.get_state_dict(trainer.model_wrapped)
    return {k: v.detach().cpu() for k, v in state.items()} if acc.is_main_process else {}


def merge_lora(state: dict[str, Any], scaling: float, adapter: str = "default") -> dict[str, Any]:
    """Fold LoRA adapters into their base weights: W + scaling · B·A (in float32), plain names."""
    out = {}
    for key, value in state.items():
        if f".lora_A.{adapter}." in key or f".lora_B.{adapter}." in key:
            continue
        name = key.removeprefix("base_model.model.")
        if key.endswith(".base_layer.weight"):
            stem = key.removesuffix(".base_layer.weight")
            a, b = state[f"{stem}.lora_A.{adapter}.weight"], state[f"{stem}.lora_B.{adapter}.weight"]
            value = value.float() + (b.float() @ a.float()) * scaling
        out[name.replace(".base_layer.", ".")] = value
    return out


def factors_path(out: Path) -> Path:
    """Where a LoRA run's factors go: beside θ's folder, never a shard inside it."""
    return out.parent / f"{out.name}-lora-factors.safetensors"


def lora_factors(state: dict[str, Any], scaling: float, adapter: str = "default") -> dict[str, Any]:
    """Each adapted weight's factors as plain names: `W.lora_B` = scaling·B and `W.lora_A` = A
    (float32), so that W's update is exactly lora_B · lora_A (scaling 2.0 is a power of two)."""
    out = {}
    for key in state:
        if key.endswith(".base_layer.weight"):
            stem = key.removesuffix(".base_layer.weight")
            name = f"{stem}.weight".removeprefix("base_model.model.")
            a, b = state[f"{stem}.lora_A.{adapter}.weight"], state[f"{stem}.lora_B.{adapter}.weight"]
            out[f"{name}.lora_A"] = a.float().contiguous()
            out[f"{name}.lora_B"] = (b.float() * scaling).contiguous()
    return out


def save_factors(factors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(factors, path)


def tied_duplicates(model) -> set[str]:
    """Names of parameters that alias an earlier one (a tied lm_head): the checkpoint has one."""
    seen: set[int] = set()
    dupes = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            dupes.add(name)
        seen.add(id(p))
    config = getattr(model, "config", None)
    text = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    if getattr(text, "tie_word_embeddings", False):
        dupes |= set(getattr(model, "_tied_weights_keys", None) or {})
    return dupes


def _save(skeleton, state: dict[str, Any], folder: Path, tok) -> None:
    """Write `state` as a Hugging Face folder the way the trainer's own save does (rank 0 only)."""
    skeleton.save_pretrained(folder, state_dict=state, safe_serialization=True, is_main_process=True)
    tok.save_pretrained(folder)


def _config_dtype(base: Path) -> str:
    config = json.loads((base / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return dtype if dtype in {"bfloat16", "float16", "float32"} else "float32"
