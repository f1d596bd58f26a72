"""registry.util.digests: each recorded digest against an independent formula."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from registry.util.digests import array_sha256, content_digest, file_sha256, named_digest, weights_digest


def test_file_digest_in_small_chunks_equals_one_read(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(bytes(range(256)) * 1000)
    assert file_sha256(f, chunk=7) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_named_digest_is_order_free_and_unambiguous():
    a = named_digest({"x": "1", "y": "2"})
    assert a == named_digest({"y": "2", "x": "1"})
    assert a == hashlib.sha256(b"x\x001\ny\x002\n").hexdigest()
    assert named_digest({"ab": "c"}) != named_digest({"a": "bc"})


def test_weights_digest_covers_only_weight_files():
    files = {"model.safetensors": "d1", "config.json": "d2"}
    assert weights_digest(files) == named_digest({"model.safetensors": "d1"})
    assert weights_digest({**files, "config.json": "other"}) == weights_digest(files)


def test_array_digest_is_blocking_independent():
    x = np.arange(60, dtype=np.float32).reshape(6, 10)
    whole = hashlib.sha256(x.tobytes()).hexdigest()
    assert array_sha256([x]) == whole
    assert array_sha256([x[:1], x[1:4], x[4:]]) == whole
    assert array_sha256([x.astype(np.float64)]) == whole  # hashed as float32, whatever it arrives as


def test_content_digest_is_canonical_json():
    c = {"b": [1, 2], "a": {"y": 1, "x": 2}}
    expected = hashlib.sha256(b'{"a":{"x":2,"y":1},"b":[1,2]}').hexdigest()
    assert content_digest(c) == expected == content_digest(json.loads(json.dumps(c)))
