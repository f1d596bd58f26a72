"""Vectors in object storage: a real S3 endpoint (moto's server) on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")


@pytest.fixture(scope="module")
def endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch):
    """A fresh bucket; credentials and endpoint only in the environment, as in production."""
    import boto3

    env = {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"vectors-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_store_matches_local_store_byte_for_byte(s3, models, tmp_path, monkeypatch):
    from registry import Registry

    client, bucket = s3
    results = {}
    for kind, store in (("local", None), ("s3", f"s3://{bucket}/team/vectors.zarr")):
        reg = Registry.init(tmp_path / kind, store=store)
        reg.add_base("tiny", str(models["base"]))
        reg.import_vector("helpful", "tiny", models["plus"])
        reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
        reg.add_recipe(
            {
                "name": "mix",
                "base": "tiny",
                "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": -0.5}],
            }
        )
        m = reg.materialize("mix", tmp_path / f"out-{kind}")
        results[kind] = (
            m.output_digest,
            [v.digest for v in reg.vectors()],
            (tmp_path / f"out-{kind}" / "model.safetensors").read_bytes(),
        )
        assert reg.verify() == []
    assert results["s3"] == results["local"]
    config = (tmp_path / "s3" / "registry.toml").read_text()
    assert f"s3://{bucket}/team/vectors.zarr" in config and "testing" not in config
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.endswith("/c.0.0") for k in keys)


def test_s3_verify_names_flipped_byte_and_gc_cleans(s3, models, tmp_path):
    from registry import Registry
    from registry.errors import IntegrityError

    client, bucket = s3
    reg = Registry.init(tmp_path / "h", store=f"s3://{bucket}/v.zarr")
    reg.add_base("tiny", str(models["base"]))
    v = reg.import_vector("helpful", "tiny", models["plus"])
    key = f"v.zarr/data/{v.store_key}/model.layers.0.mlp.up_proj.weight/c.0.0"
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    problems = reg.verify()
    assert (
        len(problems) == 1
        and "helpful@v1 (base tiny): array model.layers.0.mlp.up_proj.weight" in problems[0]
    )
    reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    with pytest.raises(IntegrityError, match="crc32c mismatch"):
        reg.materialize("r", tmp_path / "out")
    orphan = reg.store.writer()
    import numpy as np

    orphan.write([("x", (2, 2), [lambda: np.ones((2, 2), np.float32)])])
    orphan.close()
    report = reg.gc(grace_seconds=0)
    assert report["removed"] == [orphan.key] and reg.store.group_keys() == [v.store_key]


WRITER = r"""
import sys
from registry import Registry
reg = Registry.open(sys.argv[1])
print(reg.import_vector("shared", "tiny", sys.argv[2]).ref)
"""


def test_two_processes_write_to_s3_at_once(s3, models, tmp_path):
    from registry import Registry

    _, bucket = s3
    reg = Registry.init(tmp_path / "h", store=f"s3://{bucket}/v.zarr")
    reg.add_base("tiny", str(models["base"]))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(reg.home), str(models[m])], env=dict(os.environ),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for m in ("plus", "plus2")
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    assert sorted(o.strip() for o, _ in outs) == ["shared@v1", "shared@v2"]
    assert sorted(v.store_key for v in reg.vectors()) == reg.store.group_keys()
    assert reg.verify() == []
