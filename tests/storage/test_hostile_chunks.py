"""Chunk files the store's writer did not make (issue 31.12, 31.16): a FIFO, a link, an
oversized file or deeply nested metadata where a chunk or zarr.json should be. `verify` and
`materialize` must answer in one line and never block on the file or read it unbounded.

Each call runs on a daemon thread with a deadline: the old `read_bytes()` blocked for ever
on a FIFO (the test then fails instead of hanging; the FIFO is opened for writing once to
let the stuck reader go).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from registry.errors import IntegrityError

TENSOR = "model.layers.0.mlp.up_proj.weight"  # (128, 64) float32: one chunk of 8192 values
CHUNK_LIMIT = 4 * 128 * 64 + 1024  # the most a chunk of 8192 float32 values may take, any codec


def within(seconds: float, fn, unblock: Path | None = None):
    """fn() on a daemon thread; its result, or a failure if it has not returned in time."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as e:  # handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if unblock is not None:  # a reader blocked on the FIFO gets end-of-file
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still running after {seconds} s: blocked on a hostile store file")
    return out


@pytest.fixture
def stored(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    folder = sqlite_reg.store.path / "data" / sqlite_reg.vector("helpful").store_key / TENSOR
    return sqlite_reg, folder


def _fifo(chunk: Path) -> str:
    chunk.unlink()
    os.mkfifo(chunk)
    return "is not a regular file"


def _link(chunk: Path) -> str:
    # a link to a copy of the very same bytes: only the refusal of links can catch it
    copy = chunk.with_name("elsewhere")
    copy.write_bytes(chunk.read_bytes())
    chunk.unlink()
    chunk.symlink_to(copy)
    return "is a symbolic link"


def _oversized(chunk: Path) -> str:
    chunk.write_bytes(chunk.read_bytes() + b"\0" * (CHUNK_LIMIT + 1))
    return f"more than the {CHUNK_LIMIT} it may hold"


@pytest.mark.parametrize("make", [_fifo, _link, _oversized], ids=["fifo", "symlink", "oversized"])
def test_a_hostile_chunk_file_is_one_line_in_verify_and_materialize(stored, tmp_path, make, cli):
    reg, folder = stored
    chunk = folder / "c.0.0"
    expected = make(chunk)
    fifo = chunk if chunk.is_fifo() else None

    problems = within(20, reg.verify, fifo)
    assert "error" not in problems, problems.get("error")
    assert len(problems["value"]) == 1
    assert f"array {TENSOR}: cannot be read" in problems["value"][0] and expected in problems["value"][0]

    out = within(20, lambda: reg.materialize("r", tmp_path / "out", reuse=False), fifo)
    assert isinstance(out.get("error"), IntegrityError), out
    message = str(out["error"])
    assert "\n" not in message and f"array {TENSOR} chunk 0: store file" in message and expected in message
    assert not (tmp_path / "out").exists()

    code, stdout, err = within(20, lambda: cli("materialize", "r", "--out", tmp_path / "out2"), fifo)["value"]
    errors = [line for line in err.strip().splitlines() if not line.startswith("materialize r@v1: ")]
    assert code != 0 and stdout == "" and len(errors) == 1 and expected in errors[0]  # after progress lines


def test_a_fifo_in_place_of_zarr_json_is_one_line(stored):
    reg, folder = stored
    meta = folder / "zarr.json"
    meta.unlink()
    os.mkfifo(meta)
    problems = within(20, reg.verify, meta)["value"]
    assert (
        len(problems) == 1
        and "metadata: store file" in problems[0]
        and "is not a regular file" in problems[0]
    )


def test_deeply_nested_zarr_json_in_the_store_is_one_line(stored, tmp_path):
    """`[[[[…` within zarr.json's size bound: json.loads raised RecursionError (a traceback)."""
    reg, folder = stored
    (folder / "zarr.json").write_text("[" * 30000 + "]" * 30000)
    problems = reg.verify()
    assert len(problems) == 1 and "nested more than 64 levels deep" in problems[0]
    with pytest.raises(IntegrityError, match=f"array {TENSOR} has malformed metadata") as e:
        reg.materialize("r", tmp_path / "out", reuse=False)
    assert "\n" not in str(e.value)


def test_the_bound_is_the_chunk_size_not_a_guess(stored):
    """An honest chunk at its largest passes; one byte more is refused (independent arithmetic)."""
    from registry.storage.blobs import read_regular

    _reg, folder = stored
    probe = folder.parent / "probe"
    probe.write_bytes(b"x" * CHUNK_LIMIT)
    assert len(read_regular(probe, CHUNK_LIMIT, "probe")) == CHUNK_LIMIT
    probe.write_bytes(b"x" * (CHUNK_LIMIT + 1))
    with pytest.raises(IntegrityError, match="more than the"):
        read_regular(probe, CHUNK_LIMIT, "probe")
    meta = json.loads((folder / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [128, 64]  # the arithmetic's premise
