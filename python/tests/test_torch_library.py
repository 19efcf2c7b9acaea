"""The torch.library ops without a GPU: fake (shape) propagation, opcheck
and gradients of the CPU reference kernels, torch.export on meta tensors,
torch.compile(fullgraph=True), and the argument checks. CPU only."""

import math
import os
import re
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import swba  # noqa: E402
from swba import reference  # noqa: E402
from swba.library import attention  # noqa: E402

pytestmark = pytest.mark.cpu

# (B, Hq, Hkv, Nq, Nk, D, Dv, block_size, window): square, GQA with a
# partial last frame, Nq < Nk (bottom-right), Dv != D, token window.
SHAPES = [(2, 2, 2, 24, 24, 16, 16, 4, 2), (1, 4, 2, 21, 21, 16, 16, 5, 3),
          (1, 2, 1, 7, 30, 32, 16, 6, 2), (2, 2, 2, 16, 16, 16, 32, 1, 5)]


def _inputs(shape, dtype=torch.float32, device="cpu", grad=False, seed=0):
    b, hq, hkv, nq, nk, d, dv, _, _ = shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*s, generator=g, dtype=torch.float32).to(dtype).to(device)
               for s in ((b, hq, nq, d), (b, hkv, nk, d), (b, hkv, nk, dv)))
    if grad:
        for t in (q, k, v):
            t.requires_grad_()
    return q, k, v


@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_reference_against_numpy(shape):
    """The op on CPU (forward, lse, and every gradient) against the float64
    numpy definition, on every element."""
    bs, ws = shape[-2:]
    q, k, v = _inputs(shape, grad=True)
    out, lse = attention(q, k, v, bs, ws, return_lse=True)
    scale = 1 / math.sqrt(q.shape[-1])
    args = [t.detach().double().numpy() for t in (q, k, v)]
    want, want_lse = reference.attention_forward(*args, bs, ws, scale)
    np.testing.assert_allclose(out.detach().numpy(), want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(lse.detach().numpy(), want_lse, atol=1e-5, rtol=1e-5)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    out.backward(dout)
    grads = reference.attention_backward(*args, dout.double().numpy(), bs, ws, scale)
    for t, want in zip((q, k, v), grads):
        np.testing.assert_allclose(t.grad.numpy(), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_opcheck_cpu(shape):
    """Schema, fake implementation, autograd registration and AOT dispatch."""
    bs, ws = shape[-2:]
    q, k, v = _inputs(shape, grad=True)
    torch.library.opcheck(torch.ops.swba.attention.default, (q, k, v, bs, ws, 0.3))
    with torch.no_grad():
        out, lse = torch.ops.swba.attention(q, k, v, bs, ws, 0.3)
    dout = torch.randn_like(out)
    torch.library.opcheck(torch.ops.swba.attention_backward.default,
                          (q.detach(), k.detach(), v.detach(), out, dout, lse, bs, ws, 0.3))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_fake_shapes(device):
    """register_fake: out [B, Hq, Nq, Dv] like q, lse [B, Hq, Nq] float32."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        q = torch.empty(3, 8, 5, 64, dtype=torch.bfloat16, device=device)
        k = torch.empty(3, 2, 9, 64, dtype=torch.bfloat16, device=device)
        v = torch.empty(3, 2, 9, 32, dtype=torch.bfloat16, device=device)
        out, lse = torch.ops.swba.attention(q, k, v, 4, 2, 0.125)
        assert out.shape == (3, 8, 5, 32) and out.dtype == torch.bfloat16
        assert lse.shape == (3, 8, 5) and lse.dtype == torch.float32
        dq, dk, dv = torch.ops.swba.attention_backward(q, k, v, out, out, lse, 4, 2, 0.125)
        assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)


class _Block(torch.nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = swba.attention(q, k, v, block_size=8, window=3)
        return self.proj(a.transpose(1, 2).reshape(b, n, c))


def test_export_on_meta_contains_swba_op():
    """torch.export of a module using swba.attention, on meta tensors."""
    with torch.device("meta"):
        model = _Block().to(torch.bfloat16)
        x = torch.empty(2, 32, 64, dtype=torch.bfloat16)
    program = torch.export.export(model, (x,))
    calls = [n for n in program.graph.nodes if n.target is torch.ops.swba.attention.default]
    assert len(calls) == 1, program.graph
    assert calls[0].args[3:] == (8, 3, 0.25)
    out = [n for n in program.graph.nodes if n.op == "output"][0].args[0][0]
    assert tuple(out.meta["val"].shape) == (2, 32, 64)


def test_compile_fullgraph_training_matches_eager():
    """torch.compile(fullgraph=True) traces the op (no graph break) and its
    gradients match eager's."""
    torch.manual_seed(0)
    model = _Block()
    x = torch.randn(2, 32, 64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(x)
    got.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want = model(x)
    want.sum().backward()
    torch.testing.assert_close(got, want)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("bad, error, words", [
    (dict(block_size=0), ValueError, "block_size must be >= 1"),
    (dict(window=True), TypeError, "window must be an int"),
    (dict(block_size=2.0), TypeError, "block_size must be an int"),
    (dict(scale=-1.0), ValueError, "scale must be a positive finite number"),
    (dict(scale=float("nan")), ValueError, "scale must be a positive finite number"),
    (dict(scale=1e300), ValueError, "finite in float32"),
    (dict(scale=1e-320), ValueError, "finite in float32"),
    (dict(block_size=2**64), ValueError, "block_size must be at most 2**63 - 1"),
    (dict(window=2**63), ValueError, "window must be at most 2**63 - 1"),
    (dict(q=(1, 3, 8, 16)), ValueError, "multiple of kv heads"),
    (dict(q=(1, 2, 12, 16)), ValueError, "Nq (12) must not exceed Nk (8)"),
    (dict(k=(1, 2, 8, 32)), ValueError, "k has shape"),
    (dict(q=(2, 8, 16)), ValueError, "q must be 4-D"),
    (dict(dtype_k=torch.float16), TypeError, "one dtype"),
    (dict(dtype=torch.float64), TypeError, "float16, bfloat16 or float32"),
])
def test_argument_errors(bad, error, words):
    """Bad arguments raise a clear error, eagerly and at trace time."""
    shapes = {"q": (1, 2, 8, 16), "k": (1, 2, 8, 16), "v": (1, 2, 8, 16)}
    shapes.update({n: bad[n] for n in ("q", "k") if n in bad})
    dtype = bad.get("dtype", torch.float32)
    q = torch.randn(shapes["q"], dtype=dtype)
    k = torch.randn(shapes["k"], dtype=bad.get("dtype_k", dtype))
    v = torch.randn(shapes["v"], dtype=dtype)
    kw = {"block_size": 4, "window": 2, "scale": None}
    kw.update({n: bad[n] for n in kw if n in bad})
    with pytest.raises(error, match=re.escape(words)):
        attention(q, k, v, **kw)
    with pytest.raises(error):
        torch.export.export(_Call(kw), (q.to("meta"), k.to("meta"), v.to("meta")))


class _Call(torch.nn.Module):
    def __init__(self, kw):
        super().__init__()
        self.kw = kw

    def forward(self, q, k, v):
        return attention(q, k, v, **self.kw)


def test_head_dim_zero():
    """D = 0: every score is 0, so each query averages the values of the keys
    it sees (the default scale, 1/sqrt(D), is not used)."""
    q, k = torch.randn(1, 2, 5, 0), torch.randn(1, 1, 7, 0)
    v = torch.randn(1, 1, 7, 3)
    got = attention(q, k, v, 2, 2)
    visible = _visible_for_test(5, 7, 2, 2)
    want = (visible.float() @ v[0, 0]) / visible.sum(1, keepdim=True)
    torch.testing.assert_close(got, want.expand(1, 2, 5, 3))


def _visible_for_test(nq, nk, bs, ws):
    qf = (torch.arange(nq) + nk - nq) // bs
    kf = torch.arange(nk) // bs
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        attention(torch.randn(1, 1, 4, 16), [1.0], torch.randn(1, 1, 4, 16), 2, 1)


def test_out_argument_is_eager_cuda_only():
    q = torch.randn(1, 1, 4, 16)
    with pytest.raises(ValueError, match="eager mode on CUDA"):
        attention(q, q, q, 2, 1, out=torch.empty_like(q))


def test_eager_cuda_path(monkeypatch):
    """The eager CUDA path's wiring (autograd.Function, lse, out=, no grad)
    with the kernels' entry points replaced by the CPU reference: the same
    values and gradients as the op, and one launch per call."""
    import types

    import swba.library as lib
    calls = []

    def forward(q, k, v, bs, ws, scale, out=None):
        calls.append("forward")
        o, lse = lib.reference_forward(q, k, v, bs, ws, scale)
        return (o, lse) if out is None else (out.copy_(o), lse)

    def backward(q, k, v, out, dout, lse, bs, ws, scale):
        calls.append("backward")
        return lib.reference_backward(q, k, v, out, dout, lse, bs, ws, scale)

    def plan_for(q, k, v, bs, ws, scale):
        return types.SimpleNamespace(
            forward=lambda q, k, v: forward(q, k, v, bs, ws, scale),
            backward=lambda q, k, v, out, dout, lse: backward(q, k, v, out, dout, lse,
                                                              bs, ws, scale))

    fake = types.SimpleNamespace(attention_forward=forward, attention_backward=backward,
                                 plan_for=plan_for)
    monkeypatch.setitem(sys.modules, "swba.ops", fake)
    monkeypatch.setattr(swba, "ops", fake, raising=False)
    monkeypatch.setattr(lib, "_eager_cuda", lambda q, k, v: True)
    q, k, v = _inputs(SHAPES[1], grad=True)
    out, lse = attention(q, k, v, 5, 3, return_lse=True)
    dout = torch.randn_like(out)
    out.backward(dout)
    assert calls == ["forward", "backward"]
    grads = [t.grad for t in (q, k, v)]
    monkeypatch.undo()
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    want, want_lse = torch.ops.swba.attention(q2, k2, v2, 5, 3, 1 / math.sqrt(16))
    want.backward(dout)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(lse, want_lse)
    for g, t in zip(grads, (q2, k2, v2)):
        torch.testing.assert_close(g, t.grad)
    monkeypatch.setitem(sys.modules, "swba.ops", fake)
    monkeypatch.setattr(swba, "ops", fake, raising=False)
    monkeypatch.setattr(lib, "_eager_cuda", lambda q, k, v: True)
    calls.clear()
    with torch.no_grad():
        target = torch.empty_like(want)
        assert attention(q, k, v, 5, 3, out=target) is target
        torch.testing.assert_close(target, want)
    assert calls == ["forward"]
    with pytest.raises(ValueError, match="under torch.no_grad"):
        attention(q, k, v, 5, 3, out=target)
