"""Runs the forward and backward kernels of both paths on the odd shapes of
the GPU test grid, checked against the fp32 reference, for a run under
NVIDIA's compute-sanitizer:

    compute-sanitizer --tool memcheck  python3 python/tests/sanitize.py
    compute-sanitizer --tool racecheck python3 python/tests/sanitize.py --small
    compute-sanitizer --tool synccheck python3 python/tests/sanitize.py

Every kernel the runtime launches for a forward and a backward step runs:
the forward, the delta, dQ and dK/dV kernels (and the dQ conversion with
grad-fused-dq=true). The shapes are the test grid's shrunk along the
sequence (a sanitizer runs kernels tens of times slower) but keep what makes
each case odd: partial frames, block sizes off the tiles, GQA, Nq < Nk, one
query, head dims 32/48/128. Exits non-zero on a wrong result; the
sanitizer's own summary says whether it found errors."""

import argparse
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]
from gpu_cases import CASES, effective_scale  # noqa: E402
from swba import attention  # noqa: E402

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
TOL = {"f16": 1e-2, "bf16": 5e-2}


def shrink(case, limit):
    """The case with its lengths cut to at most `limit` queries (keeping
    Nk - Nq, so a KV-cache case stays one)."""
    if case.nq <= limit:
        return case
    return case._replace(nq=limit, nk=case.nk - case.nq + limit)


def reference(q, k, v, bs, ws, scale):
    nq, nk = q.shape[2], k.shape[2]
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    qf = (torch.arange(nq, device=q.device) + nk - nq) // bs
    kf = torch.arange(nk, device=q.device) // bs
    visible = (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)
    s = (q @ k.transpose(-1, -2)) * scale
    return torch.softmax(s.masked_fill(~visible, float("-inf")), dim=-1) @ v


def run(case):
    """Forward and backward of `case`; the largest error relative to the
    reference's scale, over out, dq, dk, dv."""
    torch.manual_seed(0)
    dt = DTYPES[case.dtype]
    shapes = ((case.b, case.hq, case.nq, case.d), (case.b, case.hkv, case.nk, case.d),
              (case.b, case.hkv, case.nk, case.dv))
    q, k, v = (torch.randn(s, device="cuda", dtype=dt, requires_grad=True) for s in shapes)
    dout = torch.randn(case.b, case.hq, case.nq, case.dv, device="cuda", dtype=dt)
    out = attention(q, k, v, case.bs, case.ws, scale=case.scale)
    out.backward(dout)
    torch.cuda.synchronize()
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = reference(q32, k32, v32, case.bs, case.ws, effective_scale(case))
    ref.backward(dout.float())
    worst = 0.0
    for got, want in ((out, ref), (q.grad, q32.grad), (k.grad, k32.grad), (v.grad, v32.grad)):
        err = (got.float() - want).abs().amax() / want.abs().amax().clamp_min(1e-3)
        worst = max(worst, err.item())
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="at most 160 queries per case (for racecheck)")
    parser.add_argument("--chips", default="sm_90,sm_90a")
    parser.add_argument("--options", default="",
                        help="extra lowering options (SWBA_LOWER_OPTIONS)")
    args = parser.parse_args()
    limit = 160 if args.small else 400
    os.environ["SWBA_LOWER_OPTIONS"] = args.options
    failed = 0
    for chip in args.chips.split(","):
        os.environ["SWBA_CHIP"] = chip
        for case in CASES:
            case = shrink(case, limit)
            worst = run(case)
            ok = worst <= TOL[case.dtype]
            failed += not ok
            print(f"{chip:7} {case.name:38} nq={case.nq:5} nk={case.nk:5} "
                  f"err={worst:.2e} {'ok' if ok else 'WRONG'}", flush=True)
    print(f"sanitize: {failed} wrong of {len(CASES) * len(args.chips.split(','))}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
