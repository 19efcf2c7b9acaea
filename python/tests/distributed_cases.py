"""The shapes of the two-GPU tests of swba.distributed
(test_distributed_gpu.py), importable without torch so that their kernels
can be compiled ahead of time (prepare_kernels.py)."""

from collections import namedtuple

from swba import halo

Case = namedtuple("Case", "name lengths hq hkv d bs ws dtype")

# Lengths per rank; the halo before a frame-aligned shard is
# (window - 1) * block_size = 256 tokens in the first three.
CASES = [
    Case("below_halo_partial_frames", [100, 412], 4, 4, 64, 128, 3, "f16"),
    Case("equal_halo_aligned", [256, 256], 4, 4, 64, 128, 3, "f16"),
    Case("above_halo_gqa_bf16", [700, 333], 8, 2, 128, 128, 3, "bf16"),
    Case("video_frames_1560", [2000, 2680], 2, 2, 128, 1560, 2, "bf16"),
]


def kernel_configs(chip="sm_90a"):
    """Every rank's pieces' kernels, and those of the whole sequence on one
    GPU (the reference the ranks are compared with)."""
    configs = set()
    for c in CASES:
        for lengths in (c.lengths, [sum(c.lengths)]):
            configs |= set(halo.kernel_configs(lengths, c.hq, c.hkv, c.d, c.bs, c.ws,
                                               dtype=c.dtype, chip=chip))
    return configs
