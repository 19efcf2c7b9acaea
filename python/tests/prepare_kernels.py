"""Compiles, on a machine with swba-opt, every kernel the GPU tests and the
benchmark need, into SWBA_KERNEL_DIR (default ~/.cache/swba), so that a GPU
machine without MLIR runs them from there: each for sm_90 (the mma.sync
kernels) and sm_90a (the TMA + wgmma forward where the head dims allow it),
the two paths the tests and the benchmark run on an H100; the sm_90a
backward also with grad-fused-dq=true (and with grad-fused-dq=false where
that is not the default's); the split-KV forward's
(test_gpu_splitkv.py, bench/bench_splitkv.py); the tile options of
bench/variants.py (unless --no-variants); for sm_90a, those of
gpu_torch_kernels.json (the PyTorch library's GPU tests and examples),
the autotuner's candidates of test_gpu_autotune.py and the pieces of the
two-GPU tests (distributed_cases.py); with --frontier, bench_frontier.py's
kernels too (with --frontier-tune, their candidates as well)."""

import dataclasses
import os
import sys
from concurrent.futures import ThreadPoolExecutor

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here, os.path.join(here, "..", "bench")]

from swba import compiler  # noqa: E402
from swba.compile import configs_from_json  # noqa: E402
import decode_cases  # noqa: E402
import distributed_cases  # noqa: E402
import gpu_cases  # noqa: E402
import configs  # noqa: E402
import splitkv_cases  # noqa: E402
import bench_splitkv  # noqa: E402
import variants  # noqa: E402

CHIPS = ("sm_90", "sm_90a")

todo = {dataclasses.replace(config, chip=chip)
        for config in set(gpu_cases.kernel_configs()) | set(configs.kernel_configs())
        for chip in CHIPS}
todo |= decode_cases.kernel_configs("sm_90a") | decode_cases.kernel_configs("sm_90")
# The pieces of swba.distributed's two-GPU tests (sm_90a).
todo |= distributed_cases.kernel_configs()
# The sm_90a backward whose dK/dV kernel adds dQ up.
todo |= {dataclasses.replace(config, options="grad-fused-dq=true")
         for config in todo if config.grad and config.chip == "sm_90a"}
# Head dims past 128: sm_90a only, one dK/dV kernel a gradient (no fused dQ).
todo |= set(gpu_cases.hopper_kernel_configs())
# The split-KV forward's tests and benchmark (sm_90a, with and without
# split-kv).
todo |= splitkv_cases.kernel_configs() | bench_splitkv.kernel_configs()
# The tile options bench/variants.py times (not needed by the tests).
if "--no-variants" not in sys.argv[1:]:
    todo |= variants.kernel_configs()
todo |= set(configs_from_json(os.path.join(here, "gpu_torch_kernels.json"),
                              {"chip": "sm_90a", "options": "", "kernels": "both"}))
# The candidates test_gpu_autotune.py times (one of them does not fit: a
# failure there is no error).
candidates = gpu_cases.autotune_configs() - todo
# With --frontier, the kernels (and autotune candidates) of bench_frontier.py.
if {"--frontier", "--frontier-tune"} & set(sys.argv[1:]):
    import bench_frontier
    candidates |= bench_frontier.kernel_configs(
        candidates="--frontier-tune" in sys.argv[1:]) - todo
def build(config):
    """The kernel of `config`, or the error that kept it from compiling
    (swba-opt and ptxas run as subprocesses: threads keep every core busy)."""
    try:
        return compiler.load_or_compile(config)
    except (compiler.CompileError, compiler.ManifestError) as e:
        return e


with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    failed = 0
    ordered = sorted(todo, key=lambda c: c.key())
    kernels = list(pool.map(build, ordered))
    for config, kernel in zip(ordered, kernels):
        if isinstance(kernel, Exception):
            failed += 1
            print(f"FAILED {kernel}")
            continue
        names = [launch.name for launch in kernel.launches]
        print(f"{config.key()} {names} {kernel.kind} {len(kernel.image)} B  {config}")
    # The reproducible backward of those that are not (the default of
    # frames at head dim 128), which torch.use_deterministic_algorithms runs.
    unsure = [c for c, k in zip(ordered, kernels)
              if not isinstance(k, Exception) and not k.reproducible]
    more = sorted(set(pool.map(compiler.reproducible_config, unsure)) - todo,
                  key=lambda c: c.key())
    for config, kernel in zip(more, pool.map(build, more)):
        if isinstance(kernel, Exception) or not kernel.reproducible:
            failed += 1
            print(f"FAILED {kernel if isinstance(kernel, Exception) else config}")
    print(f"{len(more)} reproducible backward(s) of {len(unsure)} that are not")
    todo |= set(more)
    print(f"{len(todo) - failed} kernels in {compiler.cache_dir()}, {failed} failed")
    # A candidate that does not fit is no failure.
    results = list(pool.map(build, sorted(candidates, key=lambda c: c.key())))
    unfit = sum(isinstance(r, compiler.CompileError) for r in results)
    broken = [r for r in results if isinstance(r, compiler.ManifestError)]
    for e in broken:
        print(f"FAILED {e}")
print(f"{len(candidates) - unfit} autotune candidates, {unfit} that do not fit")
sys.exit(1 if failed or broken else 0)
