"""Differential test of the PyTorch-level raising (swba.raising): random
attention functions, written the ways models write them, compiled with the
raising backend must compute what eager PyTorch computes, every output
element, whether or not they were raised. CPU only.

Each case draws a form (SDPA with a boolean or additive mask, or the naive
matmul-softmax-matmul with the mask added, `masked_fill`ed or applied by
`torch.where`), shapes (queries as many as the keys or fewer; grouped-query
heads, repeated by `repeat_interleave` or tiled by `repeat` in the naive
form), a scale (on the scores, q or k, multiplied or divided; sometimes not
positive), how k is transposed, and the mask: a sliding window block mask
built inside the function from aranges or `tril`/`triu`, or a near miss (one
pair flipped, one head different, top-left alignment, transposed, a finite
fill, applied after the softmax, no mask), the softmax's axis and dtype and
a row-max subtraction before it. At least a fifth of the cases must be
raised, so that the test keeps exercising the rewrite."""

import os
import random
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402

pytestmark = pytest.mark.cpu

CASES = 60


def frames_visible(nq, nk, bs, ws, bottom_right=True):
    qf = (torch.arange(nq) + (nk - nq if bottom_right else 0)) // bs
    kf = torch.arange(nk) // bs
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)


def gen_case(rng, sized=False):
    """(function of q, k, v; inputs; description). With `sized`, the
    function builds its mask from q's and k's lengths (any length runs; the
    flipped pair of a near miss lies inside some lengths only)."""
    b, hkv, rep = rng.choice([1, 2]), rng.choice([1, 2]), rng.choice([1, 1, 2, 3])
    hq = hkv * rep
    nk = rng.choice([3, 5, 8, 13, 16, 24])
    nq = rng.choice([nk, nk, max(1, nk - rng.randint(1, 3))])
    d = rng.choice([4, 8, 16])
    bs, ws = rng.choice([1, 2, 3, 4, 5]), rng.choice([1, 2, 3, 4])
    miss = rng.choice(["none"] * 6 + ["flip", "per-head", "top-left", "transpose", "finite",
                                      "no-mask", "post-softmax"])
    tril = bs == 1 and rng.random() < 0.5
    form = rng.choice(["sdpa-bool", "sdpa-add", "naive-add", "naive-fill", "naive-where"])
    mask_4d = rng.random() < 0.5
    if form.startswith("sdpa"):
        scale = rng.choice([None, None, 0.3, 0.5, 2.0, -0.5, 0.0])
    else:
        scale = rng.choice([0.25, 0.5, 2.0, 2.0, -1.0])
    softmax_dim = rng.choice([-1, -1, -1, 3, -2, 2])
    transpose = rng.choice(["transpose", "mT", "permute"])
    scale_on = rng.choice(["scores", "q", "k", "divide"])
    repeat = rng.choice(["interleave", "tile"]) if rep > 1 else "none"
    extra = rng.choice(["none", "none", "row-max", "softmax-f64", "two-factors"])
    flip_row, flip_col = rng.randrange(nq), rng.randrange(nk)
    fill = -1e9 if miss == "finite" else float("-inf")

    def make_mask(nq, nk):
        if tril:
            vis = torch.ones(nq, nk).tril(nk - nq).triu(nk - nq - (ws - 1)).bool()
        else:
            vis = frames_visible(nq, nk, bs, ws, bottom_right=miss != "top-left")
        one_pair = (torch.arange(nq)[:, None] == flip_row) & (torch.arange(nk)[None, :] == flip_col)
        if miss == "flip":
            vis = vis ^ one_pair
        if miss == "transpose" and nq == nk and not sized:
            vis = vis.T
        if miss != "per-head" and not mask_4d:
            return vis
        vis = vis[None, None].expand(q_heads[0], q_heads[1], nq, nk)
        if miss == "per-head" and hq > 1:
            vis = vis ^ ((torch.arange(hq)[None, :, None, None] == 1) & one_pair)
        return vis

    q_heads = (b, hq)
    gqa = rep > 1  # a bool: Dynamo keeps it a constant (ints it may make symbolic)

    def k_transposed(k):
        return {"transpose": lambda: k.transpose(-2, -1), "mT": lambda: k.mT,
                "permute": lambda: k.permute(0, 1, 3, 2)}[transpose]()

    def fn(q, k, v):
        m = make_mask(q.shape[2], k.shape[2]) if sized else make_mask(nq, nk)
        if form.startswith("sdpa"):
            mask = m if form == "sdpa-bool" else torch.zeros(m.shape).masked_fill(~m, fill)
            kw = {} if scale is None else {"scale": scale}
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if miss == "no-mask" else mask, enable_gqa=gqa, **kw)
        if rep > 1:
            if repeat == "interleave":
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            else:
                k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)
        if scale_on == "q":
            s = (q * scale) @ k_transposed(k)
        elif scale_on == "k":
            s = q @ k_transposed(k * scale)
        elif scale_on == "divide":
            s = (q @ k_transposed(k)) / (1.0 / scale)
        else:
            s = (q @ k_transposed(k)) * scale
        if extra == "two-factors":
            s = s * 2.0 * 0.5
        if miss == "post-softmax":
            return (torch.softmax(s, softmax_dim) * m) @ v
        if miss != "no-mask":
            if form == "naive-add":
                s = s + torch.zeros(m.shape).masked_fill(~m, fill)
            elif form == "naive-fill":
                s = s.masked_fill(~m, fill)
            else:
                s = torch.where(m, s, fill)
        if extra == "row-max":
            s = s - s.amax(-1, keepdim=True)
        if extra == "softmax-f64":
            return torch.softmax(s, softmax_dim, dtype=torch.float64).float() @ v
        return torch.softmax(s, softmax_dim) @ v

    g = torch.Generator().manual_seed(rng.randrange(1 << 30))
    inputs = (torch.randn(b, hq, nq, d, generator=g), torch.randn(b, hkv, nk, d, generator=g),
              torch.randn(b, hkv, nk, d, generator=g))
    desc = (f"b={b} hq={hq} hkv={hkv} nq={nq} nk={nk} d={d} bs={bs} ws={ws} tril={tril} "
            f"miss={miss} form={form} mask_4d={mask_4d} scale={scale} on={scale_on} "
            f"softmax_dim={softmax_dim} k^T={transpose} repeat={repeat} extra={extra}")
    return fn, inputs, desc


def compile_with_raising(fn, inputs, dynamic=False):
    decisions = []

    def backend(gm, example_inputs):
        decisions.extend(raising.raise_attention(gm, example_inputs))
        from torch._dynamo import lookup_backend
        return lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=backend, fullgraph=True, dynamic=dynamic)
    if dynamic:
        # The case's constants (scale, fill, softmax axis) stay constants,
        # as a model's literals would: only the lengths are symbolic.
        def run(*args):
            with torch._dynamo.config.patch(specialize_int=True, specialize_float=True):
                return compiled(*args)
        return run, decisions
    return compiled(*inputs), decisions


def test_raised_matches_eager():
    rng = random.Random(20261205)
    raised, failures = 0, []
    for i in range(CASES):
        fn, inputs, desc = gen_case(rng)
        try:
            want = fn(*inputs)
        except RuntimeError:
            continue  # eager refuses the case (e.g. a softmax axis that does not exist)
        got, decisions = compile_with_raising(fn, inputs)
        raised += any(d.raised for d in decisions)
        if not torch.allclose(got, want, atol=1e-5, rtol=1e-4, equal_nan=True):
            failures.append(f"case {i}: {desc}: {decisions}")
    assert not failures, "\n".join(failures)
    assert raised >= CASES // 5, f"only {raised} of {CASES} cases raised"


DYNAMIC_CASES = 40


def test_raised_matches_eager_across_sizes():
    """The same kind of cases, their masks built from the lengths, compiled
    with symbolic shapes and run at the drawn lengths and two others: every
    length (proven a window there or run densely) computes what eager
    computes."""
    rng = random.Random(20261206)
    raised, failures = 0, []
    for i in range(DYNAMIC_CASES):
        fn, inputs, desc = gen_case(rng, sized=True)
        compiled, decisions = compile_with_raising(fn, inputs, dynamic=True)
        q, k, v = inputs
        nq, nk = q.shape[2], k.shape[2]
        for grow in (0, rng.randint(1, 9), rng.randint(10, 30)):
            g = torch.Generator().manual_seed(i * 7 + grow)
            args = (torch.randn(*q.shape[:2], nq + grow, q.shape[3], generator=g),
                    torch.randn(*k.shape[:2], nk + grow, k.shape[3], generator=g),
                    torch.randn(*v.shape[:2], nk + grow, v.shape[3], generator=g))
            try:
                want = fn(*args)
            except RuntimeError:
                break  # eager refuses the case
            got = compiled(*args)
            if not torch.allclose(got, want, atol=1e-5, rtol=1e-4, equal_nan=True):
                failures.append(f"case {i} at +{grow}: {desc}: {decisions}")
        raised += any(d.raised and d.dynamic for d in decisions)
    assert not failures, "\n".join(failures)
    assert raised >= DYNAMIC_CASES // 5, f"only {raised} of {DYNAMIC_CASES} cases raised"
