"""Build a random-initialised bf16 Llama and two fine-tune-like variants, fast and seeded.

Weights are written straight from numpy (no torch model is instantiated), in safetensors
shards of about 200 MB, so a 254M-parameter model takes seconds to create.
"""

from __future__ import annotations

import argparse
import functools
import json
import zlib
from pathlib import Path

import numpy as np

from registry.storage.tensor_io import TensorSpec, from_f32, to_f32, write_sharded


def llama_specs(
    hidden: int, layers: int, vocab: int, inter: int, kv_heads: int, heads: int
) -> list[TensorSpec]:
    head_dim = hidden // heads
    specs = [TensorSpec("model.embed_tokens.weight", "BF16", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [
            TensorSpec(p + "input_layernorm.weight", "BF16", (hidden,)),
            TensorSpec(p + "post_attention_layernorm.weight", "BF16", (hidden,)),
            TensorSpec(p + "self_attn.q_proj.weight", "BF16", (hidden, hidden)),
            TensorSpec(p + "self_attn.k_proj.weight", "BF16", (kv_heads * head_dim, hidden)),
            TensorSpec(p + "self_attn.v_proj.weight", "BF16", (kv_heads * head_dim, hidden)),
            TensorSpec(p + "self_attn.o_proj.weight", "BF16", (hidden, hidden)),
            TensorSpec(p + "mlp.gate_proj.weight", "BF16", (inter, hidden)),
            TensorSpec(p + "mlp.up_proj.weight", "BF16", (inter, hidden)),
            TensorSpec(p + "mlp.down_proj.weight", "BF16", (hidden, inter)),
        ]
    specs += [
        TensorSpec("model.norm.weight", "BF16", (hidden,)),
        TensorSpec("lm_head.weight", "BF16", (vocab, hidden)),
    ]
    return sorted(specs, key=lambda s: s.name)


def write_model(
    folder: Path, specs: list[TensorSpec], seed: int, base_seed: int | None, config: dict, tag: str = "BF16"
) -> None:
    """seed: the base's noise; base_seed set: a variant = base + small noise of its own.

    tag F32: the variant is kept in float32, like the master weights add-preference trains
    (its φ then has a low half in almost every element: split16's dense path)."""
    specs = [TensorSpec(s.name, tag, s.shape) for s in specs]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))

    def block(spec: TensorSpec, a: int, b: int) -> np.ndarray:
        key = zlib.crc32(f"{spec.name}:{a}".encode())
        shape = (b - a, *spec.shape[1:])
        rng = np.random.default_rng([base_seed if base_seed is not None else seed, key])
        x = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        if spec.name.endswith("norm.weight"):
            x += np.float32(1.0)
        if base_seed is not None:
            x = to_f32(from_f32(x, "BF16"), "BF16")  # the base, as its bf16 file holds it
            noise = np.random.default_rng([seed, key]).standard_normal(shape, dtype=np.float32)
            x = x + noise * np.float32(2e-4)
        return from_f32(x, spec.tag)

    def jobs(spec: TensorSpec):
        rows = spec.shape[0]
        step = max(1, (4 << 20) // (4 * (spec.numel // rows)))
        for a in range(0, rows, step):
            yield functools.partial(block, spec, a, min(rows, a + step))

    write_sharded(folder, specs, jobs, max_shard_bytes=200_000_000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--intermediate", type=int, default=2464)
    p.add_argument("--heads", type=int, help="attention heads (default hidden/64)")
    p.add_argument("--kv-heads", type=int, help="key/value heads (default: heads)")
    p.add_argument(
        "--preset",
        choices=["8b"],
        help="8b: Llama-3-8B tensor shapes (vocab 128256, hidden 4096, intermediate 14336, "
        "32 heads, 8 kv heads); --layers still sets the depth",
    )
    p.add_argument(
        "--variants", choices=["bf16", "f32"], default="bf16", help="f32: θ± as float32 master weights"
    )
    args = p.parse_args()
    if args.preset == "8b":
        args.vocab, args.hidden, args.intermediate = 128256, 4096, 14336
        args.heads, args.kv_heads = args.heads or 32, args.kv_heads or 8
    heads = args.heads or args.hidden // 64
    kv = args.kv_heads or heads
    specs = llama_specs(args.hidden, args.layers, args.vocab, args.intermediate, kv, heads)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.hidden,
        "intermediate_size": args.intermediate,
        "num_hidden_layers": args.layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": args.vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
        "torch_dtype": "bfloat16",
    }
    for name, seed, base_seed in (("base", 0, None), ("plus", 1, 0), ("minus", 2, 0)):
        tag = "F32" if base_seed is not None and args.variants == "f32" else "BF16"
        write_model(args.folder / name, specs, seed, base_seed, config, tag)
    n = sum(s.numel for s in specs)
    print(json.dumps({"params": n, "folder": str(args.folder)}))


if __name__ == "__main__":
    main()
