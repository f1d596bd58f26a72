"""Numpy-only safetensors I/O and dtype rounding agree with torch and safetensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from registry.storage.tensor_io import SafetensorsFolder, TensorSpec, from_f32, to_f32, write_sharded


def test_bf16_rounding_matches_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(0, 1, 100_000).astype(np.float32),
            # exact ties between two bf16 values, both parities, and specials
            (np.arange(1, 2000, dtype=np.uint32) << 16 | 0x8000).view(np.float32),
            np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 3.4e38, 1e-40], dtype=np.float32),
        ]
    )
    ours = from_f32(x, "BF16")
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    finite = ~np.isnan(x)
    assert np.array_equal(ours[finite], theirs[finite])
    assert np.isnan(to_f32(ours[~finite], "BF16")).all()
    assert np.array_equal(
        to_f32(theirs, "BF16"),
        torch.from_numpy(theirs.view(np.int16)).view(torch.bfloat16).float().numpy(),
        equal_nan=True,
    )


@pytest.mark.parametrize(
    "tag,torch_dtype", [("BF16", torch.bfloat16), ("F16", torch.float16), ("F32", torch.float32)]
)
def test_written_files_load_with_safetensors(tmp_path, tag, torch_dtype):
    rng = np.random.default_rng(1)
    tensors = {
        "a.weight": rng.normal(size=(37, 11)).astype(np.float32),
        "b.bias": rng.normal(size=(5,)).astype(np.float32),
    }
    specs = [TensorSpec(n, tag, t.shape) for n, t in sorted(tensors.items())]

    def jobs(spec):
        t = tensors[spec.name]
        for a in range(0, t.shape[0], 8):
            yield lambda a=a: from_f32(t[a : a + 8], tag)

    digests = write_sharded(tmp_path, specs, jobs, max_shard_bytes=1 << 30)
    assert list(digests) == ["model.safetensors"]
    got = load_file(tmp_path / "model.safetensors")
    for name, t in tensors.items():
        assert torch.equal(got[name], torch.from_numpy(t).to(torch_dtype))
    back = SafetensorsFolder(tmp_path)
    assert back.names() == sorted(tensors)
    assert np.array_equal(back.read_rows("a.weight", 3, 9), from_f32(tensors["a.weight"][3:9], tag))
