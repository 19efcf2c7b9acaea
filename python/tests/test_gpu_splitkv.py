"""GPU correctness of the split-KV forward (sm_90a, --lower-swba split-kv):
out and lse against the fp32 reference, every element, for several split
counts (1 is the plain kernel; counts above the number of key tiles leave
splits without a key, which the combine kernel must skip), with partial
frames, GQA, Nq < Nk, a frame of queries against a long cache and decode;
and the split count the runtime picks from the shapes. Skipped without an
H100/H200 (compute capability 9.0)."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
    pytest.skip("the split-KV forward needs sm_90a", allow_module_level=True)

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]
from splitkv_cases import CASES, SPLITS  # noqa: E402
from test_gpu_attention import reference as dense_reference  # noqa: E402

from swba import ops  # noqa: E402

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
TOL = {"f16": 4e-3, "bf16": 3e-2}


@pytest.fixture(autouse=True)
def sm90a(monkeypatch):
    monkeypatch.setenv("SWBA_CHIP", "sm_90a")
    monkeypatch.delenv("SWBA_LOWER_OPTIONS", raising=False)


def reference(q, k, v, bs, ws, scale):
    """Dense masked attention in fp32 over the keys from the first query's
    window on (cut at a frame edge, which keeps every frame's distance)."""
    nq, nk = q.shape[2], k.shape[2]
    begin = max(0, ((nk - nq) // bs - ws + 1) * bs)
    k, v = k[:, :, begin:], v[:, :, begin:]
    return dense_reference(q, k, v, bs, ws, scale)


def inputs(case):
    torch.manual_seed(hash(case.name) % 2**31)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
    v = torch.randn(case.b, case.hkv, case.nk, case.dv, device="cuda", dtype=dt)
    return q, k, v


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_split_forward_matches_reference(case):
    q, k, v = inputs(case)
    scale = 1.0 / math.sqrt(case.d)
    ref, ref_lse = reference(q, k, v, case.bs, case.ws, scale)
    for splits in SPLITS[case.name]:
        out = torch.full((case.b, case.hq, case.nq, case.dv), float("nan"),
                         device="cuda", dtype=DTYPES[case.dtype])
        out, lse = ops.attention_forward(q, k, v, case.bs, case.ws, scale, out=out,
                                         splits=splits)
        torch.cuda.synchronize()
        assert torch.isfinite(out).all(), f"splits={splits}: non-finite output"
        err = (out.float() - ref).abs()
        tol = TOL[case.dtype]
        assert (err <= tol * ref.abs().amax().clamp_min(1e-3) + tol * ref.abs()).all(), (
            f"splits={splits}: max abs err {err.max().item():.3e}")
        assert torch.allclose(lse, ref_lse, atol=1e-3, rtol=1e-4), (
            f"splits={splits}: lse max err {(lse - ref_lse).abs().max().item():.3e}")


def test_split_count_follows_the_shapes():
    """A frame of queries against a long cache leaves most SMs idle with one
    workgroup a query tile: the runtime splits. A long sequence fills the
    GPU with query tiles: it does not."""
    for name in ("frame_vs_128k_cache", "frame_vs_32k_cache_d96"):
        long_cache = next(c for c in CASES if c.name == name)
        q, k, v = inputs(long_cache)
        plan = ops.plan_for(q, k, v, long_cache.bs, long_cache.ws,
                            1.0 / math.sqrt(long_cache.d))
        assert plan.split_count() > 1, name
    # Design configuration 3 (bench_splitkv.py compiles its kernels).
    q = torch.randn(1, 24, 16384, 128, device="cuda", dtype=torch.float16)
    plan = ops.plan_for(q, q, q, 1024, 4, 1.0 / math.sqrt(128))
    assert plan.split_count() == 1
