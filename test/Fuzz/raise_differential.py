#!/usr/bin/env python3
"""Differential fuzzing of --raise-swba: raised programs must compute what they did.

Each case is a random masked-attention program in linalg/tensor/arith/math,
written the way importers emit it, with random shapes (queries shorter, as
long as or longer than the keys), a random layout (batch and heads collapsed
to 3-D or kept 4-D, k transposed by the contraction's maps or by
linalg.transpose), a random scale (on the scores, q or k; multiplied or
divided), a random mask form (added 0/-inf, added lowest finite value,
select with -inf or JAX's -0.7 times the largest f32) and softmax form
(linalg.softmax, decomposed, or decomposed with a product by the
reciprocal of the sum), the scores maybe reshaped through a flat
vector, the P.V product maybe transposed (O^T = V^T P^T, as
jax.nn.dot_product_attention computes it). The mask
is a sliding window block mask for a random block size and window, or one of
its near misses: an off-by-one bound, the wrong alignment, a comparison
flipped, a term that depends on the batch or on parity, no mask at all.
Some cases are grouped-query attention in JAX's layout, each kv head's
query heads folded into the rows of the products (near misses: a term
that depends on the query head, the rows of P.V split with the counts
swapped). Other near misses change the softmax axis, the contractions' initial values,
or the scale's sign.

Every case runs through `--swba-to-llvm` and `mlir-runner` twice, with and
without `--raise-swba` before; every printed element of the two runs must
agree (NaN with NaN). A case fails when they disagree, when either run
fails, or when swba-opt crashes. The summary counts how many cases were
raised, so that a pass that stops raising shows up too (`--min-raised`).
`--seed S --only I` reruns case I alone and prints its module.
"""

import concurrent.futures
import math
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner_args  # noqa: E402

NUM = re.compile(r"-?(?:nan|inf|[0-9][0-9.]*(?:e[-+]?[0-9]+)?)")


def fmt_float(x):
    return repr(float(x)) if x != int(x) else f"{float(x):.1f}"


class Builder:
    """Emits SSA lines with fresh names."""

    def __init__(self):
        self.lines, self.count = [], 0

    def fresh(self, stem):
        self.count += 1
        return f"%{stem}{self.count}"

    def emit(self, line):
        self.lines.append("  " + line)


def ident_map(rank):
    dims = ", ".join(f"d{i}" for i in range(rank))
    return f"affine_map<({dims}) -> ({dims})>"


def parallel(rank):
    return ", ".join(['"parallel"'] * rank)


def tensor(shape, elem="f32"):
    return "tensor<" + "x".join(str(d) for d in shape) + f"x{elem}>"


def pointwise(b, shape, ins, args, body):
    """One parallel linalg.generic over `shape` whose block takes `args`
    and runs `body` (lines ending in a value %r); `ins` lists (value, type,
    indexing map) triples."""
    rank = len(shape)
    t = tensor(shape)
    e, r = b.fresh("e"), b.fresh("pw")
    b.emit(f"{e} = tensor.empty() : {t}")
    maps = ", ".join([m for _, _, m in ins] + [ident_map(rank)])
    operands = ""
    if ins:
        operands = (f"ins({', '.join(v for v, _, _ in ins)} : "
                    f"{', '.join(ty for _, ty, _ in ins)}) ")
    b.emit(f"{r} = linalg.generic {{indexing_maps = [{maps}], iterator_types = "
           f"[{parallel(rank)}]}} {operands}outs({e} : {t}) {{")
    b.emit(f"^bb0({args}):")
    for line in body:
        b.emit("  " + line)
    b.emit("  linalg.yield %r : f32")
    b.emit(f"}} -> {t}")
    return r


def gen_input(b, shape, seed):
    """sin(seed * (flat index + 1)): pseudo-random, non-zero, reproducible."""
    body = ["%f0 = linalg.index 0 : index"]
    for i in range(1, len(shape)):
        body += [f"%x{i} = linalg.index {i} : index",
                 f"%c{i} = arith.constant {shape[i]} : index",
                 f"%m{i} = arith.muli %f{i - 1}, %c{i} : index",
                 f"%f{i} = arith.addi %m{i}, %x{i} : index"]
    body += [f"%fi = arith.index_cast %f{len(shape) - 1} : index to i64",
             "%ff = arith.sitofp %fi : i64 to f32",
             f"%sd = arith.constant {seed} : f32",
             "%a = arith.mulf %ff, %sd : f32",
             "%bb = arith.addf %a, %sd : f32",
             "%r = math.sin %bb : f32"]
    return pointwise(b, shape, [], "%out: f32", body)


def elementwise(b, src, shape, body):
    """`body` (lines using %in, ending in %r) applied to each element of src."""
    return pointwise(b, shape, [(src, tensor(shape), ident_map(len(shape)))],
                     "%in: f32, %out: f32", body)


class Mask:
    """The mask predicate over (batch, query i, key j), and whether it is a
    sliding window block mask (bottom-right aligned) of the whole program."""

    def __init__(self, rng, nq, nk):
        self.bs = rng.choice([1, 1, 2, 3, 4])
        self.ws = rng.choice([1, 2, 3, 5])
        self.off = nk - nq            # bottom-right alignment
        self.mutation = rng.choice(
            ["none"] * 6 + ["off-by-one-window", "off-by-one-offset",
                            "top-left", "strict-causal", "batch-term",
                            "parity", "no-mask", "wrong-block", "key-shift"])
        self.form = rng.choice(["add-select", "add-lowest", "select",
                                "add-select-uitofp", "select-jax", "select-big"])
        # where the predicate comes from: computed from linalg.index in the
        # masking op, or a dense i1 constant [Nq, Nk] broadcast over batch
        self.source = rng.choice(["index", "index", "dense"])
        self.nq, self.nk = nq, nk

    def params(self):
        """(query block, key block, window, query offset, key offset) of the
        mask as written, mutations applied; positions are i + query offset
        and j + key offset, both non-negative."""
        bs, ws, off, m = self.bs, self.ws, self.off, self.mutation
        if m == "off-by-one-window":
            ws += 1
        if m == "off-by-one-offset":
            off += 1
        if m == "top-left":
            off = 0
        koff = 1 if m == "key-shift" else max(-off, 0)
        return bs, bs + 1 if m == "wrong-block" else bs, ws, max(off, 0), koff

    def keep(self, g, i, j):
        """The predicate in Python, mirroring predicate()."""
        bsq, bsk, ws, qoff, koff = self.params()
        m = self.mutation
        qp, jp = i + qoff, j + koff
        qb, kb = qp // bsq, jp // bsk
        causal = kb < qb if m == "strict-causal" else kb <= qb
        keep = causal and (qb - kb) % (1 << 64) < ws
        if m == "batch-term":
            keep = keep or (g == 1 and j == max(-self.off, 0))
        elif m == "parity":
            keep = keep and (j % 2 == 0 or qp == jp)
        elif m == "no-mask":
            keep = True
        return keep

    def predicate(self, lines):
        """Lines computing %keep : i1 from %g, %i, %j (index)."""
        bsq, bsk, ws, qoff, koff = self.params()
        m = self.mutation
        lines.append(f"%cbs = arith.constant {bsq} : index")
        lines.append(f"%cbsu = arith.constant {bsk} : index")
        lines.append(f"%cws = arith.constant {ws} : index")
        lines.append(f"%coff = arith.constant {qoff} : index")
        lines.append(f"%ckoff = arith.constant {koff} : index")
        lines.append(f"%cneg = arith.constant {max(-self.off, 0)} : index")
        lines.append("%qp0 = arith.addi %i, %coff : index")
        lines.append("%jp0 = arith.addi %j, %ckoff : index")
        lines.append("%qb = arith.divui %qp0, %cbs : index")
        lines.append("%kb = arith.divui %jp0, %cbsu : index")
        cmp = "ult" if m == "strict-causal" else "ule"
        lines.append(f"%causal = arith.cmpi {cmp}, %kb, %qb : index")
        lines.append("%dist = arith.subi %qb, %kb : index")
        lines.append("%near = arith.cmpi ult, %dist, %cws : index")
        lines.append("%keep0 = arith.andi %causal, %near : i1")
        if m == "batch-term":
            lines.append("%g1 = arith.constant 1 : index")
            lines.append("%isg = arith.cmpi eq, %g, %g1 : index")
            lines.append("%isj0 = arith.cmpi eq, %j, %cneg : index")
            lines.append("%extra = arith.andi %isg, %isj0 : i1")
            lines.append("%keep = arith.ori %keep0, %extra : i1")
        elif m == "parity":
            lines.append("%two = arith.constant 2 : index")
            lines.append("%par = arith.remui %j, %two : index")
            lines.append("%z = arith.constant 0 : index")
            lines.append("%even = arith.cmpi eq, %par, %z : index")
            lines.append("%ieq = arith.cmpi eq, %qp0, %jp0 : index")
            lines.append("%either = arith.ori %even, %ieq : i1")
            lines.append("%keep = arith.andi %keep0, %either : i1")
        elif m == "no-mask":
            lines.append("%keep = arith.constant true")
        else:
            lines.append("%keep = arith.andi %keep0, %keep0 : i1")

    def apply(self, b, scores, shape):
        """The masked scores: one linalg.generic over the scores' shape."""
        rank = len(shape)
        if self.source == "dense":
            return self.apply_dense(b, scores, shape)
        lines = []
        lines.append("%g = linalg.index 0 : index")
        lines.append(f"%i = linalg.index {rank - 2} : index")
        lines.append(f"%j = linalg.index {rank - 1} : index")
        self.predicate(lines)
        return self.combine(b, scores, shape, lines)

    def apply_dense(self, b, scores, shape):
        """A dense<...> : tensor<Nq x Nk x i1> read through a broadcasting map
        (the predicate of batch 0; batch-term masks keep their batch term
        out, being batch-independent here)."""
        rank = len(shape)
        rows = []
        for i in range(self.nq):
            rows.append("[" + ", ".join("true" if self.keep(0, i, j) else "false"
                                        for j in range(self.nk)) + "]")
        c = b.fresh("maskc")
        ti1 = f"tensor<{self.nq}x{self.nk}xi1>"
        b.emit(f"{c} = arith.constant dense<[{', '.join(rows)}]> : {ti1}")
        dims = ", ".join(f"d{i}" for i in range(rank))
        mmap = f"affine_map<({dims}) -> (d{rank - 2}, d{rank - 1})>"
        return pointwise(b, shape, [(scores, tensor(shape), ident_map(rank)),
                                    (c, ti1, mmap)],
                         "%in: f32, %keep: i1, %out: f32", self.combine_lines())

    def combine(self, b, scores, shape, lines):
        return elementwise(b, scores, shape, lines + self.combine_lines())

    # form: (masking constant, how it is applied)
    FORMS = {
        "add-select": ("0xFF800000", "add"),
        "add-lowest": ("-3.40282347E+38", "add"),
        "select": ("0xFF800000", "select"),
        # JAX's -0.7 times the largest f32
        "select-jax": ("-2.38197633E+38", "select"),
        # large, but not at most half the lowest f32: not a masking value
        "select-big": ("-1.0E+30", "select"),
    }

    def combine_lines(self):
        if self.form == "add-select-uitofp":
            # log(keep): 0 where kept, -inf elsewhere
            return ["%ki = arith.extui %keep : i1 to i32",
                    "%kf = arith.uitofp %ki : i32 to f32",
                    "%lg = math.log %kf : f32",
                    "%r = arith.addf %in, %lg : f32"]
        value, how = self.FORMS[self.form]
        lines = [f"%hide = arith.constant {value} : f32"]
        if how == "add":
            lines += ["%zero = arith.constant 0.0 : f32",
                      "%neg = arith.select %keep, %zero, %hide : f32",
                      "%r = arith.addf %in, %neg : f32"]
        else:
            lines.append("%r = arith.select %keep, %in, %hide : f32")
        return lines

    def describe(self):
        return (f"bs={self.bs} ws={self.ws} off={self.off} "
                f"mutation={self.mutation} form={self.form} source={self.source}")


def generic_contraction(b, ins, oshape, maps, fill):
    """out[...] = sum over the last loop of a * b; `ins` two (value, shape)
    pairs, `maps` three indexing maps over rank(out) + 1 loops."""
    t_o = tensor(oshape)
    e, z, r = b.fresh("e"), b.fresh("z"), b.fresh("gc")
    b.emit(f"{e} = tensor.empty() : {t_o}")
    b.emit(f"{z} = linalg.fill ins({fill} : f32) outs({e} : {t_o}) -> {t_o}")
    iters = ", ".join(['"parallel"'] * len(oshape) + ['"reduction"'])
    b.emit(f"{r} = linalg.generic {{indexing_maps = [{', '.join(maps)}], "
           f"iterator_types = [{iters}]}} ins({ins[0][0]}, {ins[1][0]} : "
           f"{tensor(ins[0][1])}, {tensor(ins[1][1])}) outs({z} : {t_o}) {{")
    b.emit("^bb0(%a: f32, %bq: f32, %acc: f32):")
    b.emit("  %p = arith.mulf %a, %bq : f32")
    b.emit("  %s = arith.addf %acc, %p : f32")
    b.emit("  linalg.yield %s : f32")
    b.emit(f"}} -> {t_o}")
    return r


def matmul(b, lhs, rhs, lshape, rshape, oshape, transpose_rhs, fill, four_d):
    """lhs @ rhs (rhs transposed by the maps when transpose_rhs)."""
    if four_d:
        rmap = "(d0, d1, d3, d4)" if transpose_rhs else "(d0, d1, d4, d3)"
        loops = "(d0, d1, d2, d3, d4)"
        return generic_contraction(
            b, [(lhs, lshape), (rhs, rshape)], oshape,
            [f"affine_map<{loops} -> (d0, d1, d2, d4)>",
             f"affine_map<{loops} -> {rmap}>",
             f"affine_map<{loops} -> (d0, d1, d2, d3)>"], fill)
    t_o = tensor(oshape)
    e = b.fresh("e")
    z = b.fresh("z")
    r = b.fresh("mm")
    b.emit(f"{e} = tensor.empty() : {t_o}")
    b.emit(f"{z} = linalg.fill ins({fill} : f32) outs({e} : {t_o}) -> {t_o}")
    ins = f"ins({lhs}, {rhs} : {tensor(lshape)}, {tensor(rshape)})"
    if transpose_rhs:
        b.emit(f"{r} = linalg.batch_matmul indexing_maps = ["
               "affine_map<(b, m, n, k) -> (b, m, k)>, "
               "affine_map<(b, m, n, k) -> (b, n, k)>, "
               "affine_map<(b, m, n, k) -> (b, m, n)>] "
               f"{ins} outs({z} : {t_o}) -> {t_o}")
    else:
        b.emit(f"{r} = linalg.batch_matmul {ins} outs({z} : {t_o}) -> {t_o}")
    return r


def pv_transposed(b, p, v, pshape, vshape, oshape, fill, swapped):
    """O^T = V^T P^T as one contraction over [batch..., Dv, Nq] (P read as
    [batch..., key, query] when `swapped`: a near miss)."""
    rank = len(pshape)
    lead = [f"d{i}" for i in range(rank - 2)]
    dims = ", ".join(lead + ["e", "i", "j"])
    batch = ", ".join(lead + [""])
    return generic_contraction(
        b, [(v, vshape), (p, pshape)], oshape,
        [f"affine_map<({dims}) -> ({batch}j, e)>",
         f"affine_map<({dims}) -> ({batch}{'j, i' if swapped else 'i, j'})>",
         f"affine_map<({dims}) -> ({batch}e, i)>"], fill)


def softmax(b, x, shape, form, axis, sum_init):
    rank = len(shape)
    t = tensor(shape)
    if form == "linalg":
        e = b.fresh("e")
        r = b.fresh("sm")
        b.emit(f"{e} = tensor.empty() : {t}")
        b.emit(f"{r} = linalg.softmax dimension({axis}) ins({x} : {t}) "
               f"outs({e} : {t}) -> {t}")
        return r
    # decomposed over `axis`
    dims = [f"d{i}" for i in range(rank)]
    red = list(dims)
    red[axis] = "0"
    rshape = list(shape)
    rshape[axis] = 1
    t_r = tensor(rshape)
    full = ident_map(rank)
    rmap = f"affine_map<({', '.join(dims)}) -> ({', '.join(red)})>"
    iters_red = ", ".join('"reduction"' if i == axis else '"parallel"'
                          for i in range(rank))
    iters_par = ", ".join(['"parallel"'] * rank)
    er, ef = b.fresh("e"), b.fresh("e")
    b.emit(f"{er} = tensor.empty() : {t_r}")
    b.emit(f"{ef} = tensor.empty() : {t}")
    ninf, zero, init = b.fresh("c"), b.fresh("c"), b.fresh("c")
    b.emit(f"{ninf} = arith.constant 0xFF800000 : f32")
    b.emit(f"{zero} = arith.constant 0.0 : f32")
    b.emit(f"{init} = arith.constant {fmt_float(sum_init)} : f32")
    mi, mx = b.fresh("mi"), b.fresh("mx")
    b.emit(f"{mi} = linalg.fill ins({ninf} : f32) outs({er} : {t_r}) -> {t_r}")
    b.emit(f"{mx} = linalg.generic {{indexing_maps = [{full}, {rmap}], "
           f"iterator_types = [{iters_red}]}} ins({x} : {t}) outs({mi} : {t_r}) {{")
    b.emit("^bb0(%in: f32, %acc: f32):")
    b.emit("  %m = arith.maximumf %in, %acc : f32")
    b.emit("  linalg.yield %m : f32")
    b.emit(f"}} -> {t_r}")
    ex = b.fresh("ex")
    b.emit(f"{ex} = linalg.generic {{indexing_maps = [{full}, {rmap}, {full}], "
           f"iterator_types = [{iters_par}]}} ins({x}, {mx} : {t}, {t_r}) "
           f"outs({ef} : {t}) {{")
    b.emit("^bb0(%in: f32, %m: f32, %out: f32):")
    b.emit("  %d = arith.subf %in, %m : f32")
    b.emit("  %x = math.exp %d : f32")
    b.emit("  linalg.yield %x : f32")
    b.emit(f"}} -> {t}")
    si, sm = b.fresh("si"), b.fresh("sum")
    b.emit(f"{si} = linalg.fill ins({init} : f32) outs({er} : {t_r}) -> {t_r}")
    b.emit(f"{sm} = linalg.generic {{indexing_maps = [{full}, {rmap}], "
           f"iterator_types = [{iters_red}]}} ins({ex} : {t}) outs({si} : {t_r}) {{")
    b.emit("^bb0(%in: f32, %acc: f32):")
    b.emit("  %a = arith.addf %in, %acc : f32")
    b.emit("  linalg.yield %a : f32")
    b.emit(f"}} -> {t_r}")
    if form == "reciprocal":
        # 1 / sum once a row, then a product
        rc, er2 = b.fresh("rc"), b.fresh("e")
        b.emit(f"{er2} = tensor.empty() : {t_r}")
        b.emit(f"{rc} = linalg.generic {{indexing_maps = [{ident_map(rank)}, "
               f"{ident_map(rank)}], iterator_types = [{iters_par}]}} ins({sm} : "
               f"{t_r}) outs({er2} : {t_r}) {{")
        b.emit("^bb0(%in: f32, %out: f32):")
        b.emit("  %one = arith.constant 1.0 : f32")
        b.emit("  %r = arith.divf %one, %in : f32")
        b.emit("  linalg.yield %r : f32")
        b.emit(f"}} -> {t_r}")
        sm, op = rc, "arith.mulf"
    else:
        op = "arith.divf"
    p = b.fresh("p")
    b.emit(f"{p} = linalg.generic {{indexing_maps = [{full}, {rmap}, {full}], "
           f"iterator_types = [{iters_par}]}} ins({ex}, {sm} : {t}, {t_r}) "
           f"outs({ef} : {t}) {{")
    b.emit("^bb0(%in: f32, %s: f32, %out: f32):")
    b.emit(f"  %d = {op} %in, %s : f32")
    b.emit("  linalg.yield %d : f32")
    b.emit(f"}} -> {t}")
    return p


def transpose_op(b, x, shape, perm):
    """linalg.transpose of x; the result and its shape."""
    out = [shape[i] for i in perm]
    e, t = b.fresh("e"), b.fresh("tr")
    b.emit(f"{e} = tensor.empty() : {tensor(out)}")
    b.emit(f"{t} = linalg.transpose ins({x} : {tensor(shape)}) outs({e} : "
           f"{tensor(out)}) permutation = [{', '.join(map(str, perm))}]")
    return t, out


def main_module(b, o, shape):
    """The module whose @main runs `b`'s lines and prints `o` (of `shape`)."""
    buf, un = b.fresh("buf"), b.fresh("un")
    memref = "memref<" + "x".join(str(x) for x in shape) + "xf32>"
    b.emit(f"{buf} = bufferization.to_buffer {o} : {tensor(shape)} to {memref}")
    b.emit(f"{un} = memref.cast {buf} : {memref} to memref<*xf32>")
    b.emit(f"func.call @printMemrefF32({un}) : (memref<*xf32>) -> ()")
    b.emit("return")
    return ("func.func private @printMemrefF32(memref<*xf32>) "
            "attributes {llvm.emit_c_interface}\n\n"
            "func.func @main() {\n" + "\n".join(b.lines) + "\n}\n")


def gen_folded_case(rng):
    """Grouped-query attention in JAX's layout: each kv head's query heads
    folded into the rows of the products, [B * Hkv, rows, ...] with rows
    query-major (query * G + head) or head-major (head * Nq + query), each
    product in its own order; the scores as Q K^T or K Q^T; the mask and
    softmax on [B * Hkv, G, Nq, Nk] or on [Nq, B * Hkv * G, Nk] (the query
    heads merged with the kv heads again). Near misses add a term that
    depends on the query head, or split the rows of P.V with the two
    counts swapped."""
    bh, groups = rng.choice([1, 2, 3]), rng.choice([2, 3, 4])
    nk = rng.choice([1, 2, 3, 4, 5, 6, 8, 9, 12])
    nq = rng.choice([nk, nk, max(1, nk - rng.randint(1, 3)), nk + rng.randint(1, 2)])
    d, dv = rng.choice([1, 2, 4, 8]), rng.choice([1, 2, 4, 5])
    rows = nq * groups
    mask = Mask(rng, nq, nk)
    mask.source = "index"
    qk_order = rng.choice(["query", "query", "group"])
    pv_order = rng.choice(["query", "group", "group"])
    qk_form = rng.choice(["qk", "qk", "kq"])
    mid = rng.choice(["grouped", "grouped", "heads"])
    other = rng.choice(["none"] * 6 + ["group-term", "swapped-counts"])
    if other == "swapped-counts" and nq == groups:
        other = "none"
    scale = rng.choice([0.25, 0.5, 2.0])
    b = Builder()

    def order_shape(order, inner):
        return [bh, nq, groups, inner] if order == "query" else [bh, groups, nq, inner]

    def collapse_rows(x, shape):
        c = b.fresh("fold")
        b.emit(f"{c} = tensor.collapse_shape {x} [[0], [1, 2], [3]] : "
               f"{tensor(shape)} into {tensor([shape[0], shape[1] * shape[2], shape[3]])}")
        return c

    # q as [B * Hkv, G, Nq, D], folded in Q.K^T's order.
    q4 = gen_input(b, [bh, groups, nq, d], rng.choice([0.731, 0.413, 0.917]))
    q4s = [bh, groups, nq, d]
    if qk_order == "query":
        q4, q4s = transpose_op(b, q4, q4s, [0, 2, 1, 3])
    q = collapse_rows(q4, q4s)
    k = gen_input(b, [bh, nk, d], rng.choice([0.529, 0.377, 0.611]))
    v = gen_input(b, [bh, nk, dv], rng.choice([0.283, 0.853, 0.191]))
    zero = b.fresh("c")
    b.emit(f"{zero} = arith.constant 0.0 : f32")
    if qk_form == "qk":
        s, ss = matmul(b, q, k, [bh, rows, d], [bh, nk, d], [bh, rows, nk],
                       True, zero, False), [bh, rows, nk]
    else:
        qt, qts = transpose_op(b, q, [bh, rows, d], [0, 2, 1])
        s, ss = matmul(b, k, qt, [bh, nk, d], qts, [bh, nk, rows], False, zero,
                       False), [bh, nk, rows]
    s = elementwise(b, s, ss, [f"%c = arith.constant {fmt_float(scale)} : f32",
                               "%r = arith.mulf %in, %c : f32"])
    # The scores as [B * Hkv, G, Nq, Nk].
    if qk_form == "qk":
        s4s = order_shape(qk_order, nk)
        groups_of = "[[0], [1, 2], [3]]"
        to_grouped = [0, 2, 1, 3] if qk_order == "query" else None
    else:
        s4s = [bh, nk] + order_shape(qk_order, 0)[1:3]
        groups_of = "[[0], [1], [2, 3]]"
        to_grouped = [0, 3, 2, 1] if qk_order == "query" else [0, 2, 3, 1]
    s4 = b.fresh("unfold")
    b.emit(f"{s4} = tensor.expand_shape {s} {groups_of} output_shape "
           f"[{', '.join(map(str, s4s))}] : {tensor(ss)} into {tensor(s4s)}")
    if to_grouped:
        s4, s4s = transpose_op(b, s4, s4s, to_grouped)
    # Masked and normalized there, or as [Nq, B * Hkv * G, Nk].
    if mid == "heads":
        s4, hs = transpose_op(b, s4, s4s, [2, 0, 1, 3])
        s4 = collapse_rows(s4, hs)
        s4s = [nq, bh * groups, nk]
        lines = ["%g = linalg.index 1 : index", "%grp = linalg.index 1 : index",
                 "%i = linalg.index 0 : index", "%j = linalg.index 2 : index"]
    else:
        lines = ["%g = linalg.index 0 : index", "%grp = linalg.index 1 : index",
                 "%i = linalg.index 2 : index", "%j = linalg.index 3 : index"]
    mask.predicate(lines)
    if other == "group-term":
        # the query head's last key visible to head 1 only
        lines[-1] = lines[-1].replace("%keep =", "%keep1 =")
        lines += ["%h1 = arith.constant 1 : index",
                  "%ish = arith.cmpi eq, %grp, %h1 : index",
                  "%j0 = arith.constant 0 : index",
                  "%isj = arith.cmpi eq, %j, %j0 : index",
                  "%plus = arith.andi %ish, %isj : i1",
                  "%keep = arith.ori %keep1, %plus : i1"]
    if mask.mutation != "no-mask" or other == "group-term" or rng.random() < 0.5:
        s4 = mask.combine(b, s4, s4s, lines)
    p = softmax(b, s4, s4s, rng.choice(["linalg", "decomposed", "reciprocal"]),
                len(s4s) - 1, 0.0)
    if mid == "heads":
        back = b.fresh("heads")
        b.emit(f"{back} = tensor.expand_shape {p} [[0], [1, 2], [3]] output_shape "
               f"[{nq}, {bh}, {groups}, {nk}] : {tensor(s4s)} into "
               f"{tensor([nq, bh, groups, nk])}")
        s4s = [bh, groups, nq, nk]
        p, _ = transpose_op(b, back, [nq, bh, groups, nk], [1, 2, 0, 3])
    # P folded in P.V's order (its counts swapped: a near miss).
    if pv_order == "query":
        p, ps = transpose_op(b, p, s4s, [0, 2, 1, 3])
    else:
        ps = s4s
    p = collapse_rows(p, ps)
    if other == "swapped-counts":
        e4 = [bh, ps[2], ps[1], nk]
        x = b.fresh("swap")
        b.emit(f"{x} = tensor.expand_shape {p} [[0], [1, 2], [3]] output_shape "
               f"[{', '.join(map(str, e4))}] : {tensor([bh, rows, nk])} into {tensor(e4)}")
        p = collapse_rows(x, e4)
    pv = rng.choice(["normal", "transposed"])
    if pv == "normal":
        os_ = [bh, rows, dv]
        o = matmul(b, p, v, [bh, rows, nk], [bh, nk, dv], os_, False, zero, False)
    else:
        os_ = [bh, dv, rows]
        o = pv_transposed(b, p, v, [bh, rows, nk], [bh, nk, dv], os_, zero, False)
    text = main_module(b, o, os_)
    summary = (f"gqa=folded B*Hkv={bh} G={groups} Nq={nq} Nk={nk} D={d} Dv={dv} "
               f"{mask.describe()} scores {qk_form} rows {qk_order}-major, "
               f"mask on {mid}, P.V rows {pv_order}-major pv={pv} other={other}")
    return text, summary


def gen_case(rng):
    """A module whose @main prints the attention's output; its summary."""
    if rng.random() < 0.15:
        return gen_folded_case(rng)
    four_d = rng.random() < 0.4
    bsz, heads = rng.choice([1, 2]), rng.choice([1, 2, 3])
    nk = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16])
    nq = rng.choice([nk, nk, nk, max(1, nk - rng.randint(1, 4)),
                     nk + rng.randint(1, 3)])
    d, dv = rng.choice([1, 2, 3, 4, 8]), rng.choice([1, 2, 4, 5])
    lead = [bsz, heads] if four_d else [bsz * heads]
    qs, ks, vs = lead + [nq, d], lead + [nk, d], lead + [nk, dv]
    ss, os_ = lead + [nq, nk], lead + [nq, dv]
    rank = len(ss)
    mask = Mask(rng, nq, nk)
    scale_on = rng.choice(["scores", "q", "k", "none"])
    scale_op = rng.choice(["mulf", "divf"])
    scale = rng.choice([0.25, 0.5, 2.0, 0.125, 1.5])
    other = rng.choice(["none"] * 8 + ["negative-scale", "zero-scale",
                                       "softmax-axis", "scores-init",
                                       "output-init", "sum-init"])
    if other == "negative-scale":
        scale = -scale
    if other == "zero-scale":
        scale, scale_op = 0.0, "mulf"
    transpose_k = rng.choice(["maps", "maps", "op"]) if not four_d else "maps"
    sm_form = rng.choice(["linalg", "decomposed", "reciprocal"])

    # grouped-query attention (4-D only): k and v have fewer heads, repeated
    # up to q's by a broadcast and a collapse_shape, each kv head's copies
    # adjacent (repeat_interleave) or the heads tiled (repeat)
    gqa = "none"
    if four_d and rng.random() < 0.5:
        heads = rng.choice([2, 4, 6])
        hkv = rng.choice([h for h in (1, 2, 3) if heads % h == 0 and h < heads])
        gqa = rng.choice(["interleave", "interleave", "tile"])
        qs, ss, os_ = [bsz, heads, nq, d], [bsz, heads, nq, nk], [bsz, heads, nq, dv]

    b = Builder()
    q = gen_input(b, qs, rng.choice([0.731, 0.413, 0.917]))
    if gqa == "none":
        k = gen_input(b, ks, rng.choice([0.529, 0.377, 0.611]))
        v = gen_input(b, vs, rng.choice([0.283, 0.853, 0.191]))
    else:
        rep = heads // hkv

        def repeated(shape_kv, seed):
            x = gen_input(b, [bsz, hkv] + shape_kv, seed)
            if gqa == "interleave":
                big, dim = [bsz, hkv, rep] + shape_kv, 2
            else:
                big, dim = [bsz, rep, hkv] + shape_kv, 1
            e, r, c = b.fresh("e"), b.fresh("bc"), b.fresh("rep")
            b.emit(f"{e} = tensor.empty() : {tensor(big)}")
            b.emit(f"{r} = linalg.broadcast ins({x} : "
                   f"{tensor([bsz, hkv] + shape_kv)}) outs({e} : {tensor(big)}) "
                   f"dimensions = [{dim}]")
            b.emit(f"{c} = tensor.collapse_shape {r} [[0], [1, 2], [3], [4]] : "
                   f"{tensor(big)} into {tensor([bsz, heads] + shape_kv)}")
            return c

        k = repeated([nk, d], rng.choice([0.529, 0.377, 0.611]))
        v = repeated([nk, dv], rng.choice([0.283, 0.853, 0.191]))
        ks, vs = [bsz, heads, nk, d], [bsz, heads, nk, dv]
    c = f"arith.constant {fmt_float(scale)} : f32"

    def scaled(x, shape):
        return elementwise(b, x, shape, [f"%c = {c}",
                                         f"%r = arith.{scale_op} %in, %c : f32"])

    if scale_on == "q":
        q = scaled(q, qs)
    if scale_on == "k":
        k = scaled(k, ks)
    zero = b.fresh("c")
    b.emit(f"{zero} = arith.constant 0.0 : f32")
    sinit = zero
    if other == "scores-init":
        sinit = b.fresh("c")
        b.emit(f"{sinit} = arith.constant 0.5 : f32")
    if transpose_k == "op":
        kt, kt_shape = transpose_op(b, k, ks, [0, 2, 1])
        s = matmul(b, q, kt, qs, kt_shape, ss, False, sinit, four_d)
    else:
        s = matmul(b, q, k, qs, ks, ss, True, sinit, four_d)
    if scale_on == "scores":
        s = scaled(s, ss)
    # the scores reshaped through a flat vector: back to their shape, or
    # (4-D, one batch) with the unit batch dimension moved after the heads
    reshape = rng.choice(["none", "none", "none", "flat", "flat-move"])
    if reshape == "flat-move" and not (four_d and bsz == 1):
        reshape = "flat"
    if reshape != "none":
        total = 1
        for x in ss:
            total *= x
        to = [ss[1], 1] + ss[2:] if reshape == "flat-move" else ss
        group = "[[" + ", ".join(str(i) for i in range(len(ss))) + "]]"
        flat, back = b.fresh("flat"), b.fresh("back")
        b.emit(f"{flat} = tensor.collapse_shape {s} {group} : {tensor(ss)} "
               f"into tensor<{total}xf32>")
        b.emit(f"{back} = tensor.expand_shape {flat} {group} output_shape "
               f"[{', '.join(str(x) for x in to)}] : tensor<{total}xf32> "
               f"into {tensor(to)}")
        s = back
        if reshape == "flat-move":
            vv = b.fresh("vmove")
            vto = [vs[1], 1] + vs[2:]
            b.emit(f"{vv} = tensor.collapse_shape {v} [[0, 1], [2], [3]] : "
                   f"{tensor(vs)} into {tensor([vs[1]] + vs[2:])}")
            v2 = b.fresh("vmove")
            b.emit(f"{v2} = tensor.expand_shape {vv} [[0, 1], [2], [3]] "
                   f"output_shape [{', '.join(str(x) for x in vto)}] : "
                   f"{tensor([vs[1]] + vs[2:])} into {tensor(vto)}")
            v, vs = v2, vto
            ss, os_ = to, [ss[1], 1, nq, dv]
    if mask.mutation != "no-mask" or rng.random() < 0.5:
        s = mask.apply(b, s, ss)
    axis = rank - 1
    if other == "softmax-axis":
        axis = rank - 2
    p = softmax(b, s, ss, sm_form, axis, 1.0 if other == "sum-init" else 0.0)
    oinit = zero
    if other == "output-init":
        oinit = b.fresh("c")
        b.emit(f"{oinit} = arith.constant 0.25 : f32")
    pv = rng.choice(["normal", "normal", "transposed", "transposed-swapped"])
    if pv == "transposed-swapped" and nq != nk:
        pv = "transposed"
    if pv == "normal":
        o = matmul(b, p, v, ss, vs, os_, False, oinit, four_d)
    else:
        os_ = os_[:-2] + [dv, nq]
        o = pv_transposed(b, p, v, ss, vs, os_, oinit, pv == "transposed-swapped")
    text = main_module(b, o, os_)
    summary = (f"{'4-D' if four_d else '3-D'} q{qs} k{ks} v{vs} {mask.describe()} "
               f"scale={scale_op} {scale} on {scale_on} k^T by {transpose_k} "
               f"softmax={sm_form} gqa={gqa} scores-reshape={reshape} pv={pv} "
               f"other={other}")
    return text, summary


def parse(out):
    if "data =" not in out:
        return None
    return [float(x) for x in NUM.findall(out.split("data =", 1)[1])]


def agree(a, b, tol):
    if a is None or b is None or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif abs(x - y) > tol * max(1.0, abs(y)):
            return False
    return True


def run(cmds, text, timeout):
    """Runs `cmds` as a pipeline fed `text`; (ok, stdout, stderr)."""
    try:
        p1 = subprocess.run(cmds[0], input=text, capture_output=True,
                            text=True, timeout=timeout)
        if p1.returncode != 0:
            return False, p1.stdout, p1.stderr
        p2 = subprocess.run(cmds[1], input=p1.stdout, capture_output=True,
                            text=True, timeout=timeout)
        return p2.returncode == 0, p2.stdout, p1.stderr + p2.stderr
    except subprocess.TimeoutExpired:
        return False, "", "timed out"


def check(args, text):
    """(failure message or None, raised?)."""
    opt, runner = args.swba_opt, [args.mlir_runner, "-e", "main",
                                  "-entry-point-result=void",
                                  "-shared-libs=" + args.shared_libs]
    raised = subprocess.run([opt, "--raise-swba"], input=text,
                            capture_output=True, text=True, timeout=args.timeout)
    if raised.returncode != 0:
        return f"--raise-swba failed (exit {raised.returncode}):\n{raised.stderr}", False
    did_raise = "swba.attention" in raised.stdout
    # The raised module, printed, is lowered as it is (no second raising).
    ok_r, out_r, err_r = run([[opt, "--swba-to-llvm"], runner], raised.stdout,
                             args.timeout)
    ok_p, out_p, err_p = run([[opt, "--swba-to-llvm"], runner], text, args.timeout)
    if not ok_p:
        return f"the plain program failed:\n{err_p}", did_raise
    if not ok_r:
        return f"the raised program failed:\n{err_r}", did_raise
    a, b = parse(out_r), parse(out_p)
    if not agree(a, b, args.tolerance):
        return (f"outputs differ (raised: {did_raise}):\nraised {a}\nplain  {b}",
                did_raise)
    return None, did_raise


def main():
    ap = runner_args.parser(__doc__)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--min-raised", type=int, default=0,
                    help="fail unless at least this many cases were raised")
    args = runner_args.parse(ap)

    rng = random.Random(args.seed)
    cases = [gen_case(rng) for _ in range(args.cases)]
    indices = [args.only] if args.only is not None else range(args.cases)
    if args.only is not None:
        print(cases[args.only][0])
    start = time.time()
    failed, raised = 0, 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda i: (i, check(args, cases[i][0])), indices)
        for i, (msg, did_raise) in results:
            raised += did_raise
            if msg:
                failed += 1
                print(f"FAIL case {i} (--seed {args.seed} --only {i}): "
                      f"{cases[i][1]}\n{msg}\n", file=sys.stderr)
    n = len(indices)
    print(f"raise differential: seed {args.seed}, {n} cases, {raised} raised, "
          f"{failed} failed, {time.time() - start:.1f} s")
    if raised < args.min_raised:
        print(f"only {raised} cases raised, fewer than {args.min_raised}",
              file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
