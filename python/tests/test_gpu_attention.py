"""GPU correctness of the compiled kernels against an fp32 PyTorch
reference, on fresh random inputs, every output element checked, on both
forward paths: the mma.sync kernels (the device's plain chip, sm_90 on an
H100) and the TMA + wgmma forward (sm_90a, compute capability 9.0 only).
Skipped where there is no CUDA device."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]
from gpu_cases import (CASES, DQ_DELTA_CASES, DQ_TILE_CASES,  # noqa: E402
                       FORWARD_ONE_CONSUMER_CASES, FORWARD_OPTIONS, GRAD_OPTIONS,
                       HOPPER_CASES, KV_TILES_CASES, ONE_CONSUMER_CASES, OPTION_CASES,
                       SCHEDULER_CASES, WHOLE_BAND_WINDOWS,
                       effective_scale)

from swba import attention, compiler, ops, runtime  # noqa: E402

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
# f32 accumulation, P rounded to the input type before P.V, output rounded:
# a few units of the type's epsilon relative to the output's scale.
TOL = {"f16": 4e-3, "bf16": 3e-2}
CAPABILITY = torch.cuda.get_device_capability()


@pytest.fixture(params=["mma_sync", "wgmma"])
def chip(request, monkeypatch):
    """Which kernels the test runs, chosen through SWBA_CHIP (ops keeps its
    configurations per chip, so the two paths share no cached kernel)."""
    if request.param == "wgmma":
        if CAPABILITY != (9, 0):
            pytest.skip(f"the wgmma kernel needs sm_90a, not sm_{CAPABILITY[0]}{CAPABILITY[1]}")
        chip = "sm_90a"
    else:
        chip = f"sm_{CAPABILITY[0]}{CAPABILITY[1]}"
    monkeypatch.setenv("SWBA_CHIP", chip)
    return chip


# (name, whether it may start while the kernel before it ends) of every
# launch since the last launched_kernels().
early_starts = []


def launched_kernels(monkeypatch):
    """A list that fills with (name, grid, block, shared bytes) of every
    launch (and early_starts with whether each was an early start)."""
    launches = []
    early_starts.clear()
    launch = runtime.Kernel.launch_packed

    def spy(self, grid, block, params, stream, shared_bytes=0, early=False):
        launches.append((self.name, tuple(grid), tuple(block), shared_bytes))
        early_starts.append((self.name, early))
        return launch(self, grid, block, params, stream, shared_bytes, early)

    monkeypatch.setattr(runtime.Kernel, "launch_packed", spy)
    return launches


def on_sm90a(monkeypatch, options):
    """The sm_90a kernels under the lowering `options` (skipped on other
    chips); returns the list of launches that fills as they run."""
    if CAPABILITY != (9, 0):
        pytest.skip("the wgmma kernel needs sm_90a")
    monkeypatch.setenv("SWBA_CHIP", "sm_90a")
    monkeypatch.setenv("SWBA_LOWER_OPTIONS", options)
    return launched_kernels(monkeypatch)


def reference(q, k, v, bs, ws, scale):
    """Dense masked attention in fp32 (docs/DESIGN.md, section 1)."""
    nq, nk = q.shape[2], k.shape[2]
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    qf = (torch.arange(nq, device=q.device) + nk - nq) // bs
    kf = torch.arange(nk, device=q.device) // bs
    visible = (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)
    s = (q.float() @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~visible, float("-inf"))
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_forward_matches_reference(case, chip):
    check_forward(case)


def check_forward(case, key_growth=0.0):
    """out and lse against the reference, every element; with `key_growth`
    the keys are scaled by 1 + key_growth * position, so the scores grow
    along them."""
    torch.manual_seed(hash(case.name) % 2**31)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
    if key_growth:
        growth = 1 + key_growth * torch.arange(case.nk, device="cuda", dtype=torch.float32)
        k = (k.float() * growth[:, None]).to(dt)
    v = torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt)
    out = torch.full((case.b, case.hq, case.nq, case.dv), float("nan"),
                     device="cuda", dtype=dt)
    out, lse = attention(q, k, v, case.bs, case.ws, scale=case.scale,
                         return_lse=True, out=out)
    torch.cuda.synchronize()
    ref, ref_lse = reference(q, k, v, case.bs, case.ws, effective_scale(case))

    assert torch.isfinite(out).all(), "unwritten (NaN-poisoned) or non-finite output"
    err = (out.float() - ref).abs()
    scale = ref.abs().amax().clamp_min(1e-3)
    tol = TOL[case.dtype]
    assert (err <= tol * scale + tol * ref.abs()).all(), (
        f"max abs err {err.max().item():.3e}, rel "
        f"{(err.norm() / ref.norm()).item():.3e}")
    assert torch.allclose(lse, ref_lse, atol=1e-3, rtol=1e-4), (
        f"lse max err {(lse - ref_lse).abs().max().item():.3e}")


def one_consumer_by_default(case):
    """Whether the sm_90a forward's default for `case` is one consumer a
    workgroup, three an SM on the grid: bands of 256 to 512 keys at head
    dim 64 (withWindowTiling)."""
    return case.d == case.dv == 64 and 256 <= case.bs * case.ws <= 512


def forward_grid(case, consumers, options):
    """The sm_90a forward's grid: a workgroup per query tile of 64 rows a
    consumer, or, persistent (by default at head dim 64, but for
    one_consumer_by_default), a workgroup an SM of the device or one a query
    tile where there are fewer."""
    tiles = (case.hq, -(-case.nq // (64 * consumers)), case.b)
    persistent = "tile-scheduler=persistent" in options or (
        case.d == case.dv == 64 and "tile-scheduler" not in options
        and "workgroups-per-sm" not in options and not (
            not options and one_consumer_by_default(case)))
    if not persistent:
        return tiles
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    return (min(sms, math.prod(tiles)), 1, 1)


def dq_launch(case, consumers):
    """The sm_90a dQ kernel's grid and block: a workgroup per query tile of
    64 rows a consumer, a producer and the consumer warpgroups."""
    return (case.hq, -(-case.nq // (64 * consumers)), case.b), (128 * (consumers + 1), 1, 1)


@pytest.mark.parametrize("sms", [1, 3])
@pytest.mark.parametrize("name,options", SCHEDULER_CASES,
                         ids=[f"{n}-{o or 'default'}" for n, o in SCHEDULER_CASES])
def test_tile_schedulers(name, options, sms, monkeypatch):
    """The sm_90a forward under its tile schedulers. The persistent kernel
    is launched over `sms` workgroups (the device's SM count is what the
    launcher fills in), fewer than the query tiles: each runs several query
    tiles in turn, reusing Q's buffer, its mbarriers' phases and the K/V
    ring across them, and every output element must still match."""
    launches = on_sm90a(monkeypatch, options)
    monkeypatch.setattr(ops, "_sm_counts", {torch.cuda.current_device(): sms})
    monkeypatch.setattr(ops, "_plans", type(ops._plans)())
    case = next(c for c in CASES if c.name == name)
    check_forward(case)
    grids = [grid for kernel, grid, _, _ in launches if kernel == "swba_fwd"]
    assert grids, launches
    # Persistent when asked for, and by default at head dim 64 (but for
    # bands of 256 to 512 keys: one consumer, three workgroups an SM).
    if "tile-scheduler=persistent" in options.split() or (
            not options and case.d == case.dv == 64 and not one_consumer_by_default(case)):
        assert grids == [(sms, 1, 1)], grids
    elif not options and one_consumer_by_default(case):
        assert grids == [(case.hq, -(-case.nq // 64), case.b)], grids
    else:
        assert grids[0][0] * grids[0][1] * grids[0][2] > 3, grids


# Scores that rise along the keys: a row's maximum climbs on every tile,
# so every tile rescales O and the row sum by a factor far from 1 (random
# scores mostly leave the maximum where the first tiles put it).
@pytest.mark.parametrize("case", [c for c in CASES if c.name in
                                  ("bs_not_tile_multiple_partial_frame", "video_frames_1560",
                                   "narrow_window_128_bf16")],
                         ids=lambda c: c.name)
def test_forward_rising_scores(case, chip):
    check_forward(case, key_growth=0.02)


# Gradients: products of f16/bf16 operands (P, dS rounded to the input type
# before the second product of each pair), f32 accumulation.
GRAD_TOL = {"f16": 1e-2, "bf16": 5e-2}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backward_matches_reference(case, chip):
    check_backward(case)


class deterministic_algorithms:
    """`with deterministic_algorithms():` torch.use_deterministic_algorithms
    (warnings only: the fp32 reference's cuBLAS calls stay outside it
    anyway) for the block, restored after."""

    def __enter__(self):
        self.saved = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.saved[0], warn_only=self.saved[1])


def backward_inputs(case):
    """q, k, v (requiring grad) and dout of `case`, pseudo-random from the
    case's own seed."""
    torch.manual_seed(hash(case.name) % 2**31 + 1)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
    v = torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt)
    dout = torch.randn(case.b, case.hq, case.nq, case.dv, device="cuda", dtype=dt)
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), dout


def check_backward(case, deterministic=False):
    """dq, dk, dv of `attention` against the fp32 reference's, every element
    (the backward run under torch.use_deterministic_algorithms when
    `deterministic`)."""
    q, k, v, dout = backward_inputs(case)
    out = attention(q, k, v, case.bs, case.ws, scale=case.scale)
    if deterministic:
        with deterministic_algorithms():
            out.backward(dout)
    else:
        out.backward(dout)
    torch.cuda.synchronize()

    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref, _ = reference(q32, k32, v32, case.bs, case.ws, effective_scale(case))
    ref.backward(dout.float())
    tol = GRAD_TOL[case.dtype]
    for name, got, want in (("dq", q.grad, q32.grad), ("dk", k.grad, k32.grad),
                            ("dv", v.grad, v32.grad)):
        assert torch.isfinite(got).all(), f"{name} has non-finite elements"
        err = (got.float() - want).abs()
        bound = tol * want.abs().amax().clamp_min(1e-3) + tol * want.abs()
        assert (err <= bound).all(), (
            f"{name}: max abs err {err.max().item():.3e}, rel "
            f"{(err.norm() / want.norm()).item():.3e}")
    return q.grad, k.grad, v.grad


@pytest.mark.parametrize("keys_past", [0, 37])
@pytest.mark.parametrize("ws", WHOLE_BAND_WINDOWS)
def test_whole_band_forward_matches_reference(ws, keys_past, monkeypatch):
    """The sm_90a forward on token windows of at most 129 keys at head dim
    64, where a consumer runs the key tiles its rows see in one pass (three,
    or two at 64 keys) and the ring has eight stages (two Q buffers of 192
    rows, eight of 64-key K and V, 2 KiB of ones for the rows' sums, O's
    staging for its TMA stores, 64 rows a consumer, the tile slots of 24
    words), rising scores too; every element of out and lse. With
    `keys_past` the queries are the last of more keys (a KV cache), so
    the windows start off the 64-key grid of the query tiles."""
    if CAPABILITY != (9, 0):
        pytest.skip("the wgmma kernel needs sm_90a")
    case = next(c for c in CASES if c.name == "narrow_window_128_bf16")._replace(
        name=f"narrow_window_{ws}_{keys_past}", ws=ws)
    case = case._replace(nk=case.nq + keys_past)
    launches = on_sm90a(monkeypatch, "")
    check_forward(case)
    check_forward(case, key_growth=0.02)
    (name, _, block, shared), *_ = launches
    assert (name, block) == ("swba_fwd", (512, 1, 1)), launches
    assert shared == (2 * 192 * 64 * 2 + 8 * 2 * 64 * 64 * 2 + 2048
                      + 3 * 64 * 64 * 2 + 2 * 24 * 4), shared


@pytest.mark.parametrize("case", [next(c for c in CASES if c.d == c.dv == d)
                                  for d in (64, 96, 128)],
                         ids=lambda c: c.name)
def test_hopper_forward_launches_wgmma(case, monkeypatch):
    """On sm_90a at head dims 64, 96 and 128 the forward is the TMA + wgmma
    kernel (a producer and two or three consumer warpgroups of 64 query
    rows), launched as the manifest says; a silent mma.sync fallback (128
    threads, no dynamic shared memory) fails."""
    if CAPABILITY != (9, 0):
        pytest.skip("the wgmma kernel needs sm_90a")
    monkeypatch.setenv("SWBA_CHIP", "sm_90a")
    launches = launched_kernels(monkeypatch)
    check_forward(case)
    (name, grid, block, shared), = launches
    assert name == "swba_fwd", name
    consumers = block[0] // 128 - 1
    # (Two workgroups an SM of a narrow band take 48 KiB each, three of one
    # consumer 40 KiB.)
    if one_consumer_by_default(case):
        assert block == (256, 1, 1) and shared >= 40 * 1024, (block, shared)
    else:
        assert block in ((384, 1, 1), (512, 1, 1)) and shared >= 48 * 1024, (block, shared)
    assert grid == forward_grid(case, consumers, ""), grid


@pytest.mark.parametrize("case", [next(c for c in CASES if c.d == c.dv == d)
                                  for d in (64, 96, 128)],
                         ids=lambda c: c.name)
def test_hopper_backward_launches_wgmma(case, monkeypatch):
    """On sm_90a at head dims 64, 96 and 128 the backward is the delta kernel,
    then the TMA + wgmma dK/dV and dQ kernels (the forward is wgmma too; on
    narrow bands at head dim 64 the dQ kernel computing delta, then dK/dV);
    with grad-fused-dq=true (the default on frames of 128 tokens or more at
    head dim 128), the delta kernel, the dK/dV kernel that adds dQ up and
    the dQ conversion, except under torch.use_deterministic_algorithms."""
    if CAPABILITY != (9, 0):
        pytest.skip("the wgmma kernel needs sm_90a")
    monkeypatch.setenv("SWBA_CHIP", "sm_90a")
    launches = launched_kernels(monkeypatch)
    fused = ["swba_fwd", "swba_bwd_delta", "swba_bwd_dkdvdq", "swba_bwd_dqconvert"]
    if case.d == case.dv == 128 and case.bs >= 128:
        check_backward(case)
        assert [name for name, *_ in launches] == fused, launches
        launches.clear()
        monkeypatch.setenv("SWBA_LOWER_OPTIONS", "grad-fused-dq=false")
    check_backward(case)
    separate = [name for name, *_ in launches]
    # The wgmma kernels: a producer and consumer warpgroups of 64 rows; dK/dV
    # over the key tiles of the kv heads, 64 keys a consumer: one consumer
    # (two workgroups an SM) on a band of at most 512 keys at head dim 64,
    # two otherwise, and on such a band up to 16 key tiles a workgroup
    # (grad-kv-tiles), as many as the launcher's rule picks for the grid;
    # dQ over the query tiles of the query heads, with
    # one consumer (three workgroups an SM) where such a band gives it
    # 64-key tiles (QueryGradTiling), two otherwise.
    narrow = case.d == case.dv == 64 and case.bs * case.ws <= 512
    if narrow:
        # The dQ kernel computes delta (grad-dq-delta), then dK/dV.
        assert separate == ["swba_fwd", "swba_bwd_dq", "swba_bwd_dkdv"], separate
        kv_at, dq_at = 2, 1
    else:
        # The delta kernel, then dK/dV (on the second stream) and dQ.
        assert separate == ["swba_fwd", "swba_bwd_delta", "swba_bwd_dkdv",
                            "swba_bwd_dq"], separate
        kv_at, dq_at = 2, 3
    kv_consumers, dq_consumers = (1, 1) if narrow else (2, 2)
    kv_blocks = -(-case.nk // (64 * kv_consumers))
    if narrow:
        kv_blocks = -(-kv_blocks // compiler.chunks_per_workgroup(
            kv_blocks, case.hkv * case.b, compiler.GridDim(None, 64, 16, 2, 30),
            ops.sm_count(torch.device("cuda"))))
    dq_grid, dq_block = dq_launch(case, dq_consumers)
    assert launches[kv_at][2] == (128 * (kv_consumers + 1), 1, 1), launches
    assert launches[dq_at][2] == dq_block, launches
    assert launches[kv_at][1] == (case.hkv, kv_blocks, case.b), launches
    assert launches[dq_at][1] == dq_grid, launches
    monkeypatch.setenv("SWBA_LOWER_OPTIONS", "grad-fused-dq=true")
    launches.clear()
    check_backward(case)
    names = [name for name, *_ in launches]
    assert names == fused, names
    launches.clear()
    check_backward(case, deterministic=True)
    assert [name for name, *_ in launches] == separate
    monkeypatch.delenv("SWBA_LOWER_OPTIONS")
    launches.clear()
    check_backward(case, deterministic=True)
    assert [name for name, *_ in launches] == separate


# Head dim 64 with 128-row query tiles, 128 with GQA, and 64 with a value
# dim of 128 (64-row query tiles): the three ways the fused sm_90a dK/dV
# kernel splits dQ between its consumers (rows, columns, keys).
FUSED_CASES = [c for c in CASES
               if c.name in ("square_f16", "gqa_d128_bf16", "dv_ne_d_scale_bf16",
                             "bs_not_tile_multiple_partial_frame", "kv_cache_nq_lt_nk",
                             "video_frames_1560")]


@pytest.mark.parametrize("case", FUSED_CASES, ids=[c.name for c in FUSED_CASES])
def test_fused_dq_backward_matches_reference(case, monkeypatch):
    """grad-fused-dq=true: dq added up by TMA reduce-adds, every element."""
    launches = on_sm90a(monkeypatch, "grad-fused-dq=true")
    check_backward(case)
    assert "swba_bwd_dkdvdq" in [name for name, *_ in launches]


@pytest.mark.parametrize("options", FORWARD_OPTIONS)
@pytest.mark.parametrize("case", [c for c in CASES if c.name in OPTION_CASES],
                         ids=lambda c: c.name)
def test_forward_options_match_reference(case, options, monkeypatch):
    """sm_90a forward consumer counts (the default is three at head dim 64,
    two at 128), with and without turns, every element."""
    launches = on_sm90a(monkeypatch, options)
    check_forward(case)
    (name, grid, block, shared), = launches
    consumers = int(options.split()[0].split("=")[1])
    # A producer and the consumer warpgroups, 64 query rows each.
    assert name == "swba_fwd" and block == ((consumers + 1) * 128, 1, 1), (name, block)
    assert grid == forward_grid(case, consumers, options), grid


@pytest.mark.parametrize("options", GRAD_OPTIONS)
@pytest.mark.parametrize("case", [c for c in CASES if c.name in OPTION_CASES],
                         ids=lambda c: c.name)
def test_backward_options_match_reference(case, options, monkeypatch):
    """sm_90a backward options other than the defaults (grad-ping-pong:
    the consumers take turns), every element."""
    launches = on_sm90a(monkeypatch, options)
    check_backward(case)
    assert ("swba_bwd_dkdv", (384, 1, 1)) in [(name, block) for name, _, block, _ in launches]


@pytest.mark.parametrize("name", ONE_CONSUMER_CASES)
@pytest.mark.parametrize("kernel", ["dkdv", "dq"])
def test_backward_one_consumer_matches_reference(name, kernel, monkeypatch):
    """The sm_90a dK/dV kernel of one consumer (grad-kv-consumers=1: a
    workgroup per 64 keys of a kv head, one key tile a workgroup) or dQ
    kernel of one consumer (grad-q-consumers=1: a workgroup per 64 query
    rows of a query head), a producer and one consumer warpgroup, two an SM;
    every element."""
    case = next(c for c in CASES if c.name == name)
    option = ("grad-kv-consumers=1 grad-kv-tiles=1" if kernel == "dkdv"
              else "grad-q-consumers=1")
    launches = on_sm90a(monkeypatch, option)
    check_backward(case)
    got = [(grid, block) for k, grid, block, _ in launches if k == "swba_bwd_" + kernel]
    heads, rows = (case.hkv, case.nk) if kernel == "dkdv" else (case.hq, case.nq)
    assert got == [((heads, -(-rows // 64), case.b), (256, 1, 1))], launches


@pytest.mark.parametrize("chunks", [None, "most", "2"])
@pytest.mark.parametrize("name,options", KV_TILES_CASES,
                         ids=[f"{n}-{o}" for n, o in KV_TILES_CASES])
def test_backward_key_tiles_match_reference(name, options, chunks, monkeypatch):
    """The sm_90a dK/dV kernel running up to grad-kv-tiles key tiles a
    workgroup one after another (K and V of the next in a second buffer),
    as many as the launcher picks (None: the rule, which keeps one a
    workgroup on these small grids; or SWBA_WORKGROUP_CHUNKS: the most, or
    two): a grid of that many fewer workgroups, each taking ceildiv(key
    tiles, grid) of them; every element of dq, dk and dv."""
    case = next(c for c in CASES if c.name == name)
    most = int(options.split("=")[1])
    if chunks:
        monkeypatch.setenv("SWBA_WORKGROUP_CHUNKS", str(most) if chunks == "most" else chunks)
    launches = on_sm90a(monkeypatch, options)
    check_backward(case)
    (grid, block), = [(grid, block) for k, grid, block, _ in launches
                      if k == "swba_bwd_dkdv"]
    tiles = -(-case.nk // (64 * (block[0] // 128 - 1)))  # 64 keys a consumer
    per = min(most, most if chunks == "most" else int(chunks or 1))
    assert grid == (case.hkv, -(-tiles // per), case.b), launches


@pytest.mark.parametrize("name,computes", DQ_DELTA_CASES,
                         ids=[f"{n}-{c}" for n, c in DQ_DELTA_CASES])
def test_backward_dq_delta_matches_reference(name, computes, monkeypatch):
    """The sm_90a dQ kernel computing delta = rowsum(dO * O) of its rows and
    writing it for the dK/dV kernels, which run after it (grad-dq-delta=
    true: no delta kernel), or reading the delta kernel's (false), every
    element of dq, dk and dv."""
    case = next(c for c in (*CASES, *HOPPER_CASES) if c.name == name)
    launches = on_sm90a(monkeypatch, f"grad-dq-delta={computes}")
    check_backward(case)
    kernels = [k for k, _, _, _ in launches]
    grads = [k for k in kernels if k.startswith("swba_bwd_d")]
    if computes == "true":
        assert "swba_bwd_delta" not in kernels, kernels
        assert grads[0] == "swba_bwd_dq" and len(grads) > 1, kernels
    else:
        assert grads[0] == "swba_bwd_delta" and grads[-1] == "swba_bwd_dq", kernels


@pytest.mark.parametrize("name", ["token_level_bs1", "square_f16"])
def test_early_start_gives_the_same_bits(name, monkeypatch):
    """On narrow bands the dK/dV kernel captured in a CUDA graph starts
    while the dQ kernel that writes delta ends (programmatic dependent
    launch; its consumers wait for dQ before they read); eagerly it
    launches plainly. The graph's replay gives the bits of the eager
    backward, which matches the reference in every element."""
    case = next(c for c in CASES if c.name == name)
    on_sm90a(monkeypatch, "")
    eager = [g.clone() for g in check_backward(case)]
    assert ("swba_bwd_dkdv", False) in early_starts, early_starts
    # The same inputs as check_backward's, in a graph.
    q, k, v, dout = backward_inputs(case)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as torch.cuda.graphs asks
        attention(q, k, v, case.bs, case.ws, scale=case.scale).backward(dout)
    side.synchronize()
    for t in (q, k, v):
        t.grad = None
    early_starts.clear()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        attention(q, k, v, case.bs, case.ws, scale=case.scale).backward(dout)
    assert ("swba_bwd_dkdv", True) in early_starts, early_starts
    for t in (q, k, v):
        t.grad.zero_()
    graph.replay()
    torch.cuda.synchronize()
    for got, want in zip((q.grad, k.grad, v.grad), eager):
        assert torch.equal(got, want)


@pytest.mark.parametrize("name,options", FORWARD_ONE_CONSUMER_CASES,
                         ids=[f"{n}-{o}" for n, o in FORWARD_ONE_CONSUMER_CASES])
def test_forward_one_consumer_matches_reference(name, options, monkeypatch):
    """The sm_90a forward of one consumer warpgroup a workgroup (a
    workgroup per 64 query rows of a query head, two or three an SM), every
    element of out and lse."""
    case = next(c for c in CASES if c.name == name)
    launches = on_sm90a(monkeypatch, options)
    check_forward(case)
    got = [(grid, block) for k, grid, block, _ in launches if k == "swba_fwd"]
    assert got == [((case.hq, -(-case.nq // 64), case.b), (256, 1, 1))], launches


@pytest.mark.parametrize("name,options,consumers", DQ_TILE_CASES,
                         ids=[f"{n}-{o}" for n, o, _ in DQ_TILE_CASES])
def test_dq_consumers_match_reference(name, options, consumers, monkeypatch):
    """The sm_90a dQ kernel with the consumers its key tile gives it at head
    dim 64 (three with 64-key tiles, two with 128), every element."""
    case = next(c for c in CASES if c.name == name)
    launches = on_sm90a(monkeypatch, options)
    check_backward(case)
    dq = [(grid, block) for kernel, grid, block, _ in launches if kernel == "swba_bwd_dq"]
    assert dq == [dq_launch(case, consumers)], launches


def test_backward_is_deterministic(chip, monkeypatch):
    """Under torch.use_deterministic_algorithms, backward passes give the
    same bits (GQA: dk/dv sum the group without atomics), by default (for
    these frames at head dim 128 the fused backward, which the runtime
    replaces with grad-fused-dq=false) and with grad-fused-dq asked for."""
    case = CASES[2]
    torch.manual_seed(7)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
    v = torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt)
    dout = torch.randn(case.b, case.hq, case.nq, case.dv, device="cuda", dtype=dt)
    grads = []
    for run in range(3):
        if run == 2:
            monkeypatch.setenv("SWBA_LOWER_OPTIONS", "grad-fused-dq=true")
        qs, ks, vs = (t.clone().requires_grad_() for t in (q, k, v))
        out = attention(qs, ks, vs, case.bs, case.ws)
        with deterministic_algorithms():
            out.backward(dout)
        grads.append((qs.grad, ks.grad, vs.grad))
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            assert torch.equal(a, b)


def test_lse_and_layouts_under_autograd(chip):
    """return_lse under autograd gives the no-grad lse (not differentiable);
    a gradient with zero strides (from an expand) and a non-contiguous q
    give the gradients of their dense copies, every element (bit for bit:
    under torch.use_deterministic_algorithms, as this case's default
    backward adds dq up in whichever order its workgroups come)."""
    with deterministic_algorithms():
        _check_lse_and_layouts(CASES[2])


def _check_lse_and_layouts(case):
    torch.manual_seed(11)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
    v = torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt)
    with torch.no_grad():
        out0, lse0 = attention(q, k, v, case.bs, case.ws, return_lse=True)
    qs, ks, vs = (t.clone().requires_grad_() for t in (q, k, v))
    out, lse = attention(qs, ks, vs, case.bs, case.ws, return_lse=True)
    assert not lse.requires_grad and out.requires_grad
    assert torch.equal(out, out0) and torch.equal(lse, lse0)
    row = torch.randn(1, 1, 1, case.dv, device="cuda", dtype=dt)
    out.backward(row.expand_as(out))  # strides (0, 0, 0, 1)
    dense = [t.clone().requires_grad_() for t in (q, k, v)]
    attention(*dense, case.bs, case.ws).backward(row.expand_as(out).contiguous())
    for got, want in zip((qs.grad, ks.grad, vs.grad), (t.grad for t in dense)):
        assert torch.equal(got, want)
    # q as a transposed view: [B, N, H, D] memory seen as [B, H, N, D].
    qt = q.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert not qt.is_contiguous()
    attention(qt, k, v, case.bs, case.ws).backward(row.expand_as(out))
    assert torch.equal(qt.grad, qs.grad)


def test_cuda_graph_capture_and_replay(chip):
    """A forward+backward step captured in a CUDA graph replays on new
    input values like an eager step, every element. The capture runs on the
    stream of the warm-up, so it reuses tensor maps made before it; other
    calls on that stream then churn the map and launch caches, whose
    dropped maps' memory gets reused, before the replays (the graph's
    launches keep their maps: with that switched off, the replay's TMA
    loads read other maps and the step hung on the device)."""
    case = CASES[2]
    dt = DTYPES[case.dtype]
    torch.manual_seed(3)

    def inputs():
        return (torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt),
                torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt),
                torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt),
                torch.randn(case.b, case.hq, case.nq, case.dv, device="cuda", dtype=dt))

    *qkv, dout = inputs()
    q, k, v = (t.requires_grad_() for t in qkv)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as torch.cuda.graphs asks
        for _ in range(2):
            attention(q, k, v, case.bs, case.ws).backward(dout)
    side.synchronize()
    graph = torch.cuda.CUDAGraph()
    for t in (q, k, v):
        t.grad = None
    with torch.cuda.graph(graph, stream=side):
        out = attention(q, k, v, case.bs, case.ws)
        out.backward(dout)
    with torch.cuda.stream(side):
        # More maps and launches than the caches keep (a new map for each
        # of these addresses, boxes and kernels); the memory of the ones
        # dropped goes back to this stream's pool and comes out again.
        kept = []  # distinct addresses of the same shapes: new maps, new launches
        for _ in range(60):
            a, b, c, g = inputs()
            a.requires_grad_()
            attention(a, b, c, case.bs, case.ws).backward(g)  # the cached kernels
            kept.append((a, b, c, g))
        side.synchronize()
        for _ in range(2):
            new = inputs()
            with torch.no_grad():
                for t, x in zip((q, k, v, dout), new):
                    t.copy_(x)
            graph.replay()
            eager = [t.detach().clone().requires_grad_() for t in new[:3]]
            want = attention(*eager, case.bs, case.ws)
            want.backward(new[3])
            side.synchronize()
            assert torch.equal(out, want)
            for got, e in zip((q.grad, k.grad, v.grad), eager):
                assert torch.equal(got, e.grad)


def test_toy_training_matches_naive_reference():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    import train_toy
    ours, ref = train_toy.main()
    assert ours[-1] < ours[0], "training did not reduce the loss"
    for a, b in zip(ours, ref):
        assert abs(a - b) <= 2e-3 * abs(b), (ours, ref)


@pytest.mark.parametrize("case", HOPPER_CASES, ids=[c.name for c in HOPPER_CASES])
def test_wide_head_dims_forward(case, monkeypatch):
    """Head dims past 128 (sm_90a only): the forward of two consumers and
    64-key tiles, every element of out and lse against the reference, with
    rising scores too (every tile rescales)."""
    launches = on_sm90a(monkeypatch, "")
    check_forward(case)
    check_forward(case, key_growth=0.02)
    (name, _, block, shared), *_ = launches
    assert name == "swba_fwd" and block == (384, 1, 1), (name, block)
    # Q of 128 rows and two stages of 64-key K and V tiles, of whole
    # 64-column boxes.
    d, dv = (compiler.kernel_head_dim(x) for x in (case.d, case.dv))
    assert shared == 2 * (128 * d + 2 * 64 * (d + dv)), shared


@pytest.mark.parametrize("case", HOPPER_CASES, ids=[c.name for c in HOPPER_CASES])
def test_wide_head_dims_backward(case, monkeypatch):
    """Head dims past 128 (sm_90a only): dq, dk, dv against the
    reference, every element; dK/dV come from a dV kernel and a dK kernel,
    on the second stream, as the manifest orders them."""
    launches = on_sm90a(monkeypatch, "")
    check_backward(case)
    names = [name for name, *_ in launches]
    assert names == ["swba_fwd", "swba_bwd_delta", "swba_bwd_dv", "swba_bwd_dk",
                     "swba_bwd_dq"], names


def test_out_must_be_aligned():
    """A caller's `out` that is contiguous but not 16-byte aligned (the
    kernels store O 8 bytes at a time) is refused before any launch, and an
    aligned one is written (the shapes of window_beyond_frames_bf16)."""
    torch.manual_seed(7)
    q = torch.randn(1, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    buffer = torch.full((q.numel() + 8,), float("nan"), device="cuda",
                        dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="16-byte aligned"):
        attention(q, k, v, 64, 100, out=buffer[1:1 + q.numel()].view(q.shape))
    assert buffer.isnan().all()
    out = buffer[8:].view(q.shape)
    attention(q, k, v, 64, 100, out=out)
    ref, _ = reference(q, k, v, 64, 100, 0.125)
    err = (out.float() - ref).abs()
    tol = TOL["bf16"]
    assert (err <= tol * ref.abs().amax() + tol * ref.abs()).all(), err.max()
