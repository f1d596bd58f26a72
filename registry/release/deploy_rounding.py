"""Does η·φ survive the output dtype? Counts, per merged tensor, the weights it is lost on.

A vector trained in float32 moves most weights by far less than half a bf16 ulp of the
base weight: θbase + η·φ, summed in float32, then rounds back to the base's own value in
bf16, and the materialized model is the base there. `materialize` feeds every merged block
to a `RoundingTally` (the engine's observer) and warns in one line when more than half of
the weights the merge changes come out equal to the base.

Counted, per tensor, from bit patterns only (cheap: a few passes over each block while it
is still in cache, no second read of anything):
- entries: the tensor's elements;
- updated: entries whose float32 merge differs from the base widened to float32 (the merged
  update, as the merge computed it, is non-zero there; this holds for every method);
- kept: updated entries whose output value equals the base cast to the output dtype, bit
  for bit (the update rounded away).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from registry.storage.tensor_io import DTYPE_NAMES, TAG_NAMES, from_f32, to_f32

THRESHOLD = 0.5  # warn when more than this fraction of the updated weights keep the base's value
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


class BlockCounts(NamedTuple):
    entries: int
    updated: int
    kept: int


def _bits(a: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(a).reshape(-1)
    return flat.view(_UINT[flat.dtype.itemsize])


def count_block(
    base_raw: np.ndarray, base_tag: str, merged: np.ndarray, out_block: np.ndarray, out_tag: str
) -> BlockCounts:
    """Counts of one block: the base as stored (`base_tag`), its float32 merge, the output.

    `out_block` must be `merged` rounded to `out_tag` (as the engine writes it); all three
    hold the same elements in the same order, whatever their shapes.
    """
    m = np.ascontiguousarray(merged, dtype=np.float32).reshape(-1)
    n = m.size
    if base_tag == "BF16" and out_tag == "BF16":
        # the common case, without widening the base: the output differs from the base only
        # where the merge did, and where it is equal the merge changed the value iff the
        # float32 sum has a non-zero low half (else it is that bf16 value exactly)
        eq = _bits(out_block) == _bits(base_raw)
        changed = n - int(np.count_nonzero(eq))
        # one flag per half of each float32; seen as uint16, bit 0 is the low half's flag on
        # either byte order (contiguous passes: a strided view of the low halves is 5x slower)
        low_nonzero = (m.view(np.uint16) != 0).view(np.uint16)
        kept = int(np.count_nonzero(np.bitwise_and(low_nonzero, eq, dtype=np.uint16)))
        return BlockCounts(n, changed + kept, kept)
    b32 = np.ascontiguousarray(to_f32(base_raw, base_tag), dtype=np.float32).reshape(-1)
    updated = m.view(np.uint32) != b32.view(np.uint32)
    if out_tag == "F32":  # the output is the float32 merge itself: nothing rounds away
        return BlockCounts(n, int(np.count_nonzero(updated)), 0)
    base_out = base_raw if base_tag == out_tag else from_f32(b32, out_tag)
    same = _bits(out_block) == _bits(base_out)
    return BlockCounts(n, int(np.count_nonzero(updated)), int(np.count_nonzero(same & updated)))


def count_merge(base_raw: np.ndarray, base_tag: str, merged: np.ndarray, out_tag: str) -> BlockCounts:
    """`count_block` for a caller that holds only the float32 merge (rounded here, as materialize does)."""
    return count_block(base_raw, base_tag, merged, from_f32(np.asarray(merged, np.float32), out_tag), out_tag)


def count_torch(base, merged, dtype: str) -> BlockCounts:
    """`count_merge` for torch tensors (e.g. a merge held in memory): `base` as stored
    (bfloat16, float16 or float32), `merged` its float32 merge, `dtype` the output's name."""
    import torch

    tags = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}
    tag = tags[base.dtype]
    b = base.detach().contiguous().cpu()
    raw = b.view(torch.int16).numpy().view(np.uint16) if tag == "BF16" else b.numpy()
    m = merged.detach().to(torch.float32).contiguous().cpu().numpy()
    return count_merge(raw, tag, m, DTYPE_NAMES[dtype])


def rounding_warning(fraction: float | None, dtype: str) -> str | None:
    """The one-line warning when `fraction` of the changed weights round away in `dtype`, else None."""
    if fraction is None or fraction <= THRESHOLD:
        return None
    return (
        f"η·φ rounds away in {dtype} for {fraction:.1%} of the weights it changes (the output keeps "
        "the base's value there): raise |η|, train a stronger vector (more epochs or a higher learning "
        "rate), or set dtype: float32 in the recipe"
    )


class RoundingTally:
    """Per-tensor counts over a streamed merge; thread-safe (blocks arrive from worker threads).

    Pass it as `MergePlan.observe`: the engine calls it on every merged block with
    (tensor name, base block as stored, its tag, float32 merge, output block, output tag).
    """

    def __init__(self, dtype: str):
        self.dtype = dtype  # the output dtype's name, for the warning ("bfloat16")
        self._lock = threading.Lock()
        self._tensors: dict[str, list[int]] = {}

    def __call__(
        self,
        name: str,
        base_raw: np.ndarray,
        base_tag: str,
        merged: np.ndarray,
        out_block: np.ndarray,
        out_tag: str,
    ) -> None:
        self.add(name, count_block(base_raw, base_tag, merged, out_block, out_tag))

    def add(self, name: str, counts: BlockCounts) -> None:
        with self._lock:
            t = self._tensors.setdefault(name, [0, 0, 0])
            for i, c in enumerate(counts):
                t[i] += c

    def per_tensor(self) -> dict[str, BlockCounts]:
        with self._lock:
            return {n: BlockCounts(*c) for n, c in sorted(self._tensors.items())}

    def totals(self) -> BlockCounts:
        with self._lock:
            return BlockCounts(*(sum(c[i] for c in self._tensors.values()) for i in range(3)))

    @property
    def rounded_away_fraction(self) -> float:
        """kept / updated: of the weights the merge changes, those the output dtype loses (0 if none)."""
        t = self.totals()
        return t.kept / t.updated if t.updated else 0.0

    @property
    def changed_fraction(self) -> float:
        """(updated − kept) / entries: the merged weights whose output differs from the base's."""
        t = self.totals()
        return (t.updated - t.kept) / t.entries if t.entries else 0.0

    def warning(self) -> str | None:
        return rounding_warning(self.rounded_away_fraction, self.dtype)


def dtype_name(tag: str) -> str:
    """A safetensors tag as a recipe writes it ("BF16" -> "bfloat16")."""
    return TAG_NAMES.get(tag, tag)
