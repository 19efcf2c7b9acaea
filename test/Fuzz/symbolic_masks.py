#!/usr/bin/env python3
"""Differential fuzzing of --raise-swba's proof for every length.

Each case is masked attention with dynamic query and key lengths whose
mask is a random scalar program over the query row i, the key j and the
two lengths (arith on index, i64, i32 or i16: sums, differences, products
and divisions by constants, floor and truncating divisions, remainders,
min/max, selects, comparisons, casts, integer floor division written in
f64 as torch-mlir writes it). Most are sliding window block masks written
in one of many equivalent forms (a fifth of them decode: a static count
of queries against dynamic keys); the others are near misses that are a
window at some lengths only (top-left alignment, a term on a length's
parity, a cut-off past a length, positions in i16, the lengths swapped),
among them deviations guarded by conditions on the lengths that the
pass's first evaluation does not meet, which only its proof can see.

The pass must raise only what it proves. For every case it raises, with
block size b and window w, this script evaluates the mask exactly as MLIR
defines the ops (two's complement wrap, truncating division) at every
pair of lengths 1 <= nq <= nk <= --small, and at rows of a few large
lengths, and fails when any pair differs from SWBA(b, w). A swba-opt
crash fails the case too. The summary counts the cases raised, so that a
pass that stops raising shows up (`--min-raised`).

    python3 test/Fuzz/symbolic_masks.py --swba-opt build/bin/swba-opt --seed 1 --cases 200
"""

import argparse
import math
import random
import re
import subprocess
import sys

WIDTH = {"index": 64, "i64": 64, "i32": 32, "i16": 16, "i1": 1}


def wrap(x, ty):
    w = WIDTH[ty]
    if w == 1:
        return x & 1
    x &= (1 << w) - 1
    return x - (1 << w) if x >> (w - 1) else x


def unsigned(x, ty):
    return x & ((1 << WIDTH[ty]) - 1)


class E:
    """A scalar expression: `op` applied to `args` in type `ty`."""

    def __init__(self, op, ty, *args, c=None, pred=None):
        self.op, self.ty, self.args, self.c, self.pred = op, ty, args, c, pred

    def eval(self, env):
        a = [x.eval(env) for x in self.args]
        op, ty = self.op, self.ty
        if op == "var":
            return env[self.c]
        if op == "const":
            return wrap(self.c, ty) if ty != "f64" else float(self.c)
        if op == "addi":
            return wrap(a[0] + a[1], ty)
        if op == "subi":
            return wrap(a[0] - a[1], ty)
        if op == "muli":
            return wrap(a[0] * a[1], ty)
        if op == "divsi":
            q = abs(a[0]) // abs(a[1])
            return wrap(q if (a[0] >= 0) == (a[1] > 0) else -q, ty)
        if op == "floordivsi":
            return wrap(a[0] // a[1], ty)
        if op == "remsi":
            r = abs(a[0]) % abs(a[1])
            return wrap(r if a[0] >= 0 else -r, ty)
        if op == "divui":
            return wrap(unsigned(a[0], ty) // unsigned(a[1], ty), ty)
        if op == "remui":
            return wrap(unsigned(a[0], ty) % unsigned(a[1], ty), ty)
        if op == "minsi":
            return min(a)
        if op == "maxsi":
            return max(a)
        if op == "select":
            return a[1] if a[0] else a[2]
        if op == "andi":
            return a[0] & a[1]
        if op == "ori":
            return a[0] | a[1]
        if op == "xori":
            return a[0] ^ a[1]
        if op == "cmpi":
            t = self.args[0].ty
            x, y = a
            if self.pred.startswith("u"):
                x, y = unsigned(x, t), unsigned(y, t)
            p = self.pred.lstrip("us")
            return int({"eq": x == y, "ne": x != y, "lt": x < y, "le": x <= y,
                        "gt": x > y, "ge": x >= y}[p])
        if op == "cast":  # index_cast / extsi / trunci: sign-extend or wrap
            return wrap(a[0], ty)
        if op == "sitofp":
            return float(a[0])
        if op == "divf":
            return a[0] / a[1]
        if op == "floor":
            return float(math.floor(a[0]))
        if op == "fptosi":
            return wrap(int(a[0]), ty)
        raise ValueError(op)


def var(name):
    return E("var", "index", c=name)


def const(v, ty):
    return E("const", ty, c=v)


def binop(op, x, y):
    return E(op, x.ty, x, y)


def cmp(pred, x, y):
    return E("cmpi", "i1", x, y, pred=pred)


def cast(x, ty):
    return x if x.ty == ty else E("cast", ty, x)


def emit(root):
    """MLIR lines computing `root` in a linalg body, and its SSA name."""
    lines, names, count = [], {}, [0]

    def go(e):
        if id(e) in names:
            return names[id(e)]
        if e.op == "var":
            return "%" + e.c
        args = [go(a) for a in e.args]
        count[0] += 1
        n = f"%x{count[0]}"
        ty = e.ty
        if e.op == "const":
            if ty == "f64":
                lines.append(f"{n} = arith.constant {float(e.c)!r} : f64")
            elif ty == "i1":
                lines.append(f"{n} = arith.constant {'true' if e.c else 'false'}")
            else:
                lines.append(f"{n} = arith.constant {e.c} : {ty}")
        elif e.op in ("addi", "subi", "muli", "divsi", "floordivsi", "remsi",
                      "divui", "remui", "minsi", "maxsi", "andi", "ori", "xori",
                      "divf"):
            lines.append(f"{n} = arith.{e.op} {args[0]}, {args[1]} : {ty}")
        elif e.op == "select":
            lines.append(f"{n} = arith.select {args[0]}, {args[1]}, {args[2]} : {ty}")
        elif e.op == "cmpi":
            lines.append(f"{n} = arith.cmpi {e.pred}, {args[0]}, {args[1]} : "
                         f"{e.args[0].ty}")
        elif e.op == "cast":
            src = e.args[0].ty
            if "index" in (src, ty):
                kind = "index_cast"
            else:
                kind = "extsi" if WIDTH[ty] > WIDTH[src] else "trunci"
            lines.append(f"{n} = arith.{kind} {args[0]} : {src} to {ty}")
        elif e.op == "sitofp":
            lines.append(f"{n} = arith.sitofp {args[0]} : {e.args[0].ty} to f64")
        elif e.op == "floor":
            lines.append(f"{n} = math.floor {args[0]} : f64")
        elif e.op == "fptosi":
            lines.append(f"{n} = arith.fptosi {args[0]} : f64 to {ty}")
        else:
            raise ValueError(e.op)
        names[id(e)] = n
        return n

    return lines, go(root)


# --- masks ------------------------------------------------------------------


def position(rng, ty, top_left=False, swapped=False):
    """The query's position in type `ty`: i + nk - nq in one of its forms."""
    i, nq, nk = (cast(var(x), ty) for x in ("i", "nq", "nk"))
    if swapped:
        nq, nk = nk, nq
    if top_left:
        return i
    form = rng.randrange(3)
    if form == 0:
        return binop("addi", i, binop("subi", nk, nq))
    if form == 1:
        return binop("addi", binop("subi", i, nq), nk)
    return binop("subi", nk, binop("subi", nq, i))


def frame(rng, x, bs):
    """floor(x / bs) for x >= 0, in one of its forms."""
    if bs == 1 and rng.random() < 0.5:
        return x
    ty = x.ty
    form = rng.randrange(5)
    if form == 0:
        return binop("divsi", x, const(bs, ty))
    if form == 1:
        return binop("floordivsi", x, const(bs, ty))
    if form == 2:
        return binop("divui", x, const(bs, ty))
    if form == 3:
        # sitofp and fptosi take integers, not index.
        wide = cast(x, "i64") if ty == "index" else x
        f = E("floor", "f64", binop("divf", E("sitofp", "f64", wide), const(bs, "f64")))
        return cast(E("fptosi", wide.ty, f), ty)
    # (x - x mod bs) / bs, the remainder signed or not
    r = binop(rng.choice(["remsi", "remui"]), x, const(bs, ty))
    return binop("divsi", binop("subi", x, r), const(bs, ty))


def window_conditions(rng, fq, fk, ws):
    """(fk <= fq, fq - fk < ws) in one of their forms each."""
    ty = fq.ty
    d = binop("subi", fq, fk)
    past = rng.choice([
        lambda: cmp("sle", fk, fq), lambda: cmp("sge", fq, fk),
        lambda: cmp("sge", d, const(0, ty)),
        lambda: E("xori", "i1", cmp("sgt", fk, fq), const(1, "i1")),
    ])()
    near = rng.choice([
        lambda: cmp("slt", d, const(ws, ty)), lambda: cmp("sle", d, const(ws - 1, ty)),
        lambda: cmp("sgt", fk, binop("subi", fq, const(ws, ty))),
        lambda: cmp("sgt", binop("addi", fk, const(ws, ty)), fq),
        lambda: cmp("ult", d, const(ws, ty)),
    ])()
    return past, near


def both(rng, a, b):
    form = rng.randrange(3)
    if form == 0:
        return E("andi", "i1", a, b)
    if form == 1:
        return E("select", "i1", a, b, const(0, "i1"))
    na = E("xori", "i1", a, const(1, "i1"))
    nb = E("xori", "i1", b, const(1, "i1"))
    return E("xori", "i1", E("ori", "i1", na, nb), const(1, "i1"))


def length_guard(rng):
    """A condition on the lengths that the pass's first evaluation (at
    nk = 2 C + 257, odd, and nq about half of it, C the mask's largest
    constant) does not meet, so that only the proof sees it."""
    nq, nk = var("nq"), var("nk")
    c = lambda v: const(v, "index")
    return rng.choice([
        lambda: cmp("eq", binop("subi", nk, nq), c(3)),
        lambda: cmp("eq", nq, c(1)),
        lambda: cmp("slt", nk, c(40)),
        lambda: cmp("eq", nk, binop("muli", nq, c(2))),
        lambda: cmp("eq", binop("remsi", nk, c(2)), c(0)),
    ])()


def gen_mask(rng):
    """(the visibility expression, what it is)."""
    bs = rng.choice([1, 1, 2, 3, 4, 8, 16, 64, 1024])
    ws = rng.randint(1, 6)
    ty = rng.choice(["index", "index", "i64", "i32"])
    miss = rng.random() < 0.35
    kind = rng.choice(["top-left", "parity", "cut-off", "i16", "swapped",
                       "off-by-one", "guarded", "guarded", "guarded"]) if miss else "window"
    if kind == "i16":
        ty = "i16"
    qpos = position(rng, ty, top_left=kind == "top-left", swapped=kind == "swapped")
    j = cast(var("j"), ty)
    fq, fk = frame(rng, qpos, bs), frame(rng, j, bs)
    past, near = window_conditions(rng, fq, fk, ws)
    vis = both(rng, past, near)
    if kind == "parity":
        odd = cmp("eq", binop("remsi", var("nk"), const(2, "index")), const(1, "index"))
        vis = E("andi", "i1", vis, E("xori", "i1", odd, const(1, "i1")))
    elif kind == "cut-off":
        far = cmp("sgt", var("nk"), const(rng.choice([100, 1000, 70000]), "index"))
        vis = E("select", "i1", far, cmp("eq", var("i"), var("j")), vis)
    elif kind == "off-by-one":
        extra = cmp("eq", binop("addi", var("j"), const(bs * ws + 1, "index")), var("i"))
        vis = E("ori", "i1", vis, extra)
    elif kind == "guarded":
        # A window at every length but those of the guard, where a pair
        # more is seen, the diagonal hidden, or the queries aligned top-left.
        guard = length_guard(rng)
        i, jj = var("i"), var("j")
        dev = rng.choice(["extra", "hide", "top-left"])
        if dev == "extra":
            other = E("ori", "i1", vis,
                      cmp("eq", binop("addi", jj, const(bs * ws, "index")), i))
        elif dev == "hide":
            other = E("andi", "i1", vis, cmp("ne", i, jj))
        else:
            tq, tk = frame(rng, cast(i, ty), bs), frame(rng, j, bs)
            other = both(rng, *window_conditions(rng, tq, tk, ws))
        vis = E("select", "i1", guard, other, vis)
        kind = f"guarded {dev}"
    elif rng.random() < 0.3:
        # A clamp that changes nothing: max(fq - ws + 1, 0) <= fk.
        lo = E("maxsi", ty, binop("subi", fq, const(ws - 1, ty)), const(0, ty))
        vis = both(rng, cmp("sle", lo, fk), cmp("sle", fk, fq))
    return vis, f"{kind} bs={bs} ws={ws} {ty}"


# --- the module -------------------------------------------------------------

TEMPLATE = """#qmap = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#kmap = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#smap = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#pmap = affine_map<(b, h, i, e, j) -> (b, h, i, j)>
#vmap = affine_map<(b, h, i, e, j) -> (b, h, j, e)>
#omap = affine_map<(b, h, i, e, j) -> (b, h, i, e)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
module {
func.func @main(%q: QTYPE, %k: tensor<1x2x?x4xf32>, %v: tensor<1x2x?x4xf32>) -> QTYPE {
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %nq = tensor.dim %q, %c2 : QTYPE
  %nk = tensor.dim %k, %c2 : tensor<1x2x?x4xf32>
  %s0 = tensor.empty(%nq, %nk) : tensor<1x2x?x?xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x?x?xf32>) -> tensor<1x2x?x?xf32>
  %s = linalg.generic {indexing_maps = [#qmap, #kmap, #smap], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : QTYPE, tensor<1x2x?x4xf32>) outs(%sz : tensor<1x2x?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %acc2 = arith.addf %acc, %p : f32
    linalg.yield %acc2 : f32
  } -> tensor<1x2x?x?xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x?x?xf32>) outs(%s0 : tensor<1x2x?x?xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
BODY
    %r = arith.select VISIBLE, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x?x?xf32>
  %p = linalg.softmax dimension(3) ins(%masked : tensor<1x2x?x?xf32>) outs(%s0 : tensor<1x2x?x?xf32>) -> tensor<1x2x?x?xf32>
  %o0 = tensor.empty(QSIZES) : QTYPE
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : QTYPE) -> QTYPE
  %o = linalg.generic {indexing_maps = [#pmap, #vmap, #omap], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %v : tensor<1x2x?x?xf32>, tensor<1x2x?x4xf32>) outs(%oz : QTYPE) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %acc2 = arith.addf %acc, %m : f32
    linalg.yield %acc2 : f32
  } -> QTYPE
  return %o : QTYPE
}
}
"""

RAISED = re.compile(r"swba\.attention .*block_size = (\d+) window = (\d+)")


def swba(i, j, nq, nk, bs, ws):
    fq, fk = (i + nk - nq) // bs, j // bs
    return fk <= fq and fq - fk < ws


def first_difference(vis, bs, ws, small, rng, static_nq=None):
    """A (nq, nk, i, j) where the mask and SWBA(bs, ws) differ, or None
    (queries `static_nq` where their count is static)."""
    def differs(nq, nk, i, j):
        return bool(vis.eval({"i": i, "j": j, "nq": nq, "nk": nk})) != \
            swba(i, j, nq, nk, bs, ws)

    for nk in range(1, small + 1):
        for nq in ([static_nq] if static_nq and static_nq <= nk else
                   [] if static_nq else range(1, nk + 1)):
            for i in range(nq):
                for j in range(nk):
                    if differs(nq, nk, i, j):
                        return nq, nk, i, j
    big = 1 << 30
    pairs = [(big, big), (40000, 40000), (70001, 70001), (3, big),
             (1 << 16, 1 << 17), (big - 5, big)]
    if static_nq:
        pairs = [(static_nq, nk) for _, nk in pairs]
    for nq, nk in pairs:
        for _ in range(24):
            i = rng.choice([0, nq - 1, rng.randrange(nq)])
            qpos = i + nk - nq
            for j in {0, nk - 1, min(qpos, nk - 1),
                      max(0, qpos - bs * ws - 2), rng.randrange(nk)}:
                for jj in range(max(0, j - 3), min(nk, j + 4)):
                    if differs(nq, nk, i, jj):
                        return nq, nk, i, jj
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swba-opt", default="swba-opt")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--small", type=int, default=16,
                        help="check every pair of lengths up to this")
    parser.add_argument("--min-raised", type=float, default=0.0,
                        help="fail when fewer window cases than this share are raised")
    parser.add_argument("--only", type=int, help="run case I alone and print it")
    parser.add_argument("--why", action="store_true",
                        help="print why each window case left alone was")
    args = parser.parse_args()
    failures, raised, windows, raised_windows = 0, 0, 0, 0
    for case in range(args.cases):
        rng = random.Random(args.seed * 1000003 + case)
        vis, what = gen_mask(rng)
        # A fifth of the cases decode: a static count of queries (one
        # token, or a few) against a dynamic cache.
        static_nq = rng.choice([1, 2, 4, 16]) if rng.random() < 0.2 else None
        if static_nq:
            what += f" nq={static_nq}"
        if args.only is not None and case != args.only:
            continue
        lines, name = emit(vis)
        qtype = f"tensor<1x2x{static_nq or '?'}x4xf32>"
        text = TEMPLATE.replace("BODY", "\n".join("    " + l for l in lines))
        text = text.replace("VISIBLE", name).replace("QTYPE", qtype)
        text = text.replace("QSIZES", "" if static_nq else "%nq")
        if args.only is not None:
            print(text)
        proc = subprocess.run([args.swba_opt, "--raise-swba",
                               "--remarks-filter-missed=raise-swba", "-"],
                              input=text, capture_output=True, text=True)
        window = what.startswith("window")
        windows += window
        if proc.returncode != 0:
            failures += 1
            print(f"case {case} ({what}): swba-opt failed: {proc.stderr[-400:]}")
            continue
        m = RAISED.search(proc.stdout)
        if not m:
            if args.only is not None or (args.why and window):
                reason = re.search(r'Reason="(.*)"', proc.stderr)
                print(f"case {case} ({what}) left alone: "
                      f"{reason.group(1) if reason else proc.stderr[-300:]}")
            continue
        raised += 1
        raised_windows += window
        bs, ws = int(m.group(1)), int(m.group(2))
        diff = first_difference(vis, bs, ws, args.small, rng, static_nq)
        if diff:
            failures += 1
            print(f"case {case} ({what}): raised as block_size {bs} window {ws}, "
                  f"but the mask differs at nq, nk, i, j = {diff}")
    share = raised_windows / max(windows, 1)
    print(f"{args.cases} cases, {raised} raised ({raised_windows} of {windows} "
          f"windows), {failures} failures")
    if failures or share < args.min_raised:
        sys.exit(1)


if __name__ == "__main__":
    main()
