#!/usr/bin/env python3
"""Writes an MLIR module that runs swba.paged_attention on pseudo-random
inputs held in a paged KV cache and compares every element of out (and lse)
with the float64 reference of python/swba/reference.py, as
gen_attention_test.py does for swba.attention (same output, tolerances).

The cache is built the way a serving engine leaves it: each sequence's pages
at random places of the cache (the page table in random order), spare pages
in between. Everything the op must never read holds NaN, so reading it shows
up as mismatches: the slots of a sequence's first page before its window,
the slots after its length in its last page, the spare pages, and the pages
whose frames have left the window (whose table entries are -1, or still
point to a page, alternately). A sequence's keys are also attended densely
(attention_forward on the contiguous keys) to check the paged reference.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from gen_attention_test import PRELUDE, RTOL, check, constant, tensor_type  # noqa: E402
from swba.reference import (attention_forward, paged_attention_forward,  # noqa: E402
                            round_to)


def int_constant(name, x):
    def literal(y):
        return "[" + ", ".join(literal(z) for z in y) + "]" if y.ndim else str(int(y))
    shape = "x".join(str(s) for s in x.shape)
    return f"  %{name} = arith.constant dense<{literal(x)}> : tensor<{shape}xi32>\n"


def window_start(n, nq, bs, ws):
    """First position a query of a sequence of n tokens sees."""
    rows = min(nq, n)
    if rows == 0:
        return n
    return max((n - rows) // bs - ws + 1, 0) * bs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for a in ("b", "hq", "hkv", "nq", "d", "dv", "bs", "ws", "page_size"):
        ap.add_argument("--" + a.replace("_", "-"), type=int, required=True)
    ap.add_argument("--lens", required=True,
                    help="comma-separated tokens per sequence (may be < nq)")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], required=True)
    ap.add_argument("--scale", type=float)
    ap.add_argument("--lse", action="store_true")
    ap.add_argument("--spare-pages", type=int, default=3)
    ap.add_argument("--extra-table-columns", type=int, default=1,
                    help="page table columns past the longest sequence (-1)")
    ap.add_argument("--dynamic", action="store_true",
                    help="pass every operand with dynamic sizes (but head dims)")
    ap.add_argument("--bad-entry", action="append", default=[],
                    metavar="B,PAGE,VALUE",
                    help="set page_table[B, PAGE] = VALUE (outside the cache); "
                         "the rows whose window holds that page must be NaN")
    ap.add_argument("--table-columns", type=int,
                    help="cut the page table to this many columns, so that "
                         "some sequences hold more tokens than it maps")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    lens = [int(x) for x in a.lens.split(",")]
    if len(lens) != a.b:
        ap.error("--lens needs one length per sequence")

    rng = np.random.default_rng(a.seed)
    dt, ps = a.dtype, a.page_size
    q = round_to(rng.standard_normal((a.b, a.hq, a.nq, a.d)), dt)
    keys = [round_to(rng.standard_normal((max(n, 0), a.hkv, a.d)), dt) for n in lens]
    values = [round_to(rng.standard_normal((max(n, 0), a.hkv, a.dv)), dt) for n in lens]

    # Pages: the live ones (holding a key of the window) and, before them,
    # those of frames that left the window.
    max_pages = max(-(-max(n, 0) // ps) for n in lens) + a.extra_table_columns
    live, stale = [], []
    for bi, n in enumerate(lens):
        first_live = window_start(n, a.nq, a.bs, a.ws) // ps
        for p in range(-(-max(n, 0) // ps)):
            (live if p >= first_live else stale).append((bi, p))
    kept_stale = stale[1::2]
    num_pages = len(live) + len(kept_stale) + a.spare_pages
    slots = rng.permutation(num_pages)
    key_cache = np.full((num_pages, ps, a.hkv, a.d), np.nan)
    value_cache = np.full((num_pages, ps, a.hkv, a.dv), np.nan)
    page_table = np.full((a.b, max_pages), -1, dtype=np.int64)
    for (bi, p), slot in zip(live + kept_stale, slots):
        page_table[bi, p] = slot
    for bi, p in live:
        start = max(p * ps, window_start(lens[bi], a.nq, a.bs, a.ws))
        end = min((p + 1) * ps, lens[bi])
        slot = page_table[bi, p]
        key_cache[slot, start - p * ps:end - p * ps] = keys[bi][start:end]
        value_cache[slot, start - p * ps:end - p * ps] = values[bi][start:end]

    out, lse = paged_attention_forward(q, key_cache, value_cache, page_table,
                                       lens, a.bs, a.ws, a.scale)
    # The paged reference against the dense one on the contiguous keys.
    for bi, n in enumerate(lens):
        rows = min(a.nq, max(n, 0))
        if rows:
            k = keys[bi].transpose(1, 0, 2)[None]
            v = values[bi].transpose(1, 0, 2)[None]
            o, l = attention_forward(q[bi:bi + 1, :, a.nq - rows:], k, v, a.bs, a.ws, a.scale)
            assert np.allclose(out[bi, :, a.nq - rows:], o[0], rtol=1e-12, atol=1e-12)
            assert np.allclose(lse[bi, :, a.nq - rows:], l[0], rtol=1e-12, atol=1e-12)
        assert (out[bi, :, :a.nq - rows] == 0).all()
        assert (lse[bi, :, :a.nq - rows] == -np.inf).all()

    for entry in a.bad_entry:
        bi, p, value = (int(x) for x in entry.split(","))
        page_table[bi, p] = value
    if a.table_columns is not None:
        page_table = page_table[:, :a.table_columns]
        max_pages = a.table_columns
    if a.bad_entry or a.table_columns is not None:
        out, lse = paged_attention_forward(q, key_cache, value_cache, page_table,
                                           lens, a.bs, a.ws, a.scale)
        nan_rows = np.isnan(lse).sum()
        assert 0 < nan_rows < lse.size, "the bad entries must spoil some rows, not all"
        sys.stderr.write(f"rows expected NaN: {nan_rows} of {lse.size}\n")

    to = tensor_type((a.b, a.hq, a.nq, a.dv), dt)
    tl = tensor_type((a.b, a.hq, a.nq), "f32")
    static = {
        "q": tensor_type(q.shape, dt),
        "kc": tensor_type(key_cache.shape, dt),
        "vc": tensor_type(value_cache.shape, dt),
        "pages": f"tensor<{a.b}x{max_pages}xi32>",
        "lens": f"tensor<{a.b}xi32>",
    }
    dynamic = {
        "q": f"tensor<?x{a.hq}x?x{a.d}x{dt}>",
        "kc": f"tensor<?x?x{a.hkv}x{a.d}x{dt}>",
        "vc": f"tensor<?x?x{a.hkv}x{a.dv}x{dt}>",
        "pages": "tensor<?x?xi32>",
        "lens": "tensor<?xi32>",
    }

    lines = ["// Generated by gen_paged_attention_test.py " + " ".join(sys.argv[1:]) + "\n",
             "func.func @main() {\n",
             "  %c0 = arith.constant 0 : index\n  %c1 = arith.constant 1 : index\n",
             PRELUDE,
             *(f"  %rtol_{t} = arith.constant {r:e} : f32\n" for t, r in RTOL.items())]
    dims = {a.b, a.hq, a.nq, a.dv} - {0, 1}
    lines += [f"  %c{n} = arith.constant {n} : index\n" for n in sorted(dims)]
    lines += [constant("q", q, dt), constant("kc", key_cache, dt),
              constant("vc", value_cache, dt), int_constant("pages", page_table),
              int_constant("lens", np.array(lens))]
    types = static
    names = {n: n for n in static}
    if a.dynamic:
        for n in static:
            lines.append(f"  %{n}_d = tensor.cast %{n} : {static[n]} to {dynamic[n]}\n")
            names[n] = n + "_d"
        types = dynamic
    args = ", ".join("%" + names[n] for n in ("q", "kc", "vc", "pages", "lens"))
    arg_types = ", ".join(types[n] for n in ("q", "kc", "vc", "pages", "lens"))
    scale_attr = f" scale = {a.scale!r}" if a.scale is not None else ""
    lines.append(f"  %eo = tensor.empty() : {to}\n")
    if a.lse:
        lines.append(f"  %el = tensor.empty() : {tl}\n"
                     f"  %r:2 = swba.paged_attention ins({args} : {arg_types}) "
                     f"outs(%eo, %el : {to}, {tl}) block_size = {a.bs} window = {a.ws}"
                     f"{scale_attr} -> {to}, {tl}\n")
        check("out", "r#0", dt, out, lines)
        check("lse", "r#1", "f32", lse, lines)
    else:
        lines.append(f"  %r = swba.paged_attention ins({args} : {arg_types}) "
                     f"outs(%eo : {to}) block_size = {a.bs} window = {a.ws}"
                     f"{scale_attr} -> {to}\n")
        check("out", "r", dt, out, lines)
    lines.append("  return\n}\n")
    sys.stdout.write("".join(lines))


if __name__ == "__main__":
    main()
