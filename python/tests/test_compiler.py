"""The Python compile path without a GPU: KernelConfig -> swba-opt -> PTX
(and a cubin when ptxas is there), the kernel names and the launch facts the
launcher reads from them, the on-disk cache, and the MLIR string unescaping.
Runs under pytest or as a script (`SWBA_OPT` names the swba-opt to use)."""

import dataclasses
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import compiler  # noqa: E402


def test_unescape():
    assert compiler._unescape_mlir_string(r"a\0Ab\09\22q\22\\") == 'a\nb\t"q"\\'


def test_config_validation():
    for bad in (dict(head_dim=72), dict(dtype="f32"), dict(window=0)):
        args = dict(dtype="f16", head_dim=64, value_dim=64, block_size=4,
                    window=2, scale=0.125) | bad
        try:
            compiler.KernelConfig(**args)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_launch_facts_from_kernel_names():
    Launch = compiler.Launch
    assert compiler.launch_of("swba_attention_fwd_wgmma_t384_s82944_n128_m128") == \
        Launch(rows=128, threads=384, smem=82944, box_n=128)
    assert compiler.launch_of("swba_attention_fwd_m64") == Launch(rows=64)
    assert compiler.launch_of("swba_attention_bwd_dkdv_n64") == \
        Launch(rows=64, threads=128, smem=0, box_n=None)
    ptx = (".visible .entry swba_attention_fwd_wgmma_t384_s82944_n64_m128(\n"
           "\t.param .u64 swba_attention_fwd_wgmma_t384_s82944_n64_m128_param_0,\n"
           ".visible .entry swba_attention_bwd_dq_m64(\n")
    assert compiler.launches_in(ptx) == {
        "swba_attention_fwd_wgmma_t384_s82944_n64_m128": Launch(128, 384, 82944, 64),
        "swba_attention_bwd_dq_m64": Launch(64)}
    for bad in ("swba_attention_fwd", "swba_attention_fwd_wgmma_t384_m128"):
        try:
            compiler.launch_of(bad)
        except ValueError:
            continue
        raise AssertionError(f"parsed {bad!r}")


def test_chip_and_cache_format_in_key():
    a = compiler.KernelConfig("f16", 64, 64, 64, 2, 0.125)
    b = compiler.KernelConfig("f16", 64, 64, 64, 2, 0.125, chip="sm_90a")
    assert a.key() != b.key()
    saved, key = compiler._CACHE_FORMAT, a.key()
    try:
        compiler._CACHE_FORMAT += 1
        assert a.key() != key, "an older cache would be misread"
    finally:
        compiler._CACHE_FORMAT = saved


def _with_tool_and_cache(run):
    """Runs `run` with swba-opt, in a fresh kernel cache; skipped where there
    is no swba-opt (e.g. a GPU machine without MLIR)."""
    if compiler.find_swba_opt() is None:
        import pytest
        pytest.skip("no swba-opt to compile with")
    saved = {k: os.environ.get(k) for k in ("SWBA_KERNEL_DIR", "SWBA_OPT")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["SWBA_KERNEL_DIR"] = tmp
            run()
    finally:  # other tests in the same process use the real cache and tool
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_forward_and_backward_compile_and_cache():
    _with_tool_and_cache(_compile_and_cache)


def _compile_and_cache():
    fwd = compiler.KernelConfig("bf16", 64, 64, 100, 3, 0.125)
    k = compiler.load_or_compile(fwd)
    assert k.launches == {"swba_attention_fwd_m128": compiler.Launch(128)}, k.launches
    assert k.entry("swba_attention_fwd") == ("swba_attention_fwd_m128", compiler.Launch(128))
    ptx = compiler.compile_ptx(fwd)
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx
    bwd = compiler.KernelConfig("f16", 128, 128, 1560, 2, 0.088, grad=True)
    k = compiler.load_or_compile(bwd)
    assert k.launches == {"swba_attention_bwd_delta_m32": compiler.Launch(32),
                          "swba_attention_bwd_dq_m64": compiler.Launch(64),
                          "swba_attention_bwd_dkdv_n64": compiler.Launch(64)}, k.launches
    # A second load comes from the cache, without swba-opt.
    tool = compiler.find_swba_opt()
    os.environ["SWBA_OPT"] = "/nonexistent/swba-opt"
    again = compiler.load_or_compile(bwd)
    assert again.image == k.image and again.launches == k.launches
    # With a swba-opt at hand, an entry another build of it made is
    # compiled afresh (here: one whose kernels are gone).
    os.environ["SWBA_OPT"] = tool
    meta = compiler.cache_dir() / (bwd.key() + ".json")
    info = json.loads(meta.read_text())
    assert info["tool"] == compiler.tool_digest() is not None
    meta.write_text(json.dumps(dict(info, tool="another build", kernels={})))
    fresh = compiler.load_or_compile(bwd)
    assert fresh.launches == k.launches
    assert json.loads(meta.read_text())["tool"] == compiler.tool_digest()


def test_hopper_forward_compiles_to_wgmma():
    _with_tool_and_cache(_compile_hopper)


def _compile_hopper():
    for dtype, d in (("f16", 64), ("bf16", 128)):
        config = compiler.KernelConfig(dtype, d, d, 256, 4, 0.125, chip="sm_90a")
        k = compiler.load_or_compile(config)
        (name, launch), = k.launches.items()
        assert name.startswith("swba_attention_fwd_wgmma_"), name
        assert launch.box_n and launch.threads > 128 and launch.smem > 48 * 1024, launch
        ptx = compiler.compile_ptx(config)
        assert "wgmma.mma_async" in ptx and "cp.async.bulk.tensor" in ptx
        # Other head dims keep the mma.sync kernels.
        k = compiler.load_or_compile(compiler.KernelConfig(
            dtype, 32, 32, 256, 4, 0.125, chip="sm_90a"))
        assert list(k.launches) == ["swba_attention_fwd_m128"], k.launches
        # The backward: a delta kernel (32 rows a workgroup), then TMA +
        # wgmma dK/dV (128 keys a workgroup; 128-row query boxes at head dim
        # 64, 64-row ones at 128) and dQ (128 query rows, 128-key boxes)
        # kernels.
        k = compiler.load_or_compile(dataclasses.replace(config, grad=True))
        names = sorted(k.launches)
        assert len(names) == 3, names
        assert names[0] == "swba_attention_bwd_delta_m32", names
        assert k.launches[names[0]] == compiler.Launch(32), k.launches
        assert names[1].startswith("swba_attention_bwd_dkdv_wgmma_"), names
        assert names[2].startswith("swba_attention_bwd_dq_wgmma_"), names
        assert (k.launches[names[1]].box_n, k.launches[names[1]].rows) == (
            128, 128 if d == 64 else 64)
        assert (k.launches[names[2]].box_n, k.launches[names[2]].rows) == (128, 128)
        # grad-fused-dq=true: the delta kernel, a dK/dV kernel that adds dQ
        # up with TMA reduce-adds, and the dQ conversion (32 rows).
        fused = dataclasses.replace(config, grad=True, options="grad-fused-dq=true")
        k = compiler.load_or_compile(fused)
        names = sorted(k.launches)
        assert len(names) == 3, names
        assert names[0] == "swba_attention_bwd_delta_m32", names
        assert names[1].startswith("swba_attention_bwd_dkdvdq_wgmma_"), names
        assert (k.launches[names[1]].box_n, k.launches[names[1]].rows) == (
            128, 128 if d == 64 else 64)
        assert names[2] == "swba_attention_bwd_dqconvert_m32", names
        assert k.launches[names[2]] == compiler.Launch(32), k.launches
        assert "cp.reduce.async.bulk.tensor" in compiler.compile_ptx(fused)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    import _runner
    _runner.run(globals())
