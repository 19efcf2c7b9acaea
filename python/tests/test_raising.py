"""The PyTorch-level raising (swba.raising) on CPU graphs: each form it
proves is replaced by swba.attention with the right attributes and the
compiled function matches eager; each near miss is left alone with a
message saying why. And the mask proof (swba.mask) on its own. CPU only."""

import logging
import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402
from swba.mask import NotSWBAMask, infer_swba_mask, swba_mask  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from seed_sba import seed_sba  # noqa: E402

pytestmark = pytest.mark.cpu


def compile_and_run(fn, *args):
    """Compiles fn with the raising backend (then aot_eager), runs it; returns
    (result, eager result, decisions, graphs after raising)."""
    decisions, graphs = [], []

    def backend(gm, example_inputs):
        decisions.extend(raising.raise_attention(gm, example_inputs))
        graphs.append(gm)
        from torch._dynamo import lookup_backend
        return lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    got = torch.compile(fn, backend=backend, fullgraph=True, dynamic=False)(*args)
    return got, fn(*args), decisions, graphs


def swba_calls(graphs):
    return [n for g in graphs for n in g.graph.nodes
            if n.target is torch.ops.swba.attention.default]


def qkv(b=1, hq=2, hkv=2, nq=24, nk=24, d=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, hq, nq, d, generator=g).to(dtype),
            torch.randn(b, hkv, nk, d, generator=g).to(dtype),
            torch.randn(b, hkv, nk, d, generator=g).to(dtype))



def frames_visible(nq, nk, bs, ws, device=None):
    qf = (torch.arange(nq, device=device) + nk - nq) // bs
    kf = torch.arange(nk, device=device) // bs
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < ws)


def naive_fill(q, k, v, bs, ws):
    """Another common spelling: f32 casts, masked_fill of the hidden pairs,
    the scale as a division, F.softmax, a cast back."""
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    s = (q.float() @ k.float().transpose(2, 3)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~visible, float("-inf"))
    return (F.softmax(s, dim=-1) @ v.float()).to(q.dtype)


def naive_where_scaled_q(q, k, v, bs, ws):
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    s = (q * 0.5) @ k.transpose(-1, -2)
    s = torch.where(visible, s, float("-inf"))
    return torch.softmax(s, -1) @ v


def sdpa_bool(q, k, v, bs, ws):
    mask = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                          enable_gqa=q.shape[1] != k.shape[1])


def sdpa_additive(q, k, v, bs, ws):
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    mask = torch.zeros(visible.shape, device=q.device).masked_fill(~visible, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None], scale=0.3)


def einsum_window(q, k, v, bs, ws):
    """Both products as einsums, the scale from the head dim, `where` with
    the dtype's lowest value."""
    visible = frames_visible(q.shape[2], k.shape[2], bs, ws, q.device)
    s = torch.einsum("bhqd,bhkd->bhqk", q, k) * q.shape[-1] ** -0.5
    p = torch.where(visible, s, torch.finfo(s.dtype).min).softmax(-1)
    return torch.einsum("...qk,...kd->...qd", p, v)


def transformers_mask(nq, nk, window, device=None):
    """A sliding-window mask built as transformers (4.5x) builds it: a
    mask function of (batch, head, query position, key position) under four
    nested vmaps, the key positions an arange shifted in place."""
    cache_position = torch.arange(nk - nq, nk, device=device)
    kv_arange = torch.arange(nk, device=device)
    kv_arange += 0

    def sliding_causal(b, h, q_idx, kv_idx):
        return (kv_idx > q_idx - window) & (kv_idx <= q_idx)

    fn = sliding_causal
    for dims in ((None, None, None, 0), (None, None, 0, None), (None, 0, None, None),
                 (0, None, None, None)):
        fn = torch.vmap(fn, in_dims=dims, out_dims=0)
    return fn(torch.arange(1, device=device), torch.arange(1, device=device), cache_position,
              kv_arange)


def transformers_eager(q, k, v, window):
    """transformers' eager attention: an additive mask of finfo.min sliced to
    the keys, a float32 softmax cast back, dropout in eval mode."""
    visible = transformers_mask(q.shape[2], k.shape[2], window, q.device)
    mask = torch.where(visible, torch.tensor(0.0), torch.finfo(torch.float32).min)
    attn = torch.matmul(q, k.transpose(2, 3)) * 0.25 + mask[:, :, :, :k.shape[-2]]
    attn = F.softmax(attn, dim=-1, dtype=torch.float32).to(q.dtype)
    attn = F.dropout(attn, p=0.1, training=False)
    return torch.matmul(attn, v)


def transformers_sdpa(q, k, v, window):
    visible = transformers_mask(q.shape[2], k.shape[2], window, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=0.25,
                                          enable_gqa=True)


POSITIVES = [
    # (name, function, shapes, bs, ws, expected scale)
    ("seed_sba", lambda q, k, v: seed_sba(q, k, v, 4, 2, 0.25), {}, 4, 2, 0.25),
    ("seed_sba_one_frame_window", lambda q, k, v: seed_sba(q, k, v, 6, 1, 0.25), {}, 6, 1, 0.25),
    ("naive_fill_partial_frame", lambda q, k, v: naive_fill(q, k, v, 5, 3), dict(nq=22, nk=22),
     5, 3, 0.25),
    ("naive_where_scaled_q", lambda q, k, v: naive_where_scaled_q(q, k, v, 3, 2), {}, 3, 2, 0.5),
    ("sdpa_bool_gqa", lambda q, k, v: sdpa_bool(q, k, v, 4, 3), dict(hq=4, hkv=2), 4, 3, 0.25),
    ("sdpa_bool_decode_bottom_right", lambda q, k, v: sdpa_bool(q, k, v, 4, 2),
     dict(nq=5, nk=23), 4, 2, 0.25),
    ("sdpa_additive_token_window", lambda q, k, v: sdpa_additive(q, k, v, 1, 6), {}, 1, 6, 0.3),
    ("einsum_kv_cache", lambda q, k, v: einsum_window(q, k, v, 1, 5), dict(nq=5, nk=23), 1, 5,
     0.25),
    ("transformers_eager", lambda q, k, v: transformers_eager(q, k, v, 6), {}, 1, 6, 0.25),
    ("transformers_sdpa_gqa_kv_cache", lambda q, k, v: transformers_sdpa(q, k, v, 5),
     dict(hq=4, hkv=2, nq=7, nk=24), 1, 5, 0.25),
    ("naive_k_mT", lambda q, k, v: torch.softmax((q @ k.mT * 0.5).masked_fill(
        ~frames_visible(24, 24, 2, 3), float("-inf")), -1) @ v, {}, 2, 3, 0.5),
    ("einsum_k_transposed", lambda q, k, v: torch.einsum("bhqk,bhkd->bhqd", torch.einsum(
        "bhqd,bhdk->bhqk", q, k.transpose(-1, -2)).masked_fill(
            ~frames_visible(24, 24, 3, 2), float("-inf")).softmax(-1), v), {}, 3, 2, 1.0),
]


@pytest.mark.parametrize("name, fn, shapes, bs, ws, scale", POSITIVES,
                         ids=[p[0] for p in POSITIVES])
def test_raised(name, fn, shapes, bs, ws, scale):
    q, k, v = qkv(**shapes)
    got, want, decisions, graphs = compile_and_run(fn, q, k, v)
    assert [d.raised for d in decisions] == [True], decisions
    (call,) = swba_calls(graphs)
    assert call.args[3:5] == (bs, ws)
    assert call.args[5] == pytest.approx(scale)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_head_dim_0_with_explicit_scale():
    """Head dim 0: every score is 0, so the output is the mean of the visible
    values. With an explicit scale SDPA's call is the op's; without one
    SDPA's default 1/sqrt(0) is infinite, and nothing is raised."""
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(1, 2, 24, 0), torch.randn(1, 2, 24, 0)
    v = torch.randn(1, 2, 24, 8, generator=g)
    mask = frames_visible(24, 24, 4, 2)

    def explicit(q, k, v):
        visible = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=0.5)

    got, want, decisions, graphs = compile_and_run(explicit, q, k, v)
    assert [d.raised for d in decisions] == [True], decisions
    (call,) = swba_calls(graphs)
    assert call.args[3:6] == (4, 2, 0.5)
    mean = (mask.float() @ v) / mask.sum(-1, keepdim=True)
    torch.testing.assert_close(got, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(want, mean, atol=1e-5, rtol=1e-5)

    def default_scale(q, k, v):
        visible = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)

    _, _, decisions, graphs = compile_and_run(default_scale, q, k, v)
    assert len(decisions) == 1 and not decisions[0].raised, decisions
    assert "head dim is 0" in decisions[0].reason
    assert not swba_calls(graphs)


def test_raised_gradients_match():
    """Training through the raised op: the gradients match eager's."""
    q, k, v = (t.requires_grad_() for t in qkv(seed=3))
    _, _, decisions, _ = compile_and_run(lambda q, k, v: seed_sba(q, k, v, 4, 2, 0.25), q, k, v)
    fn = torch.compile(lambda q, k, v: seed_sba(q, k, v, 4, 2, 0.25),
                       backend=raising.make_backend("aot_eager"), fullgraph=True, dynamic=False)
    dout = torch.randn(q.shape)
    got = torch.autograd.grad(fn(q, k, v), (q, k, v), dout)
    want = torch.autograd.grad(seed_sba(q, k, v, 4, 2, 0.25), (q, k, v), dout)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_public_backend_with_inductor(caplog):
    """The one-line opt-in, swba.backend (Inductor after the raising): the
    naive SBA is raised, and forward and gradients match eager."""
    import swba
    q, k, v = (t.requires_grad_() for t in qkv(seed=4))
    torch._dynamo.reset()
    fn = torch.compile(lambda q, k, v: seed_sba(q, k, v, 4, 2, 0.25), backend=swba.backend,
                       fullgraph=True, dynamic=False)
    with caplog.at_level(logging.INFO, logger="swba.raising"):
        got = fn(q, k, v)
    assert any("raised to swba.attention block_size=4 window=2" in r.message
               for r in caplog.records)
    want = seed_sba(q, k, v, 4, 2, 0.25)
    dout = torch.randn(got.shape)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), dout),
                    torch.autograd.grad(want, (q, k, v), dout)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def window_mod(b, h, q_idx, kv_idx):
    return (kv_idx // 4 <= q_idx // 4) & (q_idx // 4 - kv_idx // 4 < 2)


def test_flex_attention_raised():
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    q, k, v = qkv(nq=40, nk=40)
    block_mask = create_block_mask(window_mod, None, None, 40, 40, device="cpu",
                                   BLOCK_SIZE=(16, 8))
    got, want, decisions, graphs = compile_and_run(
        lambda q, k, v: flex_attention(q, k, v, block_mask=block_mask), q, k, v)
    assert [(d.form, d.raised, d.block_size, d.window) for d in decisions] == [
        ("flex_attention", True, 4, 2)], decisions
    assert len(swba_calls(graphs)) == 1
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def off_by_one(q, k, v):
    mask = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
    rows = torch.arange(q.shape[2], device=q.device)[:, None]
    cols = torch.arange(k.shape[2], device=q.device)[None, :]
    mask = mask | ((rows == 9) & (cols == 3))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def written_in_place(q, k, v):
    # Evaluating the mask's nodes alone would miss the write.
    mask = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device).clone()
    mask[9, 3] = True
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def top_left_decode(q, k, v):
    # Positions aligned at the top-left: not the op's bottom-right alignment.
    mask = frames_visible(q.shape[2], q.shape[2], 4, 2, q.device)
    mask = torch.cat([mask, torch.zeros(q.shape[2], k.shape[2] - q.shape[2], dtype=torch.bool,
                                        device=q.device)], 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def head_varying(q, k, v):
    a = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
    b = frames_visible(q.shape[2], k.shape[2], 4, 3, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=torch.stack([a, b])[None])


def random_mask(q, k, v):
    mask = torch.rand(q.shape[2], k.shape[2], device=q.device) < 2  # all True, but random
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def with_dropout(q, k, v):
    mask = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.1)


def half_mask(q, k, v):
    visible = frames_visible(q.shape[2], k.shape[2], 4, 2, q.device)
    s = (q @ k.transpose(-2, -1)) + torch.where(visible, 0.0, -0.5)
    return s.softmax(-1) @ v


def input_mask(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def softmax_wrong_axis(q, k, v):
    s = (q @ k.transpose(-2, -1)).masked_fill(
        ~frames_visible(q.shape[2], k.shape[2], 4, 2, q.device), float("-inf"))
    return s.softmax(-2) @ v


NEAR_MISSES = [
    ("off_by_one", off_by_one, (), "query row 9 sees keys [3, 12) but block_size=4 window=2"),
    ("written_in_place", written_in_place, (), "changed in place"),
    ("top_left_decode", top_left_decode, ("nq=12",), "not a sliding window block mask"),
    ("head_varying", head_varying, (), "varies over batch or heads"),
    ("random", random_mask, (), "rand"),
    ("dropout", with_dropout, (), "dropout_p is not 0"),
    ("half_mask", half_mask, (), "only 0 and -inf"),
    ("input_mask", input_mask, ("mask",), "depends on the graph input"),
    ("softmax_wrong_axis", softmax_wrong_axis, (), "not the key axis"),
    # K Q^T: the softmax runs over the queries.
    ("einsum_scores_transposed", lambda q, k, v: torch.einsum(
        "bhqk,bhkd->bhqd", torch.einsum("bhqd,bhkd->bhkq", q, k).masked_fill(
            ~frames_visible(24, 24, 4, 2), float("-inf")).softmax(-1), v), (),
     "the scores are not a product q @ k^T"),
]


@pytest.mark.parametrize("name, fn, extra, why", NEAR_MISSES, ids=[n[0] for n in NEAR_MISSES])
def test_near_miss_left_alone(name, fn, extra, why, caplog):
    q, k, v = qkv(nq=12 if "nq=12" in extra else 24)
    args = (q, k, v)
    if "mask" in extra:
        args += (frames_visible(24, 24, 4, 2),)
    with caplog.at_level(logging.INFO, logger="swba.raising"):
        got, want, decisions, graphs = compile_and_run(fn, *args)
    assert len(decisions) == 1 and not decisions[0].raised, decisions
    assert why in decisions[0].reason, decisions[0].reason
    assert not swba_calls(graphs)
    assert any("not raised" in r.message and why in r.message for r in caplog.records)
    if name != "dropout":  # (its random draws differ)
        torch.testing.assert_close(got, want)


def test_flex_score_mod_left_alone():
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    q, k, v = qkv(nq=16, nk=16)
    block_mask = create_block_mask(window_mod, None, None, 16, 16, device="cpu")

    def fn(q, k, v):
        return flex_attention(q, k, v, score_mod=lambda s, b, h, i, j: s + (i - j),
                              block_mask=block_mask)

    _, _, decisions, graphs = compile_and_run(fn, q, k, v)
    assert [d.reason for d in decisions] == ["score_mod is not the identity"]
    assert not swba_calls(graphs)


def test_flex_inconsistent_block_table_left_alone():
    """A BlockMask whose block table leaves out a block where the mask_mod
    sees keys: flex_attention skips it, so the mask is not a block window
    (though the mask_mod is one)."""
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
    q, k, v = qkv(nq=16, nk=16)
    good = create_block_mask(window_mod, None, None, 16, 16, device="cpu", BLOCK_SIZE=(8, 8))
    bad = BlockMask.from_kv_blocks(torch.tensor([[[1, 1]]], dtype=torch.int32),
                                   torch.tensor([[[[0, 1], [1, 0]]]], dtype=torch.int32),
                                   BLOCK_SIZE=(8, 8), mask_mod=good.mask_mod, seq_lengths=(16, 16))
    _, _, decisions, graphs = compile_and_run(
        lambda q, k, v: flex_attention(q, k, v, block_mask=bad), q, k, v)
    assert len(decisions) == 1 and not decisions[0].raised
    assert "query row 4 sees keys [0, 8) but block_size=4 window=1" in decisions[0].reason, \
        decisions[0].reason


def test_dropout_while_training_not_raised():
    """Dropout that drops (p > 0, training) between the softmax and P.V is
    not the op's attention: left alone (in eval mode it is raised,
    `transformers_eager`)."""
    q, k, v = qkv()
    _, _, decisions, graphs = compile_and_run(lambda q, k, v: F.dropout(torch.softmax(
        (q @ k.mT).masked_fill(~frames_visible(24, 24, 4, 2), float("-inf")), -1),
        p=0.1, training=True) @ v, q, k, v)
    assert not swba_calls(graphs) and not any(d.raised for d in decisions)


def test_plain_attention_not_a_candidate_message():
    q, k, v = qkv()
    _, _, decisions, _ = compile_and_run(lambda q, k, v: (q @ k.mT).softmax(-1) @ v, q, k, v)
    assert [d.reason for d in decisions] == ["no mask on the scores (plain attention)"]


# --- the mask proof alone ------------------------------------------------------

def test_infer_exhaustive_small():
    """Every SWBA mask up to 9 x 9 is recognized, with attributes that give
    back exactly that mask."""
    for nk in range(1, 10):
        for nq in range(1, nk + 1):
            for bs in range(1, nk + 2):
                for ws in range(1, nk + 2):
                    m = swba_mask(nq, nk, bs, ws)
                    got = infer_swba_mask(m)
                    assert np.array_equal(swba_mask(nq, nk, *got), m), (nq, nk, bs, ws, got)


def test_infer_sound_on_flips():
    """One flipped pair: either rejected, or the attributes found give
    exactly the flipped matrix (never a mask that differs from it)."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        nk = int(rng.integers(2, 14))
        nq = int(rng.integers(1, nk + 1))
        m = swba_mask(nq, nk, int(rng.integers(1, 6)), int(rng.integers(1, 4)))
        m[rng.integers(nq), rng.integers(nk)] ^= True
        try:
            got = infer_swba_mask(m)
        except NotSWBAMask:
            continue
        assert np.array_equal(swba_mask(nq, nk, *got), m)


def test_infer_messages():
    """The diagnostics of --raise-swba's MaskAnalysis."""
    m = swba_mask(6, 6, 2, 2)
    m[3, :] = False
    with pytest.raises(NotSWBAMask, match="query row 3 sees no key"):
        infer_swba_mask(m)
    m = swba_mask(6, 6, 2, 2)
    m[5, 0] = True
    with pytest.raises(NotSWBAMask, match=r"query row 5 sees keys \[0, 1\) and key 2: not one"):
        infer_swba_mask(m)
    m = swba_mask(6, 6, 2, 2)
    m[5, 1] = True
    with pytest.raises(NotSWBAMask, match=r"the closest: query row 5 sees keys \[1, 6\) but "
                                          r"block_size=2 window=2 would give \[2, 6\)"):
        infer_swba_mask(m)
    with pytest.raises(NotSWBAMask, match="needs 1 <= Nq <= Nk"):
        infer_swba_mask(np.ones((4, 3), dtype=bool))


def test_flex_attention_gqa_raised():
    """flex_attention with enable_gqa: 4 query heads read 2 kv heads (query
    head h reads kv head h // 2), raised with the op's own grouping."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    q, k, v = qkv(hq=4, hkv=2, nq=40, nk=40, seed=3)
    block_mask = create_block_mask(window_mod, None, None, 40, 40, device="cpu",
                                   BLOCK_SIZE=(16, 8))
    got, want, decisions, graphs = compile_and_run(
        lambda q, k, v: flex_attention(q, k, v, block_mask=block_mask, enable_gqa=True),
        q, k, v)
    assert [(d.form, d.raised, d.block_size, d.window) for d in decisions] == [
        ("flex_attention", True, 4, 2)], decisions
    assert len(swba_calls(graphs)) == 1
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
