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
