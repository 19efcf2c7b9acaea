#!/usr/bin/env python3
"""Mutation fuzzing of --raise-swba on the frontend corpus: real importers' IR,
one detail changed.

Each case takes a module of test/Frontend (IR that torch-mlir, ONNX's
importers and JAX emitted) and changes one or two things in it: an integer
or float scalar constant or an integer splat (plus or minus one, zero,
one, negated, doubled, halved, a large value), an integer comparison's
predicate (strict and non-strict swapped, signed and unsigned swapped, eq
and ne swapped), an integer op for a neighbour (addi and subi, the
divisions' roundings, min and max, and, or and xor, ...) or a select's
two values swapped. Most
changes touch the mask, its positions, the scale or the sizes the shapes
are computed from; some touch nothing the pass reads. The mutated module
runs through `swba-opt --raise-swba`, and a case fails when
  - swba-opt exits by a signal, prints `LLVM ERROR` or a stack dump, exits
    non-zero without an `error:` diagnostic, or runs past the time limit;
  - or the pass raised it, and the module run with and without the pass
    (run_model.py's inputs, the module's own lengths, MLIR's runtime op
    verification and asserts that each tensor.reshape keeps its element
    count, --swba-to-llvm and mlir-runner) differs in an element by
    more than the module's tolerance (a NaN matches a NaN).
A raised mutant is a mask, scale or shape the pass proved equal to an
swba.attention; whatever it proved must hold on the module's data. Not
compared: a mutant that fails to run without the pass (a changed size
that its own shapes contradict, which the runtime verification stops, or
an assert of the frontend's), and a mutant whose results with the pass
are not finite where its module guards the probabilities against NaN (a
scale made NaN): the pass takes that guard for a no-op on finite scores,
as README.md says. Each failure prints the mutation and how to rerun it
(`--seed S --only I`). Exit status 1 when any case failed.
"""

import glob
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND = os.path.join(os.path.dirname(HERE), "Frontend")
sys.path.insert(0, FRONTEND)
import run_model  # noqa: E402
import runner_args  # noqa: E402

INT_CONST = re.compile(r"(arith\.constant )(-?\d+)( : (?:i\d+|index)\b)")
FLOAT_CONST = re.compile(r"(arith\.constant )(-?\d+\.\d+(?:e[-+]?\d+)?|0x[0-9A-F]+)"
                         r"( : (?:f16|bf16|f32|f64)\b)")
CMPI = re.compile(r"(arith\.cmpi )(eq|ne|slt|sle|sgt|sge|ult|ule|ugt|uge)(,)")
# Integer ops swapped for a neighbour of the same operand and result types.
OPS = {"addi": ["subi"], "subi": ["addi"], "muli": ["addi"], "divsi": ["floordivsi", "divui",
       "ceildivsi"], "floordivsi": ["divsi"], "divui": ["divsi"], "remsi": ["remui"],
       "andi": ["ori", "xori"], "ori": ["andi"], "xori": ["andi"], "maxsi": ["minsi"],
       "minsi": ["maxsi"], "maxui": ["minui", "maxsi"], "minui": ["maxui"],
       "shrsi": ["shrui"]}
INT_OP = re.compile(r"(arith\.)(" + "|".join(OPS) + r")( %[\w.#]+, %[\w.#]+ : (?:i\d+|index)\b)")
SELECT = re.compile(r"(arith\.select %[\w.#]+, )(%[\w.#]+), (%[\w.#]+)( : )")
SPLAT = re.compile(r"(dense<)(-?\d+)(> : tensor<[0-9x]*i(?:32|64)>)")
SWAP = {"eq": "ne", "ne": "eq", "slt": "sle", "sle": "slt", "sgt": "sge", "sge": "sgt",
        "ult": "ule", "ule": "ult", "ugt": "uge", "uge": "ugt"}
SIGN = {"slt": "ult", "sle": "ule", "sgt": "ugt", "sge": "uge",
        "ult": "slt", "ule": "sle", "ugt": "sgt", "uge": "sge"}
RUN_LENGTHS = re.compile(r"run_model\.py %s(?: --lengths (\S+))?(?: --function (\S+))? >")
TOLERANCE = re.compile(r"--tolerance (\S+)")


def corpus(max_bytes):
    """The corpus modules that --raise-swba runs on, small enough to run many
    times: (path, the lengths of the module's first harness run as
    run_model.py's --lengths, function, tolerance). A near miss has no
    harness: its dynamic sizes run at 13."""
    out = []
    for path in sorted(glob.glob(os.path.join(FRONTEND, "*.mlir"))):
        if os.path.getsize(path) > max_bytes:
            continue
        with open(path) as f:
            text = f.read()
        header = "".join(line for line in text.splitlines(keepends=True)
                         if line.startswith("//"))
        if "--raise-swba" not in header:
            continue
        runs = RUN_LENGTHS.findall(header)
        function = (runs[0][1] if runs else "") or "main"
        if runs:
            lengths = runs[0][0]
        else:
            signature = re.search(r"func\.func (?:public )?@" + function + r"\((.*)\) ->", text)
            dynamic = signature.group(1).count("?") if signature else 0
            lengths = ",".join(["13"] * dynamic)
        tol = TOLERANCE.search(header)
        out.append((path, lengths, function, float(tol.group(1)) if tol else 1e-4))
    return out


def sites(text):
    """Every (kind, regex match) that a mutation can change."""
    found = []
    for kind, regex in (("int", INT_CONST), ("float", FLOAT_CONST), ("cmpi", CMPI),
                        ("op", INT_OP), ("select", SELECT), ("splat", SPLAT)):
        found += [(kind, m) for m in regex.finditer(text)]
    return found


def float_of(token):
    """The value of a float constant's token: decimal, or an f32's bits in
    hex (-inf, NaN); another type's hex bits are taken as 0."""
    if token.startswith("0x"):
        if len(token) != 10:
            return 0.0
        return struct.unpack(">f", bytes.fromhex(token[2:]))[0]
    return float(token)


def mutate(rng, text):
    """`text` with one site changed, and what changed."""
    candidates = sites(text)
    if not candidates:
        return None, None
    kind, m = rng.choice(candidates)
    head, value, tail = m.group(1), m.group(2), m.group(3)
    if kind == "op":
        replacement = f"{head}{rng.choice(OPS[value])}{tail}"
    elif kind == "select":
        replacement = f"{head}{m.group(3)}, {value}{m.group(4)}"
    elif kind == "splat":
        v = int(value)
        replacement = f"{head}{rng.choice([v + 1, v - 1, -v, 0, 2 * v])}{tail}"
    elif kind == "int":
        v = int(value)
        new = rng.choice([v + 1, v - 1, -v, 0, 1, 2 * v, v // 2, v + 7, 1 << 31])
        if re.search(r": i1\b", tail):
            new = 1 - v if v in (0, 1) else 0
        elif re.search(r": i(8|16|32)\b", tail):
            bits = int(re.search(r"i(\d+)", tail).group(1))
            new = max(min(new, (1 << (bits - 1)) - 1), -(1 << (bits - 1)))
        replacement = f"{head}{new}{tail}"
    elif kind == "float":
        v = float_of(value)
        if math.isinf(v) or math.isnan(v):
            new = rng.choice([0.0, -1.0e4, 1.0])
        else:
            new = rng.choice([0.0, -v, 2 * v, v / 2, v + 1.0, 1.0, -1.0e4])
        replacement = f"{head}{new:.6e}{tail}"
    else:
        table = rng.choice([SWAP, SIGN]) if value in SIGN else SWAP
        replacement = f"{head}{table[value]}{tail}"
    line = text.count("\n", 0, m.start()) + 1
    what = f"line {line}: '{m.group(0)}' -> '{replacement}'"
    return text[:m.start()] + replacement + text[m.end():], what


RESHAPE = re.compile(r"^(\s*)(%[\w.]+) = tensor\.reshape (%[\w.]+)\((%[\w.]+)\) : "
                     r"\(tensor<([^>]*)>, tensor<(\d+)x(i\d+|index)>\)", re.M)


def guard_reshapes(text):
    """`text` with an assert before each tensor.reshape that its shape
    operand keeps the source's element count, which MLIR's runtime op
    verification does not check: a mutated size can make the frontend's
    reshape to computed sizes undefined, and the pass reads through such
    reshapes as the valid program they must be."""
    def guard(m):
        indent, name, src, shape, src_type, rank, elt = m.groups()
        tag = "%rg_" + name[1:].replace(".", "_")
        dims = src_type.split("x")[:-1]
        lines = [f"{indent}{tag}_one = arith.constant 1 : index"]
        have, want = f"{tag}_one", f"{tag}_one"
        for i, d in enumerate(dims):
            lines.append(f"{indent}{tag}_i{i} = arith.constant {i} : index")
            if d == "?":
                lines.append(f"{indent}{tag}_d{i} = tensor.dim {src}, {tag}_i{i} : tensor<{src_type}>")
            else:
                lines.append(f"{indent}{tag}_d{i} = arith.constant {d} : index")
            lines.append(f"{indent}{tag}_h{i} = arith.muli {have}, {tag}_d{i} : index")
            have = f"{tag}_h{i}"
        for i in range(int(rank)):
            lines.append(f"{indent}{tag}_j{i} = arith.constant {i} : index")
            lines.append(f"{indent}{tag}_e{i} = tensor.extract {shape}[{tag}_j{i}] : "
                         f"tensor<{rank}x{elt}>")
            value = f"{tag}_e{i}"
            if elt != "index":
                lines.append(f"{indent}{tag}_x{i} = arith.index_cast {value} : {elt} to index")
                value = f"{tag}_x{i}"
            lines.append(f"{indent}{tag}_w{i} = arith.muli {want}, {value} : index")
            want = f"{tag}_w{i}"
        lines.append(f"{indent}{tag}_ok = arith.cmpi eq, {have}, {want} : index")
        lines.append(f'{indent}cf.assert {tag}_ok, "a reshape that changes the element count"')
        return "\n".join(lines) + "\n" + m.group(0)
    return RESHAPE.sub(guard, text)


def failed_badly(proc):
    """Why a swba-opt run is a failure whatever its input, or None."""
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}"
    if "LLVM ERROR" in proc.stderr or "Stack dump" in proc.stderr:
        return "LLVM ERROR or stack dump"
    if proc.returncode != 0 and "error:" not in proc.stderr:
        return f"exit {proc.returncode} without an error: diagnostic"
    return None


def run(cmd, timeout, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def same(a, b, tol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


def check(args, index, entries):
    """Case `index` of the seed: (outcome, message) where outcome is one of
    rejected, left, raised, failed."""
    rng = random.Random(f"{args.seed}:{index}")
    path, lengths, function, tol = rng.choice(entries)
    with open(path) as f:
        text = f.read()
    what = []
    for _ in range(rng.choice([1, 1, 1, 2])):
        mutated, change = mutate(rng, text)
        if mutated is None:
            break
        text = mutated
        what.append(change)
    name = os.path.basename(path)
    tag = f"case {index} ({name}: {'; '.join(what)})"
    with tempfile.TemporaryDirectory(prefix="swba-mut-") as tmp:
        src = os.path.join(tmp, "m.mlir")
        with open(src, "w") as f:
            f.write(text)
        try:
            proc = run([args.swba_opt, src, "--raise-swba"], args.timeout)
        except subprocess.TimeoutExpired:
            return "failed", f"{tag}: --raise-swba ran past {args.timeout} s"
        bad = failed_badly(proc)
        if bad:
            return "failed", f"{tag}: --raise-swba: {bad}\n{proc.stderr[-2000:]}"
        if proc.returncode != 0:
            return "rejected", None
        if "swba.attention" not in proc.stdout:
            return "left", None
        # The raised module against the module itself, on run_model.py's data.
        wrapped = os.path.join(tmp, "w.mlir")
        guarded = os.path.join(tmp, "g.mlir")
        with open(guarded, "w") as f:
            f.write(guard_reshapes(text))
        try:
            harness = run_model.wrapped(guarded, [int(x) for x in lengths.split(",") if x],
                                        function)
        except (SystemExit, IndexError) as err:
            return "failed", f"{tag}: run_model.py: {err}"
        with open(wrapped, "w") as f:
            f.write(harness)
        outputs = {}
        for mode, passes in (("plain", []), ("raised", ["--raise-swba"])):
            try:
                lowered = run([args.swba_opt, wrapped] + passes +
                              ["--generate-runtime-verification", "--swba-to-llvm"],
                              args.timeout)
                bad = failed_badly(lowered)
                if bad or lowered.returncode != 0:
                    if mode == "plain":
                        return "raised", None  # the mutant itself does not lower
                    return "failed", f"{tag}: lowering the raised module: " \
                        f"{bad or lowered.stderr[-1500:]}"
                ran = run([args.mlir_runner, "-e", "entry", "-entry-point-result=void",
                           f"--shared-libs={args.shared_libs}"], args.timeout,
                          stdin=lowered.stdout)
            except subprocess.TimeoutExpired:
                if mode == "plain":
                    return "raised", None
                return "failed", f"{tag}: the raised module ran past {args.timeout} s"
            if ran.returncode != 0 or "data =" not in ran.stdout:
                if mode == "plain":
                    return "raised", None  # the mutant itself fails to run
                return "failed", f"{tag}: the raised module failed to run:\n{ran.stderr[-1500:]}"
            outputs[mode] = run_model.values_in(ran.stdout, f"the {mode} module's output")
        a, b = outputs["plain"], outputs["raised"]
        if "arith.cmpf une" in text and not all(map(math.isfinite, b)):
            return "guarded", None
        if len(a) != len(b):
            return "failed", f"{tag}: {len(a)} elements without the pass, {len(b)} with it"
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if not same(x, y, tol)]
        if bad:
            i = bad[0]
            return "failed", (f"{tag}: {len(bad)} of {len(a)} elements differ by more than "
                              f"{tol} (first: element {i}, {a[i]} without the pass, "
                              f"{b[i]} with it)")
        return "compared", None


def main():
    ap = runner_args.parser(__doc__)
    ap.add_argument("--max-bytes", type=int, default=200_000,
                    help="skip corpus modules larger than this (whole models)")
    ap.add_argument("--min-compared", type=int, default=0,
                    help="fail unless at least this many raised mutants were run both ways")
    args = runner_args.parse(ap)
    entries = corpus(args.max_bytes)
    if not entries:
        sys.exit("corpus_mutations.py: no corpus modules found")
    indices = [args.only] if args.only is not None else range(args.cases)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda i: (i, check(args, i, entries)), indices))
    counts = {k: 0 for k in ("rejected", "left", "raised", "guarded", "compared", "failed")}
    for i, (outcome, message) in results:
        counts[outcome] += 1
        if message:
            print(f"FAIL {message}\n  rerun: --seed {args.seed} --only {i}\n")
    print(f"corpus mutations: seed {args.seed}, {len(results)} cases of {len(entries)} modules, "
          f"{counts['compared']} raised and compared, "
          f"{counts['raised'] + counts['guarded']} raised otherwise, "
          f"{counts['left']} left alone, {counts['rejected']} rejected, {counts['failed']} failed")
    if counts["compared"] < args.min_compared:
        print(f"too few raised mutants compared: {counts['compared']} < {args.min_compared}")
        return 1
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
