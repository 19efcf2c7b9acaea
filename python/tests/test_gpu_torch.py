"""The torch.library op on the GPU: opcheck, torch.compile(fullgraph=True)
with Inductor against eager, the op captured in a CUDA graph, and the
raising backend training a model with the seed's naive SBA written inline,
on the swba kernels (seen in the profiler), matching eager. Skipped without
CUDA. The kernels are listed in gpu_torch_kernels.json (swba-compile
--config-file builds them where there is no MLIR)."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import swba  # noqa: E402
from swba import ops, raising  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from seed_sba import seed_sba  # noqa: E402

TOL = {torch.float16: 4e-3, torch.bfloat16: 3e-2}


def rand(*shape, dtype, seed, grad=False):
    g = torch.Generator(device="cuda").manual_seed(seed)
    t = torch.randn(*shape, device="cuda", dtype=dtype, generator=g)
    return t.requires_grad_() if grad else t


def reference(q, k, v, bs, ws, scale):
    """Dense masked attention in float32 (design.md section 1)."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    k = k.float().repeat_interleave(hq // k.shape[1], 1)
    v = v.float().repeat_interleave(hq // v.shape[1], 1)
    qf = (torch.arange(nq, device=q.device) + nk - nq) // bs
    kf = torch.arange(nk, device=q.device) // bs
    visible = (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)
    s = (q.float() @ k.transpose(-1, -2) * scale).masked_fill(~visible, float("-inf"))
    return torch.softmax(s, -1) @ v


def assert_close(got, want, dtype):
    err = (got.float() - want.float()).abs()
    tol = TOL[dtype]
    assert (err <= tol * want.abs().amax() + tol * want.abs()).all(), err.max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("heads", [(2, 2), (4, 1)], ids=["mha", "gqa"])
def test_opcheck(dtype, heads):
    hq, hkv = heads
    q = rand(1, hq, 200, 64, dtype=dtype, seed=1, grad=True)
    k = rand(1, hkv, 200, 64, dtype=dtype, seed=2, grad=True)
    v = rand(1, hkv, 200, 64, dtype=dtype, seed=3, grad=True)
    torch.library.opcheck(torch.ops.swba.attention.default, (q, k, v, 16, 3, 0.125))


class Block(torch.nn.Module):
    def __init__(self, dim=256, heads=4, bs=16, ws=3):
        super().__init__()
        self.heads, self.bs, self.ws = heads, bs, ws
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = swba.attention(q, k, v, self.bs, self.ws)
        return self.proj(a.transpose(1, 2).reshape(b, n, c))


def test_compile_fullgraph_inductor_matches_eager():
    """Inductor, fullgraph: forward and every gradient match the eager call
    (the same kernels: bitwise for the attention, to rounding elsewhere)."""
    torch.manual_seed(0)
    model = Block().cuda().to(torch.bfloat16)
    x = rand(2, 300, 256, dtype=torch.bfloat16, seed=4)
    compiled = torch.compile(model, fullgraph=True)
    got = compiled(x)
    got.float().square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want = model(x)
    want.float().square().sum().backward()
    assert_close(got, want, torch.bfloat16)
    for g, p in zip(grads, model.parameters()):
        assert_close(g, p.grad, torch.bfloat16)


def test_compile_fullgraph_head_dim_256():
    """Head dim 256 (the sm_90a kernels only) through torch.compile with
    fullgraph: out and every gradient against the float32 reference."""
    if ops.chip_for(torch.device("cuda")) != "sm_90a":
        pytest.skip("head dim 256 needs the sm_90a kernels")
    dt = torch.bfloat16
    q, k, v = (rand(1, 4, 520, 256, dtype=dt, seed=s, grad=True) for s in (21, 22, 23))
    dout = rand(1, 4, 520, 256, dtype=dt, seed=24)
    compiled = torch.compile(lambda q, k, v: swba.attention(q, k, v, 64, 3), fullgraph=True)
    out = compiled(q, k, v)
    out.backward(dout)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    want = reference(q32, k32, v32, 64, 3, 1 / 16)
    want.backward(dout.float())
    assert_close(out, want, dt)
    for got, ref in ((q.grad, q32.grad), (k.grad, k32.grad), (v.grad, v32.grad)):
        assert_close(got, ref, dt)


def test_eager_and_op_paths_agree():
    """The eager short path and the dispatcher's path run the same kernels."""
    q, k, v = (rand(1, 2, 150, 64, dtype=torch.float16, seed=s) for s in (5, 6, 7))
    out, lse = swba.attention(q, k, v, 16, 3, return_lse=True)
    out2, lse2 = torch.ops.swba.attention(q, k, v, 16, 3, 0.125)
    assert torch.equal(out, out2) and torch.equal(lse, lse2)
    assert_close(out, reference(q, k, v, 16, 3, 0.125), torch.float16)


def test_op_in_cuda_graph():
    """torch.ops.swba.attention forward and backward captured in a CUDA
    graph replay on new values like eager calls."""
    dt = torch.float16
    q, k, v = (rand(1, 2, 256, 64, dtype=dt, seed=s, grad=True) for s in (8, 9, 10))
    dout = rand(1, 2, 256, 64, dtype=dt, seed=11)

    def step():
        out, _ = torch.ops.swba.attention(q, k, v, 16, 3, 0.125)
        out.backward(dout)
        return out

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    side.synchronize()
    for t in (q, k, v):
        t.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        out = step()
    new = [rand(*t.shape, dtype=dt, seed=20 + i) for i, t in enumerate((q, k, v, dout))]
    with torch.no_grad():
        for t, x in zip((q, k, v, dout), new):
            t.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    eager = [t.clone().requires_grad_() for t in new[:3]]
    want, _ = torch.ops.swba.attention(*eager, 16, 3, 0.125)
    want.backward(new[3])
    assert torch.equal(out, want)
    for got, e in zip((q.grad, k.grad, v.grad), eager):
        assert torch.equal(got, e.grad)


def test_cuda_graph_keeps_its_own_tensor_maps():
    """Two CUDA graphs of a training step over the same tensors, captured on
    a stream of their own, the first dropped before it ever replays: a
    tensor map made during a capture is copied into place by that graph's
    replays only, so the second graph must not take the first's (its
    replay read memory never written: an illegal instruction); it makes its
    own and matches the eager step."""
    dt = torch.float16
    q, k, v = (rand(1, 2, 256, 64, dtype=dt, seed=s, grad=True) for s in (30, 31, 32))
    dout = rand(1, 2, 256, 64, dtype=dt, seed=33)

    def step():
        for t in (q, k, v):
            t.grad = None
        out, _ = torch.ops.swba.attention(q, k, v, 16, 3, 0.125)
        out.backward(dout)
        return out

    # Eager on this stream (kernels loaded, its maps made for this stream).
    want = step().detach().clone()
    want_grads = [t.grad.clone() for t in (q, k, v)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    first = torch.cuda.CUDAGraph()
    with torch.cuda.graph(first, stream=side):
        step()
    second = torch.cuda.CUDAGraph()
    with torch.cuda.graph(second, stream=side):
        out = step()
    del first
    second.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, want)
    for t, g in zip((q, k, v), want_grads):
        assert torch.equal(t.grad, g)


def test_reduce_overhead_mode():
    """torch.compile(mode="reduce-overhead") (Inductor's CUDA graphs)."""
    model = Block().cuda().to(torch.float16)
    x = rand(1, 256, 256, dtype=torch.float16, seed=12)
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        for _ in range(3):
            got = compiled(x).clone()
        assert_close(got, model(x), torch.float16)



class NaiveVideoLayer(torch.nn.Module):
    """A video transformer layer whose attention is the seed's naive SBA."""

    def __init__(self, dim=256, heads=4, tokens=64, window=3):
        super().__init__()
        self.heads, self.tokens, self.window = heads, tokens, window
        self.norm1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(),
                                       torch.nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, c // self.heads) \
            .permute(2, 0, 3, 1, 4)
        a = seed_sba(q, k, v, self.tokens, self.window, 1 / math.sqrt(c // self.heads))
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


def train(model, steps, video, tokens):
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        pred = model(video[:, :-tokens])
        loss = F.mse_loss(pred.float(), video[:, tokens:].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_naive_sba_trains_on_swba_kernels_under_the_backend():
    """The seed's naive SBA inline, compiled with swba.backend: the raised
    graph trains on the swba kernels (forward and backward, in the
    profiler) and its losses follow eager's."""
    tokens, frames = 64, 6
    gen = torch.Generator(device="cuda").manual_seed(1)
    video = torch.randn(2, (frames + 1) * tokens, 256, device="cuda", generator=gen).half()
    torch.manual_seed(0)
    eager = NaiveVideoLayer(tokens=tokens).cuda().half()
    compiled_model = NaiveVideoLayer(tokens=tokens).cuda().half()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, backend=swba.backend, fullgraph=True, dynamic=False)
    decisions = []
    real = raising.raise_attention

    def spy(gm, example_inputs=None):
        result = real(gm, example_inputs)
        decisions.extend(result)
        return result

    raising.raise_attention = spy
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            ours = train(compiled, 5, video, tokens)
            torch.cuda.synchronize()
    finally:
        raising.raise_attention = real
    ref = train(eager, 5, video, tokens)
    assert [(d.raised, d.block_size, d.window) for d in decisions] == [(True, tokens, 3)], \
        decisions
    names = [e.key for e in prof.key_averages()]
    assert any(n.startswith("swba_fwd") for n in names), names
    assert any(n.startswith("swba_bwd_dq") or n.startswith("swba_bwd_dkdv")
               for n in names), names
    assert ours[-1] < ours[0], ours
    for a, b in zip(ours, ref):
        assert abs(a - b) <= 5e-3 * abs(b), (ours, ref)


@pytest.mark.parametrize("form", ["sdpa", "flex"])
def test_sdpa_and_flex_raised_on_gpu(form):
    dt = torch.bfloat16
    q, k, v = (rand(1, 2, 160, 64, dtype=dt, seed=s) for s in (30, 31, 32))
    if form == "sdpa":
        def fn(q, k, v):
            f = torch.arange(q.shape[2], device=q.device) // 16
            mask = (f[None, :] <= f[:, None]) & (f[:, None] - f[None, :] < 3)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def window(b, h, i, j):
            return (j // 16 <= i // 16) & (i // 16 - j // 16 < 3)
        block_mask = create_block_mask(window, None, None, 160, 160, device="cuda")

        def fn(q, k, v):
            return flex_attention(q, k, v, block_mask=block_mask)
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=swba.backend, fullgraph=True, dynamic=False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        got = compiled(q, k, v)
        torch.cuda.synchronize()
    assert any(e.key.startswith("swba_fwd") for e in prof.key_averages())
    assert_close(got, reference(q, k, v, 16, 3, 0.125), dt)


def test_symbolic_shapes_raised_on_gpu():
    """torch.compile(dynamic=True) with Inductor: one graph for every
    length, each length's window proven on the GPU when first met, the
    swba kernels run (seen in the profiler), forward and backward match
    the dense reference."""
    dt = torch.bfloat16

    def fn(q, k, v):
        f = torch.arange(q.shape[2], device=q.device) // 16
        mask = (f[None, :] <= f[:, None]) & (f[:, None] - f[None, :] < 3)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=swba.backend, fullgraph=True, dynamic=True)
    for n, seed in ((160, 40), (333, 41), (96, 42)):
        q, k, v = (rand(1, 2, n, 64, dtype=dt, seed=seed + s, grad=True) for s in (0, 10, 20))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            got = compiled(q, k, v)
            dq, dk, dv = torch.autograd.grad(got, (q, k, v), torch.ones_like(got))
            torch.cuda.synchronize()
        names = [e.key for e in prof.key_averages()]
        assert any(k.startswith("swba_fwd") for k in names), names
        assert any(k.startswith("swba_bwd") for k in names), names
        qr, kr, vr = (x.detach().float().requires_grad_() for x in (q, k, v))
        want = reference(qr, kr, vr, 16, 3, 0.125)
        want_grads = torch.autograd.grad(want, (qr, kr, vr), torch.ones_like(want))
        assert_close(got, want, dt)
        for a, b in zip((dq, dk, dv), want_grads):
            assert_close(a, b, dt)
    programs = [p for p in raising._PROGRAMS.values() if p.verdicts]
    assert {v for p in programs for v in p.proofs()} == {(16, 3)}


def test_symbolic_shapes_dense_where_no_window_on_gpu():
    """A mask that is a window up to 48 tokens (the last query also sees
    key 3, inside its window there): 40 tokens run the kernels, 100 the
    mask densely on the GPU; both match the reference of the mask."""
    dt = torch.bfloat16

    def fn(q, k, v):
        n = q.shape[2]
        i, j = torch.arange(n, device=q.device)[:, None], torch.arange(n, device=q.device)[None, :]
        mask = (j // 16 <= i // 16) & (i // 16 - j // 16 < 3)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ((i == n - 1) & (j == 3)))

    torch._dynamo.reset()
    raising._PROGRAMS.clear()
    compiled = torch.compile(fn, backend=swba.backend, fullgraph=True, dynamic=True)
    for n in (40, 100):
        q, k, v = (rand(1, 2, n, 64, dtype=dt, seed=50 + s) for s in range(3))
        got = compiled(q, k, v)
        want = fn(q.float(), k.float(), v.float())
        assert_close(got, want, dt)
    (program,) = raising._PROGRAMS.values()
    verdicts = program.proofs()
    assert verdicts[0] == (16, 3) and "not one contiguous range" in verdicts[1], verdicts


def test_symbolic_shapes_under_cuda_graphs():
    """Inductor's CUDA graphs (cudagraph trees) over a graph with symbolic
    shapes: each length is proven when first run, before its CUDA graph is
    recorded; lengths come back in any order; a length whose mask is no
    window (its dense path, the mask's ops recorded like the graph's own)
    replays too."""
    from torch._inductor.compile_fx import compile_fx

    def inner(gm, example_inputs):
        return compile_fx(gm, example_inputs, config_patches={"triton.cudagraphs": True})

    dt = torch.bfloat16

    def fn(q, k, v):
        n = q.shape[2]
        i, j = torch.arange(n, device=q.device)[:, None], torch.arange(n, device=q.device)[None, :]
        mask = (j // 16 <= i // 16) & (i // 16 - j // 16 < 3)
        # Query 100 also sees key 3: no window past 100 tokens.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ((i == 100) & (j == 3)))

    torch._dynamo.reset()
    raising._PROGRAMS.clear()
    compiled = torch.compile(fn, backend=swba.make_backend(inner), fullgraph=True, dynamic=True)
    with torch.no_grad():
        for n in (40, 160, 100, 40, 224, 160):  # traced at 40: a window
            q, k, v = (rand(1, 2, n, 64, dtype=dt, seed=60 + s) for s in range(3))
            for _ in range(3):
                got = compiled(q, k, v).clone()
            assert_close(got, fn(q.float(), k.float(), v.float()), dt)
    (program,) = raising._PROGRAMS.values()
    proofs = program.proofs()
    assert proofs.count((16, 3)) == 2 and sum(isinstance(p, str) for p in proofs) == 2, proofs
