#!/usr/bin/env python3
"""--raise-swba decides a mask the same whether it evaluates every (query,
key) pair or decides keys a block at a time by interval bounds.

Each case is a masked attention (4-D, 1 x 1 heads, head dim 2) whose mask
is computed from linalg.index: a sliding window block mask written in one
of several arithmetic forms (unsigned or signed division, floor division,
subtraction then compare, i32 or f32 positions, min/max; a token window
as one f32 product that changes sign at both edges), or a random
expression over the query i and key j (add, sub, mul, div, rem, floor div,
min, max by constants; signed, unsigned and float comparisons, the floats
through products, quotients, sums and rounding; and, or, xor, select; i32
arithmetic that may wrap), for Nq and Nk of tens to
hundreds of keys. Every case runs through `swba-opt --raise-swba` with
`mask-tile=0` (every pair one by one) and with small tiles; the raised op
(or its absence) must be the same, and a left-alone case must give the
same reason where both reasons come from the same row's range.
`--seed S --only I` prints case I.
"""

import argparse
import random
import subprocess
import sys

TEMPLATE = """func.func @f(%q: tensor<1x1x{nq}x2xf32>, %k: tensor<1x1x{nk}x2xf32>, %v: tensor<1x1x{nk}x2xf32>) -> tensor<1x1x{nq}x2xf32> {{
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x1x{nq}x{nk}xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x1x{nq}x{nk}xf32>) -> tensor<1x1x{nq}x{nk}xf32>
  %s = linalg.generic {{indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%q, %k : tensor<1x1x{nq}x2xf32>, tensor<1x1x{nk}x2xf32>) outs(%sz : tensor<1x1x{nq}x{nk}xf32>) {{
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }} -> tensor<1x1x{nq}x{nk}xf32>
  %x = linalg.generic {{indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%s : tensor<1x1x{nq}x{nk}xf32>) outs(%se : tensor<1x1x{nq}x{nk}xf32>) {{
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
{body}
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  }} -> tensor<1x1x{nq}x{nk}xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x1x{nq}x{nk}xf32>) outs(%se : tensor<1x1x{nq}x{nk}xf32>) -> tensor<1x1x{nq}x{nk}xf32>
  %oe = tensor.empty() : tensor<1x1x{nq}x2xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x1x{nq}x2xf32>) -> tensor<1x1x{nq}x2xf32>
  %o = linalg.generic {{indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%p, %v : tensor<1x1x{nq}x{nk}xf32>, tensor<1x1x{nk}x2xf32>) outs(%oz : tensor<1x1x{nq}x2xf32>) {{
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }} -> tensor<1x1x{nq}x2xf32>
  return %o : tensor<1x1x{nq}x2xf32>
}}
"""


class Body:
    def __init__(self):
        self.lines, self.count = [], 0

    def op(self, text, ty):
        self.count += 1
        name = f"%t{self.count}"
        self.lines.append(f"    {name} = {text} : {ty}")
        return name

    def const(self, value, ty):
        self.count += 1
        name = f"%c{self.count}"
        self.lines.append(f"    {name} = arith.constant {value} : {ty}")
        return name


def swba_form(rng, b, nq, nk):
    """keep for a sliding window block mask, bottom-right aligned, in one of
    several spellings; sometimes off by one (a near miss)."""
    bs, ws = rng.choice([1, 1, 2, 3, 5, 8]), rng.choice([1, 2, 3, 7, 16])
    off = nk - nq + rng.choice([0, 0, 0, 0, 1, -1])
    form = rng.choice(["unsigned", "signed", "floor", "i32", "f32", "f32band"])
    if form in ("unsigned", "signed", "floor"):
        q = b.op(f"arith.addi %i, {b.const(max(off, 0), 'index')}", "index")
        k = b.op(f"arith.addi %j, {b.const(max(-off, 0), 'index')}", "index")
        ty = "index"
    elif form == "i32":
        qi = b.op("arith.index_cast %i", "index to i32")
        ki = b.op("arith.index_cast %j", "index to i32")
        q = b.op(f"arith.addi {qi}, {b.const(off, 'i32')}", "i32")
        k = ki
        ty = "i32"
    elif form == "f32band":
        # A token window as one product that changes sign at both of its
        # edges: d (d - (ws - 1)) <= 0 iff 0 <= d <= ws - 1, d = i' - j.
        bs = 1
        qf, kf = (b.op(f"arith.sitofp {b.op(f'arith.index_cast %{x}', 'index to i64')}",
                       "i64 to f32") for x in "ij")
        qf = b.op(f"arith.addf {qf}, {b.const(float(off), 'f32')}", "f32")
        d = b.op(f"arith.subf {qf}, {kf}", "f32")
        e = b.op(f"arith.subf {d}, {b.const(float(ws - 1), 'f32')}", "f32")
        p = b.op(f"arith.mulf {d}, {e}", "f32")
        return (b.op(f"arith.cmpf ole, {p}, {b.const(0.0, 'f32')}", "f32"),
                (bs, ws, off, form))
    else:
        qf = b.op("arith.index_cast %i", "index to i64")
        kf = b.op("arith.index_cast %j", "index to i64")
        qf = b.op(f"arith.sitofp {qf}", "i64 to f32")
        kf = b.op(f"arith.sitofp {kf}", "i64 to f32")
        qf = b.op(f"arith.addf {qf}, {b.const(float(off), 'f32')}", "f32")
        # frame = floor(p / bs), or p times 1 / bs (inexact for bs = 3 and
        # 5: a near miss where the product rounds down past a frame's
        # start), rounded down by floor or, for p >= 0, trunc.
        if rng.random() < 0.5:
            bsf = b.const(float(bs), "f32")
            scaled = [b.op(f"arith.divf {p}, {bsf}", "f32") for p in (qf, kf)]
        else:
            inv = b.const(repr(1.0 / bs), "f32")
            scaled = [b.op(f"arith.mulf {p}, {inv}", "f32") for p in (qf, kf)]
        down = "math.floor" if off < 0 else rng.choice(["math.floor", "math.trunc"])
        qb, kb = (b.op(f"{down} {x}", "f32") for x in scaled)
        d = b.op(f"arith.subf {qb}, {kb}", "f32")
        ge = b.op(f"arith.cmpf oge, {d}, {b.const(0.0, 'f32')}", "f32")
        lt = b.op(f"arith.cmpf olt, {d}, {b.const(float(ws), 'f32')}", "f32")
        return b.op(f"arith.andi {ge}, {lt}", "i1"), (bs, ws, off, form)
    div = {"unsigned": "divui", "signed": "divsi", "floor": "floordivsi",
           "i32": "divsi"}[form]
    cbs = b.const(bs, ty)
    qb = b.op(f"arith.{div} {q}, {cbs}", ty)
    kb = b.op(f"arith.{div} {k}, {cbs}", ty)
    d = b.op(f"arith.subi {qb}, {kb}", ty)
    if form == "unsigned":
        causal = b.op(f"arith.cmpi ule, {kb}, {qb}", ty)
        near = b.op(f"arith.cmpi ult, {d}, {b.const(ws, ty)}", ty)
    else:
        causal = b.op(f"arith.cmpi sge, {d}, {b.const(0, ty)}", ty)
        near = b.op(f"arith.cmpi slt, {d}, {b.const(ws, ty)}", ty)
    return b.op(f"arith.andi {causal}, {near}", "i1"), (bs, ws, off, form)


def random_int(rng, b, depth, ty):
    """A random integer expression of i and j in `ty` (index or i32)."""
    if depth == 0 or rng.random() < 0.25:
        leaf = rng.choice(["i", "j", "c"])
        if leaf == "c":
            return b.const(rng.randint(-40, 300), ty)
        if ty == "index":
            return f"%{leaf}"
        return b.op(f"arith.index_cast %{leaf}", f"index to {ty}")
    kind = rng.choice(["addi", "subi", "muli", "divsi", "divui", "remsi",
                       "remui", "floordivsi", "minsi", "maxsi", "select"])
    a = random_int(rng, b, depth - 1, ty)
    if kind in ("divsi", "divui", "remsi", "remui", "floordivsi"):
        c = b.const(rng.choice([1, 2, 3, 5, 7, 16, 64]), ty)
        return b.op(f"arith.{kind} {a}, {c}", ty)
    if kind == "muli":
        c = b.const(rng.choice([-3, -1, 2, 3, 1000003]), ty)
        return b.op(f"arith.muli {a}, {c}", ty)
    if kind == "select":
        cond = random_bool(rng, b, depth - 1)
        other = random_int(rng, b, depth - 1, ty)
        return b.op(f"arith.select {cond}, {a}, {other}", ty)
    other = random_int(rng, b, depth - 1, ty)
    return b.op(f"arith.{kind} {a}, {other}", ty)


def random_float(rng, b, x, depth):
    """`x` (f32) through random float arithmetic: products and quotients by
    constants or by each other (divisors that may hold 0), rounding to
    integers, sums."""
    for _ in range(rng.randint(0, depth)):
        kind = rng.choice(["mulc", "divc", "mulx", "divx", "round", "addc"])
        if kind in ("mulc", "divc"):
            c = b.const(rng.choice(["-2.5", "-1.0", "0.5", "3.0", "0.1", "7.0"]), "f32")
            x = b.op(f"arith.{kind[:3]}f {x}, {c}", "f32")
        elif kind in ("mulx", "divx"):
            y = b.op(f"arith.addf {x}, {b.const(rng.choice(['-3.0', '0.5', '2.0']), 'f32')}", "f32")
            x = b.op(f"arith.{kind[:3]}f {x}, {y}", "f32")
        elif kind == "round":
            x = b.op(f"math.{rng.choice(['floor', 'ceil', 'round', 'roundeven', 'trunc'])} {x}", "f32")
        else:
            x = b.op(f"arith.addf {x}, {b.const(rng.choice(['-0.5', '1.0', '100.0']), 'f32')}", "f32")
    return x


PREDICATES = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]


def random_bool(rng, b, depth):
    kind = rng.choice(["cmpi", "cmpi", "cmpi", "cmpf", "and", "or", "xor"])
    if depth == 0 or kind in ("cmpi", "cmpf"):
        ty = rng.choice(["index", "index", "i32"])
        x = random_int(rng, b, max(depth, 1), ty)
        y = random_int(rng, b, max(depth, 1) - 1, ty)
        if kind == "cmpf":
            xf = b.op(f"arith.sitofp {b.op(f'arith.index_cast {x}', f'{ty} to i64') if ty == 'index' else x}",
                      f"{'i64' if ty == 'index' else ty} to f32")
            yf = b.op(f"arith.sitofp {b.op(f'arith.index_cast {y}', f'{ty} to i64') if ty == 'index' else y}",
                      f"{'i64' if ty == 'index' else ty} to f32")
            xf, yf = random_float(rng, b, xf, depth), random_float(rng, b, yf, depth)
            pred = rng.choice(["olt", "ole", "ogt", "oge", "oeq", "une", "ult"])
            return b.op(f"arith.cmpf {pred}, {xf}, {yf}", "f32")
        return b.op(f"arith.cmpi {rng.choice(PREDICATES)}, {x}, {y}", ty)
    x, y = random_bool(rng, b, depth - 1), random_bool(rng, b, depth - 1)
    return b.op(f"arith.{kind}i {x}, {y}", "i1")


def gen_case(rng):
    nk = rng.choice([24, 40, 64, 100, 137, 256, 300])
    nq = rng.choice([nk, nk, max(1, nk - rng.randint(1, 20))])
    b = Body()
    what = rng.random()
    if what < 0.55:
        keep, info = swba_form(rng, b, nq, nk)
        desc = "swba bs={} ws={} off={} form={}".format(*info)
        if rng.random() < 0.3:
            # one pair flipped
            r, c = rng.randrange(nq), rng.randrange(nk)
            ir = b.op(f"arith.cmpi eq, %i, {b.const(r, 'index')}", "index")
            jc = b.op(f"arith.cmpi eq, %j, {b.const(c, 'index')}", "index")
            keep = b.op(f"arith.xori {keep}, {b.op(f'arith.andi {ir}, {jc}', 'i1')}", "i1")
            desc += f" flipped ({r}, {c})"
    else:
        keep = random_bool(rng, b, rng.randint(1, 3))
        desc = "random"
    b.lines.append(f"    %keep = arith.andi {keep}, {keep} : i1")
    return TEMPLATE.format(nq=nq, nk=nk, body="\n".join(b.lines)), desc


def decide(swba_opt, text, tile):
    r = subprocess.run([swba_opt, f"--raise-swba=mask-tile={tile}",
                        "--remarks-filter-missed=raise-swba"],
                       input=text, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return None, r.stderr
    op = [l.strip() for l in r.stdout.splitlines() if "swba.attention" in l]
    reasons = [l.split('Reason="', 1)[1] for l in r.stderr.splitlines() if 'Reason="' in l]
    return (op, reasons), ""


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swba-opt", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--tiles", default="1,2,4,8")
    ap.add_argument("--only", type=int)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [gen_case(rng) for _ in range(args.cases)]
    indices = [args.only] if args.only is not None else range(args.cases)
    failed = raised = 0
    for i in indices:
        text, desc = cases[i]
        if args.only is not None:
            print(text)
        want, err = decide(args.swba_opt, text, 0)
        if want is None:
            print(f"FAIL case {i} ({desc}): swba-opt failed\n{err}", file=sys.stderr)
            failed += 1
            continue
        raised += bool(want[0])
        for tile in args.tiles.split(","):
            got, err = decide(args.swba_opt, text, tile)
            same = got is not None and got[0] == want[0]
            # Both left alone for a row's range: the same reason. (An
            # evaluation error after a row's first gap may be reported
            # first by the one-by-one evaluation.)
            if same and not want[0] and "query row" in "".join(want[1]) \
                    and "query row" in "".join(got[1]):
                same = got[1] == want[1]
            if not same:
                failed += 1
                print(f"FAIL case {i} ({desc}), mask-tile={tile} "
                      f"(--seed {args.seed} --only {i}):\n  every pair: {want}\n"
                      f"  tiles:      {got if got else err}", file=sys.stderr)
    print(f"mask tiles: seed {args.seed}, {len(indices)} cases, {raised} raised, "
          f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
