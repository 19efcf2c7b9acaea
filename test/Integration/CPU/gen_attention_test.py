#!/usr/bin/env python3
"""Writes an MLIR module that runs swba.attention (or, with --grad,
swba.attention_grad) on pseudo-random inputs and compares every output
element with the float64 reference of python/swba/reference.py.

The module's @main prints, per output,
    <name> checked <elements> mismatches <count>
    max_abs_err <float>
and the lit test FileChecks the counts. Inputs are rounded to the element
type first, so the reference sees exactly the values the op sees.

Tolerance: |x - ref| <= atol + rtol * |ref|. The op accumulates in f32 and
rounds its outputs to the element type, so the error is dominated by that
rounding: rtol = a few ulps of the type (f32 1e-5, f16 2e-3, bf16 1.6e-2);
atol is the same fraction of the output's magnitude (max |ref|), which
covers elements that are sums of cancelling terms (the gradients).
Measured on 280 random configurations (all dtypes, forward and backward, GQA,
Nq < Nk, bs 1..12, explicit scales up to ~1 at D = 32): every one passes with
these tolerances halved, most with them divided by 8 or 16; the tightest are
f16/bf16 gradients at large scales. Off-by-one window or block size, or a 1%
scale error (f32/f16), gives hundreds of mismatches.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from swba.reference import (attention_backward, attention_forward,  # noqa: E402
                            raw_bytes, round_to)

RTOL = {"f32": 1e-5, "f16": 2e-3, "bf16": 1.6e-2}


# Constants check() uses.
PRELUDE = ("  %zero_i64 = arith.constant 0 : i64\n  %zero_f32 = arith.constant 0.0 : f32\n"
           "  %false = arith.constant false\n")


def tensor_type(shape, dtype):
    return "tensor<" + "x".join(str(s) for s in shape) + f"x{dtype}>"


def constant(name, x, dtype):
    hexdata = raw_bytes(x, dtype).hex().upper()
    return f'  %{name} = arith.constant dense<"0x{hexdata}"> : {tensor_type(x.shape, dtype)}\n'


def check(name, value, dtype, ref, lines):
    """Loops comparing every element of %value (dtype) with ref (f64): within
    tolerance of a finite ref, equal to an infinite one, NaN where ref is."""
    shape = ref.shape
    finite = np.abs(ref[np.isfinite(ref)])
    atol = RTOL[dtype] * max(float(finite.max(initial=0.0)), 1e-6)
    lines.append(constant(f"{name}_ref", ref, "f32"))
    body = []
    rank = len(shape)
    body.append(f"  %{name}_res:2 = scf.for %{name}_i0 = %c0 to %c{shape[0]} step %c1 "
                f"iter_args(%n0 = %zero_i64, %e0 = %zero_f32) -> (i64, f32) {{\n")
    for r in range(1, rank):
        body.append(f"  %{name}_l{r}:2 = scf.for %{name}_i{r} = %c0 to %c{shape[r]} step %c1 "
                    f"iter_args(%n{r} = %n{r-1}, %e{r} = %e{r-1}) -> (i64, f32) {{\n")
    idx = ", ".join(f"%{name}_i{r}" for r in range(rank))
    last = rank - 1
    x = f"%{name}_x"
    body.append(f"    {x}0 = tensor.extract %{value}[{idx}] : {tensor_type(shape, dtype)}\n")
    if dtype != "f32":
        body.append(f"    {x} = arith.extf {x}0 : {dtype} to f32\n")
    else:
        body.append(f"    {x} = arith.addf {x}0, %zero_f32 : f32\n")
    body.append(f"    %{name}_r = tensor.extract %{name}_ref[{idx}] : {tensor_type(shape, 'f32')}\n"
                f"    %{name}_d0 = arith.subf {x}, %{name}_r : f32\n"
                f"    %{name}_d = math.absf %{name}_d0 : f32\n"
                f"    %{name}_ra = math.absf %{name}_r : f32\n"
                f"    %{name}_t0 = arith.mulf %{name}_ra, %rtol_{dtype} : f32\n"
                f"    %{name}_atol = arith.constant {atol:.9e} : f32\n"
                f"    %{name}_t = arith.addf %{name}_t0, %{name}_atol : f32\n"
                # ugt is true for NaN too.
                f"    %{name}_far = arith.cmpf ugt, %{name}_d, %{name}_t : f32\n"
                # Expected infinities must be met exactly, expected NaNs by NaN.
                f"    %{name}_same = arith.cmpf oeq, {x}, %{name}_r : f32\n"
                f"    %{name}_rnan = arith.cmpf uno, %{name}_r, %{name}_r : f32\n"
                f"    %{name}_xnum = arith.cmpf ord, {x}, {x} : f32\n"
                f"    %{name}_off = arith.select %{name}_rnan, %{name}_xnum, %{name}_far : i1\n"
                f"    %{name}_ok = arith.ori %{name}_same, %{name}_rnan : i1\n"
                f"    %{name}_bad = arith.select %{name}_same, %false, %{name}_off : i1\n"
                f"    %{name}_b = arith.extui %{name}_bad : i1 to i64\n"
                f"    %{name}_n = arith.addi %n{last}, %{name}_b : i64\n"
                f"    %{name}_de = arith.select %{name}_ok, %zero_f32, %{name}_d : f32\n"
                f"    %{name}_e = arith.maximumf %e{last}, %{name}_de : f32\n"
                f"    scf.yield %{name}_n, %{name}_e : i64, f32\n")
    for r in range(rank - 1, 0, -1):
        body.append(f"  }}\n  scf.yield %{name}_l{r}#0, %{name}_l{r}#1 : i64, f32\n")
    body.append("  }\n")
    lines.extend(body)
    lines.append(f'  vector.print str "{name} checked {ref.size} mismatches "\n'
                 f"  vector.print %{name}_res#0 : i64\n"
                 f'  vector.print str "max_abs_err "\n'
                 f"  vector.print %{name}_res#1 : f32\n")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    for a in ("b", "hq", "hkv", "nq", "nk", "d", "dv", "bs", "ws"):
        ap.add_argument(f"--{a}", type=int, required=True)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], required=True)
    ap.add_argument("--scale", type=float)
    ap.add_argument("--lse", action="store_true")
    ap.add_argument("--grad", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--key-offset", type=int,
                    help="forward only: the op's key_offset; key rows at "
                         "negative positions hold NaN, which must never be read")
    a = ap.parse_args(argv)
    if a.key_offset is not None and a.grad:
        ap.error("--key-offset is a forward option")
    return a


def test_function(name, a):
    """The text of `func.func @name()` that runs the op configured by `a`
    (parse_args' namespace) and prints its checks."""
    rng = np.random.default_rng(a.seed)
    dt = a.dtype
    q = round_to(rng.standard_normal((a.b, a.hq, a.nq, a.d)), dt)
    k = round_to(rng.standard_normal((a.b, a.hkv, a.nk, a.d)), dt)
    v = round_to(rng.standard_normal((a.b, a.hkv, a.nk, a.dv)), dt)
    scale_attr = f" scale = {a.scale!r}" if a.scale is not None else ""
    ko = a.key_offset or 0
    k_op, v_op = k, v
    if a.key_offset is not None:
        scale_attr = f" key_offset = %key_offset{scale_attr}"
        before = max(0, -ko)
        k_op, v_op = k.copy(), v.copy()
        k_op[:, :, :before] = np.nan
        v_op[:, :, :before] = np.nan
        k[:, :, :before] = 0.0
        v[:, :, :before] = 0.0
    tq, tk = tensor_type(q.shape, dt), tensor_type(k.shape, dt)
    tv, to = tensor_type(v.shape, dt), tensor_type((a.b, a.hq, a.nq, a.dv), dt)
    tl = tensor_type((a.b, a.hq, a.nq), "f32")

    lines = [f"func.func @{name}() {{\n",
             "  %c0 = arith.constant 0 : index\n  %c1 = arith.constant 1 : index\n",
             PRELUDE,
             *(f"  %rtol_{t} = arith.constant {r:e} : f32\n" for t, r in RTOL.items())]
    dims = {a.b, a.hq, a.hkv, a.nq, a.nk, a.d, a.dv} - {0, 1}
    lines += [f"  %c{n} = arith.constant {n} : index\n" for n in sorted(dims)]
    lines += [constant("q", q, dt), constant("k", k_op, dt),
              constant("v", v_op, dt)]
    if a.key_offset is not None:
        lines.append(f"  %key_offset = arith.constant {ko} : index\n")

    if not a.grad:
        out, lse = attention_forward(q, k, v, a.bs, a.ws, a.scale, ko)
        lines.append(f"  %eo = tensor.empty() : {to}\n")
        if a.lse:
            lines.append(f"  %el = tensor.empty() : {tl}\n"
                         f"  %r:2 = swba.attention ins(%q, %k, %v : {tq}, {tk}, {tv}) "
                         f"outs(%eo, %el : {to}, {tl}) block_size = {a.bs} window = {a.ws}"
                         f"{scale_attr} -> {to}, {tl}\n")
            check("out", "r#0", dt, out, lines)
            check("lse", "r#1", "f32", lse, lines)
        else:
            lines.append(f"  %r = swba.attention ins(%q, %k, %v : {tq}, {tk}, {tv}) "
                         f"outs(%eo : {to}) block_size = {a.bs} window = {a.ws}"
                         f"{scale_attr} -> {to}\n")
            check("out", "r", dt, out, lines)
    else:
        out, lse = attention_forward(q, k, v, a.bs, a.ws, a.scale)
        out = round_to(out, dt)
        dout = round_to(rng.standard_normal(out.shape), dt)
        dq, dk, dv = attention_backward(q, k, v, dout, a.bs, a.ws, a.scale)
        lines += [constant("o", out, dt), constant("do", dout, dt),
                  constant("lse", lse.astype(np.float32), "f32"),
                  f"  %edq = tensor.empty() : {tq}\n  %edk = tensor.empty() : {tk}\n"
                  f"  %edv = tensor.empty() : {tv}\n",
                  f"  %g:3 = swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : "
                  f"{tq}, {tk}, {tv}, {to}, {to}, {tl}) outs(%edq, %edk, %edv : {tq}, {tk}, {tv}) "
                  f"block_size = {a.bs} window = {a.ws}{scale_attr} -> {tq}, {tk}, {tv}\n"]
        check("dq", "g#0", dt, dq, lines)
        check("dk", "g#1", dt, dk, lines)
        check("dv", "g#2", dt, dv, lines)
    lines.append("  return\n}\n")
    return "".join(lines)


def main():
    a = parse_args()
    sys.stdout.write("// Generated by gen_attention_test.py " + " ".join(sys.argv[1:]) + "\n")
    sys.stdout.write(test_function("main", a))


if __name__ == "__main__":
    main()
