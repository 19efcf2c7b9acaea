#!/usr/bin/env python3
"""Runs swba.attention and swba.attention_grad, lowered to CPU loops by
--swba-to-llvm, on random small configurations and compares every output
element with the float64 reference, as gen_attention_test.py does for one
configuration (its tolerances, its checks).

Configurations: 1-2 batches, GQA groups of 1-3, Nq <= Nk up to 24 (partial
last frames whenever Nk is not a multiple of the block size), head dims
1-16, each element type, lse or not, a default or explicit scale, block
sizes and windows from 1 to 2^63 - 1 (2^31, 2^62 among them), forward and
backward, and random CPU tile sizes. Each module holds several
configurations (one mlir-runner start each) and is run with its own
tile-q/tile-k.

Prints `property: <n> configurations, <m> failed`; each failure is printed
with the gen_attention_test.py command and the swba-opt options that
reproduce it. Exit status 1 on any failure.
"""

import argparse
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_attention_test as gen  # noqa: E402

HUGE = [2**31 - 1, 2**31, 2**62, 2**63 - 1]
TILES = [1, 2, 3, 5, 8, 16]


def random_config(rng, seed):
    """gen_attention_test.py arguments of one random configuration."""
    nk = rng.randint(1, 24)
    nq = nk if rng.random() < 0.5 else rng.randint(1, nk)
    hkv = rng.choice([1, 2])
    hq = hkv * rng.choice([1, 2, 3])
    d, dv = rng.choice([1, 3, 4, 8, 16]), rng.choice([1, 2, 5, 8, 16])
    bs = rng.choice([1, 1, 2, 3, 4, 5, 7, rng.randint(1, nk + 2)] + HUGE)
    ws = rng.choice([1, 1, 2, 2, 3, 4, rng.randint(1, nk + 2)] + HUGE)
    argv = [f"--b={rng.choice([1, 2])}", f"--hq={hq}", f"--hkv={hkv}",
            f"--nq={nq}", f"--nk={nk}", f"--d={d}", f"--dv={dv}",
            f"--bs={bs}", f"--ws={ws}",
            f"--dtype={rng.choice(['f32', 'f16', 'bf16'])}", f"--seed={seed}"]
    if rng.random() < 0.3:
        argv.append(f"--scale={round(rng.uniform(0.05, 1.0), 3)}")
    if rng.random() < 0.5:
        argv.append("--grad")
    elif rng.random() < 0.5:
        argv.append("--lse")
    return argv


def checked_outputs(args):
    """The names gen_attention_test.py's checks print, in order."""
    if args.grad:
        return ["dq", "dk", "dv"]
    return ["out", "lse"] if args.lse else ["out"]


def run_module(opts, configs, tiles):
    """Runs the configurations in one module; returns the failures."""
    parsed = [gen.parse_args(argv) for argv in configs]
    text = "".join(gen.test_function(f"case{i}", a) for i, a in enumerate(parsed))
    text += "func.func @main() {\n" + "".join(
        f"  func.call @case{i}() : () -> ()\n" for i in range(len(parsed))) + "  return\n}\n"
    pipeline = f"--swba-to-llvm=tile-q={tiles[0]} tile-k={tiles[1]}"
    lowered = subprocess.run([opts.swba_opt, pipeline], input=text,
                             capture_output=True, text=True)
    if lowered.returncode != 0:
        return [(argv, pipeline, "swba-opt failed:\n" + lowered.stderr[-2000:])
                for argv in configs]
    ran = subprocess.run([opts.mlir_runner, "-e", "main", "-entry-point-result=void",
                          opts.shared_libs], input=lowered.stdout,
                         capture_output=True, text=True)
    checks = re.findall(r"(\w+) checked (\d+) mismatches (\d+)", ran.stdout)
    failures = []
    for argv, a in zip(configs, parsed):
        mine, checks = checks[:len(checked_outputs(a))], checks[len(checked_outputs(a)):]
        names = [c[0] for c in mine]
        if names != checked_outputs(a):
            failures.append((argv, pipeline, f"mlir-runner exited {ran.returncode} "
                             f"before all checks ran:\n{ran.stderr[-2000:]}"))
        elif any(int(c[2]) for c in mine):
            failures.append((argv, pipeline, ", ".join(
                f"{c[0]}: {c[2]} of {c[1]} elements out of tolerance" for c in mine)))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swba-opt", required=True)
    ap.add_argument("--mlir-runner", required=True)
    ap.add_argument("--shared-libs", required=True,
                    help="the -shared-libs=... argument of mlir-runner")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modules", type=int, default=4)
    ap.add_argument("--per-module", type=int, default=10)
    opts = ap.parse_args()

    rng = random.Random(opts.seed)
    total, failures = 0, []
    for m in range(opts.modules):
        configs = [random_config(rng, seed=rng.randrange(2**31))
                   for _ in range(opts.per_module)]
        tiles = (rng.choice(TILES), rng.choice(TILES))
        total += len(configs)
        failures += run_module(opts, configs, tiles)
    here = os.path.dirname(os.path.abspath(__file__))
    for argv, pipeline, why in failures:
        print(f"FAIL: {why}\n  reproduce: python3 {here}/gen_attention_test.py "
              f"{' '.join(argv)} | swba-opt '{pipeline}' | mlir-runner -e main "
              f"-entry-point-result=void {opts.shared_libs}\n")
    print(f"property: seed {opts.seed}, {total} configurations, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
