"""swba.distributed.attention on two GPUs (NCCL): every rank's outputs and
gradients against the single-GPU `swba.attention` on the whole sequence, for
shards shorter than, as long as and longer than the halo, with partial frames
at their edges, GQA, f16 and bf16. Skipped without two CUDA devices.

    python3 -m pytest python/tests/test_distributed_gpu.py
"""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]
from distributed_cases import CASES  # noqa: E402
from test_distributed import _counts, _spawn  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="needs two CUDA devices")

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
OUT_TOL = {"f16": 4e-3, "bf16": 3e-2}
GRAD_TOL = {"f16": 1e-2, "bf16": 5e-2}


def _worker(rank, world, init_file, case, result_dir):
    from swba import attention as single_gpu_attention
    from swba.distributed import attention

    _, lengths, hq, hkv, d, bs, ws, dtype = case
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        gen = torch.Generator().manual_seed(7)
        n = sum(lengths)
        q, k, v, dout = (torch.randn(shape, generator=gen).to(f"cuda:{rank}", DTYPES[dtype])
                         for shape in ((1, hq, n, d), (1, hkv, n, d), (1, hkv, n, d),
                                       (1, hq, n, d)))
        qf, kf, vf = (x.clone().requires_grad_() for x in (q, k, v))
        of = single_gpu_attention(qf, kf, vf, bs, ws)
        of.backward(dout)

        s = sum(lengths[:rank])
        rows = slice(s, s + lengths[rank])
        ql, kl, vl = (x[:, :, rows].clone().requires_grad_() for x in (q, k, v))
        ol = attention(ql, kl, vl, bs, ws)
        ol.backward(dout[:, :, rows].contiguous())
        torch.cuda.synchronize()

        report = []
        for name, got, want, tol in [("out", ol, of, OUT_TOL[dtype]),
                                     ("dq", ql.grad, qf.grad, GRAD_TOL[dtype]),
                                     ("dk", kl.grad, kf.grad, GRAD_TOL[dtype]),
                                     ("dv", vl.grad, vf.grad, GRAD_TOL[dtype])]:
            got, want = got.float(), want[:, :, rows].float()
            bound = tol * want.abs().amax().clamp_min(1e-3) + tol * want.abs()
            bad = ~((got - want).abs() <= bound)
            report.append(f"{name} {got.numel()} {int(bad.sum())}")
        with open(os.path.join(result_dir, f"{rank}"), "w") as f:
            f.write("\n".join(report))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_two_gpus_match_one(case):
    for rank, lines in enumerate(_spawn(_worker, len(case.lengths), case)):
        _counts(lines, f"{case.name}: rank {rank}")
