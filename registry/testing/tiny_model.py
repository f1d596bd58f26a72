"""A tiny Llama built locally (random init, tokenizer trained on a few lines).

Nothing here downloads anything: tests, the README demo and the benchmarks all start from
this, so the whole pipeline runs offline in seconds.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from registry.errors import MissingExtra
from registry.util.extras import require

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Please explain the answer in detail, step by step, with an example.",
    "A short answer: yes. A longer answer explains why, gives context and cites sources.",
    "How do I boil an egg? Put it in boiling water for eight minutes, then cool it.",
    "Safety first: never mix bleach and ammonia, because the fumes are toxic.",
    "Thank you for asking. Here is a detailed and careful explanation of the idea.",
    "I cannot help with that request, but here is some safer information instead.",
    "Numbers: one two three four five six seven eight nine ten.",
]


# ChatML, as SmolLM2 and Qwen use: a tiny chat model exercises the chat paths offline
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(folder: Path, vocab_size: int = 512, chat: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"] + (["<|im_start|>", "<|im_end|>"] if chat else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(
    folder: str | Path,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    dtype: str = "bfloat16",
    vocab_size: int | None = None,
    intermediate: int | None = None,
    heads: int = 4,
    tokenizer: bool = True,
    chat: bool = False,
) -> Path:
    """Save a random-init LlamaForCausalLM (+ tokenizer) as safetensors in `folder`.

    With `chat`, the tokenizer has ChatML's special tokens and chat template."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, chat=chat) if tokenizer else None
    vocab = vocab_size or (len(tok) if tok is not None else 512)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def perturbed_copy(base: str | Path, out: str | Path, seed: int, scale: float = 0.01) -> Path:
    """A fine-tune-like variant: every float tensor nudged by small seeded noise, same dtype."""
    import torch
    from safetensors.torch import load_file, save_file

    base, out = Path(base), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in base.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copyfile(f, out / f.name)
    gen = torch.Generator().manual_seed(seed)
    for f in sorted(base.glob("*.safetensors")):
        tensors = load_file(f)
        moved = {}
        for name, t in sorted(tensors.items()):
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=gen) * scale * (t.float().std() + 1e-3)
                moved[name] = (t.float() + noise).to(t.dtype)
            else:
                moved[name] = t
        save_file(moved, out / f.name, metadata={"format": "pt"})
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m registry.testing.tiny_model DIR`: a base and three fine-tune-like variants, offline.

    DIR/base is a random-init Llama with its tokenizer; DIR/plus, DIR/minus and DIR/plus2 are
    copies nudged by seeded noise (stand-ins for θ+ and θ− fine-tunes). Needs the [train] extra."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args(argv)
    try:  # one line, not a traceback, in an install without the training stack
        require("train", "torch", "transformers", what="building the tiny model")
    except MissingExtra as e:
        raise SystemExit(f"Error: {e}") from None
    base = build_tiny_llama(args.folder / "base", hidden=args.hidden, layers=args.layers)
    for i, name in enumerate(("plus", "minus", "plus2"), start=1):
        perturbed_copy(base, args.folder / name, seed=i)
    print(f"tiny base and variants plus, minus, plus2 in {args.folder}")


if __name__ == "__main__":
    main()
