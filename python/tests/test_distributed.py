"""swba.distributed.attention on CPU processes (gloo): outputs and gradients
of every rank's shard equal, element by element, the single-process result
on the whole sequence. Shard lengths below, equal to and above the halo,
shards that start and end inside frames, halos that span several ranks, GQA.
Runs under pytest (skipped without torch) or as
`python3 python/tests/test_distributed.py`."""

import os
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import distributed, halo  # noqa: E402
from swba.compile import forward_configs  # noqa: E402
from swba.distributed import attention, reference_attention  # noqa: E402

# (lengths per rank, block_size, window, Hq, Hkv, dtype). With bs 4 and
# window 3 a rank needs up to 11 keys before its first token and 3 after.
CASES = [
    # 2 ranks, frame-aligned shards as long as the halo ((3 - 1) * 4 = 8).
    ([8, 8], 4, 3, 2, 2, torch.float64),
    # 2 ranks, longer than the halo, the boundary inside a frame; GQA.
    ([13, 6], 4, 3, 4, 2, torch.float64),
    # 3 ranks shorter than the halo: rank 2's halo spans ranks 0 and 1,
    # rank 0 needs the rest of its frame from rank 1; MQA.
    ([3, 5, 4], 4, 3, 3, 1, torch.float64),
    # 3 ranks, uneven, partial frames at both edges of every shard and a
    # partial last frame; float32.
    ([6, 9, 7], 5, 2, 4, 2, torch.float32),
    # 3 ranks, token-level window (bs 1) reaching over two ranks.
    ([2, 3, 4], 1, 6, 2, 1, torch.float64),
    # window 1: no halo before a shard, only the rest of a frame after it.
    ([5, 7], 4, 1, 2, 2, torch.float64),
]

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _report(result_dir, rank, pairs, tol):
    """Writes, for each (name, got, want), its element count and how many
    elements are off by more than tol (relative past 1), for _spawn."""
    lines = []
    for name, got, want in pairs:
        bad = ~((got - want).abs() <= tol * (1 + want.abs()))
        lines.append(f"{name} {got.numel()} {int(bad.sum())}")
    with open(os.path.join(result_dir, f"{rank}"), "w") as f:
        f.write("\n".join(lines))


def _spawn(worker, world, *args):
    """Runs worker(rank, world, init_file, *args, result_dir) on `world`
    processes (the worker starts its process group); each rank's _report
    lines as (name, count, bad)."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(world, os.path.join(tmp, "store"), *args, tmp),
                 nprocs=world, join=True)
        return [[(name, int(count), int(bad)) for name, count, bad in
                 (line.split() for line in
                  open(os.path.join(tmp, f"{rank}")).read().splitlines())]
                for rank in range(world)]


def _counts(lines, where):
    """{name: element count} of one rank's _spawn lines, each with no
    element off."""
    counts = {}
    for name, count, bad in lines:
        assert bad == 0, f"{where}: {bad} of {count} {name} differ"
        counts[name] = count
    return counts


def _worker(rank, world, init_file, case, result_dir):
    lengths, bs, ws, hq, hkv, dtype = case
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        gen = torch.Generator().manual_seed(1234)
        b, d, dv, n = 2, 8, 6, sum(lengths)
        q = torch.randn(b, hq, n, d, generator=gen, dtype=dtype)
        k = torch.randn(b, hkv, n, d, generator=gen, dtype=dtype)
        v = torch.randn(b, hkv, n, dv, generator=gen, dtype=dtype)
        dout = torch.randn(b, hq, n, dv, generator=gen, dtype=dtype)
        scale = 0.4

        # The single-process result on the whole sequence.
        qf, kf, vf = (x.clone().requires_grad_() for x in (q, k, v))
        of, _ = reference_attention(qf, kf, vf, bs, ws, scale)
        of.backward(dout)

        s = sum(lengths[:rank])
        rows = slice(s, s + lengths[rank])
        ql, kl, vl = (x[:, :, rows].clone().requires_grad_() for x in (q, k, v))
        # Odd cases pass the lengths, even ones let the op gather them.
        lengths_arg = lengths if CASES.index(case) % 2 else None
        ol = attention(ql, kl, vl, bs, ws, scale=scale, shard_lengths=lengths_arg)
        ol.backward(dout[:, :, rows])

        _report(result_dir, rank,
                [(name, got, want[:, :, rows]) for name, got, want in
                 [("out", ol, of), ("dq", ql.grad, qf.grad),
                  ("dk", kl.grad, kf.grad), ("dv", vl.grad, vf.grad)]],
                TOL[dtype])
    finally:
        dist.destroy_process_group()


def _run(case):
    checked = {}
    for rank, lines in enumerate(_spawn(_worker, len(case[0]), case)):
        for name, count in _counts(lines, f"case {case}: rank {rank}").items():
            checked[name] = checked.get(name, 0) + count
    return checked


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
def test_matches_single_process(case):
    checked = _run(case)
    lengths, _, _, hq, hkv, _ = case
    # Every element of the whole sequence's outputs and gradients was checked.
    n = sum(lengths)
    assert checked == {"out": 2 * hq * n * 6, "dq": 2 * hq * n * 8,
                       "dk": 2 * hkv * n * 8, "dv": 2 * hkv * n * 6}


# The compiled layer's shards (2 ranks, bs 4, window 3; GQA).
COMPILE_LENGTHS = [13, 6]


def _compile_worker(rank, world, init_file, result_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        lengths, bs, ws = COMPILE_LENGTHS, 4, 3
        gen = torch.Generator().manual_seed(99)
        n = sum(lengths)
        q = torch.randn(2, 4, n, 8, generator=gen, dtype=torch.float64)
        k = torch.randn(2, 2, n, 8, generator=gen, dtype=torch.float64)
        v = torch.randn(2, 2, n, 6, generator=gen, dtype=torch.float64)
        s = sum(lengths[:rank])
        rows = slice(s, s + lengths[rank])

        def layer(q, k, v):
            return torch.tanh(attention(q, k, v, bs, ws, scale=0.4,
                                        shard_lengths=lengths)) * 2

        results = []
        for fn in (layer, torch.compile(layer)):
            ql, kl, vl = (x[:, :, rows].clone().requires_grad_() for x in (q, k, v))
            out = fn(ql, kl, vl)
            out.square().sum().backward()
            results.append((out, ql.grad, kl.grad, vl.grad))
        _report(result_dir, rank,
                zip(["out", "dq", "dk", "dv"], results[1], results[0]), 1e-12)
    finally:
        dist.destroy_process_group()


def test_under_torch_compile():
    """A compiled layer around the op (torch.compile breaks the graph at its
    point-to-point exchanges) gives each rank the eager outputs and
    gradients."""
    ranks = _spawn(_compile_worker, len(COMPILE_LENGTHS))
    for rank, (n, lines) in enumerate(zip(COMPILE_LENGTHS, ranks)):
        assert _counts(lines, f"rank {rank}") == {
            "out": 2 * 4 * n * 6, "dq": 2 * 4 * n * 8,
            "dk": 2 * 2 * n * 8, "dv": 2 * 2 * n * 6}


def test_kernel_configs_cover_the_pieces(monkeypatch):
    """halo.kernel_configs (what prepare_kernels.py and bundles compile for
    GPUs without swba-opt) lists the forward each piece runs: the rows a
    piece hands the kernel, padded to its keys' end, are the layout's
    padded_queries."""
    handed = []

    def forward(q, k, v, block_size, window, scale):
        handed.append(q.shape[2])
        return reference_attention(q, k, v, block_size, window, scale,
                                   q_start=k.shape[2] - q.shape[2])

    monkeypatch.setattr(distributed, "_kernels", lambda x: (forward, None))
    for lengths, bs, ws, hq, hkv, _ in CASES:
        listed = set(halo.kernel_configs(lengths, hq, hkv, 64, bs, ws, dtype="f16"))
        for rank in range(len(lengths)):
            lay = halo.layout(lengths, rank, bs, ws)
            interior, edges = lay.pieces()
            for q0, q1 in ([interior] if interior else []) + edges:
                k0, k1 = lay.keys_for(q0, q1)
                handed.clear()
                distributed._piece_forward(torch.zeros(1, hq, q1 - q0, 8),
                                           torch.zeros(1, hkv, k1 - k0, 8),
                                           torch.zeros(1, hkv, k1 - k0, 8),
                                           bs, ws, 0.4, q0, k0)
                assert handed == [lay.padded_queries(q0, q1)], (lengths, rank, q0, q1)
                assert set(forward_configs("f16", hq, hkv, handed[0], 64, 64, bs, ws)) <= listed


def test_rejects_mismatched_shapes():
    q = torch.zeros(1, 2, 4, 8)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        attention(q, torch.zeros(1, 3, 4, 8), torch.zeros(1, 3, 4, 8), 4, 2)
    with pytest.raises(ValueError, match="expected k"):
        attention(q, torch.zeros(1, 2, 5, 8), torch.zeros(1, 2, 5, 8), 4, 2)
    kv = torch.zeros(1, 2, 4, 8)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        attention(q, torch.zeros(1, 0, 4, 8), torch.zeros(1, 0, 4, 8), 4, 2)
    with pytest.raises(ValueError, match="n >= 1"):
        attention(q[:, :, :0], kv[:, :, :0], kv[:, :, :0], 4, 2)
    with pytest.raises(TypeError, match="block_size must be an int"):
        attention(q, kv, kv, 4.0, 2)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        attention(q, kv, kv, 4, 2, scale=-1.0)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        attention([0.0], kv, kv, 4, 2)
    with pytest.raises(TypeError, match="got torch.int32"):
        attention(q.int(), kv.int(), kv.int(), 4, 2)


if __name__ == "__main__":
    for c in CASES:
        _run(c)
    test_under_torch_compile()
    with pytest.MonkeyPatch.context() as patch:
        test_kernel_configs_cover_the_pieces(patch)
    test_rejects_mismatched_shapes()
    print(f"{len(CASES) + 3} passed, 0 failed")
