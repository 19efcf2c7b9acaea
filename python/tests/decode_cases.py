"""The decode configurations the GPU decode tests and bench/bench_decode.py
run: their kernels for prepare_kernels.py (sm_90a, whose kernels fill their
ring by TMA or bulk copies, and sm_90, whose are the mma.sync + cp.async
kernels of every other chip)."""

import math

from swba import compiler

# (dtype, head dim, block size, window) of the paged and dense tests.
PAGED = [("f16", 64, 16, 3), ("bf16", 128, 7, 4), ("bf16", 128, 256, 8)]
DENSE = [("f16", 64, 16, 3), ("bf16", 128, 256, 8)]
# Page sizes of the paged tests and benchmark. sm_90a's kernels are
# specialised on the page size: TMA boxes for 16, 32, 64 and 256, bulk
# copies of a row for 24 (not a multiple of 16).
PAGE_SIZES = (16, 24, 32, 64, 256)


def kernel_configs(chip="sm_90a"):
    configs = set()
    for paged, cases in ((True, PAGED), (False, DENSE)):
        for dtype, d, bs, ws in cases:
            for page_size in (PAGE_SIZES if paged and chip == "sm_90a" else (0,)):
                configs.add(compiler.KernelConfig(
                    dtype=dtype, head_dim=d, value_dim=d, block_size=bs, window=ws,
                    scale=1.0 / math.sqrt(d), chip=chip, paged=paged, page_size=page_size,
                    options="" if paged else "decode=true"))
    return configs
