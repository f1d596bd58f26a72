"""SequentialWriter: the same bytes whether the page cache is bypassed or not."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from registry import direct_io
from registry.direct_io import ALIGN, SequentialWriter


def pieces(seed: int) -> list[bytes]:
    """Odd-sized pieces that cross stage boundaries and end off the alignment."""
    rng = np.random.default_rng(seed)
    sizes = [8, 1, ALIGN - 1, 3 * direct_io.STAGE_BYTES // 2, 5, direct_io.STAGE_BYTES, 12345]
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]


@pytest.fixture(autouse=True)
def small_stages(monkeypatch):
    monkeypatch.setattr(direct_io, "STAGE_BYTES", 4 * ALIGN)  # many stage switches, fast


def write_all(path, data: list[bytes], durable: bool = False) -> bool:
    with SequentialWriter(path, durable) as w:
        for d in data:
            w.write(d)
        return w.direct


@pytest.mark.parametrize("durable", [False, True])
def test_bytes_and_length_exact(tmp_path, durable):
    data = pieces(0)
    write_all(tmp_path / "f", data, durable)
    assert (tmp_path / "f").read_bytes() == b"".join(data)  # the padded tail was cut off


def test_buffered_when_open_refuses_direct(tmp_path, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, *a):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(direct_io.os, "open", no_direct)
    data = pieces(1)
    assert write_all(tmp_path / "f", data) is False
    assert (tmp_path / "f").read_bytes() == b"".join(data)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_buffered_when_a_direct_write_is_refused(tmp_path, monkeypatch):
    real_pwrite, calls = os.pwrite, []

    def refuse_second(fd, buf, offset):
        calls.append(offset)
        if len(calls) == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, buf, offset)

    monkeypatch.setattr(direct_io.os, "pwrite", refuse_second)
    data = pieces(2)
    write_all(tmp_path / "f", data)
    assert (tmp_path / "f").read_bytes() == b"".join(data)


def test_other_errors_propagate_and_close_the_file(tmp_path, monkeypatch):
    def full(fd, buf, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_io.os, "pwrite", full)
    with pytest.raises(OSError, match="No space left"):
        write_all(tmp_path / "f", pieces(3))


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        SequentialWriter(tmp_path / "f")
