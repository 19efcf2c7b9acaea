#!/usr/bin/env python3
"""What ptxas makes of the sm_90a kernels of the frontier cases
(python/bench/bench_frontier.py), without a GPU: per kernel the registers,
the spill stores and loads, the stack frame, the notes that ptxas
serialized wgmmas (C7510, C7511, C7515, ...) and the launch's shared
memory, for one or
more builds of swba-opt and lowering options:

    python3 scripts/kernel_resources.py
    python3 scripts/kernel_resources.py --cases narrow small-frames \\
        --options "" "tile-scheduler=persistent"
    python3 scripts/kernel_resources.py --swba-opt /tmp/old/swba-opt build/bin/swba-opt

A change to a kernel should leave these as they were or say why not
(docs/DESIGN.md records the spills it keeps). Needs ptxas (the CUDA
toolkit)."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(root, "python"), os.path.join(root, "python", "bench")]
from swba import compiler  # noqa: E402
from swba.compile import configs_for  # noqa: E402
import bench_frontier  # noqa: E402

_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                     r"(\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


def ptxas_report(ptx: str, ptxas: str) -> dict:
    """ptxas -v of `ptx` for sm_90a: {kernel: {registers, stack, spill
    stores, spill loads, serialized}}."""
    with tempfile.TemporaryDirectory(prefix="swba-") as tmp:
        src = os.path.join(tmp, "kernels.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        proc = subprocess.run([ptxas, "-v", "-arch=sm_90a", src, "-o", os.devnull],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise compiler.CompileError(f"ptxas failed: {proc.stderr[-2000:]}", proc.stderr)
    return parse_ptxas(proc.stderr)


def parse_ptxas(text: str) -> dict:
    """The kernels' resources in ptxas -v's report `text` (parse of
    ptxas_report)."""
    report, kernel = {}, None
    lines = text.splitlines()
    for line in lines:
        if m := _ENTRY.search(line):
            kernel = m.group(1)
            report[kernel] = dict(registers=0, stack=0, stores=0, loads=0, serialized=0)
        elif kernel and (m := _SPILLS.search(line)):
            report[kernel].update(stack=int(m.group(1)), stores=int(m.group(2)),
                                  loads=int(m.group(3)))
        elif kernel and (m := _REGISTERS.search(line)):
            report[kernel]["registers"] = int(m.group(1))
    # The notes that wgmmas are serialized (C7510, C7511, C7515, ...) name
    # their function, before or after its own lines.
    for line in lines:
        if "wgmma.mma_async instructions are serialized" in line:
            for name, r in report.items():
                if f"'{name}'" in line:
                    r["serialized"] += 1
    return report


def rows_of(tool: str, case, options: str, ptxas: str) -> list[tuple]:
    rows = []
    for config in configs_for("bf16", case.d, case.bs, case.ws, chip="sm_90a",
                              options=options):
        ptx, manifest = compiler.compile_ptx(config, tool)
        shared = {k["name"]: k["shared_memory"]
                  for module in json.loads(manifest)["modules"] for k in module["kernels"]}
        for kernel, r in ptxas_report(ptx, ptxas).items():
            rows.append((case.name, options or "default", kernel, r["registers"],
                         r["stores"], r["loads"], r["stack"], r["serialized"],
                         shared.get(kernel, 0)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", help="bench_frontier.py cases (all)")
    parser.add_argument("--options", nargs="*", default=[""],
                        help="lowering options, each a set (default: none)")
    parser.add_argument("--swba-opt", nargs="*", dest="tools",
                        default=[os.path.join(root, "build", "bin", "swba-opt")])
    args = parser.parse_args()
    ptxas = compiler.find_ptxas()
    if ptxas is None:
        sys.exit("ptxas not found (the CUDA toolkit's; put it on PATH)")
    names = {c.name for c in bench_frontier.CASES}
    unknown = set(args.cases or ()) - names
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; the cases are {sorted(names)}")
    cases = [c for c in bench_frontier.CASES if not args.cases or c.name in args.cases]
    jobs = [(t, c, o) for t in args.tools for c in cases for o in args.options]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda job: rows_of(job[0], job[1], job[2], ptxas), jobs))
    many = len(args.tools) > 1
    print(("| swba-opt " if many else "") + "| case | options | kernel | registers "
          "| spill stores | spill loads | stack | serialized wgmmas | shared memory |")
    print("|" + " --- |" * (9 + many))
    for (tool, _, _), rows in zip(jobs, results):
        for row in rows:
            print(("| " + tool + " " if many else "") + "| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
