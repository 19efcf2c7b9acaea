#!/usr/bin/env python3
"""Regenerates the frontend corpus: PyTorch modules written the ways people
write (sliding window) block attention, exported to linalg-on-tensors the
way torch-mlir does it, each wrapped in a lit test of --raise-swba.

Needs a virtual environment with `iree-base-compiler`, `iree-turbine` and
`torch` from PyPI (not a CI dependency: the generated files are checked in):

    python3 -m venv venv && venv/bin/pip install iree-base-compiler iree-turbine torch
    venv/bin/python test/Frontend/generate.py [--only NAME]

Two export routes per module:
  * `export`:     torch.export.export(module, args), imported by torch-mlir's
                  FX importer (bundled with IREE), then
                  iree-opt --pass-pipeline='builtin.module(
                    torchdynamo-export-to-torch-backend-pipeline,
                    torch-backend-to-linalg-on-tensors-backend-pipeline)'
  * `decomposed`: the same after `.run_decompositions()`.
Registered buffers are frozen into `dense_resource` constants.

Each positive case gets a test that checks the one swba.attention and its
attributes, then runs the module with and without --raise-swba through
--swba-to-llvm and mlir-runner (run_model.py) and compares every element.
Each negative case gets a test that checks nothing is raised and the
remark. A module the frontend cannot lower is listed in FRONTEND_FAILURES.md
(and in the README's list of forms not recognized).
"""

import argparse
import math
import os
import re
import subprocess
import sys

import torch
import torch.nn.functional as F
from iree.compiler.extras.fx_importer import FxImporter

HERE = os.path.dirname(os.path.abspath(__file__))
IREE_OPT = os.path.join(os.path.dirname(sys.executable), "iree-opt")
PIPELINE = ("builtin.module(torchdynamo-export-to-torch-backend-pipeline,"
            "torch-backend-to-linalg-on-tensors-backend-pipeline)")

NEG_INF = float("-inf")


def frames(n, bs, offset=0):
    """Frame index of positions offset .. offset + n - 1."""
    return (torch.arange(n) + offset) // bs


def swba_visible(nq, nk, bs, ws):
    """Boolean [nq, nk] SWBA mask, queries bottom-right aligned."""
    fq = frames(nq, bs, nk - nq)[:, None]
    fk = frames(nk, bs)[None, :]
    return torch.logical_and(fk <= fq, fq - fk < ws)


# --- the modules ------------------------------------------------------------


class SeedSBA(torch.nn.Module):
    """The seed's naive SBA, verbatim (triu/tril frame mask, masked_fill,
    repeat_interleave to tokens, added to the scaled scores)."""

    def __init__(self, bs, ws, sm_scale, triu_diagonal=1):
        super().__init__()
        self.bs, self.ws, self.sm_scale = bs, ws, sm_scale
        self.triu_diagonal = triu_diagonal

    def forward(self, q, k, v):
        bs, ws = self.bs, self.ws
        B, NH, N, DH = q.size()
        NB = N // bs
        mask = torch.triu(torch.ones((NB, NB), device=q.device), diagonal=self.triu_diagonal) + \
            torch.tril(torch.ones((NB, NB), device=q.device), diagonal=-ws)
        mask = torch.masked_fill(mask, mask == 1.0, float('-inf'))
        mask = mask.repeat_interleave(bs, 0)
        mask = mask.repeat_interleave(bs, 1)
        mask = mask.unsqueeze(0).unsqueeze(0)
        attn = (q @ k.transpose(-2, -1)) * self.sm_scale
        attn = attn + mask.to(attn.dtype)
        attn = attn.softmax(dim=-1)
        return attn @ v


class BufferSBA(torch.nn.Module):
    """The seed's mask computed once in __init__ and registered as a buffer
    (frozen into a dense_resource constant); `flip` changes one element."""

    def __init__(self, n, bs, ws, sm_scale, flip=None):
        super().__init__()
        nb = n // bs
        mask = torch.triu(torch.ones((nb, nb)), diagonal=1) + torch.tril(torch.ones((nb, nb)), diagonal=-ws)
        mask = torch.masked_fill(mask, mask == 1.0, float('-inf'))
        mask = mask.repeat_interleave(bs, 0).repeat_interleave(bs, 1)
        if flip is not None:
            mask[flip] = 0.0 if mask[flip] != 0 else NEG_INF
        self.register_buffer("mask", mask[None, None].contiguous())
        self.sm_scale = sm_scale

    def forward(self, q, k, v):
        attn = (q @ k.transpose(-2, -1)) * self.sm_scale
        attn = attn + self.mask
        return attn.softmax(dim=-1) @ v


class SdpaBool(torch.nn.Module):
    """scaled_dot_product_attention with a boolean mask built from arange
    with `//` and logical_and (2-D or 4-D), or a bidirectional near miss."""

    def __init__(self, bs, ws, rank=2, bidirectional=False, scale=None):
        super().__init__()
        self.bs, self.ws, self.rank = bs, ws, rank
        self.bidirectional, self.scale = bidirectional, scale

    def forward(self, q, k, v):
        n = q.shape[-2]
        fq = frames(n, self.bs)[:, None]
        fk = frames(n, self.bs)[None, :]
        d = fq - fk
        if self.bidirectional:
            m = torch.logical_and(d > -self.ws, d < self.ws)
        else:
            m = torch.logical_and(d >= 0, d < self.ws)
        if self.rank == 4:
            m = m[None, None]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=self.scale)


class SdpaBoolBuffer(torch.nn.Module):
    """scaled_dot_product_attention with a boolean [N, N] buffer mask."""

    def __init__(self, n, bs, ws):
        super().__init__()
        self.register_buffer("mask", swba_visible(n, n, bs, ws))

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)


class SdpaFloat(torch.nn.Module):
    """scaled_dot_product_attention with an additive 0/-inf float mask."""

    def __init__(self, bs, ws):
        super().__init__()
        self.bs, self.ws = bs, ws

    def forward(self, q, k, v):
        n = q.shape[-2]
        vis = swba_visible(n, n, self.bs, self.ws)
        m = torch.zeros(n, n).masked_fill(vis.logical_not(), NEG_INF)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)


class Manual(torch.nn.Module):
    """softmax(q k^T * scale + mask) v written out, the mask applied as
    `style`: where (0/-inf added), masked_fill, log of a 0/1 matrix, or
    where with -1e4. `scale_on` puts the scale on q, k or the scores; `nq`
    makes a KV cache (queries bottom-right, or top-left when `top_left`);
    `dtype`/`softmax_dtype` cast around the softmax; `dim` is the softmax's."""

    def __init__(self, bs, ws, scale, style="where", scale_on="scores",
                 top_left=False, softmax_dtype=None, dim=-1, log_of=1.0,
                 masked_value=NEG_INF):
        super().__init__()
        self.bs, self.ws, self.scale, self.style = bs, ws, scale, style
        self.scale_on, self.top_left = scale_on, top_left
        self.softmax_dtype, self.dim = softmax_dtype, dim
        self.log_of, self.masked_value = log_of, masked_value

    def forward(self, q, k, v):
        nq, nk = q.shape[-2], k.shape[-2]
        offset = 0 if self.top_left else nk - nq
        fq = frames(nq, self.bs, offset)[:, None]
        fk = frames(nk, self.bs)[None, :]
        vis = torch.logical_and(fk <= fq, fq - fk < self.ws)
        if self.scale_on == "q":
            q = q * self.scale
        elif self.scale_on == "k":
            k = k * self.scale
        s = q @ k.transpose(-2, -1)
        if self.softmax_dtype is not None:
            s = s.to(self.softmax_dtype)
        if self.scale_on == "scores":
            s = s * self.scale
        if self.style == "where":
            s = s + torch.where(vis, 0.0, self.masked_value)
        elif self.style == "masked_fill":
            s = s.masked_fill(vis.logical_not(), self.masked_value)
        elif self.style == "log":
            s = s + torch.log(vis.to(s.dtype) * self.log_of)
        p = s.softmax(dim=self.dim).to(v.dtype)
        return p @ v


class BitwiseAnd(torch.nn.Module):
    """The frame mask combined with `&` instead of logical_and."""

    def __init__(self, bs, ws):
        super().__init__()
        self.bs, self.ws = bs, ws

    def forward(self, q, k, v):
        n = q.shape[-2]
        d = frames(n, self.bs)[:, None] - frames(n, self.bs)[None, :]
        vis = (d >= 0) & (d < self.ws)
        s = (q @ k.transpose(-2, -1)) * 0.25
        return s.masked_fill(~vis, NEG_INF).softmax(-1) @ v


class TokenWindow(torch.nn.Module):
    """A token-level causal window of `w` keys (block_size 1), or the
    bidirectional |i - j| < w near miss."""

    def __init__(self, w, bidirectional=False):
        super().__init__()
        self.w, self.bidirectional = w, bidirectional

    def forward(self, q, k, v):
        n = q.shape[-2]
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        if self.bidirectional:
            vis = torch.logical_and(i - j < self.w, j - i < self.w)
        else:
            vis = torch.logical_and(j <= i, i - j < self.w)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        s = s.masked_fill(vis.logical_not(), NEG_INF)
        return s.softmax(-1) @ v


class TrilTriuWindow(torch.nn.Module):
    """A token window of `w` keys as a band of ones, `tril` and `triu` at
    diagonals offset by nk - nq (bottom-right aligned: KV caches, decode)."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, q, k, v):
        nq, nk = q.shape[-2], k.shape[-2]
        vis = torch.ones(nq, nk, dtype=torch.bool).tril(nk - nq).triu(nk - nq - self.w + 1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        return s.masked_fill(~vis, NEG_INF).softmax(-1) @ v


class TokenWindowFraction(torch.nn.Module):
    """A token window of a quarter of the length: a window at every length,
    but not the same one."""

    def forward(self, q, k, v):
        n = q.shape[-2]
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        vis = torch.logical_and(j <= i, i - j < n // 4)
        s = (q @ k.transpose(-2, -1)) * 0.25
        s = s.masked_fill(vis.logical_not(), NEG_INF)
        return s.softmax(-1) @ v


class GQA(torch.nn.Module):
    """Grouped-query attention: k/v heads repeated with repeat_interleave
    (query head h reads kv head h // rep), or with repeat (h % Hkv: not
    the grouping swba.attention has) as a near miss."""

    def __init__(self, bs, ws, rep, interleave=True, sdpa=False):
        super().__init__()
        self.bs, self.ws, self.rep = bs, ws, rep
        self.interleave, self.sdpa = interleave, sdpa

    def forward(self, q, k, v):
        if self.interleave:
            k = k.repeat_interleave(self.rep, dim=1)
            v = v.repeat_interleave(self.rep, dim=1)
        else:
            k = k.repeat(1, self.rep, 1, 1)
            v = v.repeat(1, self.rep, 1, 1)
        n = q.shape[-2]
        vis = swba_visible(n, n, self.bs, self.ws)
        if self.sdpa:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=vis)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        s = s + torch.where(vis, 0.0, NEG_INF)
        return s.softmax(-1) @ v


class ScaleArgument(torch.nn.Module):
    """The scale is an input tensor, not a constant."""

    def __init__(self, bs, ws):
        super().__init__()
        self.bs, self.ws = bs, ws

    def forward(self, q, k, v, scale):
        n = q.shape[-2]
        vis = swba_visible(n, n, self.bs, self.ws)
        s = (q @ k.transpose(-2, -1)) * scale
        s = s + torch.where(vis, 0.0, NEG_INF)
        return s.softmax(-1) @ v


class Alibi(torch.nn.Module):
    """A token window of 8 under ALiBi's linear position bias (BLOOM's and
    MPT's), slope(h) (j - i) added to the scores: a bias, not a mask, per
    head (`slopes`) or one for all heads."""

    def __init__(self, slopes):
        super().__init__()
        self.register_buffer("slopes", torch.tensor(slopes).view(1, -1, 1, 1))

    def forward(self, q, k, v):
        n = q.shape[2]
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        s = (q @ k.transpose(-2, -1)) * 0.25 + self.slopes * (j - i).float()
        s = s.masked_fill(~((j <= i) & (i - j < 8)), float("-inf"))
        return s.softmax(-1) @ v


class MaskArgument(torch.nn.Module):
    """The mask is an input: nothing to prove it with."""

    def forward(self, q, k, v, mask):
        s = (q @ k.transpose(-2, -1)) * 0.25
        return (s + mask).softmax(-1) @ v


# --- the corpus -------------------------------------------------------------


def qkv(nq=32, nk=None, hq=2, hkv=None, d=16, dtype=torch.float32):
    nk = nq if nk is None else nk
    hkv = hq if hkv is None else hkv
    return [((1, hq, nq, d), dtype), ((1, hkv, nk, d), dtype), ((1, hkv, nk, d), dtype)]


F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

def causal_lm(model_class, config, attn, dynamic_length=False):
    """A transformers causal LM of `config` (weights random, seeded) with
    attention `attn`, from token ids to logits, with an attention mask of
    ones (without one, transformers computes positions with a cumulative
    sum that torch-mlir lowers to tm_tensor.scan); with `dynamic_length`,
    the token count is dynamic (ONNX's axis names)."""
    config._attn_implementation = attn
    torch.manual_seed(0)
    model = model_class(config).eval()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                              use_cache=False).logits
    module = M()
    module.input_names = ["ids"]
    if dynamic_length:
        module.dynamic_axes = {"ids": {1: "n"}}
    return module


# The sizes the corpus's models share: two layers, GQA with 4 query and 2 kv
# heads (of hidden_size / 4 = 16), a vocabulary of 64 tokens.
TINY_LM = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


def raised_layers(length, ws=8, **more):
    """The expected of a corpus model whose two layers are raised: q of 4
    heads, k and v of their 2 kv heads, of 16 at `length` tokens ("?" where
    symbolic); `more` as CASES takes it (exps=, dynamic=, lengths=)."""
    return dict(bs=1, ws=ws, scale="2.500000e-01", q=f"1x4x{length}x16xf32",
                k=f"1x2x{length}x16xf32", count=2, **more)


def mistral(attn="sdpa", dynamic_length=False):
    """A two-layer Mistral-class model (GQA: 4 query and 2 kv heads of 16, a
    sliding window of 8 tokens): causal_lm."""
    import transformers
    config = transformers.MistralConfig(**TINY_LM, head_dim=16, sliding_window=8)
    return causal_lm(transformers.MistralForCausalLM, config, attn, dynamic_length)


def gemma3(attn="sdpa"):
    """A two-layer Gemma 3-class model: a sliding layer (a window of 8
    tokens) then a full causal one, GQA (4 query and 2 kv heads of 16):
    causal_lm."""
    import transformers
    config = transformers.Gemma3TextConfig(
        **TINY_LM, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"])
    return causal_lm(transformers.Gemma3ForCausalLM, config, attn)


def gemma2_softcap():
    """A two-layer Gemma 2-class model with its scores' soft cap (cap
    tanh(s / cap), cap 50) and eager attention (SDPA has no soft cap): a
    sliding layer of 8 tokens, then a full one; causal_lm."""
    import transformers
    config = transformers.Gemma2Config(
        **TINY_LM, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
        attn_logit_softcapping=50.0, final_logit_softcapping=None)
    return causal_lm(transformers.Gemma2ForCausalLM, config, "eager")


def qwen2():
    """A two-layer Qwen2-class model (biases on q, k and v; GQA: 4 query and
    2 kv heads of 16; both layers sliding, a window of 8 tokens):
    causal_lm."""
    import transformers
    config = transformers.Qwen2Config(
        **TINY_LM, use_sliding_window=True, sliding_window=8, max_window_layers=0,
        layer_types=["sliding_attention", "sliding_attention"])
    return causal_lm(transformers.Qwen2ForCausalLM, config, "sdpa")


TOKENS = ((1, 32), torch.int64)

# name: (what the test checks, module, inputs, expected)
#   expected: dict(bs=, ws=, scale=, q=, k=, v=) for a raised op, with the
#   op's operand types; or dict(remark=...) for a near miss. A model of
#   several layers gives count= (ws= a list where they differ) and, where
#   other exponentials stay, exps= their number; a near miss of several
#   layers gives count= the remarks, one at each P.V contraction.
CASES = {
    "seed-sba": (
        "The seed's naive SBA, verbatim: frame mask from triu/tril, masked_fill, "
        "repeat_interleave to tokens (broadcast + collapse_shape of the mask)",
        SeedSBA(8, 2, 0.25), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "seed-sba-offbyone": (
        "The seed's SBA with triu(diagonal=2): each frame also sees the next one",
        SeedSBA(8, 2, 0.25, triu_diagonal=2), qkv(),
        dict(remark="not a sliding window block mask for any block size")),
    "seed-sba-buffer": (
        "The seed's mask registered as a buffer: a dense_resource constant",
        BufferSBA(32, 8, 2, 0.25), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "seed-sba-buffer-flipped": (
        "The buffer mask with one element (query 9, key 3) changed",
        BufferSBA(32, 8, 2, 0.25, flip=(9, 3)), qkv(),
        dict(remark="query row 9 sees keys [0, 3) and key 4: not one contiguous range")),
    "sdpa-bool-2d": (
        "SDPA with a 2-D boolean mask from arange // block size and logical_and",
        SdpaBool(8, 2), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "sdpa-bool-4d": (
        "SDPA with a 4-D [1, 1, N, N] boolean mask",
        SdpaBool(8, 2, rank=4), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "sdpa-bool-bidirectional": (
        "SDPA with a boolean mask that also sees the next frames",
        SdpaBool(8, 2, bidirectional=True), qkv(),
        dict(remark="not a sliding window block mask for any block size")),
    "sdpa-bool-buffer": (
        "SDPA with a boolean [N, N] buffer mask (dense_resource of i1), scale given",
        SdpaBoolBuffer(32, 4, 3), qkv(),
        dict(bs=4, ws=3, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "sdpa-float-mask": (
        "SDPA with an additive 0/-inf float mask",
        SdpaFloat(8, 2), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "where-mask": (
        "where(visible, 0, -inf) added to the scores, frames from arange //",
        Manual(8, 3, 0.25), qkv(),
        dict(bs=8, ws=3, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "where-mask-finite": (
        "where(visible, 0, -1e4): masked scores do not provably vanish",
        Manual(8, 3, 0.25, masked_value=-1e4), qkv(),
        dict(remark="neither 0 nor -inf (or at most half the lowest finite value)")),
    "masked-fill": (
        "scores.masked_fill(~visible, -inf), the scale on q",
        Manual(8, 2, 0.25, style="masked_fill", scale_on="q"), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "masked-fill-scale-on-k": (
        "scores.masked_fill(~visible, -inf), the scale on k",
        Manual(8, 2, 0.125, style="masked_fill", scale_on="k"), qkv(),
        dict(bs=8, ws=2, scale="1.250000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "masked-fill-wrong-dim": (
        "masked_fill, then softmax over the query axis",
        Manual(8, 2, 0.25, style="masked_fill", dim=-2), qkv(),
        dict(remark="a reduction is not over the key axis")),
    "bitwise-and": (
        "The frame mask combined with & of boolean tensors, ~ and masked_fill",
        BitwiseAnd(8, 2), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "log-mask": (
        "log of the 0/1 visibility matrix added to the scores",
        Manual(4, 2, 0.25, style="log"), qkv(),
        dict(bs=4, ws=2, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "log-mask-half": (
        "log of 0/0.5 added: visible scores are shifted by log 0.5",
        Manual(4, 2, 0.25, style="log", log_of=0.5), qkv(),
        dict(remark="neither 0 nor -inf (or at most half the lowest finite value)")),
    "token-window": (
        "A token-level causal window of 5 keys (block_size 1)",
        TokenWindow(5), qkv(),
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "token-window-dynamic": (
        "The token window of 5 keys exported with a symbolic length: the mask "
        "is proven for every length and the op keeps the dynamic length; run at "
        "lengths shorter and longer than the window. After decompositions, "
        "torch-mlir broadcasts the operands through tensor.extract and reshapes "
        "the scores through computed sizes, read as the copies and reshapes they are",
        TokenWindow(5), qkv(),
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["3,3,3", "40,40,40"])),
    "frames-dynamic": (
        "Frames of 8 tokens, a window of 2 frames, masked_fill, with a symbolic "
        "length: floor divisions of positions proven for every length, run at "
        "lengths that end inside a frame",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["5,5,5", "37,37,37"])),
    "kv-cache-dynamic": (
        "New queries against a KV cache, the query and key lengths symbolic "
        "and apart: positions bottom-right aligned by nk - nq, proven for every "
        "pair of lengths with queries at most keys",
        Manual(8, 2, 0.25), qkv(nq=12, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic="kv", lengths=["12,32,32", "2,9,9", "20,20,20"])),
    "kv-cache-top-left-dynamic": (
        "The KV cache with query positions from 0, lengths symbolic: a window "
        "where the lengths are equal, not where they differ",
        Manual(8, 2, 0.25, top_left=True), qkv(nq=12, nk=32),
        dict(remark="not a sliding window block mask for any block size",
             dynamic="kv")),
    "token-window-fraction-dynamic": (
        "A token window of a quarter of the symbolic length: a window at each "
        "length, but not one window for every length",
        TokenWindowFraction(), qkv(),
        dict(remark="at the sizes it was evaluated at, but not at every size",
             dynamic=True)),
    "sdpa-bool-dynamic": (
        "SDPA with a boolean frame mask from arange // block size, symbolic "
        "length (SDPA reaches linalg after decompositions only). torch-mlir "
        "copies k, scaled by the square root of the scale, through a broadcast "
        "sized by the query length: with no equality of the two lengths in the "
        "IR, the op reads that copy, and q's half of the scale",
        SdpaBool(8, 2), qkv(),
        dict(bs=8, ws=2, scale="5.000000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["6,6,6", "37,37,37"])),
    "sdpa-float-mask-dynamic": (
        "SDPA with an additive 0/-inf frame mask, symbolic length (k read "
        "through its scaled broadcast copy, as above)",
        SdpaFloat(4, 3), qkv(),
        dict(bs=4, ws=3, scale="5.000000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["9,9,9", "30,30,30"])),
    "gqa-sdpa-dynamic": (
        "GQA through SDPA with a boolean mask, k/v repeat_interleave'd, "
        "symbolic length: k and v are read through their broadcast copies (as "
        "above), which hold the repeated heads",
        GQA(8, 2, 2, sdpa=True), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x?x16xf32", k="1x4x?x16xf32",
             dynamic=True, lengths=["7,7,7", "33,33,33"])),
    "gqa-repeat-interleave-dynamic": (
        "GQA (k/v repeat_interleave'd from 2 to 4 heads), a symbolic length; "
        "after decompositions k and v are read through their broadcast copies, "
        "with the repeated heads",
        GQA(8, 2, 2), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["9,9,9", "20,20,20"],
             decomposed=dict(k="1x4x?x16xf32"))),
    "log-mask-dynamic": (
        "log of the 0/1 visibility matrix added to the scores, a symbolic length",
        Manual(4, 2, 0.25, style="log"), qkv(),
        dict(bs=4, ws=2, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic=True, lengths=["7,7,7", "30,30,30"])),
    "bf16-dynamic": (
        "bf16 throughout, masked_fill and softmax in bf16, a symbolic length",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(dtype=BF16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x?x16xbf16", k="1x2x?x16xbf16",
             dynamic=True, lengths=["10,10,10", "33,33,33"])),
    "f16-f32-softmax-dynamic": (
        "f16 q/k/v, scores cast to f32 for the mask and softmax, a symbolic length",
        Manual(8, 2, 0.25, softmax_dtype=F32), qkv(dtype=F16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x?x16xf16", k="1x2x?x16xf16",
             dynamic=True, lengths=["10,10,10", "33,33,33"])),
    "frames-dynamic-batch": (
        "Frames of 8 tokens in a window of 2 frames, masked_fill, with a "
        "symbolic batch and length (what serving exports mark dynamic): the "
        "batch is proven the same in q, k, v and the result through the "
        "batched products' loops (torch-mlir folds it with the heads: B x 2), "
        "and the op keeps it dynamic; run at batches of 1 to 3",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
             dynamic="batch", lengths=["2,5,2,5,2,5", "3,37,3,37,3,37", "1,9,1,9,1,9"])),
    "token-window-dynamic-batch": (
        "The token window of 5 keys with a symbolic batch and length",
        TokenWindow(5), qkv(),
        dict(bs=1, ws=5, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
             dynamic="batch", lengths=["2,3,2,3,2,3", "3,40,3,40,3,40"])),
    "kv-cache-dynamic-batch": (
        "New queries against a KV cache, batch, query and key lengths symbolic",
        Manual(8, 2, 0.25), qkv(nq=12, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
             dynamic="batch-kv", lengths=["2,12,2,32,2,32", "3,2,3,9,3,9"])),
    "gqa-sdpa-dynamic-batch": (
        "GQA through SDPA with a boolean mask, a symbolic batch and length",
        GQA(8, 2, 2, sdpa=True), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="5.000000e-01", q="?x4x?x16xf32", k="?x4x?x16xf32",
             dynamic="batch", lengths=["2,7,2,7,2,7", "3,33,3,33,3,33"])),
    "bf16-dynamic-batch": (
        "bf16 throughout, masked_fill and softmax in bf16, a symbolic batch "
        "and length",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(dtype=BF16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x?x16xbf16", k="?x2x?x16xbf16",
             dynamic="batch", lengths=["2,10,2,10,2,10", "3,33,3,33,3,33"])),
    "decode": (
        "One query (a decode step) against a KV cache of 32 keys, frames of 8 "
        "in a window of 2: the query axis has one element, which the exports "
        "collapse and broadcast as a unit dimension, read as the query's; at "
        "one row, frames of 16 in a window of 1 are this mask too",
        Manual(8, 2, 0.25), qkv(nq=1, nk=32),
        dict(bs=16, ws=1, scale="2.500000e-01", q="1x2x1x16xf32", k="1x2x32x16xf32")),
    "decode-dynamic": (
        "A decode step against a KV cache of a symbolic length: proven for "
        "every length (the decode candidates find the frames of 8)",
        Manual(8, 2, 0.25), qkv(nq=1, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x1x16xf32", k="1x2x?x16xf32",
             dynamic="decode", lengths=["9,9", "40,40", "1,1"])),
    "decode-dynamic-batch": (
        "A decode step with a symbolic batch and cache length",
        Manual(8, 2, 0.25), qkv(nq=1, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x1x16xf32", k="?x2x?x16xf32",
             dynamic="batch-decode", lengths=["2,2,9,2,9", "3,3,40,3,40"])),
    "tril-triu-dynamic": (
        "A token window of 8 keys as tril/triu of ones at diagonals of the "
        "symbolic lengths, new queries against a cache (both lengths symbolic)",
        TrilTriuWindow(8), qkv(nq=12, nk=32),
        dict(bs=1, ws=8, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
             dynamic="kv", lengths=["12,32,32", "9,9,9", "3,40,40"])),
    "tril-triu-decode-dynamic": (
        "The tril/triu token window of 8 keys at a decode step, the cache "
        "length symbolic",
        TrilTriuWindow(8), qkv(nq=1, nk=32),
        dict(bs=1, ws=8, scale="2.500000e-01", q="1x2x1x16xf32", k="1x2x?x16xf32",
             dynamic="decode", lengths=["9,9", "40,40", "3,3"])),
    "frames-dynamic-batch-only": (
        "Frames of 8 in a window of 2 with a symbolic batch and static "
        "lengths (torch-mlir's sizes through affine.apply)",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x32x16xf32", k="?x2x32x16xf32",
             dynamic="batch-only", lengths=["2,2,2", "3,3,3"])),
    "gqa-sdpa-dynamic-batch-only": (
        "GQA through SDPA with a boolean mask, a symbolic batch and static "
        "lengths (k and v read through their broadcast copies)",
        GQA(8, 2, 2, sdpa=True), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="5.000000e-01", q="?x4x32x16xf32", k="?x4x32x16xf32",
             dynamic="batch-only", lengths=["2,2,2", "3,3,3"])),
    "shared-kv-dynamic-batch": (
        "A symbolic batch of queries against k and v of one sequence, "
        "broadcast over the batch by matmul: the op reads torch-mlir's "
        "broadcast copies of k and v, whose batch the products tie to q's",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(),
        dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
             dynamic="batch-q", lengths=["2,5,5,5", "3,37,37,37"])),
    "token-window-bidirectional": (
        "A token-level window |i - j| < 5: not causal",
        TokenWindow(5, bidirectional=True), qkv(),
        dict(remark="not a sliding window block mask for any block size")),
    "kv-cache": (
        "12 new queries against a KV cache of 32 keys, positions bottom-right aligned",
        Manual(8, 2, 0.25), qkv(nq=12, nk=32),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x12x16xf32", k="1x2x32x16xf32")),
    "kv-cache-top-left": (
        "The KV cache with query positions starting at 0 (top-left aligned)",
        Manual(8, 2, 0.25, top_left=True), qkv(nq=12, nk=32),
        dict(remark="not a sliding window block mask for any block size")),
    "gqa-repeat-interleave": (
        "GQA: 4 query heads, 2 kv heads repeated with repeat_interleave",
        GQA(8, 2, 2), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x2x32x16xf32")),
    "gqa-sdpa": (
        "GQA through SDPA with a boolean mask, k/v repeat_interleave'd",
        GQA(8, 2, 2, sdpa=True), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x2x32x16xf32")),
    "gqa-repeat": (
        "k/v heads tiled with repeat (query head h reads kv head h % 2): not the "
        "grouping swba.attention has, so k/v stay materialized with 4 heads",
        GQA(8, 2, 2, interleave=False), qkv(hq=4, hkv=2),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x4x32x16xf32")),
    "f16-f32-softmax": (
        "f16 q/k/v, scores cast to f32 for the mask and softmax, back to f16",
        Manual(8, 2, 0.25, softmax_dtype=F32), qkv(dtype=F16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xf16", k="1x2x32x16xf16")),
    "bf16": (
        "bf16 throughout, masked_fill and softmax in bf16",
        Manual(8, 2, 0.25, style="masked_fill"), qkv(dtype=BF16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xbf16", k="1x2x32x16xbf16")),
    "bf16-sdpa-bool": (
        "SDPA on bf16 inputs with a boolean mask",
        SdpaBool(8, 2), qkv(dtype=BF16),
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x32x16xbf16", k="1x2x32x16xbf16")),
    "scale-argument": (
        "The scale is an input tensor",
        ScaleArgument(8, 2), qkv() + [((1,), F32)],
        dict(remark="the scores are scaled by a value that is not a constant")),
    "alibi": (
        "ALiBi: a token window of 8 with one linear position bias (j - i) / 2 "
        "added to every head's scores",
        Alibi([0.5]), qkv(),
        dict(remark="the mask value at (query 0, key 1) is 0.50, neither 0 nor -inf")),
    "alibi-heads": (
        "ALiBi with a slope a head (1/2, 1/4), as BLOOM's and MPT's",
        Alibi([0.5, 0.25]), qkv(),
        dict(remark="the mask depends on the batch/head index")),
    "mask-argument": (
        "The mask is an input tensor",
        MaskArgument(), qkv() + [((32, 32), F32)],
        dict(remark="the mask is not a compile-time constant")),
    "mistral": (
        "a two-layer Mistral-class model of transformers (SDPA, a sliding "
        "window of 8 tokens, GQA: 4 query and 2 kv heads) from token ids to "
        "logits; both layers raised, k and v with their 2 heads",
        mistral(), [TOKENS],
        raised_layers(32, exps=2)),
    "mistral-dynamic": (
        "the Mistral-class model with a symbolic token count; transformers' "
        "repeat_kv expands k and v through a tensor.extract that reads the "
        "inserted unit axis at 0, which the pass reads as the repeat: k and v "
        "keep their 2 heads",
        mistral(), [TOKENS],
        raised_layers("?", exps=2, dynamic="tokens", lengths=["9", "40"])),
    "mistral-eager-dynamic": (
        "the Mistral-class model with transformers' eager attention (matmul, "
        "softmax, matmul) and a symbolic token count",
        mistral("eager"), [TOKENS],
        raised_layers("?", exps=2, dynamic="tokens", lengths=["9", "40"])),
    "gemma3": (
        "a two-layer Gemma 3-class model of transformers (a sliding layer of "
        "8 tokens, then a full causal one; GQA) from token ids to logits: "
        "the causal layer at 32 tokens is a window of 32",
        gemma3(), [TOKENS],
        raised_layers(32, ws=[8, 32])),
    "gemma3-dynamic": (
        "the Gemma 3-class model with a symbolic token count: its causal "
        "layer, whose rows see back to key 0 at every length, is a window of "
        "2^30 (past every length the proof covers)",
        gemma3(), [TOKENS],
        raised_layers("?", ws=[8, 1073741824], dynamic="tokens", lengths=["9", "40"])),
    "gemma2-softcap": (
        "a two-layer Gemma 2-class model whose scores are soft-capped (50 "
        "tanh(s / 50)) before the mask and the softmax: not an swba.attention, "
        "in either layer",
        gemma2_softcap(), [TOKENS],
        dict(remark="not raised to swba.attention: unsupported op 'math.tanh' "
                    "between the scores and the softmax", count=2)),
    "qwen2": (
        "a two-layer Qwen2-class model of transformers (SDPA, biases on q, k "
        "and v, both layers sliding with a window of 8 tokens, GQA) from token "
        "ids to logits; both layers raised, k and v with their 2 heads",
        qwen2(), [TOKENS],
        raised_layers(32, exps=2)),
    "qwen2-dynamic": (
        "the Qwen2-class model with a symbolic token count",
        qwen2(), [TOKENS],
        raised_layers("?", exps=2, dynamic="tokens", lengths=["9", "40"])),
}

ROUTES = ("export", "decomposed")

# Tolerance of the raised-vs-unraised comparison per output element type:
# the unraised chain rounds its probabilities (and with f16/bf16 its P.V
# accumulation) to the element type; the op keeps f32 throughout.
TOLERANCE = {F32: "1e-4", F16: "1e-2", BF16: "5e-2"}

DTYPE_NAME = {F32: "f32", F16: "f16", BF16: "bf16"}


def export(module, inputs, route, dynamic=False):
    """The linalg module text, or raises with the frontend's error. With
    `dynamic`, the length (dim 2) of q, k and v is one symbolic size; with
    "kv", q's length is one and k's and v's another; with "batch" (or
    "batch-kv") the batch (dim 0) is one symbolic size too, and with
    "batch-q" only q's batch is symbolic; with "batch-only" the batch is
    symbolic and the lengths static; with "decode" (or "batch-decode") k's
    and v's length is symbolic and q's static."""
    torch.manual_seed(0)
    batched = lambda a: (dynamic in ("batch", "batch-kv", "batch-only", "batch-decode")
                         or (dynamic == "batch-q" and a == 0))
    # A symbolic batch is traced at 2 (torch.export specializes sizes 0 and 1).
    args = tuple(torch.randint(0, 61, shape) if dtype == torch.int64 else
                 torch.randn(*((2,) + shape[1:] if batched(a) else shape)).to(dtype)
                 for a, (shape, dtype) in enumerate(inputs))
    # The FX importer takes a model's buffers only where they are persistent
    # (transformers' rotary frequencies are not).
    for mod in module.modules():
        for name in list(getattr(mod, "_non_persistent_buffers_set", ())):
            buffer = getattr(mod, name)
            delattr(mod, name)
            mod.register_buffer(name, buffer, persistent=True)
    shapes = None
    if dynamic == "tokens":
        # Token ids [1, N] of a symbolic length.
        shapes = ({1: torch.export.Dim("N", min=2, max=1 << 20)},)
    elif dynamic in ("kv", "batch-kv"):
        nq = torch.export.Dim("NQ", min=2, max=1 << 20)
        nk = torch.export.Dim("NK", min=2, max=1 << 20)
        shapes = tuple({2: nq if a == 0 else nk} for a in range(len(args)))
    elif dynamic == "batch-only":
        shapes = tuple({} for _ in args)
    elif dynamic in ("decode", "batch-decode"):
        # Queries of a static count against k and v of a symbolic length.
        nk = torch.export.Dim("NK", min=2, max=1 << 20)
        shapes = tuple({} if a == 0 else {2: nk} for a in range(len(args)))
    elif dynamic:
        n = torch.export.Dim("N", min=2, max=1 << 20)
        shapes = tuple({2: n} for _ in args)
    if dynamic in ("batch", "batch-kv", "batch-q", "batch-only", "batch-decode"):
        # One symbolic batch for q, k and v (or for q alone, k and v
        # broadcast from one sequence).
        b = torch.export.Dim("B", min=2, max=1 << 10)
        for a, shape in enumerate(shapes):
            if batched(a):
                shape[0] = b
    ep = torch.export.export(module, args, dynamic_shapes=shapes)
    if route == "decomposed":
        ep = ep.run_decompositions()
    importer = FxImporter()
    importer.import_frozen_program(ep)
    result = subprocess.run([IREE_OPT, f"--pass-pipeline={PIPELINE}", "-"],
                            input=str(importer.module), capture_output=True,
                            text=True)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line),
                     result.stderr.strip().splitlines()[0])
        raise RuntimeError(first.split("error: ", 1)[-1])
    text = result.stdout
    if "tm_tensor" in text:
        raise RuntimeError("SDPA became tm_tensor.attention, not linalg")
    return text


def header(name, route, what, inputs, expected, script="generate.py"):
    gen = (f"// Generated by test/Frontend/{script} (case " + name +
           ", route " + route + "); do not edit.\n")
    lines = [gen, f"// {what}.\n"]
    if "remark" in expected:
        if expected.get("count", 1) == 1:
            lines.append("// A near miss: nothing is raised, and the remark (at the P.V\n"
                         "// contraction) says why.\n")
        else:
            lines.append("// A near miss: nothing is raised, and the remarks (at each layer's\n"
                         "// P.V contraction) say why.\n")
        lines.append("// RUN: swba-opt %s --raise-swba --remarks-filter-missed=raise-swba "
                     "--verify-diagnostics | FileCheck %s --check-prefix=IR\n")
        lines.append("// IR-NOT: swba.attention\n")
        return "".join(lines)
    out_dtype = inputs[0][1]
    # Token ids in: the model's result is f32.
    tol = TOLERANCE.get(out_dtype, TOLERANCE[F32])
    count = expected.get("count", 1)
    lines.append(f"// Raised to exactly {'one' if count == 1 else count} swba.attention "
                 "with the expected attributes;\n"
                 "// the module run with and without --raise-swba agrees on every element.\n")
    lines.append("// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR\n")
    for n, lengths in enumerate(expected.get("lengths", [None])):
        given = f" --lengths {lengths}" if lengths else ""
        t = f"%t.{n}" if lengths else "%t"
        lines.append(f"// RUN: %python %S/run_model.py %s{given} > {t}.mlir\n")
        lines.append(f"// RUN: swba-opt {t}.mlir --raise-swba --swba-to-llvm | mlir-runner -e entry "
                     f"-entry-point-result=void %mlir_runner_libs > {t}.raised\n")
        lines.append(f"// RUN: swba-opt {t}.mlir --swba-to-llvm | mlir-runner -e entry "
                     f"-entry-point-result=void %mlir_runner_libs > {t}.plain\n")
        lines.append(f"// RUN: %python %S/run_model.py --compare {t}.raised {t}.plain --tolerance {tol} "
                     "| FileCheck %s --check-prefix=CMP\n")
    # One window for every op, or each op's (layers of two kinds).
    windows = expected["ws"] if isinstance(expected["ws"], list) else [expected["ws"]]
    for ws in windows:
        n = count if len(windows) == 1 else 1
        check = "IR" if n == 1 else f"IR-COUNT-{n}"
        lines.append(f"// {check}: swba.attention ins(%{{{{.*}}}}, %{{{{.*}}}}, %{{{{.*}}}} : "
                     f"tensor<{expected['q']}>, tensor<{expected['k']}>, tensor<{expected['k']}>) "
                     f"outs(%{{{{.*}}}} : tensor<{expected['q']}>) "
                     f"block_size = {expected['bs']} window = {ws} "
                     f"scale = {expected['scale']}\n")
    lines.append("// IR-NOT: swba.attention\n")
    if "exps" in expected:
        # A whole model: its other exponentials (SiLU's) stay, the
        # softmaxes' go.
        lines.insert(4, "// RUN: swba-opt %s --raise-swba | grep -c math.exp "
                        "| FileCheck %s --check-prefix=EXPS\n")
        lines.append(f"// EXPS: {{{{^}}}}{expected['exps']}{{{{$}}}}\n")
    else:
        lines.append("// IR-NOT: math.exp\n")
    lines.append("// CMP: compared {{[1-9][0-9]*}} elements, 0 mismatches, nonzero\n")
    return "".join(lines)


def write_case(name, route, what, inputs, expected, text, script):
    """Writes test case `name`: the header, then the module `text` (with the
    expected remark where the case is a near miss)."""
    if "remark" in expected:
        text = expect_remark(text, expected["remark"])
    path = os.path.join(HERE, f"{name}.mlir")
    with open(path, "w") as f:
        f.write(header(name, route, what, inputs, expected, script=script))
        f.write("\n")
        f.write(text)
    print(f"{name}: {os.path.relpath(path)}")


def fixed_hash_seed():
    """Runs the generator again under PYTHONHASHSEED=0 unless it already
    is: torch.export orders some of a model's constants by string hashes
    (Gemma 3's two rotary tables), and the corpus must regenerate byte for
    byte."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)


def generate_cases(doc, cases, route, script, lower, inputs_of=lambda args: args):
    """The main of a corpus generator: writes each case of `cases` (name ->
    (what, function, args, expected)), or the one `--only` names."""
    fixed_hash_seed()
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--only", help="regenerate one case")
    only = parser.parse_args().only
    for name, (what, fn, args, expected) in cases.items():
        if not only or name == only:
            write_case(name, route, what, inputs_of(args), expected,
                       lower(fn, args), script)


def expect_remark(text, remark, count=1):
    """`text` with an expected-remark before its last contraction (P.V), or
    with `count` past one (a model of several layers) before each batched
    contraction whose left operand is square in its last two dims (a
    layer's P [Nq][Nk] . V at Nq = Nk), which must be `count` of them."""
    lines = text.splitlines(keepends=True)
    if count == 1:
        at = [max(i for i, line in enumerate(lines)
                  if "linalg.batch_matmul" in line or "linalg.matmul" in line)]
    else:
        square = re.compile(r"linalg\.batch_matmul ins\([^:]*: tensor<\d+x(\d+)x(\d+)x")
        at = [i for i, line in enumerate(lines)
              if (m := square.search(line)) and m.group(1) == m.group(2)]
        assert len(at) == count, f"{len(at)} P.V contractions, expected {count}"
    for i in reversed(at):
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        lines.insert(i, f"{indent}// expected-remark @below {{{{{remark}}}}}\n")
    return "".join(lines)


def main():
    fixed_hash_seed()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="regenerate one case")
    args = parser.parse_args()
    failures = []
    for name, (what, module, inputs, expected) in CASES.items():
        if args.only and name != args.only:
            continue
        for route in ROUTES:
            path = os.path.join(HERE, f"{name}-{route}.mlir")
            expected = dict(CASES[name][3])
            expected.update(expected.pop(route, {}))
            for other in ROUTES:
                expected.pop(other, None)
            try:
                text = export(module, inputs, route, expected.get("dynamic", False))
            except Exception as err:  # the frontend's own failure
                reason = str(err).strip().splitlines()[0][:200]
                failures.append(f"| {name} | {route} | {reason} |")
                if os.path.exists(path):
                    os.remove(path)
                print(f"{name} ({route}): frontend failed: {reason}")
                continue
            if "remark" in expected:
                text = expect_remark(text, expected["remark"], expected.get("count", 1))
            with open(path, "w") as f:
                f.write(header(name, route, what, inputs, expected))
                f.write("\n")
                f.write(text)
            print(f"{name} ({route}): {os.path.relpath(path)}")
    if not args.only:
        with open(os.path.join(HERE, "FRONTEND_FAILURES.md"), "w") as f:
            f.write("# Modules the frontend does not lower to linalg\n\n"
                    "Written by generate.py: these cases of the corpus have no test for the\n"
                    "route named, because torch-mlir (IREE 3.13) fails on them first.\n\n"
                    "| case | route | frontend error |\n| --- | --- | --- |\n")
            f.write("\n".join(failures) + "\n")


if __name__ == "__main__":
    main()
