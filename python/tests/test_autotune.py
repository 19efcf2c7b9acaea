"""The autotuner's parts that need no GPU: which options reach the forward
and the backward kernels, the candidates it times, the tuned entries kept
beside the kernels (keyed by configuration, shapes and GPU name) and found
again in a new process, and swba-compile --autotune building the candidates
that fit (skipped without swba-opt). The timing itself: test_gpu_torch.py."""

import dataclasses
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import tuning, bundle, compiler  # noqa: E402
from swba import compile as swba_compile  # noqa: E402

pytestmark = pytest.mark.cpu
torch = pytest.importorskip("torch")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty kernel cache, no tuned entries read yet, a named GPU."""
    monkeypatch.setenv("SWBA_KERNEL_DIR", str(tmp_path))
    monkeypatch.delenv("SWBA_KERNEL_BUNDLE", raising=False)
    monkeypatch.setattr(bundle, "_loaded", [])
    monkeypatch.setattr(bundle, "_env_seen", None)
    monkeypatch.setattr(tuning, "_entries", None)
    monkeypatch.setattr(tuning, "_gpu_name", lambda device: "GPU A")
    return tmp_path


def test_kernel_options_split_by_kernel():
    options = "consumers=2 grad-key-tile=64 block-n=64 grad-fused-dq=true"
    assert compiler.kernel_options(options, grad=False) == "consumers=2 block-n=64"
    assert compiler.kernel_options(options, grad=True) == "grad-key-tile=64 grad-fused-dq=true"
    assert compiler.kernel_options("", grad=True) == ""


def test_candidates_are_each_kernels_own():
    base = compiler.KernelConfig("bf16", 128, 128, 1, 4096, 0.088, chip="sm_90a")
    forward = tuning.candidate_configs(base)
    assert [c.options for c in forward] == list(tuning.FORWARD_CANDIDATES)
    assert all(compiler.kernel_options(c.options, False) == c.options for c in forward)
    grad = tuning.candidate_configs(base.__class__(**{**base.__dict__, "grad": True}))
    assert all(c.grad and compiler.kernel_options(c.options, True) == c.options for c in grad)
    assert tuning.FUSED_DQ not in [c.options for c in grad]
    fused = tuning.candidate_configs(grad[0], allow_fused_dq=True)
    assert fused[-1].options == tuning.FUSED_DQ


def _tensors(b=1, hq=4, hkv=2, nq=64, nk=96, d=64):
    q = torch.empty(b, hq, nq, d, dtype=torch.bfloat16)
    k = torch.empty(b, hkv, nk, d, dtype=torch.bfloat16)
    v = torch.empty(b, hkv, nk, d, dtype=torch.bfloat16)
    return q, k, v


def test_tuned_entries_persist_per_configuration_shape_and_gpu(isolated, monkeypatch):
    q, k, v = _tensors()
    assert tuning.tuned_options(q, k, v, 16, 2, 0.125, "sm_90a") is None
    chosen = tuning.Tuning("consumers=2 block-n=64", "grad-key-tile=64",
                             {"": 1.0, "consumers=2 block-n=64": 0.5},
                             {"": 2.0, "grad-key-tile=64": 1.5}, {})
    tuning._store(tuning._key(q, k, v, 16, 2, 0.125, "sm_90a"), chosen)
    expected = "consumers=2 block-n=64 grad-key-tile=64"
    assert chosen.options == expected
    assert tuning.tuned_options(q, k, v, 16, 2, 0.125, "sm_90a") == expected
    # Read again from the file, as a new process does.
    monkeypatch.setattr(tuning, "_entries", None)
    assert tuning.tuned_options(q, k, v, 16, 2, 0.125, "sm_90a") == expected
    saved = json.loads((isolated / tuning.FILE).read_text())
    (entry,) = saved.values()
    assert entry["forward_ms"]["consumers=2 block-n=64"] == 0.5
    # Another window, other shapes, another GPU: not tuned.
    assert tuning.tuned_options(q, k, v, 16, 3, 0.125, "sm_90a") is None
    assert tuning.tuned_options(*_tensors(nq=96), 16, 2, 0.125, "sm_90a") is None
    monkeypatch.setattr(tuning, "_gpu_name", lambda device: "GPU B")
    assert tuning.tuned_options(q, k, v, 16, 2, 0.125, "sm_90a") is None


def test_store_keeps_entries_of_other_processes(isolated, monkeypatch):
    q, k, v = _tensors()
    tuning._store(tuning._key(q, k, v, 16, 2, 0.125, "sm_90a"),
                    tuning.Tuning("stages=3", "", {}, {}, {}))
    # A second process, which read the file before the first wrote it.
    monkeypatch.setattr(tuning, "_entries", {})
    tuning._store(tuning._key(q, k, v, 8, 2, 0.125, "sm_90a"),
                    tuning.Tuning("block-n=64", "", {}, {}, {}))
    monkeypatch.setattr(tuning, "_entries", None)
    assert tuning.tuned_options(q, k, v, 16, 2, 0.125, "sm_90a") == "stages=3"
    assert tuning.tuned_options(q, k, v, 8, 2, 0.125, "sm_90a") == "block-n=64"


def test_the_default_stays_unless_beaten_by_the_margin():
    assert tuning._fastest({"": 1.0, "a": 0.99, "b": 1.2}, 0.02) == ""
    assert tuning._fastest({"": 1.0, "a": 0.97, "b": 0.9}, 0.02) == "b"
    assert tuning._fastest({"a": 0.97, "b": 0.9}, 0.02) == "b"


def test_autotune_rejects_cpu_tensors(isolated):
    q, k, v = _tensors()
    with pytest.raises(ValueError, match="CUDA tensors"):
        tuning.autotune(q, k, v, 16, 2)
    with pytest.raises(ValueError, match="window"):
        tuning.autotune(q, k, v, 16, 0)


def test_compile_autotune_builds_the_candidates_that_fit(isolated, capsys):
    if compiler.find_swba_opt() is None:
        pytest.skip("no swba-opt to compile with")
    out = isolated / "kernels"
    argv = ["--bundle", str(out), "--dtype", "bf16", "--head-dim", "128", "--block-size", "1",
            "--window", "256", "--chip", "sm_90a", "--kernels", "forward", "--autotune"]
    assert swba_compile.main(argv) == 0
    built = {c.options for c in bundle.bundle_configs(out)}
    assert "" in built and "block-n=64" in built and "consumers=2" in built
    # At head dim 128 four stages of 64 KiB K/V tiles do not fit in shared
    # memory beside the queries' tiles, nor do two or three workgroups an SM
    # of one consumer with two.
    assert built == set(tuning.FORWARD_CANDIDATES) - {
        "stages=4", "consumers=1 workgroups-per-sm=2", "consumers=1 workgroups-per-sm=3"}
    assert "left out 3 candidate" in capsys.readouterr().out


def test_dq_stage_candidates_restate_or_change_the_default(isolated):
    """On a narrow band at head dim 64 the dQ kernel's default is one
    consumer, three workgroups an SM, two stages: asking for the dQ
    kernel's stages (three consumers then) or its consumers alone (four
    stages, two workgroups an SM) builds other kernels, each candidate its
    own; asking for both as the default has them restates it."""
    if compiler.find_swba_opt() is None:
        pytest.skip("no swba-opt to compile with")
    names = ("grad-key-stages=2", "grad-key-stages=4", "grad-q-consumers=1")
    assert set(names) <= set(tuning.BACKWARD_CANDIDATES)
    base = compiler.KernelConfig("bf16", 64, 64, 1, 128, 0.125, chip="sm_90a", grad=True)
    image = {o: compiler.load_or_compile(c).image
             for c in tuning.candidate_configs(base)
             for o in [c.options] if o in ("",) + names}
    assert len(set(image.values())) == 4, sorted(image)
    same = dataclasses.replace(base, options="grad-q-consumers=1 grad-key-stages=2")
    assert compiler.load_or_compile(same).image == image[""]


def test_candidates_timed_in_turn_cancel_a_drifting_clock(monkeypatch):
    """A clock that speeds up 3% with every timing (a GPU warming its way up
    to its boost clock) made the candidates timed last look fastest when
    each was timed after the one before; timed in turn, in alternating
    order, equal candidates time the same and the default stays, and one
    truly faster by 10% is still found."""
    calls = []

    def fake_median_ms(fn, reps):
        calls.append(fn)
        return fn() * 0.97 ** len(calls)

    monkeypatch.setattr(tuning, "_median_ms", fake_median_ms)
    for cost, want in (({"": 1.0, "a": 1.0, "b": 1.0, "c": 1.0}, ""),
                       ({"": 1.0, "a": 1.0, "b": 0.9, "c": 1.0}, "b")):
        calls.clear()
        skipped = {}
        times = tuning._candidates_timed(lambda o: (lambda: cost[o]), list(cost), 30,
                                         skipped, image_of=lambda o: o)
        assert not skipped and set(times) == set(cost)
        assert tuning._fastest(times, 0.02) == want, times


def test_candidates_that_restate_one_or_fail_are_skipped(monkeypatch):
    monkeypatch.setattr(tuning, "_median_ms", lambda fn, reps: fn())

    def make(options):
        if options == "missing":
            def fn():
                raise compiler.CompileError("no kernels for 'missing'")
            return fn
        return lambda: 1.0

    skipped = {}
    times = tuning._candidates_timed(make, ["", "same", "missing", "other"], 8, skipped,
                                     image_of=lambda o: "A" if o in ("", "same") else o)
    assert set(times) == {"", "other"}
    assert skipped["same"] == "the same kernels as 'the default'"
    assert skipped["missing"].startswith("no kernels")
