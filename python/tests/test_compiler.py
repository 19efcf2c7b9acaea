"""The Python compile path without a GPU: KernelConfig -> swba-opt -> PTX
(and a cubin when ptxas is there) and the launch manifest the runtime
launches from, the on-disk cache, the MLIR string decoding, and the errors
of a malformed manifest or a failed compile.
Runs under pytest or as a script (`SWBA_OPT` names the swba-opt to use)."""

import copy
import dataclasses
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import compiler  # noqa: E402


def test_mlir_string_decoding():
    text = 'x "a\\0Ab\\09\\22q\\22\\\\" y'
    assert compiler._mlir_string_at(text, 2) == 'a\nb\t"q"\\'
    ir = ('gpu.binary @other [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "no">]\n'
          'gpu.binary @mine  [#gpu.object<#nvvm.target<chip = "sm_90">, '
          'assembly = "\\0A.visible .entry k(\\0A">]\n')
    assert compiler.binary_assembly(ir, "mine") == "\n.visible .entry k(\n"
    for module in ("absent", "oth"):
        try:
            compiler.binary_assembly(ir, module)
        except compiler.CompileError as e:
            assert module in str(e)
            continue
        raise AssertionError(f"found a gpu.binary @{module}")


def test_config_validation():
    # Head dims past 128 only on sm_90a, multiples of 16 up to 256 there,
    # and both at least 64 when one is past 128.
    for bad in (dict(head_dim=72), dict(dtype="f32"), dict(window=0),
                dict(head_dim=256, value_dim=256),
                dict(head_dim=168, value_dim=168, chip="sm_90a"),
                dict(head_dim=272, value_dim=272, chip="sm_90a"),
                dict(head_dim=256, value_dim=48, chip="sm_90a")):
        args = dict(dtype="f16", head_dim=64, value_dim=64, block_size=4,
                    window=2, scale=0.125) | bad
        try:
            compiler.KernelConfig(**args)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
    for d, dv in ((256, 256), (192, 192), (256, 128), (160, 160), (96, 240)):
        compiler.KernelConfig("bf16", d, dv, 4, 2, 0.0625, chip="sm_90a")


def _size(tensor, dim):
    return {"tensor": tensor, "dim": dim}


def _memref(tensor, rank=4, element_type="bf16"):
    return {"tensor": tensor, "kind": "memref", "rank": rank, "element_type": element_type}


_MAP = {"tensor": "k", "kind": "tensor_map", "element_type": "bf16",
        "view": [[0, 1], [2], [3]], "box": [1, 128, 64], "swizzle": "swizzle_128b",
        "l2_promotion": "l2promo_256b", "oob_fill": "zero", "interleave": "none"}

# A manifest as --swba-write-launch-manifest writes it (kernels out of order
# on purpose: the runtime sorts them by `order`).
_MANIFEST = {"format": 1, "modules": [{
    "name": "swba_attention_grad_kernels",
    "buffers": [{"name": "delta", "element_type": "f32", "zero": False,
                 "shape": [_size("q", 0), _size("q", 1), _size("q", 2)]},
                {"name": "acc", "element_type": "f32", "zero": True,
                 "shape": [_size("q", 0), 64]}],
    "kernels": [
        {"name": "swba_bwd_dkdv", "order": 1, "stream": 1, "block": [384, 1, 1],
         "grid": [{"size": _size("k", 1), "per": 1}, {"size": _size("k", 2), "per": 128},
                  {"size": _size("k", 0), "per": 1}],
         "shared_memory": 133120, "max_registers": 168,
         "params": [_memref("q"), _memref("k"), _memref("delta", 3, "f32"), _MAP]},
        {"name": "swba_bwd_delta", "order": 0, "stream": 0, "block": [128, 1, 1],
         "grid": [{"size": _size("q", 1), "per": 1}, {"size": _size("q", 2), "per": 32},
                  {"size": _size("q", 0), "per": 1}],
         "shared_memory": 0,
         "params": [_memref("dout"), _memref("out"), _memref("delta", 3, "f32")]}]}]}


def test_manifest_read():
    module, launches, buffers, scalars, reproducible = compiler.read_manifest(
        json.dumps(_MANIFEST))
    assert scalars == () and reproducible  # (absent: true)
    assert module == "swba_attention_grad_kernels"
    assert [(k.name, k.order, k.stream) for k in launches] == [
        ("swba_bwd_delta", 0, 0), ("swba_bwd_dkdv", 1, 1)]
    dkdv = launches[1]
    shapes = {"q": (2, 8, 1000, 128), "k": (2, 4, 1100, 128)}
    assert dkdv.grid_for(shapes) == (4, 9, 2)  # ceil(1100 / 128)
    assert launches[0].grid_for(shapes) == (8, 32, 2)  # ceil(1000 / 32)
    assert (dkdv.block, dkdv.shared_memory, dkdv.max_registers) == ((384, 1, 1), 133120, 168)
    assert launches[0].max_registers is None
    assert [p.tensor for p in dkdv.params] == ["q", "k", "delta", "k"]
    assert dkdv.params[2].rank == 3 and dkdv.params[2].map is None
    spec = dkdv.params[3].map
    assert (spec.view, spec.box, spec.swizzle, spec.element_type) == (
        ((0, 1), (2,), (3,)), (1, 128, 64), "swizzle_128b", "bf16")
    assert buffers[0].shape_for(shapes) == (2, 8, 1000) and not buffers[0].zero
    assert buffers[1].shape_for(shapes) == (2, 64) and buffers[1].zero


def test_grid_of_several_chunks_a_workgroup():
    """A grid dim whose workgroups may run up to `most` chunks: the count
    with the fewest waves of workgroups times a workgroup's time (chunks
    and start), from the grid at one chunk a workgroup; SWBA_WORKGROUP_CHUNKS
    forces one."""
    manifest = copy.deepcopy(_MANIFEST)
    manifest["modules"][0]["kernels"][0]["grid"][1].update(
        per=64, most=8, per_sm=2, overhead=30)
    dkdv = compiler.read_manifest(json.dumps(manifest))[1][1]
    assert dkdv.grid[1] == compiler.GridDim(compiler.Size("k", 2), 64, 8, 2, 30), dkdv.grid
    os.environ.pop("SWBA_WORKGROUP_CHUNKS", None)
    # 64 kv heads x 128 key tiles on 264 slots: 8 tiles in 4 waves (3320)
    # beat 4 in 8 (3440), 2 in 16 (3680) and one in 32 (4160).
    assert dkdv.grid_for({"k": (1, 64, 8192, 64)}, 132) == (64, 16, 1)
    # 8 x 64: two tiles, 256 workgroups in one wave (230), against one in
    # two waves (260) or three in one (330).
    assert dkdv.grid_for({"k": (1, 8, 4096, 64)}, 132) == (8, 32, 1)
    # 16 x 128 on 32 SMs: 8 tiles in 4 waves.
    assert dkdv.grid_for({"k": (1, 16, 8192, 64)}, 32) == (16, 16, 1)
    # A single head of 64 tiles: one wave at any count, so one tile.
    assert dkdv.grid_for({"k": (1, 1, 4096, 64)}, 132) == (1, 64, 1)
    # Of equal costs the most chunks: without overhead, 8 x 64 are one tile
    # in two waves or two tiles in one (200 each).
    even = compiler.Launch(dkdv.name, dkdv.order, dkdv.stream,
                           (dkdv.grid[0], dkdv.grid[1]._replace(overhead=0), dkdv.grid[2]),
                           dkdv.block, dkdv.shared_memory, dkdv.params)
    assert even.grid_for({"k": (1, 8, 4096, 64)}, 132) == (8, 32, 1)
    try:
        for forced, extent in (("1", 128), ("5", 26), ("99", 16)):
            os.environ["SWBA_WORKGROUP_CHUNKS"] = forced
            assert dkdv.grid_for({"k": (1, 64, 8192, 64)}, 132) == (64, extent, 1), forced
        os.environ["SWBA_WORKGROUP_CHUNKS"] = "0"
        try:
            dkdv.grid_for({"k": (1, 64, 8192, 64)}, 132)
            raise AssertionError("took SWBA_WORKGROUP_CHUNKS=0")
        except ValueError as e:
            assert "SWBA_WORKGROUP_CHUNKS must be a positive integer, got '0'" in str(e)
    finally:
        os.environ.pop("SWBA_WORKGROUP_CHUNKS", None)
    # Dims of one chunk a workgroup ignore it.
    assert compiler.read_manifest(json.dumps(_MANIFEST))[1][1].grid_for(
        {"k": (1, 64, 8192, 64)}, 132) == (64, 64, 1)


def test_reproducible_config():
    """What runs under torch.use_deterministic_algorithms: the
    configuration itself where its kernels are reproducible or
    grad-fused-dq=false is asked for; with grad-fused-dq=true asked for, the
    default where that is reproducible (the mma.sync chips, head dim 64);
    else grad-fused-dq=false, keeping the other options."""
    from types import SimpleNamespace

    fused = set()  # the options whose kernels are not reproducible
    loaded = []

    def load(config):
        loaded.append(config.options)
        return SimpleNamespace(reproducible=config.options not in fused)

    config = compiler.KernelConfig("bf16", 128, 128, 256, 2, 0.1, chip="sm_90a", grad=True)
    with_options = lambda o: dataclasses.replace(config, options=o)  # noqa: E731
    assert compiler.reproducible_config(config, load) == config and loaded == [""]
    assert compiler.reproducible_config(with_options("grad-fused-dq=true"), load) == config
    loaded.clear()
    assert compiler.reproducible_config(with_options("grad-stages=3 grad-fused-dq=false"),
                                        load).options == "grad-stages=3 grad-fused-dq=false"
    assert loaded == []  # (asked for: nothing to load)
    fused.update({"", "grad-stages=3"})
    assert compiler.reproducible_config(config, load).options == "grad-fused-dq=false"
    assert compiler.reproducible_config(with_options("grad-fused-dq=true grad-stages=3"),
                                        load).options == "grad-stages=3 grad-fused-dq=false"


def test_split_manifest_read():
    """The split-KV forward's manifest: a launch scalar `splits` in the
    grid and in the partial buffers' shapes (products of sizes), and the
    combine kernel's out and lse collapsed into rows."""
    rows = {"product": [_size("q", 0), _size("q", 1), _size("q", 2)]}
    splits = {"scalar": "splits"}
    manifest = {"format": 1, "modules": [{
        "name": "swba_attention_kernels", "scalars": ["splits"],
        "buffers": [{"name": "split_lse", "element_type": "f32", "shape": [splits, rows],
                     "zero": False}],
        "kernels": [{
            "name": "swba_split_combine", "order": 1, "stream": 0, "block": [128, 1, 1],
            "grid": [{"size": _size("split_lse", 1), "per": 4},
                     {"size": {"product": []}, "per": 1},
                     {"size": {"product": [_size("q", 0), splits]}, "per": 1}],
            "shared_memory": 0,
            "params": [dict(_memref("out"), rank=2, collapse=[[0, 1, 2], [3]])]}]}]}
    _, launches, buffers, scalars, _ = compiler.read_manifest(json.dumps(manifest))
    assert scalars == ("splits",)
    shapes = {"q": (2, 8, 100, 128), "splits": 3}
    shapes["split_lse"] = buffers[0].shape_for(shapes)
    assert shapes["split_lse"] == (3, 1600)
    assert launches[0].grid_for(shapes) == (400, 1, 6)
    assert launches[0].params[0].collapse == ((0, 1, 2), (3,))


def _broken(edit):
    manifest = copy.deepcopy(_MANIFEST)
    edit(manifest, manifest["modules"][0]["kernels"][0])
    return json.dumps(manifest)


def test_malformed_manifest_is_reported():
    cases = {
        "not JSON": "{",
        "format": _broken(lambda m, k: m.update(format=2)),
        "2 kernel modules": _broken(lambda m, k: m["modules"].append(m["modules"][0])),
        "no 'grid'": _broken(lambda m, k: k.pop("grid")),
        "grid and block need 3 dims": _broken(lambda m, k: k.update(block=[128])),
        "per 0": _broken(lambda m, k: k["grid"][1].update(per=0)),
        "most, per_sm, overhead [0, 1, 0]": _broken(lambda m, k: k["grid"][1].update(most=0)),
        "most, per_sm, overhead [2, '4', 0]": _broken(
            lambda m, k: k["grid"][1].update(most=2, per_sm="4")),
        "'stream' is '1'": _broken(lambda m, k: k.update(stream="1")),
        "stream 2": _broken(lambda m, k: k.update(stream=2)),
        "unknown parameter kind 'texture'": _broken(
            lambda m, k: k["params"][0].update(kind="texture")),
        "swizzle 'swizzle_256b'": _broken(
            lambda m, k: k["params"][3].update(swizzle="swizzle_256b")),
        "box (1, 128)": _broken(lambda m, k: k["params"][3].update(box=[1, 128])),
        "no 'name'": _broken(lambda m, k: m["modules"][0]["buffers"][0].pop("name")),
        "no kernel": _broken(lambda m, k: m["modules"][0].update(kernels=[])),
        "scalars 'splits'": _broken(lambda m, k: m["modules"][0].update(scalars="splits")),
        "collapse [[0, 1]] for rank 2": _broken(
            lambda m, k: k["params"][0].update(rank=2, collapse=[[0, 1]])),
        "'only_when' is 'splits'": _broken(lambda m, k: k.update(only_when="splits")),
        "only_when has no 'above'": _broken(
            lambda m, k: k.update(only_when={"scalar": "splits"})),
    }
    for expected, text in cases.items():
        try:
            compiler.read_manifest(text)
        except compiler.ManifestError as e:
            assert expected in str(e) and str(e).startswith("launch manifest:"), (expected, e)
            continue
        raise AssertionError(f"accepted a manifest with {expected}")


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


def _summary(kernel):
    """(name, rows per workgroup along grid y, threads, order, stream) of
    each launch."""
    return [(k.name, k.grid[1][1], k.block[0], k.order, k.stream) for k in kernel.launches]


def test_forward_and_backward_compile_and_cache():
    _with_tool_and_cache(_compile_and_cache)


def _compile_and_cache():
    fwd = compiler.KernelConfig("bf16", 64, 64, 100, 3, 0.125)
    k = compiler.load_or_compile(fwd)
    assert _summary(k) == [("swba_fwd", 128, 128, 0, 0)], _summary(k)
    assert k.buffers == () and k.launches[0].shared_memory == 0
    assert [p.tensor for p in k.launches[0].params] == ["q", "k", "v", "out", "lse"]
    ptx, _ = compiler.compile_ptx(fwd)
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in ptx
    bwd = compiler.KernelConfig("f16", 128, 128, 1560, 2, 0.088, grad=True)
    k = compiler.load_or_compile(bwd)
    assert _summary(k) == [("swba_bwd_delta", 32, 128, 0, 0),
                           ("swba_bwd_dkdv", 64, 128, 1, 1),
                           ("swba_bwd_dq", 64, 128, 2, 0)], _summary(k)
    assert [b.name for b in k.buffers] == ["delta"]
    # The cache holds the image and its metadata, nothing else (no
    # temporary PTX or cubin left behind).
    files = sorted(p.name for p in compiler.cache_dir().iterdir())
    assert files == sorted(f"{c.key()}.{ext}" for c in (fwd, bwd)
                           for ext in ("json", k.kind)), files
    # A second load comes from the cache, without swba-opt.
    tool = compiler.find_swba_opt()
    os.environ["SWBA_OPT"] = "/nonexistent/swba-opt"
    again = compiler.load_or_compile(bwd)
    assert again.image == k.image and again.launches == k.launches
    # With a swba-opt at hand, an entry another build of it made is
    # compiled afresh (here: one whose manifest is gone).
    os.environ["SWBA_OPT"] = tool
    meta = compiler.cache_dir() / (bwd.key() + ".json")
    info = json.loads(meta.read_text())
    assert info["tool"] == compiler.tool_digest() is not None
    meta.write_text(json.dumps(dict(info, tool="another build", manifest="{}")))
    fresh = compiler.load_or_compile(bwd)
    assert fresh.launches == k.launches
    assert json.loads(meta.read_text())["tool"] == compiler.tool_digest()
    # A cached manifest this runtime cannot follow is an error, not a guess.
    meta.write_text(json.dumps(dict(info, manifest=json.dumps({"format": 0}))))
    try:
        compiler.load_or_compile(bwd)
    except compiler.ManifestError as e:
        assert "format 0" in str(e), e
    else:
        raise AssertionError("loaded a manifest of format 0")


def test_decode_kernels_compile():
    _with_tool_and_cache(_compile_decode)


def _compile_decode():
    """swba.paged_attention, and swba.attention with decode=true: the decode
    kernel over (splits, Hkv, B) and the split-KV forward's combine kernel,
    the split count a launch scalar, the partials its launch buffers over
    the rows B x Hq x Nq."""
    paged = compiler.KernelConfig("f16", 64, 64, 16, 3, 0.125, paged=True)
    assert "swba.paged_attention ins(%q, %kc, %vc, %pt, %sl" in paged.mlir()
    dense = compiler.KernelConfig("bf16", 128, 128, 256, 8, 0.088, options="decode=true")
    splits = compiler.Scalar("splits")
    rows = compiler.Product((compiler.Size("q", 0), compiler.Size("q", 1),
                             compiler.Size("q", 2)))
    for config, keys in ((paged, compiler.Size("k_cache", 2)), (dense, compiler.Size("k", 1))):
        k = compiler.load_or_compile(config)
        assert k.scalars == ("splits",), k.scalars
        assert [launch.name for launch in k.launches] == ["swba_decode", "swba_split_combine"]
        # One split writes out itself: the combine is launched for more.
        assert [launch.only_when for launch in k.launches] == [None, ("splits", 1)]
        assert [p.tensor for p in k.launches[0].params if p.tensor in ("out", "lse")] == \
            ["out", "lse"]
        decode = k.launches[0]
        assert [dim.size for dim in decode.grid] == [splits, keys, compiler.Size("q", 0)], \
            decode.grid
        assert [b.name for b in k.buffers] == ["split_out", "split_lse"]
        assert k.buffers[0].shape == (splits, rows, config.value_dim), k.buffers[0].shape
        assert k.buffers[1].shape == (splits, rows), k.buffers[1].shape
    assert [p.tensor for p in k.launches[1].params] == ["split_out", "split_lse", "out", "lse"]
    # sm_90a, pages of 16: TMA maps of the caches seen as [pages * 16][Hkv][D]
    # in boxes of 16 x 1 x 64; pages of 256 in boxes of a whole 64-key tile
    # (which the runtime gives one workgroup an SM); pages of 24 take bulk
    # row copies (no maps).
    for page_size, boxes in ((16, [(16, 1, 64)] * 2), (256, [(64, 1, 64)] * 2), (24, [])):
        k = compiler.load_or_compile(compiler.KernelConfig(
            "bf16", 128, 128, 7, 4, 0.088, chip="sm_90a", paged=True, page_size=page_size))
        maps = [p for p in k.launches[0].params if p.map]
        assert [p.map.box for p in maps] == boxes
        assert all(p.map.view == ((0, 1), (2,), (3,)) for p in maps)
        assert [p.tensor for p in maps] == ["k_cache", "v_cache"][:len(boxes)]
        assert compiler.loads_whole_tiles(k, "k_cache") == (page_size == 256)


def test_compile_failure_reports_the_diagnostic():
    _with_tool_and_cache(_compile_failure)


def _compile_failure():
    config = compiler.KernelConfig("f16", 64, 64, 256, 4, 0.125, chip="sm_90a",
                                   options="stages=8")
    try:
        compiler.load_or_compile(config)
    except compiler.CompileError as e:
        message = str(e)
        assert "\n" not in message, message
        assert "error: 'swba.attention' op chip=sm_90a: block-n=128 stages=8" in message, message
        assert "see current operation" in e.output  # the rest is kept aside
    else:
        raise AssertionError("compiled stages=8")
    assert not any(compiler.cache_dir().iterdir()), "a failed compile left files"


def test_hopper_kernels_compile_to_wgmma():
    _with_tool_and_cache(_compile_hopper)


def _compile_hopper():
    for dtype, d in (("f16", 64), ("bf16", 128)):
        config = compiler.KernelConfig(dtype, d, d, 256, 4, 0.125, chip="sm_90a")
        k = compiler.load_or_compile(config)
        # Three consumers of 64 rows at head dim 64, two at 128, plus the
        # producer; Q boxes of those rows, K/V boxes of 128 keys.
        # At head dim 64 the kernel is persistent: a workgroup an SM (the
        # launch scalar sm_count) claiming query tiles from a zeroed counter.
        rows = 192 if d == 64 else 128
        per = 1 if d == 64 else rows
        assert _summary(k) == [("swba_fwd", per, rows * 2 + 128, 0, 0)], _summary(k)
        if d == 64:
            assert k.launches[0].grid[0] == compiler.GridDim(compiler.Scalar("sm_count"), 1), \
                k.launches[0].grid
            assert k.scalars == ("sm_count",), k.scalars
            assert [(b.name, b.zero) for b in k.buffers] == [("tile_counter", True)], k.buffers
        launch = k.launches[0]
        assert launch.shared_memory > 48 * 1024 and launch.max_registers, launch
        assert [(p.tensor, p.map.box) for p in launch.params if p.map] == [
            ("q", (1, rows, 64)), ("k", (1, 128, 64)), ("v", (1, 128, 64))]
        ptx, _ = compiler.compile_ptx(config)
        assert "wgmma.mma_async" in ptx and "cp.async.bulk.tensor" in ptx
        # Other head dims keep the mma.sync kernels.
        k = compiler.load_or_compile(compiler.KernelConfig(
            dtype, 32, 32, 256, 4, 0.125, chip="sm_90a"))
        assert _summary(k) == [("swba_fwd", 128, 128, 0, 0)], _summary(k)
        # The backward: the delta kernel (32 rows a workgroup), then dK/dV
        # (128 keys; 128-row query boxes at head dim 64, 64-row ones at
        # 128) on a second stream, at once with dQ (128 query rows). (At
        # head dim 128 these frames' default is the fused backward, below.)
        split = dataclasses.replace(config, grad=True,
                                    options="grad-fused-dq=false" if d == 128 else "")
        k = compiler.load_or_compile(split)
        assert k.reproducible
        assert compiler.reproducible_config(split) == split
        assert _summary(k) == [("swba_bwd_delta", 32, 128, 0, 0),
                               ("swba_bwd_dkdv", 128, 384, 1, 1),
                               ("swba_bwd_dq", 128, 384, 2, 0)], _summary(k)
        query_box = 128 if d == 64 else 64
        assert [(p.tensor, p.map.box[1]) for p in k.launches[1].params if p.map] == [
            ("q", query_box), ("k", 128), ("v", 128), ("dout", query_box)]
        # grad-fused-dq=true: a dK/dV kernel that adds dQ up into a zeroed
        # f32 buffer (through a fifth map), then the dQ conversion, all on
        # one stream.
        fused = dataclasses.replace(config, grad=True, options="grad-fused-dq=true")
        k = compiler.load_or_compile(fused)
        assert _summary(k) == [("swba_bwd_delta", 32, 128, 0, 0),
                               ("swba_bwd_dkdvdq", 128, 384, 1, 0),
                               ("swba_bwd_dqconvert", 32, 128, 2, 0)], _summary(k)
        assert [(b.name, b.zero) for b in k.buffers] == [("delta", False), ("dq_accum", True)]
        assert k.launches[1].params[-1].tensor == "dq_accum"
        assert k.launches[1].params[-1].map.element_type == "f32"
        assert "cp.reduce.async.bulk.tensor" in compiler.compile_ptx(fused)[0]
        # Its dq is not bitwise reproducible: the manifest says so, and the
        # reproducible backward is the default at head dim 64 and
        # grad-fused-dq=false at 128, where the default is this one.
        assert not k.reproducible
        default = dataclasses.replace(config, grad=True)
        assert compiler.reproducible_config(fused) == (default if d == 64 else split)
        if d == 128:
            assert _summary(compiler.load_or_compile(default)) == _summary(k)
            assert compiler.reproducible_config(default) == split
    # A 128-token window at head dim 64: dQ (computing delta), then dK/dV of
    # one consumer (64 keys), up to 16 key tiles a workgroup, two
    # workgroups an SM; the manifest's grid says so, and the runtime picks:
    # 64 heads x 128 key tiles on 132 SMs, 16 a workgroup in two waves of
    # 264 (eight would take four).
    k = compiler.load_or_compile(compiler.KernelConfig("bf16", 64, 64, 1, 128, 0.125,
                                                       chip="sm_90a", grad=True))
    assert [launch.name for launch in k.launches] == ["swba_bwd_dq", "swba_bwd_dkdv"]
    assert k.launches[1].grid[1] == compiler.GridDim(compiler.Size("k", 2), 64, 16, 2, 30), \
        k.launches[1].grid
    assert k.launches[1].grid_for({"k": (1, 64, 8192, 64)}, 132) == (64, 8, 1)
    # Head dim 256: 64-key forward tiles; the backward's dK/dV as a dV and a
    # dK kernel (32-row query boxes) on the second stream, then dQ (32-key
    # boxes).
    config = compiler.KernelConfig("bf16", 256, 256, 1, 1024, 0.0625, chip="sm_90a")
    k = compiler.load_or_compile(config)
    assert _summary(k) == [("swba_fwd", 128, 384, 0, 0)], _summary(k)
    assert [(p.tensor, p.map.box[1]) for p in k.launches[0].params if p.map] == [
        ("q", 128), ("k", 64), ("v", 64)]
    k = compiler.load_or_compile(dataclasses.replace(config, grad=True))
    assert _summary(k) == [("swba_bwd_delta", 32, 128, 0, 0),
                           ("swba_bwd_dv", 128, 384, 1, 1),
                           ("swba_bwd_dk", 128, 384, 2, 1),
                           ("swba_bwd_dq", 128, 384, 3, 0)], _summary(k)
    assert [(p.tensor, p.map.box[1]) for p in k.launches[2].params if p.map] == [
        ("q", 32), ("k", 128), ("v", 128), ("dout", 32)]
    assert [(p.tensor, p.map.box[1]) for p in k.launches[3].params if p.map] == [
        ("q", 128), ("k", 32), ("v", 32), ("dout", 128)]
    # Head dims past 64 that are not multiples of 64 take the kernels of
    # the next multiple (96 -> 128, 160 -> 192): the same launches, tiles
    # and 64-column boxes (the last reaching past the tensor's columns),
    # on wgmma; the fused backward reduce-adds only Q's columns.
    for (d, dv), (pd, pdv) in (((96, 96), (128, 128)), ((160, 80), (192, 128))):
        # (The runtime's copy of the rounding: its split-KV choice.)
        assert (compiler.kernel_head_dim(d), compiler.kernel_head_dim(dv)) == (pd, pdv)
        for options in ("", "grad-fused-dq=true"):
            if options and pd + pdv > 256:
                continue
            for grad in (False, True):
                made = [compiler.load_or_compile(compiler.KernelConfig(
                    "bf16", x, y, 1, 300, 0.1, chip="sm_90a", grad=grad, options=options))
                    for x, y in ((d, dv), (pd, pdv))]
                assert _summary(made[0]) == _summary(made[1]), (d, dv, grad, options)
                for a, b in zip(made[0].launches, made[1].launches):
                    assert a.shared_memory == b.shared_memory, (a.name, d, dv)
                    assert [p.map.box for p in a.params if p.map] == \
                        [p.map.box for p in b.params if p.map], (a.name, d, dv)
            ptx, _ = compiler.compile_ptx(compiler.KernelConfig(
                "bf16", d, dv, 1, 300, 0.1, chip="sm_90a", grad=True, options=options))
            assert "wgmma.mma_async" in ptx, (d, dv, options)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    import _runner
    _runner.run(globals())
