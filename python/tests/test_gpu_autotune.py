"""swba.autotune on the GPU: it times the candidate tilings of a narrow token
window, keeps the fastest forward and backward beside the kernels, later
calls of those shapes launch with them and still match the fp32 reference
(forward and gradients), and SWBA_AUTOTUNE=1 tunes shapes on their first
call. Skipped without CUDA or on another chip than sm_90a (the only one
with options to tune). The candidates' kernels: prepare_kernels.py."""

import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.dirname(__file__)]
import swba  # noqa: E402
from swba import tuning, ops  # noqa: E402
from gpu_cases import AUTOTUNE_CASE  # noqa: E402
from test_gpu_torch import assert_close, rand, reference  # noqa: E402

if ops.chip_for(torch.device("cuda", torch.cuda.current_device())) != "sm_90a":
    pytest.skip("autotune has options to time on sm_90a only", allow_module_level=True)

BS, WS, D = AUTOTUNE_CASE["block_size"], AUTOTUNE_CASE["window"], AUTOTUNE_CASE["head_dim"]


@pytest.fixture
def tuned_file(tmp_path, monkeypatch):
    """Tuned entries in a file of this test's own (the kernels stay where
    they are), none read yet, no plan made before."""
    monkeypatch.setattr(tuning, "_path", lambda: tmp_path / tuning.FILE)
    monkeypatch.setattr(tuning, "_entries", None)
    monkeypatch.delenv("SWBA_LOWER_OPTIONS", raising=False)
    ops._plans.clear()
    yield tmp_path / tuning.FILE
    ops._plans.clear()


def _inputs(n, seed):
    q = rand(1, 8, n, D, dtype=torch.bfloat16, seed=seed, grad=True)
    k = rand(1, 2, n, D, dtype=torch.bfloat16, seed=seed + 1, grad=True)
    v = rand(1, 2, n, D, dtype=torch.bfloat16, seed=seed + 2, grad=True)
    return q, k, v


def _check_step(q, k, v):
    scale = 1 / math.sqrt(D)
    dout = rand(*q.shape, dtype=q.dtype, seed=99)
    out = swba.attention(q, k, v, BS, WS)
    out.backward(dout)
    qr, kr, vr = (t.detach().float().requires_grad_() for t in (q, k, v))
    want = reference(qr, kr, vr, BS, WS, scale)
    want.backward(dout.float())
    assert_close(out, want, q.dtype)
    for got, ref in ((q.grad, qr.grad), (k.grad, kr.grad), (v.grad, vr.grad)):
        assert_close(got, ref, q.dtype)


def test_autotune_keeps_the_fastest_and_calls_use_it(tuned_file):
    q, k, v = _inputs(1024, seed=1)
    before = torch.cuda.get_rng_state()
    chosen = swba.autotune(q, k, v, BS, WS)
    assert torch.equal(torch.cuda.get_rng_state(), before)  # the caller's stream untouched
    # Every candidate was timed (at head dim 64 all fit) or had the kernels
    # of one timed before; the fastest was kept where it beats the default
    # by the margin.
    for times, candidates in ((chosen.forward_ms, tuning.FORWARD_CANDIDATES),
                              (chosen.backward_ms, tuning.BACKWARD_CANDIDATES)):
        assert set(candidates) <= set(times) | set(chosen.skipped), chosen.skipped
        assert all(why.startswith("the same kernels as") for why in chosen.skipped.values())
        assert "" in times and len(times) >= 4
    for options, times in ((chosen.forward, chosen.forward_ms),
                           (chosen.backward, chosen.backward_ms)):
        assert options == "" or times[options] == min(times.values()) < 0.98 * times[""]
    assert tuned_file.is_file()
    scale = 1 / math.sqrt(D)
    assert ops.plan_for(q, k, v, BS, WS, scale).options == chosen.options
    _check_step(q, k, v)
    # SWBA_LOWER_OPTIONS wins over a tuned entry.
    os.environ["SWBA_LOWER_OPTIONS"] = "consumers=2"
    try:
        assert ops.plan_for(q, k, v, BS, WS, scale).options == "consumers=2"
    finally:
        del os.environ["SWBA_LOWER_OPTIONS"]


def test_env_switch_tunes_new_shapes_on_first_call(tuned_file, monkeypatch):
    monkeypatch.setenv("SWBA_AUTOTUNE", "1")
    q, k, v = _inputs(768, seed=5)
    assert tuning.tuned_options(q, k, v, BS, WS, 1 / math.sqrt(D), "sm_90a") is None
    _check_step(q, k, v)
    assert tuning.tuned_options(q, k, v, BS, WS, 1 / math.sqrt(D), "sm_90a") is not None
