"""The executable definition of sliding window block attention in numpy
(float64), forward and backward, for tests: docs/DESIGN.md, section 1."""

from __future__ import annotations

import numpy as np


def swba_mask(nq: int, nk: int, block_size: int, window: int,
              key_offset: int = 0) -> np.ndarray:
    """[Nq, Nk] bool: key j visible to query i (positions bottom-right aligned).

    key_offset is the op's: key row j sits at position j + key_offset, query
    row i at i + nk - nq + key_offset, keys at negative positions are unseen.
    """
    kpos = np.arange(nk) + key_offset
    qf = (np.arange(nq) + nk - nq + key_offset) // block_size
    kf = kpos // block_size
    return ((kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < window)
            & (kpos >= 0)[None, :])


def _expand_kv(x: np.ndarray, hq: int) -> np.ndarray:
    return np.repeat(x, hq // x.shape[1], axis=1)


def attention_forward(q, k, v, block_size, window, scale=None, key_offset=0):
    """out [B, Hq, Nq, Dv] and lse [B, Hq, Nq] (natural log)."""
    hq, nq, d = q.shape[1], q.shape[2], q.shape[3]
    nk = k.shape[2]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    k, v = _expand_kv(k, hq), _expand_kv(v, hq)
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    s = np.where(swba_mask(nq, nk, block_size, window, key_offset), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    p = np.exp(s - m)
    l = p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p / l, v), (m + np.log(l))[..., 0]


def paged_attention_forward(q, key_cache, value_cache, page_table, seq_lens,
                            block_size, window, scale=None):
    """swba.paged_attention: out [B, Hq, Nq, Dv] and lse [B, Hq, Nq].

    Sequence b holds seq_lens[b] tokens (negative counts as 0); the key at
    position p is key_cache[page_table[b, p // page_size], p % page_size]
    ([num_pages, page_size, Hkv, D]); query row i sits at position
    seq_lens[b] - Nq + i. Built on attention_forward: each sequence's keys
    from the start of its first query's window are gathered through the page
    table and placed there with key_offset, so pages before that start are
    never looked at. Query rows before the sequence start give out 0 and lse
    -inf; a row whose window holds a key of a page whose entry (or index)
    lies outside the cache (or the table) gives NaN.
    """
    b, hq, nq, _ = q.shape
    num_pages, page_size = key_cache.shape[0], key_cache.shape[1]
    dv = value_cache.shape[3]
    out = np.zeros((b, hq, nq, dv))
    lse = np.full((b, hq, nq), -np.inf)
    for bi in range(b):
        n = max(int(seq_lens[bi]), 0)
        rows = min(nq, n)
        if rows == 0:
            continue
        first = (n - rows) // block_size - window + 1
        start = max(first, 0) * block_size
        pos = np.arange(start, n)
        page = pos // page_size
        in_table = page < page_table.shape[1]
        slot = np.where(in_table, page_table[bi, np.minimum(
            page, page_table.shape[1] - 1)], -1)
        valid = in_table & (slot >= 0) & (slot < num_pages)
        slot = np.where(valid, slot, 0)
        # [Hkv, keys, D] -> [1, Hkv, keys, D]; invalid keys zero, then NaN rows.
        k = np.where(valid[:, None, None], key_cache[slot, pos % page_size], 0.0)
        v = np.where(valid[:, None, None], value_cache[slot, pos % page_size],
                     0.0)
        k = k.transpose(1, 0, 2)[None]
        v = v.transpose(1, 0, 2)[None]
        o, l = attention_forward(q[bi:bi + 1, :, nq - rows:], k, v, block_size,
                                 window, scale, start)
        sees_invalid = (swba_mask(rows, len(pos), block_size, window, start)
                        & ~valid[None, :]).any(axis=1)
        o[:, :, sees_invalid] = np.nan
        l[:, :, sees_invalid] = np.nan
        out[bi, :, nq - rows:] = o[0]
        lse[bi, :, nq - rows:] = l[0]
    return out, lse


def attention_backward(q, k, v, dout, block_size, window, scale=None):
    """dq, dk, dv; with GQA, dk and dv sum over each group's query heads."""
    b, hq, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    ke, ve = _expand_kv(k, hq), _expand_kv(v, hq)
    s = np.einsum("bhid,bhjd->bhij", q, ke) * scale
    s = np.where(swba_mask(nq, nk, block_size, window), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    dv = np.einsum("bhij,bhid->bhjd", p, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, ve)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, ke) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    group = hq // hkv
    dk = dk.reshape(b, hkv, group, nk, d).sum(axis=2)
    dv = dv.reshape(b, hkv, group, nk, dv.shape[-1]).sum(axis=2)
    return dq, dk, dv


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """x rounded to f32, f16 or bf16 (nearest even), as float64."""
    if dtype == "f32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bf16":
        bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    raise ValueError(dtype)


def raw_bytes(x: np.ndarray, dtype: str) -> bytes:
    """Little-endian bytes of x (exactly representable in dtype)."""
    if dtype == "f32":
        return x.astype("<f4").tobytes()
    if dtype == "f16":
        return x.astype("<f2").tobytes()
    if dtype == "bf16":
        return (x.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    raise ValueError(dtype)
