#!/usr/bin/env python3
"""Writes the two modules of an MPI test of swba.attention split over a
device grid by the shard dialect:

--kernel: @attention(q, k, v) -> out, with q, k, v and out annotated as split
  along batch, heads and/or the sequence (shard.shard); --sharding-propagation
  and --shard-partition turn it into the per-process function (local shards
  in and out, halo exchange by shard.update_halo), --convert-shard-to-mpi
  into MPI calls.
--main: the driver each MPI process runs: pseudo-random q, k, v, slices its
  shard of them by its rank, calls @attention, and compares every element of
  its output shard with the float64 reference (python/swba/reference.py) and
  with swba.attention run on the whole, unsplit inputs. Process 0 adds up
  the counts of all processes and prints
      out checked <elements> mismatches <count> unsplit mismatches <count>
  so a FileCheck of that line covers every element of the output once.

Tolerance as in gen_attention_test.py (the split op adds its keys up in
another order than the unsplit one).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from gen_attention_test import RTOL, constant, tensor_type  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from swba.reference import attention_forward, round_to  # noqa: E402

MODULE_ATTRS = '{dlti.map = #dlti.map<"MPI:Implementation" = "OpenMPI">}'


def split_axes(a):
    """shard.sharding split_axes of q, k, v and out: [[b], [h], [n]]."""
    dims = [a.batch_axis, a.head_axis, a.seq_axis]
    while dims and dims[-1] is None:
        dims.pop()
    return "[" + ", ".join("[]" if x is None else f"[{x}]" for x in dims) + "]"


def kernel_module(a, tq, tk, tv, to):
    grid = "x".join(str(g) for g in a.grid)
    scale = f" scale = {a.scale!r}" if a.scale is not None else ""
    return (f"module attributes {MODULE_ATTRS} {{\n"
            # Private, so that symbol-dce drops it once nothing refers to it.
            f"  shard.grid @grid(shape = {grid}) {{sym_visibility = \"private\"}}\n"
            f"  func.func @attention(%q: {tq}, %k: {tk}, %v: {tv}) -> {to} {{\n"
            f"    %s = shard.sharding @grid split_axes = {split_axes(a)} : !shard.sharding\n"
            f"    %qs = shard.shard %q to %s : {tq}\n"
            f"    %ks = shard.shard %k to %s : {tk}\n"
            f"    %vs = shard.shard %v to %s : {tv}\n"
            f"    %e = tensor.empty() : {to}\n"
            f"    %o = swba.attention ins(%qs, %ks, %vs : {tq}, {tk}, {tv}) outs(%e : {to})"
            f" block_size = {a.bs} window = {a.ws}{scale} -> {to}\n"
            f"    %os = shard.shard %o to %s : {to}\n"
            f"    return %os : {to}\n"
            f"  }}\n}}\n")


def count_mismatches(name, value, ref, shape, dtype, ref_dtype, atol, lines):
    """Loops comparing every element of %value (dtype) with %ref (ref_dtype);
    the count lands in %{name}_n (i64)."""
    t, tr = tensor_type(shape, dtype), tensor_type(shape, ref_dtype)
    rank = len(shape)
    lines.append(f"    %{name}_atol = arith.constant {atol:.9e} : f32\n")
    lines.append(f"    %{name}_l0 = scf.for %{name}_i0 = %c0 to %c{shape[0]} step %c1 "
                 f"iter_args(%{name}_a0 = %zero_i64) -> (i64) {{\n")
    for r in range(1, rank):
        lines.append(f"    %{name}_l{r} = scf.for %{name}_i{r} = %c0 to %c{shape[r]} step %c1 "
                     f"iter_args(%{name}_a{r} = %{name}_a{r-1}) -> (i64) {{\n")
    idx = ", ".join(f"%{name}_i{r}" for r in range(rank))
    x = f"%{name}_x"
    lines.append(f"      {x}0 = tensor.extract %{value}[{idx}] : {t}\n")
    lines.append(f"      {x} = arith.extf {x}0 : {dtype} to f32\n" if dtype != "f32"
                 else f"      {x} = arith.addf {x}0, %zero_f32 : f32\n")
    lines.append(f"      %{name}_r0 = tensor.extract %{ref}[{idx}] : {tr}\n")
    lines.append(f"      %{name}_r = arith.extf %{name}_r0 : {ref_dtype} to f32\n" if ref_dtype != "f32"
                 else f"      %{name}_r = arith.addf %{name}_r0, %zero_f32 : f32\n")
    lines.append(f"      %{name}_d0 = arith.subf {x}, %{name}_r : f32\n"
                 f"      %{name}_d = math.absf %{name}_d0 : f32\n"
                 f"      %{name}_ra = math.absf %{name}_r : f32\n"
                 f"      %{name}_t0 = arith.mulf %{name}_ra, %rtol : f32\n"
                 f"      %{name}_t = arith.addf %{name}_t0, %{name}_atol : f32\n"
                 # ugt is true for NaN too.
                 f"      %{name}_bad = arith.cmpf ugt, %{name}_d, %{name}_t : f32\n"
                 f"      %{name}_b = arith.extui %{name}_bad : i1 to i64\n"
                 f"      %{name}_s = arith.addi %{name}_a{rank-1}, %{name}_b : i64\n"
                 f"      scf.yield %{name}_s : i64\n")
    for r in range(rank - 1, 0, -1):
        lines.append(f"    }}\n    scf.yield %{name}_l{r} : i64\n")
    lines.append("    }\n")
    lines.append(f"    %{name}_n = arith.addi %{name}_l0, %zero_i64 : i64\n")


def main_module(a, q, k, v, ref, local):
    dt = a.dtype
    b, hq, n, d = q.shape
    hkv, dv = k.shape[1], v.shape[3]
    lb, lhq, lhkv, ln = local
    tq, tk, tv = (tensor_type(x.shape, dt) for x in (q, k, v))
    to = tensor_type(ref.shape, dt)
    lq, lk = tensor_type((lb, lhq, ln, d), dt), tensor_type((lb, lhkv, ln, d), dt)
    lv, lo = tensor_type((lb, lhkv, ln, dv), dt), tensor_type((lb, lhq, ln, dv), dt)
    lr = tensor_type((lb, lhq, ln, dv), "f32")
    scale = f" scale = {a.scale!r}" if a.scale is not None else ""
    atol = RTOL[dt] * max(float(np.abs(ref).max()), 1e-6)

    lines = [f"module attributes {MODULE_ATTRS} {{\n",
             f"  func.func private @attention({lq}, {lk}, {lv}) -> {lo}\n",
             "  func.func @main() {\n",
             "    mpi.init\n",
             "    %comm = mpi.comm_world : !mpi.comm\n",
             "    %rank32 = mpi.comm_rank(%comm) : i32\n",
             "    %rank = arith.index_cast %rank32 : i32 to index\n",
             "    %c0 = arith.constant 0 : index\n    %c1 = arith.constant 1 : index\n",
             "    %zero_i64 = arith.constant 0 : i64\n    %zero_f32 = arith.constant 0.0 : f32\n",
             f"    %rtol = arith.constant {RTOL[dt]:e} : f32\n"]
    sizes = sorted({lb, lhq, lhkv, ln, d, dv} - {0, 1})
    lines += [f"    %c{s} = arith.constant {s} : index\n" for s in sizes]
    lines.append("    %c3i = arith.constant 3 : index\n")
    lines += ["  " + constant("q", q, dt), "  " + constant("k", k, dt),
              "  " + constant("v", v, dt), "  " + constant("ref", ref.astype(np.float32), "f32")]

    # This process's index along each grid axis (row-major linearisation).
    stride = 1
    for axis in reversed(range(len(a.grid))):
        lines.append(f"    %s{axis} = arith.constant {stride} : index\n"
                     f"    %g{axis} = arith.constant {a.grid[axis]} : index\n"
                     f"    %div{axis} = arith.divui %rank, %s{axis} : index\n"
                     f"    %idx{axis} = arith.remui %div{axis}, %g{axis} : index\n")
        stride *= a.grid[axis]

    def offset(name, axis, length):
        if axis is None:
            lines.append(f"    %{name} = arith.addi %c0, %c0 : index\n")
        else:
            lines.append(f"    %{name}_len = arith.constant {length} : index\n"
                         f"    %{name} = arith.muli %idx{axis}, %{name}_len : index\n")
    offset("ob", a.batch_axis, lb)
    offset("ohq", a.head_axis, lhq)
    offset("ohkv", a.head_axis, lhkv)
    offset("on", a.seq_axis, ln)
    lines += [f"    %ql = tensor.extract_slice %q[%ob, %ohq, %on, 0] [{lb}, {lhq}, {ln}, {d}] [1, 1, 1, 1] : {tq} to {lq}\n",
              f"    %kl = tensor.extract_slice %k[%ob, %ohkv, %on, 0] [{lb}, {lhkv}, {ln}, {d}] [1, 1, 1, 1] : {tk} to {lk}\n",
              f"    %vl = tensor.extract_slice %v[%ob, %ohkv, %on, 0] [{lb}, {lhkv}, {ln}, {dv}] [1, 1, 1, 1] : {tv} to {lv}\n",
              f"    %out = func.call @attention(%ql, %kl, %vl) : ({lq}, {lk}, {lv}) -> {lo}\n",
              f"    %refl = tensor.extract_slice %ref[%ob, %ohq, %on, 0] [{lb}, {lhq}, {ln}, {dv}] [1, 1, 1, 1] : {tensor_type(ref.shape, 'f32')} to {lr}\n",
              f"    %e = tensor.empty() : {to}\n",
              f"    %whole = swba.attention ins(%q, %k, %v : {tq}, {tk}, {tv}) outs(%e : {to})"
              f" block_size = {a.bs} window = {a.ws}{scale} -> {to}\n",
              f"    %wholel = tensor.extract_slice %whole[%ob, %ohq, %on, 0] [{lb}, {lhq}, {ln}, {dv}] [1, 1, 1, 1] : {to} to {lo}\n"]
    shape = (lb, lhq, ln, dv)
    count_mismatches("ref", "out", "refl", shape, dt, "f32", atol, lines)
    count_mismatches("whole", "out", "wholel", shape, dt, dt, atol, lines)

    # Process 0 adds up every process's counts and prints them, through
    # MPI_Send/MPI_Recv: MLIR 22 lowers no mpi.comm_size, and its OpenMPI
    # lowering of mpi.allreduce names a symbol (ompi_mpi_sum) libmpi lacks.
    lines += ["    %counts = memref.alloc() : memref<3xi64>\n",
              "    %c2i = arith.constant 2 : index\n",
              f"    %checked = arith.constant {lb * lhq * ln * dv} : i64\n",
              "    memref.store %checked, %counts[%c0] : memref<3xi64>\n",
              "    memref.store %ref_n, %counts[%c1] : memref<3xi64>\n",
              "    memref.store %whole_n, %counts[%c2i] : memref<3xi64>\n",
              "    %tag = arith.constant 7 : i32\n",
              "    %first = arith.cmpi eq, %rank, %c0 : index\n",
              "    scf.if %first {\n",
              f"      %size = arith.constant {int(np.prod(a.grid))} : index\n",
              "      %other = memref.alloc() : memref<3xi64>\n",
              "      scf.for %p = %c1 to %size step %c1 {\n",
              "        %p32 = arith.index_cast %p : index to i32\n",
              "        mpi.recv(%other, %tag, %p32, %comm) : memref<3xi64>, i32, i32\n",
              "        scf.for %i = %c0 to %c3i step %c1 {\n",
              "          %x = memref.load %other[%i] : memref<3xi64>\n",
              "          %y = memref.load %counts[%i] : memref<3xi64>\n",
              "          %z = arith.addi %x, %y : i64\n",
              "          memref.store %z, %counts[%i] : memref<3xi64>\n",
              "        }\n",
              "      }\n",
              "      memref.dealloc %other : memref<3xi64>\n",
              "      %t0 = memref.load %counts[%c0] : memref<3xi64>\n",
              "      %t1 = memref.load %counts[%c1] : memref<3xi64>\n",
              "      %t2 = memref.load %counts[%c2i] : memref<3xi64>\n",
              '      vector.print str "out checked "\n      vector.print %t0 : i64 punctuation <no_punctuation>\n',
              '      vector.print str " mismatches "\n      vector.print %t1 : i64 punctuation <no_punctuation>\n',
              '      vector.print str " unsplit mismatches "\n      vector.print %t2 : i64\n',
              "    } else {\n",
              "      %zero32 = arith.constant 0 : i32\n",
              "      mpi.send(%counts, %tag, %zero32, %comm) : memref<3xi64>, i32, i32\n",
              "    }\n",
              "    memref.dealloc %counts : memref<3xi64>\n",
              "    mpi.finalize\n",
              "    return\n  }\n}\n"]
    return "".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for x in ("b", "hq", "hkv", "n", "d", "dv", "bs", "ws"):
        ap.add_argument(f"--{x}", type=int, required=True)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], required=True)
    ap.add_argument("--scale", type=float)
    ap.add_argument("--grid", required=True, help="grid shape, e.g. 4 or 2x2")
    ap.add_argument("--batch-axis", type=int)
    ap.add_argument("--head-axis", type=int)
    ap.add_argument("--seq-axis", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kernel", required=True, help="where to write the annotated @attention")
    ap.add_argument("--main", required=True, help="where to write the MPI driver")
    a = ap.parse_args()
    a.grid = [int(g) for g in a.grid.split("x")]
    axes = [x for x in (a.batch_axis, a.head_axis, a.seq_axis) if x is not None]
    if sorted(axes) != list(range(len(a.grid))):
        ap.error("every grid axis must split exactly one of batch, heads, sequence")

    def parts(size, axis):
        if axis is None:
            return size
        if size % a.grid[axis]:
            ap.error(f"{size} does not split over {a.grid[axis]} devices")
        return size // a.grid[axis]
    local = (parts(a.b, a.batch_axis), parts(a.hq, a.head_axis),
             parts(a.hkv, a.head_axis), parts(a.n, a.seq_axis))

    rng = np.random.default_rng(a.seed)
    dt = a.dtype
    q = round_to(rng.standard_normal((a.b, a.hq, a.n, a.d)), dt)
    k = round_to(rng.standard_normal((a.b, a.hkv, a.n, a.d)), dt)
    v = round_to(rng.standard_normal((a.b, a.hkv, a.n, a.dv)), dt)
    ref, _ = attention_forward(q, k, v, a.bs, a.ws, a.scale)
    tq, tk, tv = (tensor_type(x.shape, dt) for x in (q, k, v))
    to = tensor_type((a.b, a.hq, a.n, a.dv), dt)
    with open(a.kernel, "w") as f:
        f.write(kernel_module(a, tq, tk, tv, to))
    with open(a.main, "w") as f:
        f.write(main_module(a, q, k, v, ref, local))


if __name__ == "__main__":
    main()
