"""Block-wise TIES and DARE against whole-tensor numpy references; the split16 store codec."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ml_dtypes import bfloat16

from registry.merging.methods import InMemory
from registry.merging.methods.dare import Dare, keep_mask, mask_key, uniform_words
from registry.merging.methods.ties import Ties, thresholds, trim
from registry.storage import codec


def _deltas(seed: int, shape=(37, 29), n=3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = rng.standard_normal(shape).astype(np.float32)
        # bf16-like values: many exact ties in magnitude, some zeros and negative zeros
        d = (d.view(np.uint32) & 0xFFFF0000).view(np.float32)
        d[rng.random(shape) < 0.05] = 0.0
        d[rng.random(shape) < 0.02] = -0.0
        out.append(d)
    return out


def ties_reference(base, deltas, weights, density, lam):
    """TIES in plain numpy on whole tensors: threshold by full sort, then trim/elect/mean."""
    taus = []
    for d, w in zip(deltas, weights, strict=True):
        mag = np.abs(d).ravel()
        k = math.ceil(density * mag.size)
        if k >= mag.size:
            kept = d
        elif k == 0:
            kept = np.zeros_like(d)
        else:
            t = np.sort(mag)[mag.size - k]  # the k-th largest magnitude
            kept = np.where(np.abs(d) >= t, d, np.float32(0))
        taus.append((kept * np.float32(w)).astype(np.float32))
    total = taus[0].copy()
    for tau in taus[1:]:
        total += tau
    elected = np.sign(total)
    num, count = np.zeros_like(total), np.zeros_like(total)
    for tau in taus:
        agree = (np.sign(tau) == elected) & (tau != 0)
        num += np.where(agree, tau, np.float32(0))
        count += agree
    return base + np.float32(lam) * (num / np.maximum(count, np.float32(1)))


def dare_reference(base, deltas, weights, p, seed, name):
    """DARE on whole tensors with the documented mask: Philox word i ≥ round(p·2³²)."""
    acc = base.copy()
    for j, (d, w) in enumerate(zip(deltas, weights, strict=True)):
        words = (
            np.random.Philox(key=mask_key(seed, name, j)).random_raw((d.size + 1) // 2).view("<u4")[: d.size]
        )
        keep = (words >= np.uint32(round(p * 2**32))).reshape(d.shape)
        acc += np.float32(w) * np.where(keep, d / np.float32(1 - p), np.float32(0))
    return acc


def blockwise(method, name, base, deltas, weights, rows_per_block):
    """Merge through prepare + merge_block, `rows_per_block` rows at a time."""
    rows = base.shape[0]
    row_elems = base.size // rows
    state = method.prepare(name, InMemory(deltas, block=rows_per_block * row_elems), rows)
    parts = []
    for a in range(0, rows, rows_per_block):
        b = min(rows, a + rows_per_block)
        parts.append(
            method.merge_block(name, base[a:b], [d[a:b] for d in deltas], weights, state, a * row_elems)
        )
    return np.concatenate(parts)


@pytest.mark.parametrize("density", [0.0, 0.01, 0.2, 0.5, 0.97, 1.0])
def test_ties_blockwise_equals_whole_tensor_reference(density):
    deltas = _deltas(1)
    base = np.random.default_rng(2).standard_normal(deltas[0].shape).astype(np.float32)
    weights = [1.0, -0.5, 0.75]
    want = ties_reference(base, deltas, weights, density, 0.8)
    ties = Ties(params={"density": density, "lambda": 0.8})
    assert np.array_equal(ties.merge("w", base, deltas, weights), want)
    for rows in (1, 3, 8, 37):
        got = blockwise(ties, "w", base, deltas, weights, rows)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), rows


def test_ties_threshold_is_the_exact_kth_largest():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(100_003) * np.exp(rng.standard_normal(100_003) * 4)).astype(np.float32)
    for density in (1e-5, 0.001, 0.2, 0.5, 0.9999):
        k = math.ceil(density * x.size)
        (t,) = thresholds(InMemory([x], block=4096), density)
        want = np.sort(np.abs(x))[x.size - k]
        assert np.float32(np.uint32(t).view(np.float32)) == want
        assert np.count_nonzero(trim(x, density)) == np.count_nonzero(np.abs(x) >= want) >= k


def test_ties_ties_at_threshold_are_all_kept():
    x = np.array([3, -3, 3, 1, 0, 2, -3], np.float32)
    # top 2 by magnitude: the threshold is 3, and every |x| = 3 stays
    assert trim(x, 2 / 7).tolist() == [3, -3, 3, 0, 0, 0, -3]
    assert trim(x, 0.0).tolist() == [0.0] * 7
    assert trim(x, 1.0).tolist() == x.tolist()


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_dare_blockwise_equals_whole_tensor_reference(p):
    deltas = _deltas(3, shape=(41, 13), n=2)
    base = np.random.default_rng(4).standard_normal(deltas[0].shape).astype(np.float32)
    weights = [1.0, 0.5]
    want = (
        dare_reference(base, deltas, weights, p, 11, "layer.w") if p else base + deltas[0] + 0.5 * deltas[1]
    )
    dare = Dare(params={"drop_rate": p, "seed": 11})
    assert np.array_equal(dare.merge("layer.w", base, deltas, weights), want)
    for rows in (1, 2, 5, 41):
        assert np.array_equal(blockwise(dare, "layer.w", base, deltas, weights, rows), want), rows


def test_dare_mask_is_counter_based():
    key = 1234567
    whole = uniform_words(key, 0, 1000)
    for start in (0, 1, 7, 8, 9, 333, 999):
        for count in {0, 1, 2, 9, 1000 - start} & set(range(1001 - start)):
            assert np.array_equal(uniform_words(key, start, count), whole[start : start + count])
    m = keep_mask(0, "t", 0, 0.75, 0, 200_000)
    assert 0.245 < m.mean() < 0.255
    assert not np.array_equal(m, keep_mask(0, "t", 1, 0.75, 0, 200_000))  # per term
    assert not np.array_equal(m, keep_mask(0, "u", 0, 0.75, 0, 200_000))  # per tensor
    assert not np.array_equal(m, keep_mask(1, "t", 0, 0.75, 0, 200_000))  # per seed


# -- split16 ------------------------------------------------------------------------------


def _special() -> np.ndarray:
    bits = np.array(
        [
            0x00000000,  # +0
            0x80000000,  # −0
            0x00000001,  # smallest subnormal
            0x807FFFFF,  # largest negative subnormal
            0x00010000,  # subnormal with only high bits
            0x7F800000,  # +inf
            0xFF800000,  # −inf
            0x7FC00000,  # quiet NaN
            0x7FC01234,  # NaN with a payload in the low half
            0xFFFFFFFF,  # negative NaN, every payload bit
            0x7F7FFFFF,  # largest finite
            0x3F800001,  # 1 + 1 ulp (low half non-zero)
        ],
        np.uint32,
    )
    return bits.view(np.float32)


@pytest.mark.parametrize(
    "values",
    [
        _special(),
        np.zeros(1000, np.float32),
        np.full(3, -0.0, np.float32),
        # bf16-like deltas: the low halves are zero
        (np.random.default_rng(0).standard_normal(5000).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(
            np.float32
        ),
        # a few non-zero low halves: sparse positions
        np.random.default_rng(1).standard_normal(70_000).astype(np.float32) * (np.arange(70_000) % 97 == 0),
        # full float32 noise: dense low halves
        np.random.default_rng(2).standard_normal((64, 33)).astype(np.float32),
        np.random.default_rng(3).integers(0, 2**32, 4099, dtype=np.uint32).view(np.float32),  # any bits
        np.zeros(0, np.float32),
    ],
)
def test_split16_round_trips_bit_exactly(values):
    data = codec.encode(values)
    got = codec.decode(data)
    assert got.dtype == np.float32 and got.shape == (values.size,)
    assert np.array_equal(got.view(np.uint32), values.reshape(-1).view(np.uint32))
    out = np.empty(values.size, np.float32)
    assert codec.decode(data, out=out) is out and np.array_equal(out.view(np.uint32), got.view(np.uint32))


def test_split16_size_on_bf16_deltas():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(1 << 18).astype(np.float32) * 0.02

    def bf16(x):
        from ml_dtypes import bfloat16

        return x.astype(bfloat16).astype(np.float32)

    b = bf16(base)
    phi = bf16(b + rng.standard_normal(b.size).astype(np.float32) * 2e-4) - bf16(
        b + rng.standard_normal(b.size).astype(np.float32) * 2e-4
    )
    assert len(codec.encode(phi)) / phi.size < 1.6


def _master_weight_phi(n: int) -> np.ndarray:
    """φ as add-preference makes it: two float32 trainings from one bf16 base, subtracted."""
    from ml_dtypes import bfloat16

    rng = np.random.default_rng(6)
    base = (rng.standard_normal(n).astype(np.float32) * 0.02).astype(bfloat16).astype(np.float32)
    step = np.float32(1e-6)
    plus = base + step * np.round(rng.standard_normal(n) * 20).astype(np.float32)
    minus = base + step * np.round(rng.standard_normal(n) * 20).astype(np.float32)
    return plus - minus


def test_split16_dense_low_halves_use_zstd_and_old_lz4_chunks_still_decode():
    from numcodecs import blosc

    phi = _master_weight_phi(1 << 16)
    halves = phi.view("<u2")
    hi, lo = np.ascontiguousarray(halves[1::2]), np.ascontiguousarray(halves[0::2])
    assert np.count_nonzero(lo) > lo.size / 2  # dense: every element carries low bits
    data = codec.encode(phi)
    hi_c = blosc.compress(hi, codec.CNAME, codec.CLEVEL, blosc.BITSHUFFLE, 0)
    lz4_low = blosc.compress(lo, b"lz4", 1, blosc.BITSHUFFLE, 0)  # the first dense format
    # the zstd low plane is what makes the chunk smaller than the first format's
    assert len(data) < codec._HEADER.size + len(hi_c) + len(lz4_low) - 0.1 * lo.size
    old = codec._HEADER.pack(codec.MAGIC, codec.VERSION, codec.LOW_DENSE, phi.size, len(hi_c), len(lz4_low))
    for chunk in (data, old + hi_c + lz4_low):
        assert np.array_equal(codec.decode(chunk).view(np.uint32), phi.view(np.uint32))


def test_split16_pads_and_decodes_a_prefix():
    x = np.random.default_rng(4).standard_normal(1000).astype(np.float32)
    x[::7] = (x[::7].view(np.uint32) | 0x1234).view(np.float32)  # some low halves
    for values in (x, np.random.default_rng(5).standard_normal(1000).astype(np.float32)):  # sparse, dense
        data = codec.encode(values, size=1536)
        full = codec.decode(data)
        assert full.size == 1536 and not full[1000:].view(np.uint32).any()
        assert np.array_equal(full[:1000].view(np.uint32), values.view(np.uint32))
        for count in (0, 1, 999, 1000):
            assert np.array_equal(
                codec.decode(data, count=count).view(np.uint32), values[:count].view(np.uint32)
            )
    with pytest.raises(ValueError):
        codec.encode(x, size=10)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:10],
        lambda d: b"XXXX" + d[4:],
        lambda d: d[:-1],
        lambda d: d[:30] + bytes(len(d) - 30),
    ],
)
def test_split16_refuses_malformed_chunks(mutate):
    data = codec.encode(np.random.default_rng(0).standard_normal(4096).astype(np.float32))
    with pytest.raises(Exception):  # noqa: B017 - any decoding error; the store wraps it
        codec.decode(mutate(data))


def test_split16_refuses_a_dense_low_plane_of_the_wrong_size():
    """blosc fills only what a frame holds: a short low plane must not leave memory unset."""
    from numcodecs import blosc

    phi = _master_weight_phi(4096)
    halves = phi.view("<u2")
    hi_c = blosc.compress(np.ascontiguousarray(halves[1::2]), codec.CNAME, codec.CLEVEL, blosc.BITSHUFFLE, 0)
    for count in (4095, 100):  # fewer low halves than elements
        low = blosc.compress(np.ascontiguousarray(halves[0::2][:count]), b"zstd", 1, blosc.SHUFFLE, 0)
        head = codec._HEADER.pack(codec.MAGIC, codec.VERSION, codec.LOW_DENSE, phi.size, len(hi_c), len(low))
        with pytest.raises(codec.CodecError, match="low halves have the wrong size"):
            codec.decode(head + hi_c + low)


@pytest.mark.parametrize("positions", [[9, 3], [3, 3], [1, 7, 5]])
def test_split16_refuses_sparse_positions_out_of_order(positions):
    """A decode and a linear merge (binary search) must agree on which elements get low halves."""
    from numcodecs import blosc

    hi_c = blosc.compress(np.ones(16, "<u2"), codec.CNAME, codec.CLEVEL, blosc.BITSHUFFLE, 0)
    idx = np.array(positions, "<u4")
    low = idx.tobytes() + np.ones(idx.size, "<u2").tobytes()
    head = codec._HEADER.pack(codec.MAGIC, codec.VERSION, codec.LOW_SPARSE, 16, len(hi_c), len(low))
    with pytest.raises(codec.CodecError, match="not strictly ascending"):
        codec.decode(head + hi_c + low)
    idx.sort()
    if len(set(positions)) == len(positions):  # the same positions in order decode
        good = np.unique(idx).tobytes() + np.ones(idx.size, "<u2").tobytes()
        head = codec._HEADER.pack(codec.MAGIC, codec.VERSION, codec.LOW_SPARSE, 16, len(hi_c), len(good))
        got = codec.decode(head + hi_c + good).view(np.uint32)
        assert sorted(np.flatnonzero(got & 0xFFFF)) == sorted(positions)


# -- the store: split16 arrays, old blosc arrays, zarr ----------------------------------------


def _write(store, name, x, rows_per_block):
    writer = store.writer()
    rows = x.shape[0]
    writer.write(
        [(name, x.shape, [lambda a=a: x[a : a + rows_per_block] for a in range(0, rows, rows_per_block)])]
    )
    writer.close()
    return writer


def test_store_reports_out_of_order_low_halves_as_a_bad_chunk(tmp_path):
    """Checked when the chunk is read (a crc-valid chunk, as a hostile bundle could carry it):
    the linear merge then gets the same one-line IntegrityError as every other bad chunk."""
    import google_crc32c

    from registry.errors import IntegrityError
    from registry.storage.vector_store import VectorStore

    vs = VectorStore(tmp_path / "v.zarr")
    vs.create("rid")
    x = np.zeros((8, 16), np.float32)
    x.reshape(-1)[[3, 40, 77]] = np.array([1, 2, 3], np.uint32).view(np.float32)  # three low halves
    writer = _write(vs, "t", x, 8)
    chunk = next((tmp_path / "v.zarr" / "data" / writer.key / "t").glob("c*"))
    body = bytearray(chunk.read_bytes()[:-4])
    _, _, mode, _, hi_len, lo_len = codec._HEADER.unpack_from(body)
    assert mode == codec.LOW_SPARSE and lo_len == 18
    at = codec._HEADER.size + hi_len
    body[at : at + 8] = body[at + 4 : at + 8] + body[at : at + 4]  # swap the first two positions
    chunk.write_bytes(bytes(body) + google_crc32c.value(bytes(body)).to_bytes(4, "little"))
    v = vs.open(writer.key)
    for read in (lambda: v.read_parts("t", 0, 8), lambda: v.read_rows("t", 0, 8)):
        with pytest.raises(
            IntegrityError, match=r"array t cannot be decoded \(chunk 0: .*not strictly ascending"
        ):
            read()


def test_store_round_trips_special_values_and_digests_float32_bytes(tmp_path, monkeypatch):
    import hashlib

    import zarr

    from registry.storage import vector_store as store_mod
    from registry.storage.vector_store import VectorStore

    monkeypatch.setattr(store_mod, "chunk_rows", lambda shape, block_bytes=0: 5)  # several chunks
    vs = VectorStore(tmp_path / "v.zarr")
    vs.create("rid")
    x = np.resize(_special(), (13, 12)).copy()
    x[7] = np.random.default_rng(0).standard_normal(12).astype(np.float32)
    writer = _write(vs, "t", x, 5)
    assert writer.digests["t"] == hashlib.sha256(x.tobytes()).hexdigest()
    v = vs.open(writer.key)
    assert np.array_equal(v.read_rows("t", 0, 13).view(np.uint32), x.view(np.uint32))
    assert np.array_equal(v.read_rows("t", 4, 11).view(np.uint32), x[4:11].view(np.uint32))
    assert v.sha256("t") == writer.digests["t"]
    # zarr itself reads the array through the registered codec
    arr = zarr.open_array(store=str(tmp_path / "v.zarr" / "data" / writer.key / "t"), mode="r")
    assert np.array_equal(np.asarray(arr[:]).view(np.uint32), x.view(np.uint32))


def test_store_still_reads_arrays_of_the_first_format(tmp_path):
    """Arrays written by earlier versions (bytes → blosc lz4hc → crc32c, through zarr)."""
    import zarr
    from zarr.codecs import BloscCodec, Crc32cCodec

    from registry.storage.vector_store import VectorStore

    vs = VectorStore(tmp_path / "v.zarr")
    vs.create("rid")
    x = np.random.default_rng(0).standard_normal((300, 7)).astype(np.float32)
    x[0, :3] = [-0.0, np.float32(1e-45), np.float32(-1e-40)]
    group = zarr.open_group(store=str(tmp_path / "v.zarr"), mode="a").require_group("data/old")
    arr = group.create_array(
        name="w",
        shape=x.shape,
        chunks=(128, 7),
        dtype="float32",
        compressors=[BloscCodec(cname="lz4hc", clevel=1, shuffle="shuffle", typesize=4), Crc32cCodec()],
        fill_value=0.0,
        attributes={"scalar": False},
    )
    arr[:] = x
    v = vs.open("old")
    assert np.array_equal(v.read_rows("w", 0, 300).view(np.uint32), x.view(np.uint32))
    assert np.array_equal(v.read_rows("w", 100, 260), x[100:260])


def test_store_refuses_unknown_or_corrupt_encodings(tmp_path):
    import json

    import google_crc32c

    from registry.errors import IntegrityError
    from registry.storage.vector_store import VectorStore

    vs = VectorStore(tmp_path / "v.zarr")
    vs.create("rid")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    writer = _write(vs, "t", x, 64)
    root = tmp_path / "v.zarr" / "data" / writer.key / "t"
    chunk = root / "c.0.0"
    # a chunk whose crc32c matches but whose split16 body is garbage
    body = b"RS16" + bytes(40)
    chunk.write_bytes(body + google_crc32c.value(body).to_bytes(4, "little"))
    with pytest.raises(IntegrityError, match="cannot be decoded"):
        vs.open(writer.key).read_rows("t", 0, 64)
    meta = json.loads((root / "zarr.json").read_text())
    meta["codecs"][1] = {"name": "zstd"}
    (root / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="unexpected encoding"):
        vs.open(writer.key).read_rows("t", 0, 64)


@pytest.mark.parametrize("method", ["ties", "dare"])
def test_sliced_blocks_equal_reference_on_larger_tensors(method):
    """Blocks larger than the methods' internal slices (65536 elements)."""
    deltas = _deltas(7, shape=(300, 700), n=2)
    base = np.random.default_rng(8).standard_normal(deltas[0].shape).astype(np.float32)
    weights = [0.7, 1.0]
    if method == "ties":
        m, want = Ties(params={"density": 0.3}), ties_reference(base, deltas, weights, 0.3, 1.0)
    else:
        m, want = (
            Dare(params={"drop_rate": 0.6, "seed": 2}),
            dare_reference(base, deltas, weights, 0.6, 2, "w"),
        )
    for rows in (300, 97, 1):
        assert np.array_equal(
            blockwise(m, "w", base, deltas, weights, rows).view(np.uint32), want.view(np.uint32)
        )


def bf16_reference(x: np.ndarray) -> np.ndarray:
    """ml_dtypes' rounding (as torch's): what materialize wrote before storage.bf16."""
    return np.ascontiguousarray(x, dtype=np.float32).astype(bfloat16).view(np.uint16)


def test_fused_linear_block_equals_linear_merge(tmp_path, monkeypatch):
    """materialize's linear path (bf16 high halves added straight, sparse low halves patched,
    dense ones or-ed in per sub-block), bit for bit the float32 merge at any sub-block size."""
    from registry.merging import engine
    from registry.merging.methods.linear import Linear
    from registry.storage import vector_store as store_mod
    from registry.storage.tensor_io import TensorSpec
    from registry.storage.vector_store import VectorStore

    class Base:
        def __init__(self, x, tag="F32"):
            self.x, self.tag = x, tag

        def spec(self, name):
            return TensorSpec(name, self.tag, self.x.shape)

        def read_rows(self, name, a, b):
            return self.x[a:b].copy()

    monkeypatch.setattr(store_mod, "chunk_rows", lambda shape, block_bytes=0: 40)
    vs = VectorStore(tmp_path / "v.zarr")
    vs.create("rid")
    rng = np.random.default_rng(9)
    shape = (100, 64)
    bf16_like = (rng.standard_normal(shape).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
    sparse = bf16_like.copy()
    sparse.reshape(-1)[::37] = rng.standard_normal(sparse.size // 37 + 1).astype(np.float32)  # low halves
    sparse.reshape(-1)[:12] = _special()[:12]
    dense = rng.standard_normal(shape).astype(np.float32)
    stored = [vs.open(_write(vs, "t", x, 40).key) for x in (bf16_like, sparse, dense)]
    base = rng.standard_normal(shape).astype(np.float32)
    # a bf16 base as its file holds it, with a NaN, ±inf and values that overflow bf16 once φ is added
    base16 = base.astype(bfloat16).view(np.uint16)
    base16[3, :4] = np.array([np.nan, np.inf, -np.inf, 3.38e38], np.float32).astype(bfloat16).view(np.uint16)
    for sub in (64, 3 * 64 + 5, 1 << 18):
        monkeypatch.setattr(engine, "SUB_ELEMS", sub)
        for weights in ([1.0, 1.0, 1.0], [0.5, -1.25, 0.75], [1.0, 0.3, -2.0]):
            for vecs in ([0, 1, 2], [2], [2, 0]):  # all three kinds; dense alone; dense first
                w = [weights[i] for i in vecs]
                for a in range(0, 100, 40):
                    b = min(100, a + 40)
                    deltas = [stored[i].read_rows("t", a, b) for i in vecs]
                    want = Linear().merge_block("t", base[a:b].copy(), deltas, w)
                    vs_ = [stored[i] for i in vecs]
                    got, finite = engine.linear_block(Base(base), vs_, w, "t", a, b, "F32")
                    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
                    assert finite == bool(np.isfinite(want).all())
                    got16, finite = engine.linear_block(Base(base), vs_, w, "t", a, b, "BF16")
                    assert np.array_equal(got16, bf16_reference(want))  # ml_dtypes' rounding
                    assert finite == bool(np.isfinite(bf16_reference(want).view(bfloat16)).all())
                    wide = base16[a:b].view(bfloat16).astype(np.float32)
                    want = Linear().merge_block("t", wide, deltas, w)
                    got16, finite = engine.linear_block(Base(base16, "BF16"), vs_, w, "t", a, b, "BF16")
                    assert np.array_equal(got16, bf16_reference(want))
                    assert finite == bool(np.isfinite(bf16_reference(want).view(bfloat16)).all())
