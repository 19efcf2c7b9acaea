"""Kernel bundles and swba-compile without a GPU: the command line and its
configurations, the error naming a missing configuration and the command
that builds it (and that command building it), loading errors, and the
configurations of an exported program. CPU only; the builds need
swba-opt (skipped without it)."""

import dataclasses
import json
import math
import os
import shlex
import sys
import types

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import bundle, compiler  # noqa: E402
from swba import compile as swba_compile  # noqa: E402

pytestmark = pytest.mark.cpu


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty kernel cache and no loaded bundle."""
    monkeypatch.setenv("SWBA_KERNEL_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SWBA_KERNEL_BUNDLE", raising=False)
    monkeypatch.setattr(bundle, "_loaded", [])
    monkeypatch.setattr(bundle, "_env_seen", None)
    return tmp_path


def no_swba_opt(monkeypatch):
    monkeypatch.setattr(compiler, "find_swba_opt", lambda: None)


CONFIG = compiler.KernelConfig("bf16", 64, 64, 100, 3, 0.125, chip="sm_80")


def test_configs_for_matches_the_runtime():
    fwd, bwd = swba_compile.configs_for("f16", 128, 1560, 4, chip="sm_90a",
                                        options="stages=3 grad-fused-dq=true")
    assert fwd == compiler.KernelConfig("f16", 128, 128, 1560, 4, 1 / 128 ** 0.5,
                                        chip="sm_90a", options="stages=3")
    assert bwd == compiler.KernelConfig("f16", 128, 128, 1560, 4, 1 / 128 ** 0.5,
                                        chip="sm_90a", grad=True, options="grad-fused-dq=true")
    (paged,) = swba_compile.configs_for("bf16", 128, 256, 8, kernels="paged",
                                        options="stages=3 grad-fused-dq=true", page_size=16)
    assert paged == compiler.KernelConfig("bf16", 128, 128, 256, 8, 1 / 128 ** 0.5,
                                          chip="sm_90a", paged=True, page_size=16,
                                          options="stages=3")
    (other,) = swba_compile.configs_for("bf16", 128, 256, 8, kernels="paged", chip="sm_80",
                                        page_size=16)
    assert other.page_size == 0  # only sm_90a's paged kernels are per page size
    with pytest.raises(ValueError, match="kernels must be one of"):
        swba_compile.configs_for("f16", 64, 4, 2, kernels="all")
    with pytest.raises(ValueError, match="give --page-size"):
        swba_compile.configs_for("bf16", 128, 256, 8, kernels="paged")
    with pytest.raises(ValueError, match="is for --kernels paged"):
        swba_compile.configs_for("bf16", 128, 256, 8, page_size=16)


def test_compile_command_round_trips():
    """The command an error prints builds exactly the missing configuration."""
    for config in (CONFIG, compiler.KernelConfig("f16", 32, 64, 7, 2, 0.1767766952966369,
                                                 chip="sm_90a", grad=True,
                                                 options="grad-fused-dq=true"),
                   compiler.KernelConfig("bf16", 64, 64, 16, 3, 0.125, chip="sm_90a",
                                         paged=True, page_size=24),
                   compiler.KernelConfig("bf16", 64, 64, 16, 3, 0.125, chip="sm_80",
                                         paged=True),
                   compiler.KernelConfig("bf16", 64, 64, 16, 3, 0.125, chip="sm_90a",
                                         options="decode=true")):
        argv = shlex.split(bundle.compile_command(config, "dir"))
        assert argv[0] == "swba-compile"
        args = swba_compile._parser().parse_args(argv[1:])
        (got,) = swba_compile.configs_for(
            args.dtype, args.head_dim, args.block_size, args.window, args.value_dim,
            args.scale, chip=args.chip, options=args.options, kernels=args.kernels,
            page_size=args.page_size)
        assert got == config and got.key() == config.key()


def test_missing_kernel_names_config_and_command(isolated, monkeypatch):
    no_swba_opt(monkeypatch)
    with pytest.raises(bundle.MissingKernelError) as e:
        compiler.load_or_compile(CONFIG)
    text = str(e.value)
    assert "bf16 head_dim=64 value_dim=64 block_size=100 window=3 scale=0.125 chip=sm_80 " \
           "forward" in text
    assert "swba-compile --bundle swba-kernels --dtype bf16 --head-dim 64 --value-dim 64 " \
           "--block-size 100 --window 3 --scale 0.125 --chip sm_80 --kernels forward" in text
    assert "SWBA_KERNEL_BUNDLE=swba-kernels" in text


def test_not_a_bundle(isolated):
    with pytest.raises(FileNotFoundError, match="is not a kernel bundle: it has no "
                                                "swba-bundle.json"):
        bundle.load_bundle(isolated)
    (isolated / bundle.MANIFEST).write_text(json.dumps({"format": 99, "kernels": []}))
    with pytest.raises(ValueError, match="bundle format 99"):
        bundle.load_bundle(isolated)


def test_cli_errors(isolated, capsys):
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--dtype", "f16"]) == 2
    assert "needs --dtype, --head-dim, --block-size and --window" in capsys.readouterr().err
    assert swba_compile.main(["--bundle", str(isolated / "b")]) == 2
    assert "nothing to build" in capsys.readouterr().err
    rows = isolated / "c.json"
    rows.write_text(json.dumps([{"dtype": "f16", "head_dim": 64, "block_size": 4,
                                 "window": 2, "windows": 3}]))
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--config-file", str(rows)]) == 2
    assert "unknown keys ['windows']" in capsys.readouterr().err
    rows.write_text("not json")
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--config-file", str(rows)]) == 2
    assert f"{rows}: not JSON" in capsys.readouterr().err
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--exported", str(rows)]) == 2
    assert "not a program saved by torch.export.save" in capsys.readouterr().err
    one = ["--bundle", str(isolated / "b"), "--dtype", "bf16", "--block-size", "4",
           "--window", "2"]
    for bad, words in ((["--head-dim", "-5"], "head dims must be >= 0"),
                       (["--head-dim", "64", "--scale", "-1"], "positive and finite in float32"),
                       (["--head-dim", "64", "--scale", "1e300"], "finite in float32"),
                       (["--head-dim", "64", "--scale", "nan"], "finite in float32")):
        assert swba_compile.main(one + bad) == 2, bad
        assert words in capsys.readouterr().err, bad
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--dtype", "bf16",
                              "--head-dim", "64", "--block-size", str(2**64),
                              "--window", "2"]) == 2
    assert "at most 2**63 - 1" in capsys.readouterr().err


def test_shard_lengths(isolated, monkeypatch, capsys):
    """--shard-lengths builds what swba.distributed.attention's pieces run
    (swba.halo.kernel_configs), those of --kernels, with --options split
    between the forward and the backward as at run time."""
    from swba import halo

    built = []
    monkeypatch.setattr(bundle, "build_bundle",
                        lambda configs, path, progress: built.extend(configs))
    monkeypatch.setattr(bundle, "bundle_configs", lambda path: built)
    one = ["--bundle", str(isolated / "b"), "--dtype", "bf16", "--head-dim", "128",
           "--block-size", "128", "--window", "3"]
    assert swba_compile.main(one + ["--shard-lengths", "700,333", "--heads", "8/2",
                                    "--options", "stages=3 grad-stages=3"]) == 0
    want = halo.kernel_configs([700, 333], 8, 2, 128, 128, 3, "bf16",
                               options="stages=3 grad-stages=3")
    assert built == want
    assert {c.options for c in built} == {
        "stages=3", "stages=3 split-kv=1", "stages=3 decode=true", "grad-stages=3"}
    built.clear()
    assert swba_compile.main(one + ["--shard-lengths", "700,333", "--heads", "8/2",
                                    "--kernels", "forward"]) == 0
    assert built and not any(c.grad for c in built)
    capsys.readouterr()
    assert swba_compile.main(one + ["--shard-lengths", "700,333"]) == 2
    assert "--shard-lengths needs --heads" in capsys.readouterr().err
    assert swba_compile.main(["--bundle", str(isolated / "b"), "--shard-lengths", "4,4",
                              "--heads", "2"]) == 2
    assert "needs one configuration's --dtype" in capsys.readouterr().err
    assert swba_compile.main(one + ["--shard-lengths", "4,4", "--heads", "2",
                                    "--kernels", "paged"]) == 2
    assert "no --page-size" in capsys.readouterr().err
    for bad in (["--shard-lengths", "4,0", "--heads", "2"],
                ["--shard-lengths", "4,x", "--heads", "2"],
                ["--shard-lengths", "4", "--heads", "6/4"],
                ["--shard-lengths", "4", "--heads", "8/4/2"]):
        with pytest.raises(SystemExit):
            swba_compile.main(one + bad)
        assert "expected" in capsys.readouterr().err


def test_config_file(isolated):
    rows = isolated / "c.json"
    rows.write_text(json.dumps([
        {"dtype": "f16", "head_dim": 64, "block_size": 4, "window": 2},
        {"dtype": "bf16", "head_dim": 128, "value_dim": 64, "block_size": 1, "window": 9,
         "scale": 0.5, "kernels": "forward", "chip": "sm_80"}]))
    configs = swba_compile.configs_from_json(rows, {"chip": "sm_90a", "options": "",
                                                    "kernels": "both"})
    assert [(c.dtype, c.grad, c.chip) for c in configs] == [
        ("f16", False, "sm_90a"), ("f16", True, "sm_90a"), ("bf16", False, "sm_80")]
    assert configs[2].value_dim == 64 and configs[2].scale == 0.5


def test_configs_from_exported_program(isolated):
    torch = pytest.importorskip("torch")
    import swba

    class Model(torch.nn.Module):
        def forward(self, q, k, v):
            return swba.attention(q, k, v, 256, 4) + swba.attention(q, k, v, 1, 64, scale=0.5)

    with torch.device("meta"):
        q = torch.empty(1, 8, 512, 128, dtype=torch.bfloat16)
        kv = torch.empty(1, 2, 512, 128, dtype=torch.bfloat16)
    path = isolated / "model.pt2"
    torch.export.save(torch.export.export(Model(), (q, kv, kv)), str(path))
    configs = swba_compile.configs_from_exported(
        path, {"chip": "sm_90a", "options": "", "kernels": "forward"})
    assert configs == [
        compiler.KernelConfig("bf16", 128, 128, 256, 4, 1 / 128 ** 0.5, chip="sm_90a"),
        compiler.KernelConfig("bf16", 128, 128, 1, 64, 0.5, chip="sm_90a")]


def test_build_load_and_missing(isolated, monkeypatch, capsys):
    """swba-compile builds a bundle; without swba-opt the runtime finds its
    kernels there (and nowhere else); a configuration it lacks raises an
    error whose command, run, adds it."""
    if compiler.find_swba_opt() is None:
        pytest.skip("no swba-opt to compile with")
    out = isolated / "kernels"
    argv = ["--bundle", str(out), "--dtype", "bf16", "--head-dim", "64", "--block-size", "100",
            "--window", "3", "--scale", "0.125", "--chip", "sm_80", "--kernels", "forward"]
    assert swba_compile.main(argv) == 0
    printed = capsys.readouterr().out
    assert "[1/1] bf16 head_dim=64 value_dim=64 block_size=100 window=3" in printed
    assert f"run with SWBA_KERNEL_BUNDLE={out}" in printed
    assert bundle.bundle_configs(out) == [CONFIG]
    built = compiler.load_or_compile(CONFIG)  # (from the cache of this process' tool)

    no_swba_opt(monkeypatch)
    monkeypatch.setenv("SWBA_KERNEL_BUNDLE", str(out))
    shipped = compiler.load_or_compile(CONFIG)
    assert shipped.image == built.image and shipped.launches == built.launches
    other = compiler.KernelConfig("bf16", 64, 64, 100, 4, 0.125, chip="sm_80")
    with pytest.raises(bundle.MissingKernelError) as e:
        compiler.load_or_compile(other)
    command = [line.strip() for line in str(e.value).splitlines()
               if line.strip().startswith("swba-compile ")][0]
    assert f"--bundle {out} " in command and "--window 4" in command
    monkeypatch.undo()
    monkeypatch.setenv("SWBA_KERNEL_DIR", str(isolated / "cache"))
    assert swba_compile.main(shlex.split(command)[1:]) == 0
    no_swba_opt(monkeypatch)
    monkeypatch.setattr(bundle, "_loaded", [])
    monkeypatch.setattr(bundle, "_env_seen", None)
    assert set(bundle.load_bundle(out)) == {CONFIG, other}
    assert compiler.load_or_compile(other).launches


def test_bundle_holds_the_reproducible_backward(isolated, monkeypatch, capsys):
    """A backward whose dq is not bitwise reproducible (the fused one, the
    default on frames at head dim 128) brings the one that is into the
    bundle, which the runtime runs under torch.use_deterministic_algorithms
    (compiler.reproducible_config) without swba-opt."""
    if compiler.find_swba_opt() is None:
        pytest.skip("no swba-opt to compile with")
    out = isolated / "kernels"
    argv = ["--bundle", str(out), "--dtype", "bf16", "--head-dim", "128", "--block-size",
            "256", "--window", "2", "--kernels", "backward"]
    assert swba_compile.main(argv) == 0
    default = compiler.KernelConfig("bf16", 128, 128, 256, 2, 1 / math.sqrt(128), chip="sm_90a",
                                    grad=True)
    split = compiler.KernelConfig("bf16", 128, 128, 256, 2, 1 / math.sqrt(128), chip="sm_90a",
                                  grad=True, options="grad-fused-dq=false")
    assert set(bundle.bundle_configs(out)) == {default, split}
    no_swba_opt(monkeypatch)
    monkeypatch.setenv("SWBA_KERNEL_BUNDLE", str(out))
    assert not compiler.load_or_compile(default).reproducible
    assert compiler.reproducible_config(default) == split
    assert compiler.load_or_compile(split).reproducible


def test_bundle_reports_a_reproducible_backward_that_fails(isolated, monkeypatch):
    """Where the reproducible partner of a backward does not compile, the
    build goes on, keeps the backward itself and names the failure: with
    grad-fused-dq=true asked for, the lowering's default is that partner
    (and is tried once); without it, the split backward is, a configuration
    of its own."""
    fused = compiler.KernelConfig("bf16", 128, 128, 256, 2, 0.125, chip="sm_90a", grad=True,
                                  options="grad-fused-dq=true")
    default = dataclasses.replace(fused, options="")
    split = dataclasses.replace(fused, options="grad-fused-dq=false")
    forward = compiler.KernelConfig("bf16", 64, 64, 100, 3, 0.125, chip="sm_90a")
    compiled, failing, unreproducible = [], {default, split}, {fused}

    def fake_load(config):
        compiled.append(config)
        if config in failing:
            raise compiler.CompileError(f"error: no room for {config.options!r}")
        return types.SimpleNamespace(reproducible=config not in unreproducible,
                                     kind="cubin", launches=[], image=b"")
    monkeypatch.setattr(compiler, "find_swba_opt", lambda: "swba-opt")
    monkeypatch.setattr(compiler, "load_or_compile", fake_load)
    out = isolated / "kernels"
    with pytest.raises(RuntimeError) as e:
        bundle.build_bundle([fused, forward], out, progress=None)
    assert str(e.value).splitlines() == [
        "1 of 2 configuration(s) failed:",
        f"  {bundle.describe(fused)}: its reproducible backward: error: no room for ''"]
    assert compiled == [fused, default, forward]
    assert set(bundle.bundle_configs(out)) == {fused, forward}

    # The fused backward as the default: the split one is added, and fails
    # as a configuration of its own.
    failing, unreproducible = {split}, {default}
    compiled.clear()
    with pytest.raises(RuntimeError) as e:
        bundle.build_bundle([default], out, progress=None)
    assert str(e.value).splitlines() == [
        "1 of 2 configuration(s) failed:",
        f"  {bundle.describe(split)}: error: no room for 'grad-fused-dq=false'"]
    assert compiled == [default, default, split]
