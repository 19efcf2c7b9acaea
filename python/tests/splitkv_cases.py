"""The shapes of the split-KV GPU tests (test_gpu_splitkv.py), importable
without torch so that their kernels can be compiled ahead of time."""

from collections import namedtuple

Case = namedtuple("Case", "name b hq hkv nq nk d dv bs ws dtype")

CASES = [
    # The serving case: one frame of queries against a 128k-token cache.
    Case("frame_vs_128k_cache", 1, 32, 8, 256, 131072, 128, 128, 256, 64, "bf16"),
    # Partial first and last frames (bs not a tile multiple), GQA, Nq < Nk.
    Case("partial_frames_gqa_kv_cache", 2, 4, 2, 300, 1030, 64, 64, 100, 3, "f16"),
    # Nq == Nk, GQA 4, frames straddling query tiles.
    Case("square_gqa_d128", 1, 8, 2, 777, 777, 128, 128, 130, 2, "bf16"),
    # Decode: one query a sequence, GQA 4 (swba.ops runs it on the decode
    # kernel, at the same split counts).
    Case("decode_nq1_gqa", 3, 8, 2, 1, 5000, 128, 128, 256, 4, "bf16"),
    # Head dim 96 (the kernels of 128, their last TMA box past the tensor's
    # columns): a frame of queries against a long cache, which the runtime
    # splits.
    Case("frame_vs_32k_cache_d96", 1, 32, 8, 256, 32768, 96, 96, 256, 64, "bf16"),
]

# Split counts per case: 1 (the plain kernel), a few that divide the key
# tiles unevenly, and one above the number of key tiles (empty splits).
SPLITS = {
    "frame_vs_128k_cache": (1, 2, 5, 129),
    "partial_frames_gqa_kv_cache": (1, 2, 3, 40),
    "square_gqa_d128": (1, 2, 7, 40),
    "decode_nq1_gqa": (1, 3, 8, 40),
    "frame_vs_32k_cache_d96": (1, 3, 129),
}


def kernel_configs():
    """The forward's kernels of each case, as swba.ops picks them."""
    from swba.compile import forward_configs

    return {config for c in CASES
            for config in forward_configs(c.dtype, c.hq, c.hkv, c.nq, c.d, c.dv, c.bs, c.ws)}
