#!/usr/bin/env python3
"""Fuzzes swba-opt with random swba ops and random pass options.

Each case is a module with one swba.attention or swba.attention_grad (tensors
or memrefs) whose attributes and shapes are drawn from the extremes (0, 1,
2^31, 2^62, 2^63 - 1, dynamic dims, every element type), run through one or
more pipelines or passes with random options (--lower-swba target=cpu/gpu,
--swba-to-llvm, --swba-to-nvvm with chips and formats, --raise-swba,
--one-shot-bufferize). Some cases are instead the masked attention functions
of the raising tests, some with a constant set to an extreme, raised with
random options and lowered.

A run fails when swba-opt
  - exits by a signal (crash, abort),
  - prints `LLVM ERROR` or a stack dump,
  - exits non-zero without an `error:` diagnostic,
  - runs past the time limit,
  - or rejects a case that is valid by construction on a pipeline that
    must take it (the CPU pipelines take every valid op).
Each failure prints its input and command; `--seed S --only I` reruns case I
of seed S alone. Exit status 1 when any run failed.
"""

import argparse
import concurrent.futures
import glob
import os
import random
import re
import subprocess
import sys
import tempfile
import time

EXTREMES = [0, 1, 2, 3, 7, 64, 2**31 - 1, 2**31, 2**32 + 3, 2**62, 2**63 - 1]
VALID_ELEMENT_TYPES = ["f16", "bf16", "f32"]
INVALID_ELEMENT_TYPES = ["f64", "f8E4M3FN", "i8", "i32", "index"]
DIMS = [0, 1, 1, 2, 3, 5, 8, 16, 17, 33, 64, 128, "?"]
HEAD_DIMS = [0, 1, 8, 16, 17, 32, 48, 64, 64, 128, 128, 144, 256]
CHIPS = ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_90a", "sm_100",
         "sm_100a", "sm_120", "sm_70", "sm_75", "", "sm_999", "gfx90a", "sm90"]
FORMATS = ["isa", "isa", "isa", "isa", "bin", "fatbin", "", "llvm", "offload",
           "assembly", "xyz"]
PTX = ["ptx80", "ptx78", "ptx86", "ptx88", "ptx60", "ptx", "ptx1000", "80"]


class Case:
    """One generated module and what is known about it."""

    def __init__(self, text, valid, summary):
        self.text, self.valid, self.summary = text, valid, summary


def shape_type(form, shape, etype):
    dims = "x".join(str(d) for d in shape)
    return f"{form}<{dims}x{etype}>" if shape else f"{form}<{etype}>"


def pick(rng, values):
    return values[rng.randrange(len(values))]


def gen_case(rng):
    """A random op, valid by construction unless one defect is injected."""
    grad = rng.random() < 0.45
    form = "memref" if rng.random() < 0.4 else "tensor"
    etype = pick(rng, VALID_ELEMENT_TYPES)
    b, nk = pick(rng, DIMS), pick(rng, DIMS)
    hkv = pick(rng, [0, 1, 1, 2, 3, "?"])
    group = pick(rng, [0, 1, 1, 2, 3])
    hq = "?" if hkv == "?" or rng.random() < 0.15 else hkv * group
    if nk == "?" or rng.random() < 0.2:
        nq = pick(rng, [nk, "?"])
    else:
        nq = rng.randint(0, nk)
    d, dv = pick(rng, HEAD_DIMS[1:]), pick(rng, HEAD_DIMS)
    bs, ws = pick(rng, EXTREMES[1:]), pick(rng, EXTREMES[1:])
    scale = None if rng.random() < 0.6 else pick(
        rng, ["1.0", "0.125", "0.0", "-0.5", "1.0e-30", "3.0e38"])
    lse = grad or rng.random() < 0.5
    shapes = {"q": [b, hq, nq, d], "k": [b, hkv, nk, d], "v": [b, hkv, nk, dv],
              "out": [b, hq, nq, dv], "lse": [b, hq, nq]}

    defect = None
    if rng.random() < 0.3:
        defect = pick(rng, ["etype", "bs", "ws", "heads", "length", "rank",
                            "dynamic_head_dim", "head_dim_mismatch",
                            "lse_type", "huge_attr", "mix", "zero_head_dim"])
        if defect == "etype":
            etype = pick(rng, INVALID_ELEMENT_TYPES)
        elif defect == "bs":
            bs = pick(rng, [0, -1, -(2**63)])
        elif defect == "ws":
            ws = pick(rng, [0, -1, -(2**62)])
        elif defect == "heads":
            shapes["q"][1] = shapes["out"][1] = shapes["lse"][1] = \
                pick(rng, [1, 2, 3, 5])
            shapes["k"][1] = shapes["v"][1] = pick(rng, [0, 2, 4])
        elif defect == "length":
            shapes["k"][2] = shapes["v"][2] = 4
            shapes["q"][2] = shapes["out"][2] = shapes["lse"][2] = 5
        elif defect == "rank":
            shapes[pick(rng, ["q", "k", "v", "out", "lse"])].append(1)
        elif defect == "dynamic_head_dim":
            shapes[pick(rng, ["q", "k", "v", "out"])][3] = "?"
        elif defect == "head_dim_mismatch":
            shapes["k"][3] = 24
        elif defect == "lse_type":
            lse = True
        elif defect == "huge_attr":
            bs = pick(rng, [2**63, 2**64 + 1])
        elif defect == "mix":
            pass
        elif defect == "zero_head_dim":
            shapes["q"][3] = shapes["k"][3] = 0
        # Some defects happen to give a valid op (e.g. 0 heads of each);
        # the fuzzer then only asks for a clean exit.

    def ty(name, elem=None):
        f = form
        if defect == "mix" and name == "v":
            f = "memref" if form == "tensor" else "tensor"
        return shape_type(f, shapes[name], elem or etype)

    lse_elem = "f16" if defect == "lse_type" else "f32"
    scale_attr = f" scale = {scale}" if scale is not None else ""
    attrs = f"block_size = {bs} window = {ws}{scale_attr}"
    lines = []
    if grad:
        names = ["q", "k", "v", "o", "do", "lse", "dq", "dk", "dv"]
        types = [ty("q"), ty("k"), ty("v"), ty("out"), ty("out"),
                 ty("lse", lse_elem), ty("q"), ty("k"), ty("v")]
        args = ", ".join(f"%{n}: {t}" for n, t in zip(names, types))
        res = types[6:] if form == "tensor" else []
        lines.append(f"func.func @case({args}) -> ({', '.join(res)}) {{")
        op = (f"swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : "
              f"{', '.join(types[:6])}) outs(%dq, %dk, %dv : "
              f"{', '.join(types[6:])}) {attrs}")
        if res:
            lines.append(f"  %r:3 = {op} -> {', '.join(res)}")
            lines.append(f"  return %r#0, %r#1, %r#2 : {', '.join(res)}")
        else:
            lines.append(f"  {op}")
            lines.append("  return")
    else:
        names = ["q", "k", "v", "o"] + (["lse"] if lse else [])
        types = [ty("q"), ty("k"), ty("v"), ty("out")] + \
            ([ty("lse", lse_elem)] if lse else [])
        args = ", ".join(f"%{n}: {t}" for n, t in zip(names, types))
        outs = names[3:]
        res = types[3:] if form == "tensor" else []
        lines.append(f"func.func @case({args}) -> ({', '.join(res)}) {{")
        op = (f"swba.attention ins(%q, %k, %v : {', '.join(types[:3])}) "
              f"outs({', '.join('%' + n for n in outs)} : "
              f"{', '.join(types[3:])}) {attrs}")
        if res:
            lhs = "%r" if len(res) == 1 else f"%r:{len(res)}"
            vals = "%r" if len(res) == 1 else ", ".join(
                f"%r#{i}" for i in range(len(res)))
            lines.append(f"  {lhs} = {op} -> {', '.join(res)}")
            lines.append(f"  return {vals} : {', '.join(res)}")
        else:
            lines.append(f"  {op}")
            lines.append("  return")
    lines.append("}")
    summary = (f"{'grad' if grad else 'fwd'} {form} {etype} q={shapes['q']} "
               f"k={shapes['k']} v={shapes['v']} bs={bs} ws={ws} "
               f"defect={defect}")
    return Case("\n".join(lines) + "\n", defect is None, summary)


def raising_case(rng):
    """A function of the raising tests (masked attention as frontends write
    it), half the time with one integer constant set to an extreme: the
    raising pass and the pipelines after it get random options."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    paths = sorted(glob.glob(os.path.join(root, "Transforms", "raise-swba*.mlir")) +
                   glob.glob(os.path.join(root, "Frontend", "*.mlir")))
    path = pick(rng, paths)
    with open(path) as f:
        chunks = [c for c in f.read().split("// -----") if "func.func" in c]
    # Diagnostics the tests expect would be errors without --verify-diagnostics.
    text = "\n".join(line for line in pick(rng, chunks).splitlines()
                     if "expected-" not in line) + "\n"
    what = os.path.relpath(path, root)
    constants = list(re.finditer(r"arith\.constant (-?\d+) : (index|i64|i32)", text))
    if constants and rng.random() < 0.5:
        c = pick(rng, constants)
        value = pick(rng, [0, 1, -1, 2**31 - 1, 2**62] if c.group(2) != "i32"
                     else [0, 1, -1, 2**31 - 1])
        text = text[:c.start(1)] + str(value) + text[c.end(1):]
        what += f" with constant {c.group(1)} set to {value}"
    return Case(text, False, what)


def hopper_options(rng):
    opts = []
    for name, values in [
            ("consumers", [0, 2, 3, 1, 4, -1]),
            ("block-n", [0, 64, 128, 192, 256, 96, 320, -64, 2**31]),
            ("stages", [0, 1, 2, 3, 4, 8, -1, 2**40]),
            ("grad-key-tile", [0, 64, 128, 96, -1]),
            ("grad-query-tile", [0, 64, 128, 32]),
            ("grad-stages", [0, 1, 2, 3, 5, -2]),
            ("overlap-softmax", ["true", "false"]),
            ("ping-pong", ["true", "false"]),
            ("split-kv", [0, 1, 2, 3, 1024, 1025, -1, 2**40]),
            ("grad-fused-dq", ["true", "false"]),
            ("grad-ping-pong", ["true", "false"])]:
        if rng.random() < 0.25:
            opts.append(f"{name}={pick(rng, values)}")
    return opts


def gen_commands(rng, case):
    """(argv tail, must_succeed) pairs: a few pipelines with random options."""
    tile = [16, 16, 1, 2, 5, 64, 0, -1, 2**31, 2**62]
    choices = []
    tq, tk = pick(rng, tile), pick(rng, tile)
    good_tiles = 1 <= tq <= 256 and 1 <= tk <= 256
    choices.append(([f"--swba-to-llvm=tile-q={tq} tile-k={tk}"],
                    case.valid and good_tiles and "memref" not in case.text))
    choices.append((["--one-shot-bufferize=bufferize-function-boundaries",
                     f"--lower-swba=target=cpu tile-q={tq} tile-k={tk}"],
                    case.valid and good_tiles))
    chip = pick(rng, CHIPS)
    choices.append((["--one-shot-bufferize=bufferize-function-boundaries",
                     " ".join([f"--lower-swba=target={pick(rng, ['gpu', 'gpu', 'cpu', 'tpu', ''])}",
                               f"chip={chip}"] + hopper_options(rng))], False))
    opts = [f"chip={chip}", f"format={pick(rng, FORMATS)}"]
    if rng.random() < 0.3:
        opts.append(f"opt-level={pick(rng, [0, 1, 2, 3, -1, 4, 2**31, 2**63 - 1])}")
    if rng.random() < 0.2:
        opts.append(f"ptx={pick(rng, PTX)}")
    choices.append(([f"--swba-to-nvvm={' '.join(opts + hopper_options(rng))}"], False))
    raise_opt = f"--raise-swba=max-mask-pairs={pick(rng, [0, 1, 2**24, 2**62, -1])}"
    choices.append(([raise_opt], False))
    choices.append(([raise_opt, f"--swba-to-llvm=tile-q={tq} tile-k={tk}"], False))
    choices.append((["--one-shot-bufferize=bufferize-function-boundaries"], False))
    rng.shuffle(choices)
    return choices[:rng.randint(1, 3)]


def verdict(proc, must_succeed):
    err = proc.stderr
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}"
    if "LLVM ERROR" in err:
        return "LLVM ERROR"
    if "Stack dump" in err or "PLEASE submit a bug report" in err:
        return "stack dump"
    if proc.returncode != 0 and "error:" not in err:
        return f"exit {proc.returncode} without an error: diagnostic"
    if must_succeed and proc.returncode != 0:
        return "a valid op was rejected"
    return None


def run_one(swba_opt, text, argv, must_succeed, timeout):
    with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
        f.write(text)
        path = f.name
    cmd = [swba_opt, path, "-o", os.devnull] + argv
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)
        why = verdict(proc, must_succeed)
        err = proc.stderr
    except subprocess.TimeoutExpired:
        why, err = f"ran past {timeout} s", ""
    finally:
        os.unlink(path)
    return why, cmd, err


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swba-opt", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--only", type=int, help="run this case of the seed alone")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()

    work = []
    for i in range(a.cases if a.only is None else a.only + 1):
        rng = random.Random(f"{a.seed}/{i}")
        case = raising_case(rng) if rng.random() < 0.15 else gen_case(rng)
        if a.only is None or i == a.only:
            work += [(i, case, argv, must) for argv, must in gen_commands(rng, case)]

    start = time.time()
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futures = [(w, pool.submit(run_one, a.swba_opt, w[1].text, w[2], w[3],
                                   a.timeout)) for w in work]
        for (i, case, argv, must), fut in futures:
            why, cmd, err = fut.result()
            if why is None:
                continue
            failures += 1
            print(f"FAIL case {i} (rerun: --seed {a.seed} --only {i}): {why}\n"
                  f"  {case.summary}\n"
                  f"  command: {' '.join(repr(c) if ' ' in c else c for c in cmd)}\n"
                  f"--- input ---\n{case.text}--- stderr (tail) ---\n"
                  f"{err[-1500:]}\n")
    print(f"fuzz: seed {a.seed}, {len(work)} runs of {a.cases if a.only is None else 1} "
          f"cases, {failures} failed, {time.time() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
