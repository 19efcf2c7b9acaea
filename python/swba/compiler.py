"""Compiles swba.attention into GPU kernels by driving `swba-opt`.

A kernel is specialised on what the op's attributes and static types carry
(element type, head dims, block size, window, scale, lse); batch, heads and
sequence lengths stay dynamic. Compiled kernels are cached on disk by
configuration, so a GPU machine without MLIR can run from a cache filled
ahead of time (`python -m swba.compile`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

_DTYPES = ("f16", "bf16")
_REPO = Path(__file__).resolve().parents[2]
# Part of every cache key: bumped when the cached metadata changes meaning,
# so that older caches are compiled afresh rather than misread.
# 2: per-kernel launch facts (threads, shared memory, TMA box rows).
_CACHE_FORMAT = 2


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
    chip: str = "sm_80"  # swba-opt's default; sm_90a: the TMA + wgmma kernels (head dims 64, 128)
    grad: bool = False  # swba.attention_grad instead of swba.attention
    # Extra --swba-to-nvvm options (tile choices of the sm_90a kernel, e.g.
    # "stages=3 overlap-softmax=false"); empty: the lowering's defaults.
    options: str = ""

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        for name in ("head_dim", "value_dim"):
            d = getattr(self, name)
            if d % 16 or not 16 <= d <= 128:
                raise ValueError(f"{name} must be a multiple of 16 in [16, 128], got {d}")
        if self.block_size < 1 or self.window < 1:
            raise ValueError("block_size and window must be >= 1")

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
        lse_arg = f", %l: {lse}" if self.with_lse else ""
        outs = f"%o, %l : {v}, {lse}" if self.with_lse else f"%o : {v}"
        return (
            f"func.func @attention(%q: {q}, %k: {q}, %v: {v}, %o: {v}{lse_arg}) {{\n"
            f"  swba.attention ins(%q, %k, %v : {q}, {q}, {v}) outs({outs}) {attrs}\n"
            f"  return\n}}\n"
        )


def find_swba_opt() -> str | None:
    """`SWBA_OPT`, else the build tree of this checkout, else PATH."""
    env = os.environ.get("SWBA_OPT")
    if env:
        return env
    local = _REPO / "build" / "bin" / "swba-opt"
    if local.exists():
        return str(local)
    return shutil.which("swba-opt")


def cache_dir() -> Path:
    return Path(os.environ.get("SWBA_KERNEL_DIR", Path.home() / ".cache" / "swba"))


_ASSEMBLY = re.compile(r'assembly = "((?:[^"\\]|\\.)*)"')


def _unescape_mlir_string(s: str) -> str:
    """MLIR prints a string attribute with `\\` for a backslash and `\\XX`
    (two hex digits) for every other byte that is not printable, quotes too."""
    return re.sub(r"\\(\\|[0-9A-Fa-f]{2})",
                  lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1), 16)),
                  s)


def compile_ptx(config: KernelConfig, swba_opt: str | None = None) -> str:
    """Runs `swba-opt --swba-to-nvvm=format=isa` and returns the kernel's PTX."""
    tool = swba_opt or find_swba_opt()
    if tool is None:
        raise RuntimeError(
            "swba-opt not found (set SWBA_OPT, build this checkout, or fill the "
            f"kernel cache ahead of time); missing kernel {config}")
    proc = subprocess.run(
        [tool, f"--swba-to-nvvm=chip={config.chip} format=isa {config.options}".rstrip()],
        input=config.mlir(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"swba-opt failed for {config}:\n{proc.stderr}")
    match = _ASSEMBLY.search(proc.stdout)
    if not match:
        raise RuntimeError("swba-opt produced no gpu.binary assembly")
    return _unescape_mlir_string(match.group(1))


def compile_cubin(ptx: str, chip: str) -> bytes | None:
    """ptxas from the CUDA toolkit, when there is one; None otherwise (the
    driver then compiles the PTX when it loads it)."""
    ptxas = shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
    if not Path(ptxas).exists():
        return None
    tmp = cache_dir() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    src, dst = tmp / f"{os.getpid()}.ptx", tmp / f"{os.getpid()}.cubin"
    src.write_text(ptx)
    proc = subprocess.run([ptxas, f"-arch={chip}", "-O3", str(src), "-o", str(dst)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas -arch={chip} failed:\n{proc.stderr}")
    return dst.read_bytes()


_ENTRY = re.compile(r"\.visible \.entry (swba_attention_\w+)\(")
# The TMA + wgmma forward kernel (sm_90a): threads per workgroup, dynamic
# shared memory bytes, K/V box rows, query rows per workgroup.
_WGMMA_NAME = re.compile(r"swba_attention_\w+?_wgmma_t(\d+)_s(\d+)_n(\d+)_m(\d+)")
# The mma.sync kernels: rows (queries, or keys for dK/dV) per workgroup.
_MMA_SYNC_NAME = re.compile(r"swba_attention_\w+?_[mn](\d+)")


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a kernel is launched, as its name tells: `rows` of the launch's
    row dimension per workgroup (the grid's y is ceil(rows_dim / rows)),
    `threads` per workgroup, `smem` bytes of dynamic shared memory and, for
    the TMA kernel, `box_n`, the K/V rows of one tensor-map box (the Q box
    has `rows` rows); the TMA kernel takes the tensor maps of q, k and v as
    three pointers after its memrefs."""

    rows: int
    threads: int = 128
    smem: int = 0
    box_n: int | None = None


def launch_of(name: str) -> Launch:
    """The launch facts carried in a kernel's name (set by the lowering)."""
    if "_wgmma_" in name:  # never launched as an mma.sync kernel
        m = _WGMMA_NAME.fullmatch(name)
        if m:
            threads, smem, box_n, rows = map(int, m.groups())
            return Launch(rows, threads, smem, box_n)
    else:
        m = _MMA_SYNC_NAME.fullmatch(name)
        if m:
            return Launch(int(m.group(1)))
    raise ValueError(f"kernel name {name!r} carries no launch facts")


def launches_in(ptx: str) -> dict:
    """{kernel name: Launch} of the swba_attention_* kernels in `ptx`."""
    return {m.group(1): launch_of(m.group(1)) for m in _ENTRY.finditer(ptx)}


@dataclasses.dataclass
class Kernel:
    """A compiled module: its image (a cubin, or PTX that the driver compiles
    on load) and how to launch each of its kernels (the lowering's choices,
    carried in the kernels' names)."""

    image: bytes
    kind: str
    launches: dict  # kernel name -> Launch

    def entry(self, prefix: str) -> tuple[str, Launch]:
        for name, launch in self.launches.items():
            if name.startswith(prefix):
                return name, launch
        raise KeyError(f"no kernel {prefix}* in {sorted(self.launches)}")


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
    configuration), or, where there is no swba-opt, by whichever made them."""
    base = cache_dir() / config.key()
    meta = base.with_suffix(".json")
    digest = tool_digest()
    if meta.exists():
        info = json.loads(meta.read_text())
        if digest is None or info.get("tool") == digest:
            image = base.with_suffix("." + info["kind"]).read_bytes()
            launches = {n: Launch(**facts) for n, facts in info["kernels"].items()}
            return Kernel(image, info["kind"], launches)
    ptx = compile_ptx(config)
    launches = launches_in(ptx)
    if not launches:
        raise RuntimeError("no swba_attention_* kernel in the PTX")
    base.parent.mkdir(parents=True, exist_ok=True)
    cubin = compile_cubin(ptx, config.chip)
    kernel = Kernel(cubin if cubin is not None else ptx.encode(),
                    "cubin" if cubin is not None else "ptx", launches)
    base.with_suffix("." + kernel.kind).write_bytes(kernel.image)
    meta.write_text(json.dumps({
        "kind": kernel.kind, "tool": digest,
        "kernels": {n: dataclasses.asdict(f) for n, f in launches.items()}}))
    return kernel
