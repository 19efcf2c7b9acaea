"""swba.paged_attention without a GPU: its argument checks, the CPU path
against dense attention over each sequence's keys gathered through its page
table (pages in random order, ragged lengths, GQA, Nq > 1), and the split
count the runtime picks for the decode kernels."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

pytestmark = pytest.mark.cpu
torch = pytest.importorskip("torch")

import swba  # noqa: E402
from swba import library, ops  # noqa: E402


def paged_case(lens, hq=4, hkv=2, nq=3, d=16, page_size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = [-(-n // page_size) for n in lens]
    total = sum(counts)
    kc = torch.randn(total, page_size, hkv, d, generator=g, dtype=torch.float32)
    vc = torch.randn(total, page_size, hkv, d, generator=g, dtype=torch.float32)
    order = torch.randperm(total, generator=g).tolist()
    table = torch.full((len(lens), max(counts) + 1), 10**6, dtype=torch.int32)
    for b, c in enumerate(counts):
        for p in range(c):
            table[b, p] = order.pop()
    q = torch.randn(len(lens), hq, nq, d, generator=g, dtype=torch.float32)
    return q, kc, vc, table, torch.tensor(lens, dtype=torch.int32)


def test_cpu_path_is_dense_attention_over_the_gathered_keys():
    bs, ws, page_size = 3, 2, 4
    lens = [0, 2, 7, 13]
    q, kc, vc, table, seq_lens = paged_case(lens, page_size=page_size)
    out, lse = swba.paged_attention(q, kc, vc, table, seq_lens, bs, ws, return_lse=True)
    assert out.shape == q.shape and lse.shape == q.shape[:3]
    scale = 1.0 / math.sqrt(q.shape[-1])
    for b, n in enumerate(lens):
        rows = min(n, q.shape[2])
        if rows:
            pos = torch.arange(n)
            slots = table[b, pos // page_size].long()
            k = kc[slots, pos % page_size].permute(1, 0, 2)[None]
            v = vc[slots, pos % page_size].permute(1, 0, 2)[None]
            want, want_lse = library.reference_forward(q[b:b + 1, :, q.shape[2] - rows:], k, v,
                                                       bs, ws, scale)
            torch.testing.assert_close(out[b:b + 1, :, q.shape[2] - rows:], want,
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(lse[b:b + 1, :, q.shape[2] - rows:], want_lse,
                                       atol=1e-5, rtol=1e-4)
        # Rows before the sequence's start see nothing: out 0, lse -inf.
        assert (out[b, :, :q.shape[2] - rows] == 0).all()
        assert torch.isneginf(lse[b, :, :q.shape[2] - rows]).all()


def test_argument_errors():
    q, kc, vc, table, seq_lens = paged_case([5, 9])
    with pytest.raises(TypeError, match="int32"):
        swba.paged_attention(q, kc, vc, table.long(), seq_lens, 3, 2)
    with pytest.raises(TypeError, match="one float dtype"):
        swba.paged_attention(q.half(), kc, vc, table, seq_lens, 3, 2)
    with pytest.raises(ValueError, match="batch"):
        swba.paged_attention(q, kc, vc, table[:1], seq_lens, 3, 2)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        swba.paged_attention(q[:, :3], kc, vc, table, seq_lens, 3, 2)
    with pytest.raises(ValueError, match="page size or heads"):
        swba.paged_attention(q, kc, vc[:, :2], table, seq_lens, 3, 2)
    with pytest.raises(ValueError, match="4-D"):
        swba.paged_attention(q[0], kc, vc, table, seq_lens, 3, 2)
    with pytest.raises(ValueError, match="window"):
        swba.paged_attention(q, kc, vc, table, seq_lens, 3, 0)
    with pytest.raises(ValueError, match="at least one page of at least one token"):
        swba.paged_attention(q, kc[:, :0], vc[:, :0], table, seq_lens, 3, 2)
    with pytest.raises(ValueError, match="at least one page of at least one token"):
        swba.paged_attention(q, kc[:0], vc[:0], table, seq_lens, 3, 2)


def test_decode_splits_fill_one_wave(monkeypatch):
    monkeypatch.delenv("SWBA_DECODE_SPLITS", raising=False)
    monkeypatch.setattr(ops, "_sm_counts", {0: 132})
    device = torch.device("cuda", 0)
    assert ops.decode_splits(16, 8, 2048, device) == 2       # 256 of 264 slots
    assert ops.decode_splits(1, 8, 2048, device) == 16       # two 64-key tiles a split
    assert ops.decode_splits(1, 1, 100_000, device) == 64    # at most 64
    assert ops.decode_splits(64, 8, 2048, device) == 1       # more rows than slots
    # One workgroup an SM (dense caches).
    assert ops.decode_splits(16, 8, 2048, device, per_sm=1) == 1
    assert ops.decode_splits(4, 8, 2048, device, per_sm=1) == 4
    assert ops.decode_splits(1, 8, 2048, device, per_sm=1) == 16
    monkeypatch.setenv("SWBA_DECODE_SPLITS", "5")
    assert ops.decode_splits(16, 8, 2048, device) == 5
