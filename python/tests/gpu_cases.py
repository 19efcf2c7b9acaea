"""The shape grid of the GPU correctness tests, importable without torch so
that kernels can be compiled ahead of time on a machine without a GPU."""

import math
from collections import namedtuple

Case = namedtuple("Case", "name b hq hkv nq nk d dv bs ws dtype scale")

CASES = [
    Case("square_f16", 2, 4, 4, 512, 512, 64, 64, 128, 2, "f16", None),
    Case("bs_not_tile_multiple_partial_frame", 1, 4, 4, 1030, 1030, 64, 64, 100, 3, "f16", None),
    Case("gqa_d128_bf16", 1, 8, 2, 777, 777, 128, 128, 130, 2, "bf16", None),
    Case("kv_cache_nq_lt_nk", 1, 4, 4, 300, 1300, 64, 64, 256, 4, "f16", None),
    Case("token_level_bs1", 2, 2, 1, 200, 200, 64, 64, 1, 64, "f16", None),
    # A token window of more than 1024 keys at head dim 128: on sm_90a
    # 128-key forward tiles with column-bound edge masks, 64-key dQ tiles.
    Case("token_window_d128_bf16", 1, 8, 2, 1500, 1500, 128, 128, 1, 1100, "bf16", None),
    Case("window_beyond_frames_bf16", 1, 2, 2, 256, 256, 64, 64, 64, 100, "bf16", None),
    Case("video_frames_1560", 1, 2, 2, 3220, 3220, 128, 128, 1560, 2, "f16", None),
    Case("dv_ne_d_scale_bf16", 1, 4, 2, 257, 257, 64, 128, 37, 3, "bf16", 0.3),
    Case("tiny_nq1_decode", 3, 4, 1, 1, 700, 64, 64, 128, 2, "f16", None),
    # A 128-token window at head dim 64: on sm_90a a consumer runs the three
    # key tiles its rows see in one pass (the tile-by-tile loop near the
    # sequence's start and in the last, partial workgroup), GQA.
    Case("narrow_window_128_bf16", 1, 4, 2, 1000, 1000, 64, 64, 1, 128, "bf16", None),
    # Head dims the mma.sync kernels take on every chip; a value dim of 48
    # is 6 chunks of 16 bytes, which the delta kernel's quads split 4 + 2.
    Case("d32_dv48_gqa", 1, 2, 1, 333, 333, 32, 48, 50, 3, "f16", None),
    # Head dims past 64 that are not multiples of 64: on sm_90a the wgmma
    # kernels of the next multiple (96 -> 128), whose last TMA box reaches
    # past the tensor's columns; a token window with GQA, and unequal dims
    # with a KV cache longer than the queries.
    Case("d96_token_gqa_bf16", 1, 4, 2, 700, 700, 96, 96, 1, 300, "bf16", None),
    Case("d80_dv112_kv_cache_f16", 2, 2, 1, 300, 1300, 80, 112, 256, 4, "f16", None),
    # A causal layer with symbolic lengths, which --raise-swba raises to a
    # window of 2^30 keys (the full layers of Gemma 3-class models): a KV
    # cache longer than the queries, GQA, head dim 128.
    Case("causal_window_2p30_bf16", 1, 4, 2, 1000, 1300, 128, 128, 1, 1 << 30, "bf16", None),
]

# Head dims only the sm_90a kernels take (past 128: multiples of 64, and of
# 16 that they round up to one): run on the wgmma path alone. 64-key
# forward tiles, 32-key dQ tiles, and dK/dV as a dV and a dK kernel
# (docs/DESIGN.md 3.2): partial tiles, GQA, Nq < Nk, token windows, both
# types, and a value dim other than the key's.
HOPPER_CASES = [
    Case("d256_frames_partial_gqa", 1, 4, 2, 1030, 1030, 256, 256, 100, 3, "bf16", None),
    Case("d256_token_bs1_f16", 1, 2, 1, 700, 700, 256, 256, 1, 300, "f16", None),
    Case("d256_kv_cache_nq_lt_nk", 2, 2, 2, 300, 1300, 256, 256, 256, 4, "bf16", None),
    Case("d192_frames_bf16", 1, 4, 2, 777, 777, 192, 192, 130, 2, "bf16", None),
    Case("d256_dv128_scale", 1, 2, 2, 333, 333, 256, 128, 37, 3, "f16", 0.05),
    Case("d160_dv80_frames_f16", 1, 2, 2, 333, 333, 160, 80, 37, 3, "f16", 0.07),
    # A value dim past 128 above a smaller key dim (the kernels of 128/256).
    Case("d96_dv240_token_bf16", 1, 2, 1, 500, 500, 96, 240, 1, 200, "bf16", None),
]


def effective_scale(case):
    return case.scale if case.scale is not None else 1.0 / math.sqrt(case.d)


def kernel_configs():
    from swba.compiler import KernelConfig, uses_decode
    configs = [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=grad)
               for c in CASES for grad in (False, True)]
    # The forward of cases with few query rows runs on the decode kernel
    # (swba.ops routes it there).
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c),
                             options="decode=true")
                for c in CASES if uses_decode(c.hq, c.hkv, c.nq, c.d, c.dv)]
    # examples/train_toy.py: 4 heads of 64, frames of 64 tokens, window 3.
    configs += [KernelConfig("f16", 64, 64, 64, 3, 0.125, grad=grad) for grad in (False, True)]
    # Backward options other than the defaults, on sm_90a (see
    # test_gpu_attention.OPTION_CASES).
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=grad,
                             chip="sm_90a", options=options)
                for c in CASES if c.name in OPTION_CASES
                for options in GRAD_OPTIONS for grad in (False, True)]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c),
                             chip="sm_90a", options=options)
                for c in CASES if c.name in OPTION_CASES for options in FORWARD_OPTIONS]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=True,
                             chip="sm_90a", options=options)
                for c in CASES for name, options, _ in DQ_TILE_CASES if c.name == name]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=True,
                             chip="sm_90a", options=options)
                for c in CASES if c.name in ONE_CONSUMER_CASES
                for options in ("grad-kv-consumers=1 grad-kv-tiles=1", "grad-q-consumers=1")]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=True,
                             chip="sm_90a", options=options)
                for c in CASES for name, options in KV_TILES_CASES if c.name == name]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, ws, effective_scale(c), chip="sm_90a")
                for c in CASES if c.name == "narrow_window_128_bf16" for ws in WHOLE_BAND_WINDOWS]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=True,
                             chip="sm_90a", options=f"grad-dq-delta={computes}")
                for c in CASES for name, computes in DQ_DELTA_CASES if c.name == name]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c),
                             chip="sm_90a", options=options)
                for c in CASES for name, options in FORWARD_ONE_CONSUMER_CASES
                if c.name == name]
    configs += [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c),
                             chip="sm_90a", options=options)
                for c in CASES for name, options in SCHEDULER_CASES
                if c.name == name and options]
    return configs


def hopper_kernel_configs():
    """The kernels of HOPPER_CASES, on sm_90a (and those of DQ_DELTA_CASES
    among them)."""
    from swba.compiler import KernelConfig
    configs = [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c), grad=grad,
                            chip="sm_90a")
               for c in HOPPER_CASES for grad in (False, True)]
    return configs + [KernelConfig(c.dtype, c.d, c.dv, c.bs, c.ws, effective_scale(c),
                                   grad=True, chip="sm_90a",
                                   options=f"grad-dq-delta={computes}")
                      for c in HOPPER_CASES for name, computes in DQ_DELTA_CASES
                      if c.name == name]


# The sm_90a dQ kernel's consumers, which its key tile sets at head dim 64
# (QueryGradTiling): three with 64-key tiles, asked for here where the
# default is 128 (the consumers share the workgroup's key tiles; a KV cache
# longer than the queries), two with 128-key tiles asked for on a band whose
# default is 64. (case, options, consumers)
DQ_TILE_CASES = (("window_beyond_frames_bf16", "grad-key-tile=64", 3),
                 ("kv_cache_nq_lt_nk", "grad-key-tile=64", 3),
                 ("square_f16", "grad-key-tile=128", 2),
                 # A token window's edge masks over 128 keys: 32 bits a row.
                 ("token_level_bs1", "grad-key-tile=128", 2))

# The sm_90a dK/dV and dQ kernels with one consumer (grad-kv-consumers=1,
# grad-q-consumers=1: two workgroups an SM, three for the dQ kernel with two
# stages at head dim 64): frames, a partial last frame,
# GQA at head dim 128 and a token window (a band).
ONE_CONSUMER_CASES = ("square_f16", "bs_not_tile_multiple_partial_frame", "gqa_d128_bf16",
                     "token_level_bs1")
# The sm_90a dK/dV kernel running several key tiles a workgroup, one after
# another (grad-kv-tiles: at most that many, the next tile's K and V in a
# second buffer; 16 is the default on bands of at most 512 keys at head
# dim 64, which token_level_bs1 and square_f16 take): three tiles, so that
# a buffer is used again and the last workgroup's last tiles lie past the
# keys, on a token window and on partial frames (one consumer); 16 on the
# partial frames' 17 key tiles (nine and eight a workgroup when the most is
# forced); two and four with two consumers, GQA at head dim 128 and a KV
# cache longer than the queries; one where 16 is the default. (case,
# options)
KV_TILES_CASES = (
    ("token_level_bs1", "grad-kv-tiles=3"),
    ("bs_not_tile_multiple_partial_frame", "grad-kv-tiles=3"),
    ("bs_not_tile_multiple_partial_frame", "grad-kv-tiles=16"),
    ("gqa_d128_bf16", "grad-kv-tiles=2"),
    ("kv_cache_nq_lt_nk", "grad-kv-tiles=4"),
    ("square_f16", "grad-kv-tiles=1"))
# Token windows whose forward consumers run their key tiles in one pass on
# sm_90a (test_whole_band_forward_matches_reference): three tiles at 128 and
# 129 keys, two at 64.
WHOLE_BAND_WINDOWS = (128, 64, 129)
# The sm_90a dQ kernel computing delta of its rows for the dK/dV kernel
# after it (grad-dq-delta=true, no delta kernel; the default on bands of at
# most 512 keys at head dim 64, which token_level_bs1 and square_f16 take):
# GQA at head dim 128 with a partial last query tile, a KV cache longer
# than the queries, dv != d with a scale, head dim 256 with a value dim of
# 128 (dK and dV in two kernels after it) and a value dim of 240 (rounded up to 256 in the
# kernel: the row dot covers the tensor's 240 columns); and the delta
# kernel where it is the default's. (case, grad-dq-delta)
DQ_DELTA_CASES = (
    ("gqa_d128_bf16", "true"),
    ("kv_cache_nq_lt_nk", "true"),
    ("dv_ne_d_scale_bf16", "true"),
    ("d256_dv128_scale", "true"),
    ("d96_dv240_token_bf16", "true"),
    ("token_level_bs1", "false"))
# The sm_90a forward of one consumer a workgroup, two or three workgroups an
# SM (the default on bands of 256 to 512 keys at head dim 64, which
# square_f16 and bs_not_tile_multiple_partial_frame take), asked for on a
# token window, a KV cache longer than the queries, unequal head dims and
# GQA at head dim 128. (case, options)
FORWARD_ONE_CONSUMER_CASES = (
    ("token_level_bs1", "consumers=1 workgroups-per-sm=3"),
    ("kv_cache_nq_lt_nk", "consumers=1 workgroups-per-sm=3 block-n=64"),
    ("dv_ne_d_scale_bf16", "consumers=1 workgroups-per-sm=2"),
    ("gqa_d128_bf16", "consumers=1 workgroups-per-sm=2 block-n=64"))

# sm_90a backward options the GPU tests also run (the defaults are tested
# everywhere), and the cases they run on.
GRAD_OPTIONS = ("grad-ping-pong=true",)
FORWARD_OPTIONS = ("consumers=2", "consumers=3", "consumers=3 ping-pong=false")
OPTION_CASES = ("square_f16", "gqa_d128_bf16")
# The sm_90a forward's tile schedulers (test_gpu_attention's
# test_tile_schedulers): the persistent kernel asked for (the default at
# head dim 64, the grid's at 128), on frames, GQA, a KV cache longer than
# the queries, unequal head dims, and narrow bands (whose consumers take
# their own key tiles); the grid asked for, and the defaults, alongside.
SCHEDULER_CASES = (
    ("window_beyond_frames_bf16", "tile-scheduler=persistent"),
    ("gqa_d128_bf16", "tile-scheduler=persistent"),
    ("kv_cache_nq_lt_nk", "tile-scheduler=persistent"),
    ("video_frames_1560", "tile-scheduler=persistent"),
    ("dv_ne_d_scale_bf16", "tile-scheduler=persistent"),
    ("square_f16", "tile-scheduler=persistent"),
    ("token_level_bs1", "tile-scheduler=persistent"),
    ("bs_not_tile_multiple_partial_frame", "tile-scheduler=persistent"),
    ("window_beyond_frames_bf16", ""), ("gqa_d128_bf16", ""),
    ("square_f16", ""), ("token_level_bs1", ""),
    ("square_f16", "tile-scheduler=grid"), ("token_level_bs1", "tile-scheduler=grid"),
    # 128-key tiles on a token window: edge masks of 32 bits a row.
    ("token_level_bs1", "tile-scheduler=persistent block-n=128"))


# The configuration test_gpu_autotune.py tunes: a narrow token window, whose
# best tiles differ from the lowering's wide-window defaults.
AUTOTUNE_CASE = dict(dtype="bf16", head_dim=64, block_size=1, window=128)


def autotune_configs():
    """Every candidate kernel swba.autotune times for AUTOTUNE_CASE."""
    from swba import tuning
    from swba.compile import configs_for
    return {c for base in configs_for(**AUTOTUNE_CASE, chip="sm_90a")
            for c in tuning.candidate_configs(base)}
