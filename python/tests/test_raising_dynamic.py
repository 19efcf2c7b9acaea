"""The PyTorch-level raising (swba.raising) on graphs with symbolic shapes
(`torch.compile(dynamic=True)`, or a size that changed): the attention is
raised once, to `swba::attention_dynamic`, and its mask is proven a block
window again at each size the compiled code meets. Every size is checked
against eager PyTorch, forward and backward: where the mask is a window,
through the op's window; where it is not, through the mask run densely.
CPU only."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402
from swba.mask import swba_mask  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from seed_sba import seed_sba  # noqa: E402
import test_raising  # noqa: E402

pytestmark = pytest.mark.cpu


class Compiled:
    """fn compiled with the raising backend (then aot_eager), remembering
    the decisions and the graphs after raising."""

    def __init__(self, fn, dynamic=True):
        self.fn, self.decisions, self.graphs = fn, [], []

        def backend(gm, example_inputs):
            self.decisions.extend(raising.raise_attention(gm, example_inputs))
            self.graphs.append(gm)
            from torch._dynamo import lookup_backend
            return lookup_backend("aot_eager")(gm, example_inputs)

        torch._dynamo.reset()
        self.compiled = torch.compile(fn, backend=backend, fullgraph=True, dynamic=dynamic)

    def calls(self):
        return [n for g in self.graphs for n in g.graph.nodes
                if n.target is torch.ops.swba.attention_dynamic.default]

    def program(self):
        (call,) = self.calls()
        return raising._PROGRAMS[call.args[3]]

    def check(self, *shapes, seed=0, grad=True, dtype=torch.float32, atol=1e-5):
        """Runs compiled and eager on random q, k, v of `shapes`; compares
        every element of the outputs and (with grad) of the gradients."""
        g = torch.Generator().manual_seed(seed)
        args = [torch.randn(*s, generator=g).to(dtype).requires_grad_(grad) for s in shapes]
        got, want = self.compiled(*args), self.fn(*args)
        torch.testing.assert_close(got, want, atol=atol, rtol=atol)
        if grad:
            dout = torch.randn(want.shape, generator=g).to(dtype)
            got_grads = torch.autograd.grad(got, args, dout)
            want_grads = torch.autograd.grad(want, args, dout)
            for a, b in zip(got_grads, want_grads):
                torch.testing.assert_close(a, b, atol=atol * 10, rtol=atol * 10)


def frames_visible(nq, nk, bs, ws, device=None):
    qf = (torch.arange(nq, device=device) + nk - nq) // bs
    kf = torch.arange(nk, device=device) // bs
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)


def naive_fill(q, k, v, bs, ws):
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    s = (q.float() @ k.float().transpose(2, 3)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~visible, float("-inf"))
    return (F.softmax(s, dim=-1) @ v.float()).to(q.dtype)


def sdpa_bool(q, k, v, bs, ws, gqa=False):
    mask = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


def sdpa_additive(q, k, v, bs, ws):
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    mask = torch.zeros(visible.shape, device=q.device).masked_fill(~visible, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None], scale=0.3)


def einsum_window(q, k, v, bs, ws):
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    s = torch.einsum("bhqd,bhkd->bhqk", q, k) * q.shape[-1] ** -0.5
    p = torch.where(visible, s, torch.finfo(s.dtype).min).softmax(-1)
    return torch.einsum("...qk,...kd->...qd", p, v)


def shapes(nq, nk=None, b=1, hq=2, hkv=None, d=16):
    nk = nq if nk is None else nk
    hkv = hq if hkv is None else hkv
    return [(b, hq, nq, d), (b, hkv, nk, d), (b, hkv, nk, d)]


FORMS = [
    # (name, function, sizes met in turn as (nq, nk, extra shape arguments), (bs, ws))
    ("seed_sba", lambda q, k, v: seed_sba(q, k, v, 4, 2, 0.25),
     [(24, 24, {}), (40, 40, {}), (64, 64, {}), (20, 20, {})], (4, 2)),
    ("naive_fill_partial_frames", lambda q, k, v: naive_fill(q, k, v, 5, 3),
     [(22, 22, {}), (37, 37, {}), (50, 50, {}), (12, 12, {})], (5, 3)),
    ("sdpa_bool_gqa", lambda q, k, v: sdpa_bool(q, k, v, 4, 3, gqa=True),
     [(24, 24, dict(hq=4, hkv=2)), (33, 33, dict(hq=4, hkv=2)), (9, 9, dict(hq=4, hkv=2))],
     (4, 3)),
    ("sdpa_bool_kv_cache", lambda q, k, v: sdpa_bool(q, k, v, 4, 2),
     [(5, 23, {}), (3, 31, {}), (7, 40, {}), (2, 9, {})], (4, 2)),
    ("sdpa_additive_token_window", lambda q, k, v: sdpa_additive(q, k, v, 1, 6),
     [(24, 24, {}), (47, 47, {}), (6, 6, {})], (1, 6)),
    # transformers' masks: four nested vmaps (test_raising.transformers_mask).
    ("transformers_eager", lambda q, k, v: test_raising.transformers_eager(q, k, v, 6),
     [(24, 24, {}), (40, 40, {}), (7, 7, {})], (1, 6)),
    ("transformers_sdpa_kv_cache", lambda q, k, v: test_raising.transformers_sdpa(q, k, v, 5),
     [(7, 24, dict(hq=4, hkv=2)), (3, 40, dict(hq=4, hkv=2)), (12, 12, dict(hq=4, hkv=2))],
     (1, 5)),
    # The scale from a symbolic head dim.
    ("einsum_kv_cache", lambda q, k, v: einsum_window(q, k, v, 1, 5),
     [(5, 23, dict(d=8)), (3, 40, dict(d=8)), (9, 12, dict(d=4))], (1, 5)),
]


@pytest.mark.parametrize("name, fn, sizes, window", FORMS, ids=[f[0] for f in FORMS])
def test_raised_once_and_right_at_every_size(name, fn, sizes, window):
    c = Compiled(fn)
    for nq, nk, extra in sizes:
        c.check(*shapes(nq, nk, **extra))
    assert len(c.graphs) == 1, "recompiled"
    assert [(d.raised, d.dynamic) for d in c.decisions] == [(True, True)], c.decisions
    assert (c.decisions[0].block_size, c.decisions[0].window) == window
    verdicts = c.program().verdicts
    assert len(verdicts) == len(sizes)
    # Each size proved a window that is the intended one there (a few
    # queries at the end of a cache fit more than one block size).
    for key, (*_, verdict) in verdicts.items():
        nq, nk = key[1][2], key[2][2]
        assert isinstance(verdict, tuple), verdict
        assert (swba_mask(nq, nk, *verdict) == swba_mask(nq, nk, *window)).all(), (nq, nk)


@pytest.mark.parametrize("bs, ws, windows", [
    # Before the cache outgrows the window every key is seen: one causal
    # window of every length, then the window itself.
    (1, 64, [(1, raising._UNBOUNDED_WINDOW), (1, 64)]),
    (16, 4, [(1, raising._UNBOUNDED_WINDOW), (16, 4)]),
    (8, 3, [(1, raising._UNBOUNDED_WINDOW), (8, 3)]),
])
def test_decode_keeps_one_window(bs, ws, windows):
    """Decode (one query against a cache that grows by a key a step): one
    row fits many windows (any block size that divides its first key), and
    each step proves its own size; the window a step proves is the one of
    the steps before wherever it fits, and where none does, the one that
    also fits the masks of longer caches, so that the steps keep one kernel
    rather than compile one a step. Every step against eager PyTorch."""
    c = Compiled(lambda q, k, v: sdpa_bool(q, k, v, bs, ws))
    for nk in list(range(3, 4 * bs * ws + 40, 3)) + [bs * ws + 1, 1000]:
        c.check(*shapes(1, nk), grad=False)
    assert len(c.graphs) == 1, "recompiled"
    proofs = c.program().proofs()
    assert all(isinstance(p, tuple) for p in proofs), proofs
    assert sorted(set(proofs)) == sorted(windows), sorted(set(proofs))


def test_window_proven_for_each_size():
    """A window that follows the length (an eighth of it): each size runs
    with its own window."""
    def fn(q, k, v):
        n = q.shape[2]
        return sdpa_bool(q, k, v, 1, n // 8)

    c = Compiled(fn)
    for n in (32, 64, 48):
        c.check(*shapes(n))
    assert sorted(c.program().proofs()) == [(1, 4), (1, 6), (1, 8)]


def test_size_where_the_mask_is_no_window_runs_densely():
    """Key 10 is also seen by the last query: inside its window up to 13
    tokens, a second range past that. The sizes past it run the mask
    densely and still match eager."""
    def fn(q, k, v):
        n = q.shape[2]
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        visible = frames_visible(n, n, 1, 4) | ((i == n - 1) & (j == 10))
        s = (q @ k.transpose(-1, -2)) * 0.25
        return torch.softmax(s.masked_fill(~visible, float("-inf")), -1) @ v

    c = Compiled(fn)
    c.check(*shapes(12))
    c.check(*shapes(30))
    c.check(*shapes(13))
    verdicts = c.program().proofs()
    assert verdicts[0] == (1, 4) and verdicts[2] == (1, 4), verdicts
    assert "query row 29 sees keys [10, 11) and key 26: not one contiguous range" in \
        verdicts[1], verdicts


def test_automatic_dynamic_after_a_new_size():
    """torch.compile's default: the first size compiled static, the second
    makes the length symbolic; both raised."""
    fn = lambda q, k, v: sdpa_bool(q, k, v, 4, 2)  # noqa: E731
    c = Compiled(fn, dynamic=None)
    for n in (16, 24, 36):
        c.check(*shapes(n), grad=False)
    assert [(d.raised, d.dynamic) for d in c.decisions] == [(True, False), (True, True)]


def test_mask_from_an_input_left_alone():
    def fn(q, k, v, visible):
        s = q @ k.transpose(-1, -2)
        return torch.softmax(s.masked_fill(~visible, float("-inf")), -1) @ v

    c = Compiled(fn)
    q = torch.randn(1, 2, 16, 8)
    c.compiled(q, q, q, frames_visible(16, 16, 4, 2))
    assert len(c.decisions) == 1 and not c.decisions[0].raised
    assert "depends on the graph input" in c.decisions[0].reason, c.decisions


def additive_bump(n):
    """A token window of 4 as 0/-inf, plus 0.5 on the score of query 16
    and key 16, which only sequences longer than 16 have."""
    visible = frames_visible(n, n, 1, 4)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    mask = torch.zeros(n, n).masked_fill(~visible, float("-inf"))
    return mask + ((i == 16) & (j == 16)) * 0.5


def test_additive_values_past_the_traced_size_run_densely():
    """A mask of 0/-inf at the traced size that adds 0.5 to one visible
    score at longer ones: no window carries it, and those sizes run it
    densely, as SDPA adds it (after the scale) and as the naive form does
    (inside a symbolic scale: the 0.5 is scaled too)."""
    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=additive_bump(q.shape[2]))

    def naive(q, k, v):
        s = (q @ k.transpose(-1, -2) + additive_bump(q.shape[2])) / math.sqrt(q.shape[-1])
        return s.softmax(-1) @ v

    for fn in (sdpa, naive):
        c = Compiled(fn)
        c.check(*shapes(16, d=8))  # D apart from N: no duck-sized guard
        c.check(*shapes(17, d=8))
        c.check(*shapes(30, d=4))
        assert len(c.graphs) == 1
        proofs = c.program().proofs()
        assert proofs[0] == (1, 4) and all("holds 0.5" in p for p in proofs[1:]), proofs


def test_opcheck():
    c = Compiled(lambda q, k, v: sdpa_bool(q, k, v, 4, 2))
    c.check(*shapes(20), grad=False)
    name = c.calls()[0].args[3]
    g = torch.Generator().manual_seed(1)
    for n, d in ((20, 8), (13, 8)):
        q, k, v = (torch.randn(1, 2, n, d, generator=g, requires_grad=True) for _ in range(3))
        torch.library.opcheck(torch.ops.swba.attention_dynamic.default,
                              (q, k, v, name, [n], None))


def test_unknown_program_is_an_error():
    q = torch.randn(1, 1, 4, 8)
    with pytest.raises(RuntimeError, match="no mask program 'nope' in this process"):
        torch.ops.swba.attention_dynamic(q, q, q, "nope", [4], None)


def test_row_ranges_on_tensors_match_the_proof():
    """The row ranges taken where the mask is (GPU sizes run them there)
    agree with swba.mask's, ranges and messages, on windows and on their
    near misses."""
    from swba import mask as mask_module
    g = torch.Generator().manual_seed(3)
    for trial in range(300):
        nq = int(torch.randint(1, 20, (), generator=g))
        nk = nq + int(torch.randint(0, 12, (), generator=g))
        bs = int(torch.randint(1, 5, (), generator=g))
        ws = int(torch.randint(1, 4, (), generator=g))
        visible = torch.from_numpy(swba_mask(nq, nk, bs, ws).copy())
        if trial % 2:
            i, j = (int(torch.randint(0, n, (), generator=g)) for n in (nq, nk))
            visible[i, j] = ~visible[i, j]
        want = got = None
        try:
            want = mask_module._row_ranges(visible.numpy())
        except mask_module.NotSWBAMask as e:
            want = str(e)
        try:
            got = raising._row_ranges(visible)
        except mask_module.NotSWBAMask as e:
            got = str(e)
        if isinstance(want, str):
            assert got == want
        else:
            assert (got[0] == want[0]).all() and (got[1] == want[1]).all()


def test_unrelated_write_in_place_to_a_fresh_tensor_of_the_same_size():
    """A tensor of the same symbolic length written in place elsewhere in
    the graph (as transformers shifts a second mask's arange) writes
    nothing the mask reads: the length it shares is a number, not a
    tensor."""
    def fn(q, k, v):
        n = q.shape[2]
        other = torch.zeros(1).expand(n).clone()  # made from the length
        other += 1
        return test_raising.transformers_eager(q, k, v, 6), other.sum()

    c = Compiled(fn)
    for n in (24, 40):
        q, k, v = (torch.randn(1, 2, n, 16) for _ in range(3))
        (got, got_sum), (want, want_sum) = c.compiled(q, k, v), fn(q, k, v)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        assert got_sum == want_sum
    assert [(d.raised, d.dynamic) for d in c.decisions] == [(True, True)], c.decisions
