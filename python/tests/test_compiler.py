"""The Python compile path without a GPU: KernelConfig -> swba-opt -> PTX
(and a cubin when ptxas is there), the kernel names and rows the launcher
reads, the on-disk cache, and the MLIR string unescaping. Runs under pytest
or as a script (`SWBA_OPT` names the swba-opt to use)."""

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


def test_forward_and_backward_compile_and_cache():
    if compiler.find_swba_opt() is None:  # e.g. a GPU machine without MLIR
        import pytest
        pytest.skip("no swba-opt to compile with")
    saved = {k: os.environ.get(k) for k in ("SWBA_KERNEL_DIR", "SWBA_OPT")}
    try:
        _compile_and_cache()
    finally:  # other tests in the same process use the real cache and tool
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _compile_and_cache():
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SWBA_KERNEL_DIR"] = tmp
        fwd = compiler.KernelConfig("bf16", 64, 64, 100, 3, 0.125)
        k = compiler.load_or_compile(fwd)
        assert k.rows == {"swba_attention_fwd_m128": 128}, k.rows
        assert k.entry("swba_attention_fwd") == ("swba_attention_fwd_m128", 128)
        ptx = compiler.compile_ptx(fwd)
        assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx
        bwd = compiler.KernelConfig("f16", 128, 128, 1560, 2, 0.088, grad=True)
        k = compiler.load_or_compile(bwd)
        assert k.rows == {"swba_attention_bwd_dq_m64": 64,
                          "swba_attention_bwd_dkdv_n64": 64}, k.rows
        # A second load comes from the cache, without swba-opt.
        os.environ["SWBA_OPT"] = "/nonexistent/swba-opt"
        again = compiler.load_or_compile(bwd)
        assert again.image == k.image and again.rows == k.rows


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    import _runner
    _runner.run(globals())
