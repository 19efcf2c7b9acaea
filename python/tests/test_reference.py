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
                            round_to, swba_mask)


def test_mask_matches_definition():
    for nq, nk, bs, ws in [(10, 10, 3, 2), (7, 20, 4, 3), (9, 9, 1, 4), (12, 12, 5, 100)]:
        m = swba_mask(nq, nk, bs, ws)
        for i, j in itertools.product(range(nq), range(nk)):
            fq, fk = (i + nk - nq) // bs, j // bs
            assert m[i, j] == (fk <= fq and fq - fk < ws), (nq, nk, bs, ws, i, j)
        assert m.any(axis=1).all(), "every query sees its own frame"


def test_forward_matches_dense_softmax():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 4, 11, 8)) for _ in range(3))
    k, v = k[:, :2], v[:, :2]
    out, lse = attention_forward(q, k, v, 3, 2, 0.4)
    mask = swba_mask(11, 11, 3, 2)
    for b, h in itertools.product(range(2), range(4)):
        s = q[b, h] @ k[b, h // 2].T * 0.4
        s[~mask] = -np.inf
        p = np.exp(s - s.max(axis=1, keepdims=True))
        assert np.allclose(out[b, h], (p / p.sum(axis=1, keepdims=True)) @ v[b, h // 2])
        assert np.allclose(lse[b, h], np.log(np.exp(s).sum(axis=1)))


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((1, 4, 5, 3))
    k = rng.standard_normal((1, 2, 9, 3))
    v = rng.standard_normal((1, 2, 9, 2))
    dout = rng.standard_normal((1, 4, 5, 2))
    args = (2, 3, 0.7)  # block_size, window, scale; Nq < Nk

    def loss(q, k, v):
        return (attention_forward(q, k, v, *args)[0] * dout).sum()

    grads = attention_backward(q, k, v, dout, *args)
    for x, g in zip((q, k, v), grads):
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            d = np.zeros_like(x)
            d[idx] = 1e-6
            xs = [q, k, v]
            i = [id(t) for t in xs].index(id(x))
            plus, minus = list(xs), list(xs)
            plus[i], minus[i] = x + d, x - d
            num[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        assert np.allclose(g, num, atol=1e-6), np.abs(g - num).max()


def test_round_to():
    x = np.array([1.0 + 2**-9, 3.14159, -2.5e-3])
    assert np.array_equal(round_to(x, "f16"), x.astype(np.float16).astype(np.float64))
    assert round_to(np.array([1.0 + 2**-8]), "bf16")[0] == 1.0  # tie to even
    assert round_to(np.array([1.0 + 3 * 2**-8]), "bf16")[0] == 1.0 + 2**-6


if __name__ == "__main__":
    tests = [f for name, f in sorted(globals().items()) if name.startswith("test_")]
    failed = 0
    for t in tests:
        try:
            t()
        except AssertionError as e:
            failed += 1
            print(f"FAILED {t.__name__}: {e}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
