#!/usr/bin/env python3
"""Regenerates the JAX part of the frontend corpus: JAX functions lowered to
StableHLO (`jax.jit(f).lower(...).as_text()`), then to linalg-on-tensors by
IREE's StableHLO input pipeline:

    iree-opt --pass-pipeline='builtin.module(iree-stablehlo-input-transformation-pipeline)'

Needs `jax` besides generate.py's virtual environment:
    venv/bin/pip install jax && venv/bin/python test/Frontend/generate_jax.py

The tests are written like generate.py's (route `jax`).
"""

import subprocess

import jax
import jax.numpy as jnp
import torch

from generate import IREE_OPT, generate_cases

PIPELINE = "builtin.module(iree-stablehlo-input-transformation-pipeline)"


def frames_visible(nq, nk, bs, ws, bidirectional=False):
    fq = (jnp.arange(nq) + (nk - nq)) // bs
    fk = jnp.arange(nk) // bs
    d = fq[:, None] - fk[None, :]
    if bidirectional:
        return (d > -ws) & (d < ws)
    return (d >= 0) & (d < ws)


def einsum_attention(bs, ws, scale, bidirectional=False, dtype=None):
    """softmax(einsum(q, k) * scale where visible, -inf) v, [B, H, N, D]."""
    def f(q, k, v):
        vis = frames_visible(q.shape[-2], k.shape[-2], bs, ws, bidirectional)
        s = jnp.einsum("bhqd,bhkd->bhqk", q, k)
        if dtype is not None:
            s = s.astype(dtype)
        s = jnp.where(vis, s * scale, -jnp.inf)
        p = jax.nn.softmax(s, axis=-1).astype(v.dtype)
        return jnp.einsum("bhqk,bhkd->bhqd", p, v)
    return f


def dot_product_attention(bs, ws):
    """jax.nn.dot_product_attention with a boolean mask, [B, N, H, D]."""
    def f(q, k, v):
        vis = frames_visible(q.shape[1], k.shape[1], bs, ws)
        return jax.nn.dot_product_attention(q, k, v, mask=vis[None, None])
    return f


def dot_product_attention_local(ws):
    """jax.nn.dot_product_attention's own token window: is_causal with
    local_window_size=(ws - 1, 0), [B, N, H, D]."""
    def f(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                            local_window_size=(ws - 1, 0))
    return f


def dot_product_attention_decode(ws):
    """jax.nn.dot_product_attention of the last query against a cache: a
    boolean token window of ws keys ending at the query's position."""
    def f(q, k, v):
        nq, nk = q.shape[1], k.shape[1]
        pos_q = jnp.arange(nq)[:, None] + (nk - nq)
        pos_k = jnp.arange(nk)[None, :]
        vis = (pos_k <= pos_q) & (pos_k > pos_q - ws)
        return jax.nn.dot_product_attention(q, k, v, mask=vis[None, None])
    return f


def dot_product_attention_per_head(bs, ws):
    """jax.nn.dot_product_attention with a [1, H, N, N] boolean mask whose
    last query head also sees the frame after its own."""
    def f(q, k, v):
        nq, nk, heads = q.shape[1], k.shape[1], q.shape[2]
        vis = frames_visible(nq, nk, bs, ws)
        fq = (jnp.arange(nq) + (nk - nq)) // bs
        fk = jnp.arange(nk) // bs
        ahead = (fq[:, None] - fk[None, :]) == -1
        last = jnp.arange(heads)[:, None, None] == heads - 1
        mask = vis[None] | (last & ahead[None])
        return jax.nn.dot_product_attention(q, k, v, mask=mask[None])
    return f


def grouped_einsum_attention(ws):
    """Grouped-query attention written with einsums over [B, T, Hkv, G, D]
    (as Gemma's JAX model writes it), the logits reshaped to [B, T, H, S],
    a causal token window of ws keys as a [B, T, S] mask, jnp.where with
    -0.7 times the largest f32, and the probabilities reshaped back."""
    def f(q, k, v):
        b, t, heads, d = q.shape
        s, kv = k.shape[1], k.shape[2]
        g = heads // kv
        qg = q.reshape((b, t, kv, g, d)) * d ** -0.5
        logits = jnp.einsum("BTKGH,BSKH->BTKGS", qg, k).reshape((b, t, heads, s))
        pos_q = jnp.arange(t)[:, None] + (s - t)
        pos_k = jnp.arange(s)[None, :]
        mask = (pos_k <= pos_q) & (pos_k > pos_q - ws)
        mask = jnp.broadcast_to(mask[None], (b, t, s))
        logits = jnp.where(mask[:, :, None, :], logits, -2.3819763e38)
        probs = jax.nn.softmax(logits, axis=-1).reshape((b, t, kv, g, s))
        out = jnp.einsum("BTKGS,BSKH->BTKGH", probs, v)
        return out.reshape((b, t, heads, d))
    return f


F32, BF16 = (jnp.float32, torch.float32), (jnp.bfloat16, torch.bfloat16)


def inputs(nq=32, nk=None, h=2, d=16, dtype=F32, layout="bhnd", hkv=None, b=1):
    """q, k and v as (shape, dtype): h query heads, hkv (default h) kv heads."""
    nk = nq if nk is None else nk
    hkv = h if hkv is None else hkv
    if layout == "bnhd":
        return [((b, nq, h, d), dtype), ((b, nk, hkv, d), dtype), ((b, nk, hkv, d), dtype)]
    return [((b, h, nq, d), dtype), ((b, hkv, nk, d), dtype), ((b, hkv, nk, d), dtype)]


CASES = {
    "jax-einsum-where": (
        "JAX: einsum scores, where(visible, s * scale, -inf), jax.nn.softmax, einsum",
        einsum_attention(8, 2, 0.25), inputs(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "jax-einsum-where-bidirectional": (
        "JAX: the same with a window that also looks ahead",
        einsum_attention(8, 2, 0.25, bidirectional=True), inputs(),
        dict(remark="not a sliding window block mask for any block size")),
    "jax-token-window": (
        "JAX: a token-level causal window of 5 keys (block_size 1)",
        einsum_attention(1, 5, 0.25), inputs(),
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "jax-kv-cache": (
        "JAX: 12 queries against 32 cached keys, positions bottom-right aligned",
        einsum_attention(8, 2, 0.25), inputs(nq=12, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x12x16xf32", k="1x2x32x16xf32")),
    "jax-bf16-f32-softmax": (
        "JAX: bf16 q/k/v, scores and softmax in f32",
        einsum_attention(8, 2, 0.25, dtype=jnp.float32), inputs(dtype=BF16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xbf16", k="1x2x32x16xbf16")),
    "jax-dot-product-attention": (
        "JAX: jax.nn.dot_product_attention with a boolean mask (frames of 8, "
        "window 2): its P.V product computed transposed (V^T P^T), its scores "
        "reshaped through a flat vector, masked with -0.7 times the largest f32",
        dot_product_attention(8, 2), inputs(layout="bnhd"),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "jax-dot-product-attention-local-window": (
        "JAX: jax.nn.dot_product_attention's is_causal=True with "
        "local_window_size=(4, 0): a token window of 5 keys",
        dot_product_attention_local(5), inputs(layout="bnhd"),
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "jax-dot-product-attention-gqa": (
        "JAX: jax.nn.dot_product_attention with 4 query heads and 2 kv heads, a "
        "boolean mask (frames of 8, window 2); it folds each kv head's query "
        "heads into the rows of its products (64 rows: 32 queries of 2 heads, "
        "query-major in Q.K^T, head-major in P.V), raised with the query heads "
        "of kv head h as heads 2h and 2h + 1",
        dot_product_attention(8, 2), inputs(h=4, hkv=2, layout="bnhd"),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x2x32x16xf32")),
    "jax-dot-product-attention-gqa-local-window": (
        "JAX: jax.nn.dot_product_attention's own token window (is_causal=True, "
        "local_window_size=(4, 0)) with 8 query heads and 2 kv heads (4 query "
        "heads folded into the rows of each kv head's products), 2 batches",
        dot_product_attention_local(5), inputs(nq=24, h=8, hkv=2, b=2, layout="bnhd"),
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x16x24x16xf32", k="1x4x24x16xf32")),
    "jax-grouped-einsum-sliding-window": (
        "JAX: grouped-query attention written with einsums over [B, T, Hkv, G, "
        "D] (Gemma's layout), 4 query heads a kv head, a causal token window "
        "of 6 keys as a [B, T, S] mask",
        grouped_einsum_attention(6), inputs(h=8, hkv=2, layout="bnhd"),
        dict(bs=1, ws=6, scale="2.500000e-01", q="1x8x32x16xf32", k="1x2x32x16xf32")),
    "jax-dot-product-attention-gqa-decode": (
        "JAX: one query of 4 heads against 32 cached keys of 2 kv heads, a "
        "token window of 5 keys (decode); with one query JAX folds nothing "
        "but the query heads into the rows, and the pass reads them as 2 "
        "queries of each kv head that see the same keys: a frame of 27 keys "
        "(keys 27-31, where both rows sit), window 1",
        dot_product_attention_decode(5), inputs(nq=1, nk=32, h=4, hkv=2, layout="bnhd"),
        dict(bs=27, ws=1, scale="2.500000e-01", q="1x2x2x16xf32", k="1x2x32x16xf32")),
    "jax-grouped-einsum-sliding-window-bf16": (
        "JAX: the same grouped einsums on bf16 q/k/v (2 query heads a kv "
        "head), softmax in bf16, a causal token window of 4 keys",
        grouped_einsum_attention(4), inputs(h=4, hkv=2, d=64, dtype=BF16, layout="bnhd"),
        dict(bs=1, ws=4, scale="1.250000e-01", q="1x4x32x64xbf16", k="1x2x32x64xbf16")),
    "jax-dot-product-attention-gqa-per-head-mask": (
        "JAX: jax.nn.dot_product_attention with 4 query heads and 2 kv heads "
        "and a [1, 4, N, N] mask whose last query head also sees the next "
        "frame: the mask depends on the query head",
        dot_product_attention_per_head(8, 2), inputs(h=4, hkv=2, layout="bnhd"),
        dict(remark="the mask depends on the batch/head index")),
}


def lower(fn, args):
    specs = [jnp.zeros(shape, dtype[0]) for shape, dtype in args]
    text = jax.jit(fn).lower(*specs).as_text()
    result = subprocess.run([IREE_OPT, f"--pass-pipeline={PIPELINE}", "-"],
                            input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[0])
    return result.stdout


def main():
    generate_cases(__doc__, CASES, "jax", "generate_jax.py", lower, lambda args: [(shape, dtype[1]) for shape, dtype in args])


if __name__ == "__main__":
    main()
