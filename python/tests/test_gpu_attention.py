"""GPU correctness of the compiled forward kernel against an fp32 PyTorch
reference, on fresh random inputs, every output element checked. Skipped
where there is no CUDA device."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

sys.path.insert(0, os.path.dirname(__file__))
from gpu_cases import CASES, effective_scale  # noqa: E402

from swba import attention  # noqa: E402

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
# f32 accumulation, P rounded to the input type before P.V, output rounded:
# a few units of the type's epsilon relative to the output's scale.
TOL = {"f16": 4e-3, "bf16": 3e-2}


def reference(q, k, v, bs, ws, scale):
    """Dense masked attention in fp32 (design.md section 1)."""
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
def test_forward_matches_reference(case):
    torch.manual_seed(hash(case.name) % 2**31)
    dt = DTYPES[case.dtype]
    q = torch.randn(case.b, case.hq, case.nq, case.d, device="cuda", dtype=dt)
    k = torch.randn(case.b, case.hkv, case.nk, case.d, device="cuda", dtype=dt)
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
