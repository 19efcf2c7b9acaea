"""Compiles swba.attention into GPU kernels by driving `swba-opt`.

A kernel is specialised on what the op's attributes and static types carry
(element type, head dims, block size, window, scale, lse); batch, heads and
sequence lengths stay dynamic. `swba-opt --swba-to-nvvm=... manifest=<file>`
gives the PTX (in its `gpu.binary`) and the launch manifest: how to launch
each kernel (grid as a function of the tensors' sizes, block, shared
memory, parameters, tensor maps, order and streams), which the runtime
(ops.py) follows without computing any of it itself. Compiled kernels are
cached on disk by configuration, so a GPU machine without MLIR can run from
a cache filled ahead of time (python/tests/prepare_kernels.py fills it for
the tests and the benchmark).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

_DTYPES = ("f16", "bf16")
_REPO = Path(__file__).resolve().parents[2]
# Part of every cache key: bumped when the cached metadata changes meaning,
# so that older caches are compiled afresh rather than misread.
# 2: per-kernel launch facts (threads, shared memory, TMA box rows).
# 3: the lowering's launch manifest.
_CACHE_FORMAT = 3
# The manifest format this runtime reads (--swba-write-launch-manifest).
_MANIFEST_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """What a compiled forward kernel is specialised on."""

    dtype: str  # "f16" or "bf16"
    head_dim: int
    value_dim: int
    block_size: int
    window: int
    scale: float
    with_lse: bool = True
    chip: str = "sm_80"  # swba-opt's default; sm_90a: the TMA + wgmma kernels (head dims 64-256)
    grad: bool = False  # swba.attention_grad instead of swba.attention
    paged: bool = False  # swba.paged_attention (the KV cache in pages) instead
    # Paged: the page size, static in the kernel (0: dynamic). On sm_90a a
    # static page size that TMA boxes tile makes TMA fill the ring.
    page_size: int = 0
    # Extra --swba-to-nvvm options (tile choices of the sm_90a kernel, e.g.
    # "stages=3 overlap-softmax=false"); empty: the lowering's defaults.
    options: str = ""

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        problem = head_dims_problem(self.head_dim, self.value_dim, self.chip)
        if problem:
            raise ValueError(problem)
        if self.block_size < 1 or self.window < 1:
            raise ValueError("block_size and window must be >= 1")
        if self.block_size > INT64_MAX or self.window > INT64_MAX:
            raise ValueError(f"block_size and window must be at most 2**63 - 1, got "
                             f"{self.block_size} and {self.window}")
        problem = scale_problem(self.scale)
        if problem:
            raise ValueError(problem)
        if self.page_size < 0 or (self.page_size and not self.paged):
            raise ValueError(f"page_size must be >= 0, and 0 unless paged, got {self.page_size}")

    def key(self) -> str:
        fields = dataclasses.asdict(self) | {"cache_format": _CACHE_FORMAT}
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def mlir(self) -> str:
        """The op as a memref-level function, with dynamic B, heads and N."""
        t, d, dv = self.dtype, self.head_dim, self.value_dim
        q = f"memref<?x?x?x{d}x{t}>"
        v = f"memref<?x?x?x{dv}x{t}>"
        lse = "memref<?x?x?xf32>"
        attrs = (f"block_size = {self.block_size} window = {self.window}"
                 f" scale = {self.scale!r}")
        if self.grad:
            return (
                f"func.func @attention_grad(%q: {q}, %k: {q}, %v: {v}, %o: {v}, "
                f"%do: {v}, %l: {lse}, %dq: {q}, %dk: {q}, %dv: {v}) {{\n"
                f"  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : {q}, {q}, {v}, "
                f"{v}, {v}, {lse}) outs(%dq, %dk, %dv : {q}, {q}, {v}) {attrs}\n"
                f"  return\n}}\n")
        if self.paged:
            return self._paged_mlir(q, v, lse, attrs)
        lse_arg = f", %l: {lse}" if self.with_lse else ""
        outs = f"%o, %l : {v}, {lse}" if self.with_lse else f"%o : {v}"
        return (
            f"func.func @attention(%q: {q}, %k: {q}, %v: {v}, %o: {v}{lse_arg}) {{\n"
            f"  swba.attention ins(%q, %k, %v : {q}, {q}, {v}) outs({outs}) {attrs}\n"
            f"  return\n}}\n"
        )

    def _paged_mlir(self, q: str, o: str, lse: str, attrs: str) -> str:
        t, d, dv = self.dtype, self.head_dim, self.value_dim
        page = self.page_size or "?"
        kc, vc = f"memref<?x{page}x?x{d}x{t}>", f"memref<?x{page}x?x{dv}x{t}>"
        pt, sl = "memref<?x?xi32>", "memref<?xi32>"
        lse_arg = f", %l: {lse}" if self.with_lse else ""
        outs = f"%o, %l : {o}, {lse}" if self.with_lse else f"%o : {o}"
        return (
            f"func.func @paged_attention(%q: {q}, %kc: {kc}, %vc: {vc}, %pt: {pt}, "
            f"%sl: {sl}, %o: {o}{lse_arg}) {{\n"
            f"  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : {q}, {kc}, {vc}, {pt}, "
            f"{sl}) outs({outs}) {attrs}\n"
            f"  return\n}}\n")


# block_size and window are int64 in the op's attributes; the scale is
# float32 in the kernels: these bounds keep it positive and finite there
# (smaller scales round to 0, larger ones to inf).
INT64_MAX = 2**63 - 1
F32_MAX = 3.4028234663852886e38
F32_MIN_SUBNORMAL = 1.401298464324817e-45


def default_scale(head_dim: int) -> float:
    """The scale when none is given: 1 / sqrt(D); 1 for D = 0, where every
    score is 0 and the scale does not matter."""
    if head_dim < 0:
        raise ValueError(f"head dims must be >= 0, got {head_dim}")
    return 1.0 / math.sqrt(head_dim) if head_dim else 1.0


def scale_problem(scale: float) -> str | None:
    """Why the kernels cannot apply `scale`: not positive and finite in
    float32 (NaN included); None where they can."""
    if F32_MIN_SUBNORMAL <= scale <= F32_MAX:
        return None
    return (f"scale must be positive and finite in float32, where the kernels apply it "
            f"(about 1.4e-45 to 3.4e38), got {scale}")


def loads_whole_tiles(kernel, cache: str) -> bool:
    """Whether a paged decode kernel loads `cache` by TMA boxes of a whole
    64-key tile (its manifest's map of the cache [pages * page size][Hkv][D]
    in boxes of rows x 1 x 64, rows = 64)."""
    return any(p.map is not None and p.map.box[0] == 64
               for launch in kernel.launches for p in launch.params if p.tensor == cache)


def kernel_page_size(page_size: int, chip: str) -> int:
    """The page size a paged kernel for `chip` is compiled for: sm_90a's are
    specialised on it (TMA boxes for pages of 16, 32 or a multiple of 64),
    the others take any (0)."""
    return page_size if chip == "sm_90a" else 0


def kernel_head_dim(d: int) -> int:
    """The head dim the sm_90a kernels compute with for a tensor's `d`, as
    the lowering rounds it (kernelHeadDim): multiples of 16 past 64 up to
    whole 64-column TMA boxes (80, 96, 112 -> 128; 160 -> 192)."""
    return -(-d // 64) * 64 if 64 < d <= 256 and d % 16 == 0 else d


def head_dims_problem(d: int, dv: int, chip: str) -> str | None:
    """Why the GPU kernels for `chip` do not take head dims `d`, `dv`, or
    None: multiples of 16 up to 128 on every chip, and on sm_90a multiples
    of 16 from 64 to 256 (the TMA + wgmma kernels take multiples of 64, and
    round the others up to them)."""
    def small(x):
        return x % 16 == 0 and 16 <= x <= 128

    def hopper(x):
        return x % 16 == 0 and 64 <= x <= 256

    if small(d) and small(dv):
        return None
    if chip == "sm_90a" and hopper(d) and hopper(dv):
        return None
    return (f"head dims must be multiples of 16 in [16, 128], or on sm_90a both in [64, 256]; "
            f"got {d} and {dv} for {chip}")


# The decode kernel's limits (--lower-swba decode): packed rows per kv head
# it takes, and the query count up to which swba.attention uses it.
DECODE_ROWS = 64
DECODE_QUERIES = 16


def uses_decode(hq: int, hkv: int, nq: int, d: int, dv: int) -> bool:
    """Whether swba.attention's forward runs on the split-KV decode kernel:
    few query rows per kv head (at most 16 queries, at most 64 rows
    Hq / Hkv * Nq packed; head dims up to 128), where the tiled forward
    would read every K/V tile once per query head and launch too few
    workgroups."""
    return (nq <= DECODE_QUERIES and hq // max(hkv, 1) * nq <= DECODE_ROWS
            and d <= 128 and dv <= 128)


def kernel_options(options: str, grad: bool) -> str:
    """The part of `--swba-to-nvvm` options (SWBA_LOWER_OPTIONS) that the
    forward (grad=False) or the backward (grad=True) kernels depend on: the
    backward's options are named `grad-*`, the forward's are the others.
    Each configuration is specialised on its own part only, so that a
    forward tiling and a backward tiling combine without a third build."""
    return " ".join(o for o in options.split() if o.startswith("grad-") == grad)


def planned_options(options: str, grad: bool) -> list[str]:
    """kernel_options(options, grad) less split-kv and decode, which the
    runtime picks for each call's shapes (swba.ops) and adds itself."""
    return [o for o in kernel_options(options, grad).split()
            if not o.startswith(("split-kv=", "decode="))]


def reproducible_config(config: KernelConfig,
                        load: Callable[[KernelConfig], Kernel] | None = None) -> KernelConfig:
    """What a runtime asked for bitwise reproducible results runs for
    `config`: with grad-fused-dq=false asked for, `config`; with
    grad-fused-dq=true, `config` without it where the lowering's default is
    reproducible (its kernels are the default's); without the option,
    `config` where its kernels are (`Kernel.reproducible`); else `config`
    with grad-fused-dq=false. `load` gives a configuration's kernels
    (`load_or_compile` by default)."""
    load = load or load_or_compile
    options = config.options.split()
    asked = [o for o in options if o.startswith("grad-fused-dq=")]
    rest = [o for o in options if not o.startswith("grad-fused-dq=")]
    if asked and asked[-1] == "grad-fused-dq=false":
        return config
    candidate = dataclasses.replace(config, options=" ".join(rest)) if asked else config
    if load(candidate).reproducible:
        return candidate
    return dataclasses.replace(config, options=" ".join(rest + ["grad-fused-dq=false"]))


def find_swba_opt() -> str | None:
    """`SWBA_OPT`, else the one installed inside this package (`pip
    install .`), else the build tree of this checkout, else PATH."""
    env = os.environ.get("SWBA_OPT")
    if env:
        return env
    packaged = Path(__file__).resolve().parent / "bin" / "swba-opt"
    if packaged.exists():
        return str(packaged)
    local = _REPO / "build" / "bin" / "swba-opt"
    if local.exists():
        return str(local)
    return shutil.which("swba-opt")


def cache_dir() -> Path:
    return Path(os.environ.get("SWBA_KERNEL_DIR", Path.home() / ".cache" / "swba"))


class CompileError(RuntimeError):
    """swba-opt or ptxas could not compile a configuration. The message is
    the tool's first `error:` diagnostic; `output` holds all it printed."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


class ManifestError(ValueError):
    """A launch manifest that this runtime cannot follow."""


def _diagnostic(stderr: str) -> str:
    """The first `error:` line of a tool's output (else its last line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line:
            return line[line.index("error"):]
    return lines[-1] if lines else "(no output)"


def _mlir_string_at(text: str, start: int) -> str:
    r"""The MLIR string literal that opens at text[start] (a '"'), decoded:
    MLIR prints `\\` for a backslash and `\XX` (two hex digits) for every
    other byte that is not printable, quotes too."""
    assert text[start] == '"'
    out, i = bytearray(), start + 1
    while True:
        c = text[i]
        if c == '"':
            return out.decode()
        if c == "\\":
            if text[i + 1] == "\\":
                out.append(0x5C)
                i += 2
            else:
                out.append(int(text[i + 1:i + 3], 16))
                i += 3
        else:
            out += c.encode()
            i += 1


def binary_assembly(ir: str, module: str) -> str:
    """The PTX of `gpu.binary @module` in printed IR (format=isa)."""
    at = ir.find(f"gpu.binary @{module} ")
    if at < 0:
        raise CompileError(f"swba-opt printed no gpu.binary @{module}", ir[-2000:])
    key = ir.find("assembly = \"", at)
    if key < 0:
        raise CompileError(f"gpu.binary @{module} holds no PTX assembly", ir[at:at + 2000])
    return _mlir_string_at(ir, key + len("assembly = "))


@dataclasses.dataclass(frozen=True)
class Size:
    """Dimension `dim` of the tensor (or buffer) named `tensor`."""

    tensor: str
    dim: int

    def of(self, shapes: dict) -> int:
        return shapes[self.tensor][self.dim]


@dataclasses.dataclass(frozen=True)
class Scalar:
    """The launch scalar `name` (a count the launcher picks, such as the
    split-KV forward's number of splits), given with the shapes."""

    name: str

    def of(self, shapes: dict) -> int:
        return shapes[self.name]


@dataclasses.dataclass(frozen=True)
class Product:
    """The product of sizes (1 without any)."""

    factors: tuple

    def of(self, shapes: dict) -> int:
        return math.prod(f.of(shapes) for f in self.factors)


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """A TMA tensor map parameter: the tensor seen through `view` (groups
    of its dims merged, outermost first), in boxes of `box` elements
    (outermost first), with the CUtensorMap modes named as nvgpu names
    them."""

    element_type: str
    view: tuple
    box: tuple
    swizzle: str
    l2_promotion: str
    oob_fill: str
    interleave: str


@dataclasses.dataclass(frozen=True)
class Param:
    """A kernel parameter: the memref descriptor of `tensor` (`rank`; with
    `collapse`, of the tensor with those groups of dims merged), or, with
    `map`, a pointer to its tensor map."""

    tensor: str
    rank: int | None = None
    element_type: str | None = None
    map: TensorMap | None = None
    collapse: tuple | None = None


class GridDim(NamedTuple):
    """One grid dimension: ceildiv(size, per) chunks. With `most` past
    one a workgroup may run up to `most` chunks (the kernel divides the
    chunks by the extent it is launched with): the launcher picks the count
    with `chunks_per_workgroup`."""

    size: object  # Size
    per: int
    most: int = 1
    per_sm: int = 1  # workgroups an SM runs at once
    overhead: int = 0  # a workgroup's start and end, in % of a chunk's time


def chunks_per_workgroup(chunks: int, rest: int, dim: GridDim, sms: int) -> int:
    """The chunks t of a workgroup for a dim of `chunks` chunks in a grid of
    `rest` workgroups along its other dims, on `sms` SMs: of t in [1, most]
    (the largest of equals), the one with the fewest waves of workgroups
    times a workgroup's time, ceildiv(rest x ceildiv(chunks, t), per_sm x
    sms) x (100 t + overhead), as the lowering's host code picks for 132
    SMs. `SWBA_WORKGROUP_CHUNKS` forces a count (at most `most`; any count
    gives the same results)."""
    forced = os.environ.get("SWBA_WORKGROUP_CHUNKS")
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise ValueError(f"SWBA_WORKGROUP_CHUNKS must be a positive integer, "
                             f"got {forced!r}")
        return min(int(forced), dim.most)
    slots = dim.per_sm * sms
    cost = {t: -(-rest * -(-chunks // t) // slots) * (100 * t + dim.overhead)
            for t in range(1, dim.most + 1)}
    return min(cost, key=lambda t: (cost[t], -t))


@dataclasses.dataclass(frozen=True)
class Launch:
    """How the lowering says to launch one kernel."""

    name: str
    order: int
    stream: int  # 1: may run on a second stream (see ops._Launches)
    grid: tuple  # three GridDims
    block: tuple
    shared_memory: int
    params: tuple
    max_registers: int | None = None
    # (scalar, n): launched only when that launch scalar is above n (the
    # decode kernel's combine, which one split does without).
    only_when: tuple | None = None
    # It may start while the launch before it on its stream ends
    # (programmatic dependent launch): it waits for that one on the device
    # before it reads what that one writes.
    early_start: bool = False

    def grid_for(self, shapes: dict, sms: int = 132) -> tuple:
        """The grid for `shapes` on a device of `sms` SMs."""
        grid = [-(-dim.size.of(shapes) // dim.per) for dim in self.grid]
        for i, dim in enumerate(self.grid):
            if dim.most > 1:
                rest = math.prod(grid) // max(grid[i], 1)
                grid[i] = -(-grid[i] // chunks_per_workgroup(grid[i], rest, dim, sms))
        return tuple(grid)


@dataclasses.dataclass(frozen=True)
class Buffer:
    """A device buffer the launches share: `shape` holds numbers and
    Sizes; zeroed before the launches when `zero`."""

    name: str
    element_type: str
    shape: tuple
    zero: bool

    def shape_for(self, shapes: dict) -> tuple:
        return tuple(d if isinstance(d, int) else d.of(shapes) for d in self.shape)


# The tensor map modes a runtime can encode, by nvgpu's names for them.
_MAP_MODES = {
    "swizzle": ("none", "swizzle_32b", "swizzle_64b", "swizzle_128b"),
    "l2_promotion": ("none", "l2promo_64b", "l2promo_128b", "l2promo_256b"),
    "oob_fill": ("zero", "nan"),
    "interleave": ("none", "interleave_16b", "interleave_32b"),
}


def _field(entry: dict, key: str, kind, where: str):
    if key not in entry:
        raise ManifestError(f"launch manifest: {where} has no {key!r}")
    value = entry[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ManifestError(f"launch manifest: {where}: {key!r} is {value!r}")
    return value


def _size(entry, where: str) -> Size | Scalar | Product:
    if not isinstance(entry, dict):
        raise ManifestError(f"launch manifest: {where}: {entry!r} is not a size")
    if "scalar" in entry:
        return Scalar(_field(entry, "scalar", str, where))
    if "product" in entry:
        return Product(tuple(_size(f, where) for f in _field(entry, "product", list, where)))
    return Size(_field(entry, "tensor", str, where), _field(entry, "dim", int, where))


def _param(entry, where: str) -> Param:
    if not isinstance(entry, dict):
        raise ManifestError(f"launch manifest: {where} is not an object")
    tensor = _field(entry, "tensor", str, where)
    kind = _field(entry, "kind", str, where)
    element_type = _field(entry, "element_type", str, where)
    if kind == "memref":
        rank = _field(entry, "rank", int, where)
        collapse = entry.get("collapse")
        if collapse is None:
            return Param(tensor, rank, element_type)
        if (not isinstance(collapse, list) or len(collapse) != rank
                or not all(isinstance(g, list) and g and
                           all(isinstance(d, int) and not isinstance(d, bool) for d in g)
                           for g in collapse)):
            raise ManifestError(f"launch manifest: {where}: collapse {collapse!r} for "
                                f"rank {rank}")
        return Param(tensor, rank, element_type,
                     collapse=tuple(tuple(g) for g in collapse))
    if kind == "tensor_map":
        view = tuple(tuple(g) for g in _field(entry, "view", list, where))
        box = tuple(_field(entry, "box", list, where))
        if len(view) != len(box) or not all(isinstance(b, int) for b in box):
            raise ManifestError(f"launch manifest: {where}: box {box} for view {view}")
        modes = []
        for key, known in _MAP_MODES.items():
            mode = _field(entry, key, str, where)
            if mode not in known:
                raise ManifestError(f"launch manifest: {where}: {key} {mode!r} is none "
                                    f"of {known}")
            modes.append(mode)
        return Param(tensor, map=TensorMap(element_type, view, box, *modes))
    raise ManifestError(f"launch manifest: {where}: unknown parameter kind {kind!r}")


def _launch(entry, where: str) -> Launch:
    if not isinstance(entry, dict):
        raise ManifestError(f"launch manifest: {where} is not an object")
    name = _field(entry, "name", str, where)
    where = f"kernel {name!r}"
    grid = _field(entry, "grid", list, where)
    block = _field(entry, "block", list, where)
    if len(grid) != 3 or len(block) != 3:
        raise ManifestError(f"launch manifest: {where}: grid and block need 3 dims")
    dims = []
    for i, dim in enumerate(grid):
        if not isinstance(dim, dict):
            raise ManifestError(f"launch manifest: {where}: grid[{i}] is {dim!r}")
        per = _field(dim, "per", int, f"{where} grid[{i}]")
        packing = [dim.get(n, d) for n, d in (("most", 1), ("per_sm", 1), ("overhead", 0))]
        if per < 1 or any(isinstance(n, bool) or not isinstance(n, int) for n in packing) \
                or min(packing[:2]) < 1 or packing[2] < 0:
            raise ManifestError(f"launch manifest: {where}: grid[{i}] per {per}, most, "
                                f"per_sm, overhead {packing}")
        dims.append(GridDim(_size(dim.get("size"), f"{where} grid[{i}]"), per, *packing))
    params = tuple(_param(p, f"{where} parameter {i}")
                   for i, p in enumerate(_field(entry, "params", list, where)))
    registers = entry.get("max_registers")
    if registers is not None and (isinstance(registers, bool) or not isinstance(registers, int)):
        raise ManifestError(f"launch manifest: {where}: 'max_registers' is {registers!r}")
    stream = _field(entry, "stream", int, where)
    if stream not in (0, 1):
        raise ManifestError(f"launch manifest: {where}: stream {stream}, expected 0 or 1")
    only_when = entry.get("only_when")
    if only_when is not None:
        if not isinstance(only_when, dict):
            raise ManifestError(f"launch manifest: {where}: 'only_when' is {only_when!r}")
        only_when = (_field(only_when, "scalar", str, f"{where} only_when"),
                     _field(only_when, "above", int, f"{where} only_when"))
    early_start = entry.get("early_start", False)
    if not isinstance(early_start, bool):
        raise ManifestError(f"launch manifest: {where}: 'early_start' is {early_start!r}")
    return Launch(name, _field(entry, "order", int, where), stream,
                  tuple(dims), tuple(block), _field(entry, "shared_memory", int, where),
                  params, registers, only_when, early_start)


def _buffer(entry, where: str) -> Buffer:
    if not isinstance(entry, dict):
        raise ManifestError(f"launch manifest: {where} is not an object")
    name = _field(entry, "name", str, where)
    shape = tuple(d if isinstance(d, int) else _size(d, f"buffer {name!r}")
                  for d in _field(entry, "shape", list, f"buffer {name!r}"))
    return Buffer(name, _field(entry, "element_type", str, f"buffer {name!r}"), shape,
                  _field(entry, "zero", bool, f"buffer {name!r}"))


def read_manifest(text: str) -> tuple[str, tuple, tuple, tuple, bool]:
    """(gpu.module name, Launches in launch order, Buffers, names of the
    launch scalars, whether the results are bitwise reproducible) of a
    launch manifest (--swba-write-launch-manifest) of one swba op's
    kernels."""
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"launch manifest: not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ManifestError(f"launch manifest: format {found!r}, this runtime reads "
                            f"format {_MANIFEST_FORMAT}")
    modules = _field(manifest, "modules", list, "the manifest")
    if len(modules) != 1 or not isinstance(modules[0], dict):
        raise ManifestError(f"launch manifest: {len(modules)} kernel modules, expected "
                            "the one of a single swba op")
    module = modules[0]
    name = _field(module, "name", str, "the module")
    launches = sorted((_launch(k, f"kernel {i}") for i, k in
                       enumerate(_field(module, "kernels", list, f"module {name!r}"))),
                      key=lambda launch: launch.order)
    if not launches:
        raise ManifestError(f"launch manifest: module {name!r} has no kernel")
    buffers = tuple(_buffer(b, f"buffer {i}") for i, b in
                    enumerate(_field(module, "buffers", list, f"module {name!r}")))
    scalars = module.get("scalars", [])
    if not isinstance(scalars, list) or not all(isinstance(n, str) for n in scalars):
        raise ManifestError(f"launch manifest: module {name!r}: scalars {scalars!r}")
    reproducible = module.get("reproducible", True)
    if not isinstance(reproducible, bool):
        raise ManifestError(f"launch manifest: module {name!r}: reproducible "
                            f"{reproducible!r}")
    return name, tuple(launches), buffers, tuple(scalars), reproducible


def compile_ptx(config: KernelConfig, swba_opt: str | None = None) -> tuple[str, str]:
    """Runs `swba-opt --swba-to-nvvm=format=isa manifest=...`: the kernels'
    PTX and the launch manifest (JSON text)."""
    tool = swba_opt or find_swba_opt()
    if tool is None:
        raise CompileError(
            "swba-opt not found (set SWBA_OPT, build this checkout, or fill the "
            f"kernel cache ahead of time); missing kernel {config}")
    with tempfile.TemporaryDirectory(prefix="swba-") as tmp:
        manifest = Path(tmp) / "manifest.json"
        # Quoted: the temporary directory's path may hold spaces.
        proc = subprocess.run(
            [tool, f"--swba-to-nvvm=chip={config.chip} format=isa manifest='{manifest}' "
                   f"{config.options}".rstrip()],
            input=config.mlir(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"swba-opt could not compile {config}: "
                               f"{_diagnostic(proc.stderr)}", proc.stderr)
        text = manifest.read_text()
    module, launches, *_ = read_manifest(text)
    ptx = binary_assembly(proc.stdout, module)
    for launch in launches:
        if f".entry {launch.name}(" not in ptx:
            raise ManifestError(f"launch manifest: kernel {launch.name!r} is not in "
                                f"the PTX of gpu.binary @{module}")
    return ptx, text


def find_ptxas() -> str | None:
    """The CUDA toolkit's ptxas: on PATH, else in /usr/local/cuda; None
    where there is none."""
    ptxas = shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
    return ptxas if Path(ptxas).exists() else None


def compile_cubin(ptx: str, chip: str) -> bytes | None:
    """ptxas from the CUDA toolkit, when there is one; None otherwise (the
    driver then compiles the PTX when it loads it)."""
    ptxas = find_ptxas()
    if ptxas is None:
        return None
    with tempfile.TemporaryDirectory(prefix="swba-") as tmp:
        src, dst = Path(tmp) / "kernels.ptx", Path(tmp) / "kernels.cubin"
        src.write_text(ptx)
        proc = subprocess.run([ptxas, f"-arch={chip}", "-O3", str(src), "-o", str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"ptxas -arch={chip} failed: {_diagnostic(proc.stderr)}",
                               proc.stderr)
        return dst.read_bytes()


@dataclasses.dataclass
class Kernel:
    """A compiled module: its image (a cubin, or PTX that the driver compiles
    on load) and its launch manifest."""

    image: bytes
    kind: str
    manifest: str  # the JSON text

    def __post_init__(self):
        (self.module, self.launches, self.buffers, self.scalars,
         self.reproducible) = read_manifest(self.manifest)


def _write_atomically(path: Path, data: bytes):
    """Writes `path` whole or not at all (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_tool_digests: dict = {}


def tool_digest() -> str | None:
    """sha256 of the swba-opt that `find_swba_opt` names (None where there is
    none, as on a GPU machine that runs from a prepared cache), once per
    process and tool file."""
    tool = find_swba_opt()
    if tool is None or not os.path.exists(tool):
        return None
    st = os.stat(tool)
    key = (tool, st.st_mtime_ns, st.st_size)
    if key not in _tool_digests:
        with open(tool, "rb") as f:
            _tool_digests[key] = hashlib.sha256(f.read()).hexdigest()[:24]
    return _tool_digests[key]


def load_or_compile(config: KernelConfig) -> Kernel:
    """The compiled kernels of `config`, from the cache when it holds them,
    built by the swba-opt at hand (a cached entry of another swba-opt build
    is compiled afresh: the lowering's choices live in the tool, not in the
    configuration), or, where there is no swba-opt, by whichever made them.
    A loaded kernel bundle (`swba.bundle`) is searched first, and its
    kernels are used as they are."""
    from . import bundle

    shipped = bundle.find(config)
    base = (shipped or cache_dir()) / config.key()
    meta = base.with_suffix(".json")
    digest = tool_digest()
    if meta.exists():
        info = json.loads(meta.read_text())
        if shipped or digest is None or info.get("tool") == digest:
            image = base.with_suffix("." + info["kind"]).read_bytes()
            return Kernel(image, info["kind"], info["manifest"])
    if find_swba_opt() is None:
        raise bundle.missing(config)
    ptx, manifest = compile_ptx(config)
    cubin = compile_cubin(ptx, config.chip)
    kernel = Kernel(cubin if cubin is not None else ptx.encode(),
                    "cubin" if cubin is not None else "ptx", manifest)
    base.parent.mkdir(parents=True, exist_ok=True)
    # The image first: the metadata names it, and its presence says that
    # the entry is whole.
    _write_atomically(base.with_suffix("." + kernel.kind), kernel.image)
    _write_atomically(meta, json.dumps({
        "kind": kernel.kind, "tool": digest, "manifest": manifest}).encode())
    return kernel
