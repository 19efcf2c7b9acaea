"""The numpy reference (python/swba/reference.py) against independent
definitions: the mask element by element, the forward against a dense
softmax, the backward against central finite differences. Runs under pytest
or as `python3 python/tests/test_reference.py`."""

import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba.reference import (attention_backward, attention_forward,  # noqa: E402
                            paged_attention_forward, raw_bytes, round_to,
                            swba_mask)


def test_mask_matches_definition():
    # square with a partial last frame, Nq < Nk, bs = 1, window past the
    # frames, a single decode query, bs = 1 with Nq < Nk, bs > N.
    for nq, nk, bs, ws in [(10, 10, 3, 2), (7, 20, 4, 3), (9, 9, 1, 4), (12, 12, 5, 100),
                           (1, 13, 4, 2), (5, 17, 1, 3), (6, 6, 8, 1)]:
        m = swba_mask(nq, nk, bs, ws)
        for i, j in itertools.product(range(nq), range(nk)):
            fq, fk = (i + nk - nq) // bs, j // bs
            assert m[i, j] == (fk <= fq and fq - fk < ws), (nq, nk, bs, ws, i, j)
        assert m.any(axis=1).all(), "every query sees its own frame"


def test_forward_matches_dense_softmax():
    rng = np.random.default_rng(1)
    # (b, hq, hkv, nq, nk, d, dv, bs, ws, scale): square GQA with a partial
    # last frame and explicit scale; Nq < Nk, bs = 1, default scale.
    for b, hq, hkv, nq, nk, d, dv, bs, ws, scale in [(2, 4, 2, 11, 11, 8, 8, 3, 2, 0.4),
                                                     (1, 3, 1, 6, 19, 5, 3, 1, 4, None)]:
        q = rng.standard_normal((b, hq, nq, d))
        k = rng.standard_normal((b, hkv, nk, d))
        v = rng.standard_normal((b, hkv, nk, dv))
        out, lse = attention_forward(q, k, v, bs, ws, scale)
        sc = 1 / np.sqrt(d) if scale is None else scale
        mask = np.array([[j // bs <= (i + nk - nq) // bs < j // bs + ws for j in range(nk)]
                         for i in range(nq)])
        for bi, h in itertools.product(range(b), range(hq)):
            kv = h // (hq // hkv)
            s = q[bi, h] @ k[bi, kv].T * sc
            s[~mask] = -np.inf
            p = np.exp(s - s.max(axis=1, keepdims=True))
            assert np.allclose(out[bi, h], (p / p.sum(axis=1, keepdims=True)) @ v[bi, kv])
            assert np.allclose(lse[bi, h], np.log(np.exp(s).sum(axis=1)))


def test_paged_forward_matches_per_row_definition():
    # Ragged lengths (one shorter than Nq, one empty), GQA 2, pages in random
    # order, an entry past the cache and one negative (in and out of windows).
    rng = np.random.default_rng(5)
    b, hq, hkv, nq, d, dv, bs, ws, ps = 4, 4, 2, 5, 3, 2, 3, 2, 4
    lens = np.array([14, 3, 0, 21])
    num_pages, max_pages = 16, 7
    kc = rng.standard_normal((num_pages, ps, hkv, d))
    vc = rng.standard_normal((num_pages, ps, hkv, dv))
    table = rng.integers(0, num_pages, (b, max_pages))  # shared pages too
    table[0, 3] = num_pages + 2     # positions 12..15: seen by the last rows
    table[3, 0] = -1                # positions 0..3: before every window
    out, lse = paged_attention_forward(q := rng.standard_normal((b, hq, nq, d)),
                                       kc, vc, table, lens, bs, ws, 0.6)
    for bi, h, i in itertools.product(range(b), range(hq), range(nq)):
        qpos = lens[bi] - nq + i
        if qpos < 0:
            assert (out[bi, h, i] == 0).all() and lse[bi, h, i] == -np.inf
            continue
        seen = [p for p in range(lens[bi])
                if p // bs <= qpos // bs < p // bs + ws]
        entries = [table[bi, p // ps] for p in seen]
        if any(not 0 <= e < num_pages for e in entries):
            assert np.isnan(out[bi, h, i]).all() and np.isnan(lse[bi, h, i])
            continue
        kv = h // (hq // hkv)
        ks = np.array([kc[e, p % ps, kv] for e, p in zip(entries, seen)])
        vs = np.array([vc[e, p % ps, kv] for e, p in zip(entries, seen)])
        s = ks @ q[bi, h, i] * 0.6
        p = np.exp(s - s.max())
        assert np.allclose(out[bi, h, i], p @ vs / p.sum())
        assert np.isclose(lse[bi, h, i], s.max() + np.log(p.sum()))
    assert np.isnan(lse[0]).any() and not np.isnan(lse[0]).all()
    assert not np.isnan(lse[3]).any()


def _check_backward(b, hq, hkv, nq, nk, d, dv, bs, ws, scale, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, hq, nq, d))
    k = rng.standard_normal((b, hkv, nk, d))
    v = rng.standard_normal((b, hkv, nk, dv))
    dout = rng.standard_normal((b, hq, nq, dv))

    def loss(q, k, v):
        return (attention_forward(q, k, v, bs, ws, scale)[0] * dout).sum()

    grads = attention_backward(q, k, v, dout, bs, ws, scale)
    xs = [q, k, v]
    for i, g in enumerate(grads):
        x = xs[i]
        assert g.shape == x.shape
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[idx] = 1e-6
            plus, minus = list(xs), list(xs)
            plus[i], minus[i] = x + e, x - e
            num[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        assert np.allclose(g, num, atol=1e-6), ("dq dk dv"[3 * i:3 * i + 2], np.abs(g - num).max())


def test_backward_matches_finite_differences():
    # GQA (2 query heads per kv head), Nq < Nk, partial last frame, explicit scale.
    _check_backward(1, 4, 2, 5, 9, 3, 2, 2, 3, 0.7, seed=2)
    # Square, bs = 1 (token-level window), batch 2, MQA, default scale.
    _check_backward(2, 2, 1, 7, 7, 4, 3, 1, 3, None, seed=3)


def test_round_to():
    x = np.array([1.0 + 2**-9, 3.14159, -2.5e-3])
    assert np.array_equal(round_to(x, "f16"), x.astype(np.float16).astype(np.float64))
    assert round_to(np.array([1.0 + 2**-8]), "bf16")[0] == 1.0  # tie to even
    assert round_to(np.array([1.0 + 3 * 2**-8]), "bf16")[0] == 1.0 + 2**-6
    assert round_to(np.array([1.0 + 2**-8 + 2**-20]), "bf16")[0] == 1.0 + 2**-7  # above the tie
    assert round_to(np.array([1.0 + 2**-30]), "f32")[0] == 1.0
    assert round_to(np.array([-0.0]), "bf16")[0] == 0.0


def test_raw_bytes():
    x = round_to(np.random.default_rng(4).standard_normal(7), "bf16")
    b = raw_bytes(x, "bf16")
    back = (np.frombuffer(b, "<u2").astype("<u4") << 16).view("<f4").astype(np.float64)
    assert len(b) == 14 and np.array_equal(back, x)
    assert raw_bytes(np.array([1.0]), "bf16") == bytes([0x80, 0x3F])
    assert raw_bytes(np.array([1.0]), "f16") == bytes([0x00, 0x3C])
    assert raw_bytes(np.array([1.0]), "f32") == bytes([0, 0, 0x80, 0x3F])


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    import _runner
    _runner.run(globals())
