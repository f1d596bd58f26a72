"""Stored metadata and chunk headers read as untrusted (issue 24.12): one line, no large allocation."""

from __future__ import annotations

import json
import struct
import tracemalloc

import google_crc32c
import numpy as np
import pytest
from numcodecs import blosc

from registry.errors import IntegrityError
from registry.storage import codec

TENSOR = "model.layers.0.mlp.up_proj.weight"  # (128, 64): one chunk


def array_dir(reg, tensor: str = TENSOR):
    return reg.store.path / "data" / reg.vector("helpful").store_key / tensor


MALFORMED = {
    "a JSON list": lambda meta: [],
    "no chunk_grid": lambda meta: {k: v for k, v in meta.items() if k != "chunk_grid"},
    "a codec without a name": lambda meta: {**meta, "codecs": [{"configuration": {}}, *meta["codecs"][1:]]},
    "a chunk grid of another rank": lambda meta: {
        **meta,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [128]}},
    },
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_zarr_json_is_one_line_everywhere(case, sqlite_reg, models, tmp_path, cli):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    meta_path = array_dir(sqlite_reg) / "zarr.json"
    meta_path.write_text(json.dumps(MALFORMED[case](json.loads(meta_path.read_text()))))
    with pytest.raises(
        IntegrityError, match=f"vector helpful@v1: array {TENSOR} has malformed metadata"
    ) as e:
        sqlite_reg.materialize("r", tmp_path / "out")
    assert "\n" not in str(e.value)
    problems = sqlite_reg.verify()
    assert len(problems) == 1 and f"array {TENSOR}: cannot be read (" in problems[0]
    code, out, err = cli("materialize", "r", "--out", tmp_path / "out2")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and "malformed metadata" in err


def forged_chunk(claimed: int) -> bytes:
    """A crc-valid split16 chunk whose header claims `claimed` values (a tiny, lying body)."""
    hi = blosc.compress(np.zeros(16, "<u2"), b"lz4", 1, blosc.BITSHUFFLE, 0)
    hi = hi[:4] + struct.pack("<I", 2 * claimed) + hi[8:]  # the frame says so too
    body = codec._HEADER.pack(codec.MAGIC, codec.VERSION, codec.LOW_NONE, claimed, len(hi), 0) + hi
    return body + google_crc32c.value(body).to_bytes(4, "little")


def test_a_chunk_claiming_2_29_values_is_refused_before_allocating(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    (array_dir(sqlite_reg) / "c.0.0").write_bytes(forged_chunk(1 << 29))
    data = sqlite_reg.store.open(sqlite_reg.vector("helpful").store_key, label="vector helpful@v1")
    for read in (lambda: data.read_rows(TENSOR, 0, 128), lambda: data.read_parts(TENSOR, 0, 128, slot=7)):
        tracemalloc.start()
        try:
            with pytest.raises(
                IntegrityError,
                match=r"chunk 0: split16 chunk claims 536870912 values, its array's chunks hold 8192",
            ):
                read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, peak  # not the 1 GiB the header asks for
    assert any("claims 536870912 values" in p for p in sqlite_reg.verify())
