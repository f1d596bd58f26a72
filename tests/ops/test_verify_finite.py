"""`verify` reports arrays holding NaN or inf (issue 24.8), even when their sha256 is the recorded one."""

from __future__ import annotations

import google_crc32c
import numpy as np
from sqlalchemy import update

from registry.db.models import VectorTensor
from registry.storage import codec
from registry.util.digests import array_sha256

TENSOR = "model.norm.weight"  # (64,): one chunk, "c.0"


def test_verify_reports_a_nan_array_whose_digest_matches(sqlite_reg, models, tmp_path):
    v = sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    chunk = sqlite_reg.store.path / "data" / v.store_key / TENSOR / "c.0"
    values = codec.decode(chunk.read_bytes()[:-4]).copy()
    values[[3, 9]] = [np.nan, np.inf]
    body = codec.encode(values)
    chunk.write_bytes(body + google_crc32c.value(body).to_bytes(4, "little"))
    with sqlite_reg.Session.begin() as s:  # as if recorded so: only the values can tell
        s.execute(
            update(VectorTensor)
            .where(VectorTensor.vector_id == v.id, VectorTensor.name == TENSOR)
            .values(sha256=array_sha256([values]))
        )
    assert sqlite_reg.verify() == [
        f"vector helpful@v1 (base tiny): array {TENSOR}: holds NaN or infinite values"
    ]
