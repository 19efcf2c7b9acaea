#!/usr/bin/env python3
"""Regenerates the ONNX part of the frontend corpus: PyTorch modules
exported to ONNX (`torch.onnx.export`, the TorchScript exporter, opset 17),
imported by IREE's `iree-import-onnx` into the torch dialect, then lowered
to linalg-on-tensors by

    iree-opt --pass-pipeline='builtin.module(func.func(convert-torch-onnx-to-torch),torch-lower-to-backend-contract,torch-backend-to-linalg-on-tensors-backend-pipeline)'

(constants printed as lists: the hex form of i1 tensors differs between
MLIR versions). The `onnx-dynamo-*` cases come from the exporter that
`torch.onnx.export` uses by default since PyTorch 2.9 (`dynamo=True`, the
model through torch.export, opset 18), the others from the TorchScript
exporter. Needs `onnx` and `onnxscript` besides generate.py's virtual
environment:
    venv/bin/pip install onnx onnxscript && venv/bin/python test/Frontend/generate_onnx.py

The tests are written like generate.py's (route `onnx`).
"""

import os
import subprocess
import tempfile

import torch
import torch.nn.functional as F

from generate import IREE_OPT, TOKENS, generate_cases, mistral, raised_layers

IMPORT = os.path.join(os.path.dirname(IREE_OPT), "iree-import-onnx")
PIPELINE = ("builtin.module(func.func(convert-torch-onnx-to-torch),"
            "torch-lower-to-backend-contract,"
            "torch-backend-to-linalg-on-tensors-backend-pipeline)")


def token_window(ws, scale=0.25):
    """masked_fill of the pairs outside a causal token window of ws keys."""
    class M(torch.nn.Module):
        def forward(self, q, k, v):
            n, m = q.shape[2], k.shape[2]
            i = torch.arange(n)[:, None] + (m - n)
            j = torch.arange(m)[None, :]
            visible = (j <= i) & (i - j < ws)
            s = (q @ k.transpose(-1, -2)) * scale
            s = s.masked_fill(~visible, float("-inf"))
            return torch.softmax(s, -1) @ v
    return M()


def sdpa_frames(bs, ws, gqa=False):
    """scaled_dot_product_attention with a boolean frame mask (k and v
    repeat_interleave'd over heads when `gqa`)."""
    class M(torch.nn.Module):
        def forward(self, q, k, v):
            n = q.shape[2]
            f = torch.arange(n) // bs
            visible = (f[None, :] <= f[:, None]) & (f[:, None] - f[None, :] < ws)
            if gqa:
                rep = q.shape[1] // k.shape[1]
                k = k.repeat_interleave(rep, dim=1)
                v = v.repeat_interleave(rep, dim=1)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    return M()


def shape(*dims):
    return (dims, torch.float32)


def dynamic(module, kv=False, batch=False, lengths=True, decode=False):
    """`module` exported with a symbolic length (dim 2) of q, k and v (with
    `kv`, q's one and k's and v's another; with `decode`, k's and v's only;
    with `batch`, a symbolic batch, dim 0, of all three too; without
    `lengths`, static lengths)."""
    q_length = "nq" if lengths and not decode else None
    kv_length = ("nk" if kv or decode else "nq") if lengths else None
    module.dynamic_axes = {}
    for name, length in (("q", q_length), ("k", kv_length), ("v", kv_length)):
        axes = module.dynamic_axes[name] = {}
        if batch:
            axes[0] = "batch"
        if length:
            axes[2] = length
    return module


def dynamo(module):
    """`module` exported by the dynamo exporter (its dynamic axes as
    torch.export Dims of the same names)."""
    module.dynamo = True
    return module


CASES = {
    "onnx-token-window": (
        "ONNX: a token-level causal window of 5 keys (masked_fill, softmax), "
        "exported by torch.onnx.export",
        token_window(5), [shape(1, 2, 32, 16)] * 3,
        dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32")),
    "onnx-kv-cache": (
        "ONNX: 12 queries against 32 cached keys, a token window of 6 keys, "
        "positions bottom-right aligned",
        token_window(6), [shape(1, 2, 12, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
        dict(bs=1, ws=6, scale="2.500000e-01", q="1x2x12x16xf32", k="1x2x32x16xf32")),
    "onnx-sdpa-frames-gqa": (
        "ONNX: scaled_dot_product_attention with a boolean mask of frames of 8, "
        "window 2, k and v repeat_interleave'd from 2 to 4 heads; the export "
        "guards the probabilities against NaN and multiplies q and k^T by a "
        "computed square root of the scale, which the pass evaluates into the "
        "op's scale; k and v are read through their repeat, with 2 heads",
        sdpa_frames(8, 2, gqa=True),
        [shape(1, 4, 32, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
        dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x2x32x16xf32")),
}


class OffByOne(torch.nn.Module):
    """A token window of 5 keys, except that row 0 also sees key 1."""
    def forward(self, q, k, v):
        n = q.shape[2]
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        visible = ((j <= i) & (i - j < 5)) | ((i == 0) & (j == 1))
        s = (q @ k.transpose(-1, -2)) * 0.25
        return torch.softmax(s.masked_fill(~visible, float("-inf")), -1) @ v


CASES["onnx-token-window-dynamic"] = (
    "ONNX: the token window of 5 keys with dynamic query and key lengths "
    "(dynamic_axes), proven for every pair of lengths",
    dynamic(token_window(5), kv=True), [shape(1, 2, 12, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
         lengths=["12,32,32", "3,3,3", "40,40,40"]))
CASES["onnx-sdpa-frames-dynamic"] = (
    "ONNX: SDPA with a boolean frame mask, a dynamic length",
    dynamic(sdpa_frames(8, 2)), [shape(1, 2, 32, 16)] * 3,
    dict(bs=8, ws=2, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
         lengths=["5,5,5", "37,37,37"]))
CASES["onnx-token-window-dynamic-batch"] = (
    "ONNX: the token window of 5 keys with a dynamic batch and dynamic query "
    "and key lengths (the axes ONNX exports for serving mark dynamic)",
    dynamic(token_window(5), kv=True, batch=True),
    [shape(2, 2, 12, 16), shape(2, 2, 32, 16), shape(2, 2, 32, 16)],
    dict(bs=1, ws=5, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
         lengths=["2,12,2,32,2,32", "3,3,3,3,3,3", "1,40,1,40,1,40"]))
CASES["onnx-sdpa-frames-dynamic-batch"] = (
    "ONNX: SDPA with a boolean frame mask, a dynamic batch and length",
    dynamic(sdpa_frames(8, 2), batch=True), [shape(2, 2, 32, 16)] * 3,
    dict(bs=8, ws=2, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
         lengths=["2,5,2,5,2,5", "3,37,3,37,3,37"]))
CASES["onnx-token-window-dynamic-batch-only"] = (
    "ONNX: the token window of 5 keys with a dynamic batch and static lengths",
    dynamic(token_window(5), batch=True, lengths=False), [shape(2, 2, 32, 16)] * 3,
    dict(bs=1, ws=5, scale="2.500000e-01", q="?x2x32x16xf32", k="?x2x32x16xf32",
         lengths=["2,2,2", "3,3,3"]))
CASES["onnx-decode-dynamic"] = (
    "ONNX: a decode step (one query) against a KV cache of a dynamic length, "
    "a token window of 6 keys",
    dynamic(token_window(6), decode=True),
    [shape(1, 2, 1, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=1, ws=6, scale="2.500000e-01", q="1x2x1x16xf32", k="1x2x?x16xf32",
         lengths=["9,9", "40,40", "1,1"]))
CASES["onnx-decode-dynamic-batch"] = (
    "ONNX: a decode step with a dynamic batch and cache length: the export "
    "broadcasts the scores to the mask's rows, a dynamic dimension of the one "
    "query that the pass proves one element",
    dynamic(token_window(6), decode=True, batch=True),
    [shape(2, 2, 1, 16), shape(2, 2, 32, 16), shape(2, 2, 32, 16)],
    dict(bs=1, ws=6, scale="2.500000e-01", q="?x2x1x16xf32", k="?x2x?x16xf32",
         lengths=["2,2,9,2,9", "3,3,40,3,40", "1,1,2,1,2"]))
CASES["onnx-sdpa-frames-gqa-dynamic"] = (
    "ONNX: SDPA with a boolean frame mask and GQA, a dynamic length: the "
    "export repeats k and v through 10-D tensors reshaped to sizes that its "
    "shape arithmetic computes at run time (products of sizes divided by "
    "products, ONNX's 0 that copies a size), which the pass traces; the op "
    "reads k and v after the repeat, and the batch that the types leave "
    "dynamic is proven 1",
    dynamic(sdpa_frames(8, 2, gqa=True)),
    [shape(1, 4, 32, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=8, ws=2, scale="1.000000e+00", q="1x4x?x16xf32", k="1x4x?x16xf32",
         lengths=["5,5,5", "37,37,37", "1,1,1"]))

CASES["onnx-dynamo-token-window"] = (
    "ONNX (the dynamo exporter): the token window of 5 keys",
    dynamo(token_window(5)), [shape(1, 2, 32, 16)] * 3,
    dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x32x16xf32", k="1x2x32x16xf32"))
CASES["onnx-dynamo-sdpa-frames-gqa"] = (
    "ONNX (the dynamo exporter): SDPA with a boolean frame mask and GQA; the "
    "export repeats k and v by a broadcast collapsed into the heads and "
    "expands k^T's batch after its transpose, which the plan reads through: "
    "k and v keep their 2 heads",
    dynamo(sdpa_frames(8, 2, gqa=True)),
    [shape(1, 4, 32, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x32x16xf32", k="1x2x32x16xf32"))
CASES["onnx-dynamo-token-window-dynamic"] = (
    "ONNX (the dynamo exporter): the token window of 5 keys with dynamic "
    "query and key lengths",
    dynamo(dynamic(token_window(5), kv=True)),
    [shape(1, 2, 12, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=1, ws=5, scale="2.500000e-01", q="1x2x?x16xf32", k="1x2x?x16xf32",
         lengths=["12,32,32", "3,3,3", "40,40,40"]))
CASES["onnx-dynamo-token-window-dynamic-batch"] = (
    "ONNX (the dynamo exporter): the token window of 5 keys with a dynamic "
    "batch and dynamic query and key lengths",
    dynamo(dynamic(token_window(5), kv=True, batch=True)),
    [shape(2, 2, 12, 16), shape(2, 2, 32, 16), shape(2, 2, 32, 16)],
    dict(bs=1, ws=5, scale="2.500000e-01", q="?x2x?x16xf32", k="?x2x?x16xf32",
         lengths=["2,12,2,32,2,32", "3,3,3,3,3,3", "1,40,1,40,1,40"]))
CASES["onnx-dynamo-sdpa-frames-gqa-dynamic"] = (
    "ONNX (the dynamo exporter): SDPA with a boolean frame mask and GQA, a "
    "dynamic length; k^T is reshaped to computed sizes around its transpose "
    "(a collapse, then an expand proven one), and k and v keep their 2 heads",
    dynamo(dynamic(sdpa_frames(8, 2, gqa=True))),
    [shape(1, 4, 32, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=8, ws=2, scale="2.500000e-01", q="1x4x?x16xf32", k="1x2x?x16xf32",
         lengths=["5,5,5", "37,37,37", "1,1,1"]))
CASES["onnx-dynamo-decode-dynamic"] = (
    "ONNX (the dynamo exporter): a decode step, one query against a cache "
    "of a dynamic length, in a token window of 6 keys",
    dynamo(dynamic(token_window(6), decode=True)),
    [shape(1, 2, 1, 16), shape(1, 2, 32, 16), shape(1, 2, 32, 16)],
    dict(bs=1, ws=6, scale="2.500000e-01", q="1x2x1x16xf32", k="1x2x?x16xf32",
         lengths=["9,9", "40,40", "1,1"]))

CASES["onnx-dynamo-mistral"] = (
    "ONNX (the dynamo exporter): a two-layer Mistral-class model of "
    "transformers (SDPA, a sliding window of 8 tokens, GQA) from token ids "
    "to logits; both layers raised",
    dynamo(mistral()), [TOKENS],
    raised_layers(32, exps=2))
CASES["onnx-dynamo-mistral-dynamic"] = (
    "ONNX (the dynamo exporter): the Mistral-class model with a dynamic "
    "length; its mask reads the attention mask of ones through a GatherND "
    "whose index pairs are concatenated along a unit axis",
    dynamo(mistral(dynamic_length=True)), [TOKENS],
    raised_layers("?", exps=2, lengths=["9", "40"]))
CASES["onnx-dynamo-mistral-eager-dynamic"] = (
    "ONNX (the dynamo exporter): the Mistral-class model with transformers' "
    "eager attention (matmul, softmax, matmul) and a dynamic length",
    dynamo(mistral("eager", dynamic_length=True)), [TOKENS],
    raised_layers("?", exps=2, lengths=["9", "40"]))

CASES["onnx-token-window-off-by-one"] = (
    "ONNX: a token window of 5 keys where query 0 also sees key 1 (a key "
    "ahead of it): no sliding window block mask",
    OffByOne(), [shape(1, 2, 32, 16)] * 3,
    dict(remark="not a sliding window block mask for any block size"))


def lower(module, args):
    with tempfile.TemporaryDirectory() as tmp:
        model, imported = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m.mlir")
        inputs = tuple(torch.randint(0, 61, dims) if dtype == torch.int64
                       else torch.randn(*dims, dtype=dtype) for dims, dtype in args)
        axes = getattr(module, "dynamic_axes", None)
        names = getattr(module, "input_names", ["q", "k", "v"])
        if getattr(module, "dynamo", False):
            dims = {}
            shapes = None
            if axes:
                shapes = {name: {d: dims.setdefault(
                                     label, torch.export.Dim(label, min=2, max=1 << 20))
                                 for d, label in axes.get(name, {}).items()}
                          for name in names}
            torch.onnx.export(module, inputs, model, dynamo=True,
                              input_names=names, dynamic_shapes=shapes,
                              verbose=False)
        else:
            torch.onnx.export(module, inputs, model, dynamo=False, opset_version=17,
                              input_names=names, dynamic_axes=axes)
        subprocess.run([IMPORT, model, "-o", imported], check=True,
                       capture_output=True, text=True)
        result = subprocess.run(
            [IREE_OPT, "--mlir-print-elementsattrs-with-hex-if-larger=-1",
             f"--pass-pipeline={PIPELINE}", imported],
            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[0])
    return result.stdout.replace("@main_graph(", "@main(")


def main():
    generate_cases(__doc__, CASES, "onnx", "generate_onnx.py", lower)


if __name__ == "__main__":
    main()
