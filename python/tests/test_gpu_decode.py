"""The split-KV decode kernels on the GPU: swba.paged_attention against the
float64 reference (swba.reference.paged_attention_forward) for ragged
batches (lengths 0, 1, partial last frames, long), pages in random order,
GQA 1/4/8, one and a few queries, any split count (empty splits included),
table entries of an invalid page (NaN rows), CUDA-graph replay after the
lengths change in place; and swba.attention's forward routed to the decode
kernel for few query rows. Every element is compared; pages and table
entries outside the block window hold NaN and garbage, so a read of them
shows. On an sm_90 device every test runs both copy paths: sm_90a's (TMA
boxes for dense caches and for pages of 16, 32 and 64, a bulk copy a key
row for pages of 24) and the 16-byte cp.async of every other chip
(SWBA_CHIP=sm_90). Skipped without
CUDA; kernels: decode_cases.py (prepare_kernels.py compiles them)."""

import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

here = os.path.dirname(__file__)
sys.path[:0] = [os.path.join(here, ".."), here]
import swba  # noqa: E402
from swba import ops, reference  # noqa: E402
from decode_cases import DENSE, PAGED  # noqa: E402

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
TOL = {torch.float16: 4e-3, torch.bfloat16: 3e-2}
CAPABILITY = torch.cuda.get_device_capability()


@pytest.fixture(autouse=True, params=["sm_90a", "sm_90"] if CAPABILITY == (9, 0) else [None],
                ids=lambda chip: {"sm_90a": "tma-bulk", "sm_90": "cp-async"}.get(chip, "device"))
def copy_path(request, monkeypatch):
    """The chip the kernels are compiled for (plans are kept per chip)."""
    if request.param:
        monkeypatch.setenv("SWBA_CHIP", request.param)
    return request.param


def paged_inputs(lens, hq, hkv, nq, d, bs, ws, page_size, dtype, seed):
    """q and a cache whose pages are in random order; pages wholly before a
    sequence's window point at a NaN page, entries past its length at
    garbage indices, and the rows of its last page past its length are NaN
    (a kernel that copies whole pages must not let them through)."""
    g = torch.Generator().manual_seed(seed)
    b = len(lens)
    counts = [-(-n // page_size) for n in lens]
    max_pages = max(counts + [1]) + 2
    total = sum(counts) + 2
    kc = torch.randn(total, page_size, hkv, d, generator=g).to(dtype)
    vc = torch.randn(total, page_size, hkv, d, generator=g).to(dtype)
    nan_page = total - 1
    kc[nan_page] = float("nan")
    vc[nan_page] = float("nan")
    order = torch.randperm(total - 2, generator=g).tolist()
    table = torch.randint(10**6, 2 * 10**6, (b, max_pages), generator=g, dtype=torch.int32)
    for bi, n in enumerate(lens):
        rows = min(nq, n)
        start = max((n - rows) // bs - ws + 1, 0) * bs if rows else n
        for p in range(counts[bi]):
            table[bi, p] = nan_page if (p + 1) * page_size <= start else order.pop()
        if n % page_size:
            kc[table[bi, counts[bi] - 1], n % page_size:] = float("nan")
            vc[table[bi, counts[bi] - 1], n % page_size:] = float("nan")
    q = torch.randn(b, hq, nq, d, generator=g).to(dtype)
    seq_lens = torch.tensor(lens, dtype=torch.int32)
    return q, kc, vc, table, seq_lens


def check(out, lse, want_out, want_lse, dtype):
    want_out = torch.from_numpy(want_out).float()
    want_lse = torch.from_numpy(want_lse).float()
    out, lse = out.float().cpu(), lse.cpu()
    assert torch.equal(out.isnan(), want_out.isnan()), "NaN rows differ"
    assert torch.equal(lse.isnan(), want_lse.isnan()), "NaN lse differ"
    ok = ~want_out.isnan()
    tol = TOL[dtype]
    scale = want_out[ok].abs().amax() if ok.any() else 1.0
    err = (out[ok] - want_out[ok]).abs()
    assert (err <= tol * scale + tol * want_out[ok].abs()).all(), err.max().item()
    finite = want_lse.isfinite()
    assert torch.equal(lse.isneginf(), want_lse.isneginf()), "rows without keys differ"
    assert torch.allclose(lse[finite], want_lse[finite], atol=1e-2, rtol=1e-3)


def run_paged(q, kc, vc, table, lens, bs, ws):
    dev = [t.cuda() for t in (q, kc, vc, table, lens)]
    out, lse = swba.paged_attention(*dev, bs, ws, return_lse=True)
    torch.cuda.synchronize()
    return out, lse


def want_paged(q, kc, vc, table, lens, bs, ws):
    return reference.paged_attention_forward(
        q.double().numpy(), kc.double().numpy(), vc.double().numpy(), table.numpy(),
        lens.numpy(), bs, ws, 1.0 / math.sqrt(q.shape[-1]))


def ragged_lens(bs, ws, nq):
    return [0, 1, nq + 1, bs * ws + 5, 2 * bs - 1, 3 * bs * ws + bs // 2 + 1]


@pytest.mark.parametrize("case", PAGED, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("group", [1, 4, 8])
@pytest.mark.parametrize("nq", [1, 3, 8])
@pytest.mark.parametrize("page_size", [16, 24, 32, 64])
def test_paged(case, group, nq, page_size):
    dtype_name, d, bs, ws = case
    if group * nq > 64:
        pytest.skip("more than 64 rows per kv head")
    dtype = DTYPES[dtype_name]
    hkv = 2
    inputs = paged_inputs(ragged_lens(bs, ws, nq), group * hkv, hkv, nq, d, bs, ws,
                          page_size, dtype, seed=group * 100 + nq + page_size)
    out, lse = run_paged(*inputs, bs, ws)
    check(out, lse, *want_paged(*inputs, bs, ws), dtype)


@pytest.mark.parametrize("splits", ["1", "5", "64"])
def test_paged_any_split_count(splits, monkeypatch):
    monkeypatch.setenv("SWBA_DECODE_SPLITS", splits)
    dtype_name, d, bs, ws = PAGED[0]
    inputs = paged_inputs(ragged_lens(bs, ws, 2), 8, 2, 2, d, bs, ws, 16,
                          DTYPES[dtype_name], seed=7)
    check(*run_paged(*inputs, bs, ws), *want_paged(*inputs, bs, ws), DTYPES[dtype_name])


def test_paged_invalid_entry():
    dtype_name, d, bs, ws = PAGED[0]
    lens = [5 * bs, 5 * bs]
    q, kc, vc, table, seq_lens = paged_inputs(lens, 4, 1, 4, d, bs, ws, 16,
                                              DTYPES[dtype_name], seed=11)
    # Inside sequence 0's window: the rows that see the page get NaN.
    table[0, (5 * bs - 3) // 16] = kc.shape[0] + 5
    table[1, (5 * bs - 3) // 16] = -1
    out, lse = run_paged(q, kc, vc, table, seq_lens, bs, ws)
    want = want_paged(q, kc, vc, table, seq_lens, bs, ws)
    assert np.isnan(want[0]).any()
    check(out, lse, *want, DTYPES[dtype_name])


def test_paged_cuda_graph_replay_with_new_lengths():
    dtype_name, d, bs, ws = PAGED[0]
    dtype = DTYPES[dtype_name]
    first = paged_inputs([3 * bs, bs + 1, 7], 8, 2, 1, d, bs, ws, 16, dtype, seed=3)
    q, kc, vc, table, lens = [t.cuda() for t in first]
    swba.paged_attention(q, kc, vc, table, lens, bs, ws)  # compile and plan
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, lse = swba.paged_attention(q, kc, vc, table, lens, bs, ws, return_lse=True)
    for step, new in enumerate(([3 * bs, bs + 1, 7], [3 * bs + 1, bs + 2, 8],
                                [2 * bs, 1, 0], [4 * bs - 1, 2 * bs, bs])):
        lens.copy_(torch.tensor(new, dtype=torch.int32))
        graph.replay()
        torch.cuda.synchronize()
        host = [t.cpu() for t in (q, kc, vc, table, lens)]
        check(out, lse, *want_paged(*host, bs, ws), dtype)


def test_paged_argument_errors():
    q = torch.zeros(2, 4, 1, 64, dtype=torch.float16, device="cuda")
    kc = torch.zeros(8, 16, 2, 64, dtype=torch.float16, device="cuda")
    table = torch.zeros(2, 4, dtype=torch.int32, device="cuda")
    lens = torch.zeros(2, dtype=torch.int32, device="cuda")
    with pytest.raises(TypeError, match="int32"):
        swba.paged_attention(q, kc, kc, table.long(), lens, 16, 3)
    with pytest.raises(ValueError, match="batch"):
        swba.paged_attention(q, kc, kc, table[:1], lens, 16, 3)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        swba.paged_attention(q[:, :3], kc, kc, table, lens, 16, 3)
    with pytest.raises(ValueError, match="64 query rows"):
        swba.paged_attention(torch.zeros(2, 4, 33, 64, dtype=torch.float16, device="cuda"),
                             kc, kc, table, lens, 16, 3)
    with pytest.raises(ValueError, match="window"):
        swba.paged_attention(q, kc, kc, table, lens, 16, 0)


def dense_reference(q, k, v, bs, ws):
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    k = k.float().repeat_interleave(hq // k.shape[1], 1)
    v = v.float().repeat_interleave(hq // v.shape[1], 1)
    qf = (torch.arange(nq, device=q.device) + nk - nq) // bs
    kf = torch.arange(nk, device=q.device) // bs
    visible = (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)
    s = (q.float() @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
    s = s.masked_fill(~visible, float("-inf"))
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)


@pytest.mark.parametrize("case", DENSE, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("group", [1, 4, 8])
@pytest.mark.parametrize("nq", [1, 4])
def test_attention_routed_to_decode(case, group, nq):
    dtype_name, d, bs, ws = case
    dtype = DTYPES[dtype_name]
    g = torch.Generator(device="cuda").manual_seed(group + nq)
    nk = 3 * bs * ws + bs // 2 + 3
    q = torch.randn(3, 2 * group, nq, d, device="cuda", generator=g).to(dtype)
    k = torch.randn(3, 2, nk, d, device="cuda", generator=g).to(dtype)
    v = torch.randn(3, 2, nk, d, device="cuda", generator=g).to(dtype)
    assert ops.plan_for(q, k, v, bs, ws, 1.0 / math.sqrt(d))._uses_decode()
    out, lse = swba.attention(q, k, v, bs, ws, return_lse=True)
    want, want_lse = dense_reference(q, k, v, bs, ws)
    err = (out.float() - want).abs()
    tol = TOL[dtype]
    assert (err <= tol * want.abs().amax() + tol * want.abs()).all(), err.max().item()
    assert torch.allclose(lse, want_lse, atol=1e-2, rtol=1e-3)
