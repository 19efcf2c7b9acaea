#!/usr/bin/env python3
"""Writes what build/bin/swba-opt prints for a representative set of inputs
into a folder, one file per case, so that a refactoring of the lowerings
can be checked to leave the generated kernels byte-identical:

    python3 scripts/lowering_snapshot.py /tmp/before   # at the old commit
    python3 scripts/lowering_snapshot.py /tmp/after    # after the change
    diff -r /tmp/before /tmp/after

The cases: every RUN line of test/Conversion/*.mlir and test/Pipelines/*.mlir
(the swba-opt part, before any pipe), and --lower-swba=target=gpu for every
kernel configuration python/tests/prepare_kernels.py compiles (the test and
benchmark shapes on sm_90 and sm_90a, grad-fused-dq, and the option variants
of python/bench/variants.py). Run from the repository root."""

import dataclasses
import glob
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

root = os.getcwd()
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
opt = os.path.join(root, "build/bin/swba-opt")
sys.path[:0] = [f"{root}/python", f"{root}/python/tests", f"{root}/python/bench"]
import configs  # noqa: E402
import gpu_cases  # noqa: E402
import variants  # noqa: E402

jobs = []
for path in sorted(glob.glob("test/Conversion/*.mlir") + glob.glob("test/Pipelines/*.mlir")):
    runs = [line for line in open(path) if "RUN:" in line]
    for i, line in enumerate(runs):
        cmd = re.split(r"\s2>&1|\s\|\s", line.split("RUN:", 1)[1].strip())[0].strip()
        cmd = cmd.removeprefix("not ").replace("%s", path).replace("swba-opt", opt, 1)
        cmd = cmd.replace("%t", os.path.join(out, f"tmp_{os.path.basename(path)}"))
        jobs.append((f"lit_{os.path.basename(path)}_{i}", cmd, None))

todo = {dataclasses.replace(c, chip=chip)
        for c in set(gpu_cases.kernel_configs()) | set(configs.kernel_configs())
        for chip in ("sm_90", "sm_90a")}
todo |= {dataclasses.replace(c, options="grad-fused-dq=true")
         for c in todo if c.grad and c.chip == "sm_90a"}
todo |= variants.kernel_configs()
for c in sorted(todo, key=lambda c: c.key()):
    options = c.options.replace("=", "-").replace(" ", "_") or "default"
    name = (f"cfg_{'grad' if c.grad else 'fwd'}_{c.chip}_{c.dtype}_d{c.head_dim}_"
            f"{c.value_dim}_bs{c.block_size}_w{c.window}_{options}_{c.key()[:8]}")
    cmd = shlex.join([opt, f"--lower-swba=target=gpu chip={c.chip} {c.options}".rstrip()])
    jobs.append((name, cmd, c.mlir()))


def run(job):
    name, cmd, stdin = job
    proc = subprocess.run(cmd, shell=True, input=stdin, capture_output=True, text=True)
    # The ISA pipeline records how long PTX generation took.
    stdout = re.sub(r"LLVMIRToISATimeInMs = \d+", "T", proc.stdout)
    with open(f"{out}/{name}.out", "w") as f:
        f.write(f"{stdout}\n// STDERR\n{proc.stderr}\n// RC {proc.returncode}\n")


with ThreadPoolExecutor(2) as pool:
    list(pool.map(run, jobs))
print(len(jobs), "outputs in", out)
