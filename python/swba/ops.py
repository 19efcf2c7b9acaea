"""`attention(q, k, v, block_size, window, scale=None)` on CUDA tensors: the
sliding window block attention compiled by SWBA-MLIR, forward and backward
(a `torch.autograd.Function`).

A device's kernels are compiled for the chip `chip_for` names: `SWBA_CHIP`
when set, else sm_90a on compute capability 9.0 (whose forward at head dims
64 and 128 is the TMA + wgmma kernel; SWBA_CHIP=sm_90 keeps the mma.sync one
there) and sm_XY on other devices."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import torch

from . import compiler, runtime

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16"}
# Tensor maps also of the f32 dQ accumulator the sm_90a dK/dV kernel adds into.
_MAP_DTYPES = {**_TORCH_DTYPES, torch.float32: "f32"}
_modules: dict = {}


def _module(config: compiler.KernelConfig, device: torch.device):
    """(compiled kernel info, {kernel name: runtime.Kernel}) for `config`."""
    key = (config, device.index)
    if key not in _modules:
        compiled = compiler.load_or_compile(config)
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # makes the primary context current
            loaded = runtime.Module(compiled.image)
            functions = {}
            for name, launch in compiled.launches.items():
                functions[name] = loaded.function(name)
                functions[name].allow_shared(launch.smem)
            _modules[key] = (compiled, functions)
    return _modules[key]


_MAX_TENSOR_MAPS = 256
_MAX_PREPARED = 8  # packed parameter sets kept per kernel of a plan
_tensor_maps: OrderedDict = OrderedDict()  # key -> (device pointer, its tensor)


def _tensor_map(t, box_rows: int, device: int, stream: int):
    """(device pointer, device tensor, pinned host bytes) of the CUtensorMap of the contiguous t [B, H, N, D]
    seen as [B * H][N][D], in boxes of [box_rows][128 bytes] (64 f16/bf16 or
    32 f32; the kernel reads a D of 128 as two boxes). A map depends only on t's address, shape and dtype
    and on the box, so the last maps made are kept, least recently used out
    first. They are kept per stream too: the copy that puts a map on the
    device runs on the stream of the kernels that read it, which orders them
    and makes the memory of a dropped map safe to reuse. A launch captured
    in a CUDA graph keeps its maps for good (see `_Kernel.__call__`)."""
    key = (t.data_ptr(), t.shape, t.dtype, box_rows, device, stream)
    found = _tensor_maps.get(key)
    if found is not None:
        _tensor_maps.move_to_end(key)
        return found
    b, h, n, d = t.shape
    size = t.element_size()
    raw = runtime.encode_tensor_map(_MAP_DTYPES[t.dtype], key[0], (d, n, b * h),
                                    (d * size, n * d * size), (128 // size, box_rows, 1))
    host = torch.frombuffer(bytearray(raw), dtype=torch.uint8).pin_memory()
    on_device = torch.empty(128, dtype=torch.uint8, device=t.device)
    on_device.copy_(host, non_blocking=True)
    # The pinned bytes are kept with the map: a copy captured in a CUDA
    # graph reads them again at every replay.
    _tensor_maps[key] = found = (on_device.data_ptr(), on_device, host)
    if len(_tensor_maps) > _MAX_TENSOR_MAPS:
        _tensor_maps.popitem(last=False)
    return found


_captured: list = []  # launch entries a CUDA graph captured, kept for good


def _capturing() -> bool:
    """Whether the current stream is capturing a CUDA graph (torch's private
    accessor when it has one: the public one costs ~1 us more)."""
    check = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None)
    return check() if check is not None else torch.cuda.is_current_stream_capturing()


def _current_stream(device_index: int) -> int:
    """The raw handle of the device's current stream. torch's private
    accessor costs a tenth of a microsecond where the public one builds a
    Stream object (5-15 us on the benchmark machine's host)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return raw(device_index)
    return torch.cuda.current_stream(device_index).cuda_stream


class _Kernel:
    """One kernel of a plan: everything its launch needs but the tensors'
    addresses and the stream. `tails[i]`: what follows the two pointers of
    tensor i's memref descriptor (offset, sizes, strides; the tensors are
    contiguous, see `_dense`); `maps`: (tensor index, box rows) of the tensor
    maps a TMA kernel takes after its memrefs."""

    __slots__ = ("function", "grid", "block", "smem", "signature", "tails", "maps", "device",
                 "prepared")

    def __init__(self, compiled, functions, prefix, rows_dim, heads, batch, shapes, device):
        name, launch = compiled.entry(prefix)
        self.function = functions[name]
        # Rows of the launch's row dimension per workgroup: a TMA dK/dV
        # kernel (which may also add dQ up: _dkdvdq_) owns box_n keys (its
        # `rows` are the query rows of its Q/dO boxes).
        per_workgroup = (launch.box_n if name.startswith("swba_attention_bwd_dkdv")
                         and "_wgmma_" in name else launch.rows)
        self.grid = (heads, (rows_dim + per_workgroup - 1) // per_workgroup, batch)  # as the lowering's
        self.block = (launch.threads, 1, 1)
        self.smem = launch.smem
        self.device = device
        self.prepared = OrderedDict()
        self.tails = tuple((0, *shape, *_contiguous_strides(shape)) for shape in shapes)
        self.signature = "".join(runtime.memref_signature(len(shape)) for shape in shapes)
        self.maps = ()
        if launch.box_n is not None:
            # A TMA kernel: the maps of q, k, v (boxes of `rows` query rows
            # and `box_n` key rows) and, for the backward, of dout (query
            # rows); a dK/dV kernel that adds dQ up also takes the map of
            # its f32 accumulator (tensor 6, boxes of 64 rows).
            self.maps = ((0, launch.rows), (1, launch.box_n), (2, launch.box_n))
            if "_bwd_" in name:
                self.maps += ((3, launch.rows),)
            if name.startswith("swba_attention_bwd_dkdvdq_"):
                self.maps += ((6, 64),)
            self.signature += "P" * len(self.maps)

    def __call__(self, tensors, stream):
        """Launches on `tensors` (contiguous, of the plan's shapes). The packed
        parameters of the last few tensor sets are kept: a training loop
        gets the same addresses from PyTorch's caching allocator step after
        step, and then a launch is one lookup."""
        self.launch(self.entry(tensors, stream), stream)

    def launch(self, entry, stream):
        """Launches a prepared `entry` on `stream`: the one it was prepared
        for, or one that waits for that stream's work up to now."""
        self.function.launch_packed(self.grid, self.block, entry[0], stream, self.smem)

    def entry(self, tensors, stream):
        """The launch entry of `tensors`, its tensor maps (if new) copied on
        `stream`."""
        key = (tuple([t.data_ptr() for t in tensors]), stream)
        entry = self.prepared.get(key)
        if entry is None:
            entry = self._prepare(tensors, key[0], stream)
            self.prepared[key] = entry
            if len(self.prepared) > _MAX_PREPARED:
                self.prepared.popitem(last=False)
        if _capturing():
            # A CUDA graph keeps the addresses of this launch's tensor maps
            # for every replay: their memory (and the pinned bytes a map
            # made during the capture is copied from at each replay) stays
            # for the life of the process.
            _captured.append(entry)
        return entry

    def _prepare(self, tensors, pointers, stream):
        values = []
        for p, tail in zip(pointers, self.tails):
            values += (p, p)
            values += tail
        # The entry holds the device memory of its tensor maps: the map
        # cache may drop one, and then it must not be reused while this
        # entry can still launch with its address.
        maps = [_tensor_map(tensors[i], box, self.device, stream) for i, box in self.maps]
        values += [m[0] for m in maps]
        return runtime.Params(self.signature, values), maps


def _contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class _Plan:
    """The kernels of one configuration for one set of shapes on one
    device, made on the first call that needs them: a later call with the
    same shapes only allocates its outputs and launches (the host cost of a
    step matters below a few thousand tokens, where it is larger than the
    GPU's)."""

    def __init__(self, q, k, v, block_size, window, scale, options):
        _check(q, k, v)
        chip = chip_for(q.device)
        self.device = q.device
        self.index = q.device.index
        self.dtype = q.dtype
        self.block_size, self.window, self.scale = block_size, window, scale
        self.chip, self.options = chip, options
        b, hq, nq, d = q.shape
        _, hkv, nk, dv = v.shape
        self.shapes = (b, hq, hkv, nq, nk, d, dv)
        self._forward = None
        self._backward = {}  # deterministic? -> the backward's kernels
        self._backward_of = {}  # their KernelConfig -> the same

    def _config(self, grad, deterministic=False):
        b, hq, hkv, nq, nk, d, dv = self.shapes
        options = self.options
        if deterministic or not grad:  # (the option only changes the backward)
            options = " ".join(o for o in options.split()
                               if not o.startswith("grad-fused-dq="))
        return compiler.KernelConfig(
            dtype=_TORCH_DTYPES[self.dtype], head_dim=d, value_dim=dv,
            block_size=int(self.block_size), window=int(self.window),
            scale=float(self.scale), with_lse=True, chip=self.chip, grad=grad,
            options=options)

    def forward(self, q, k, v, out=None):
        """out [B, Hq, Nq, Dv] and the f32 log-sum-exp [B, Hq, Nq]."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        q, k, v = _dense(q), _dense(k), _dense(v)
        if out is None:
            out = torch.empty((b, hq, nq, dv), dtype=self.dtype, device=self.device)
        elif (out.shape != (b, hq, nq, dv) or out.dtype != self.dtype
              or out.device != self.device or not out.is_contiguous()):
            raise ValueError("out must be a contiguous [B, Hq, Nq, Dv] tensor like q")
        lse = torch.empty((b, hq, nq), dtype=torch.float32, device=self.device)
        if out.numel():
            with _on_device(self.index):
                if self._forward is None:
                    compiled, functions = _module(self._config(False), self.device)
                    self._forward = _Kernel(
                        compiled, functions, "swba_attention_fwd", nq, hq, b,
                        ((b, hq, nq, d), (b, hkv, nk, d), (b, hkv, nk, dv),
                         (b, hq, nq, dv), (b, hq, nq)), self.index)
                self._forward((q, k, v, out, lse), _current_stream(self.index))
        return out, lse

    def backward(self, q, k, v, out, dout, lse):
        """dq, dk, dv of `forward`. The lowering's delta kernel (delta =
        rowsum(dout * out)) runs first. By default the dQ and dK/dV kernels
        then depend only on it and run at once: dK/dV on a second stream
        (launched first: its heavier workgroups go out ahead of dQ's), dQ
        on this one, joined back before this returns; every result is
        bitwise reproducible. With the sm_90a lowering option
        grad-fused-dq=true (SWBA_LOWER_OPTIONS), one kernel makes dK and dV
        and adds dQ up into a zeroed f32 buffer with TMA reduce-adds, and a
        last kernel converts that into dq: the order of the additions
        varies, so dq may differ in its last bits, and under
        `torch.use_deterministic_algorithms(True)` the option is dropped. A
        module without a delta kernel, from an older lowering whose dQ
        kernel writes delta, runs dQ then dK/dV."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        # out and lse are the forward's own (contiguous); dout may be any
        # layout (an expanded gradient has zero strides).
        q, k, v, dout = _dense(q), _dense(k), _dense(v), _dense(dout)
        dq, dk, dvv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        delta = torch.empty((b, hq, nq), dtype=torch.float32, device=self.device)
        if q.numel() and k.numel():
            with _on_device(self.index):
                deterministic = torch.are_deterministic_algorithms_enabled()
                kernels = self._backward.get(deterministic)
                if kernels is None:
                    # Both entries share kernels where the options give
                    # them one configuration.
                    config = self._config(True, deterministic)
                    kernels = self._backward_of.get(config)
                    if kernels is None:
                        kernels = self._backward_of[config] = self._backward_kernels(config)
                    self._backward[deterministic] = kernels
                delta_kernel, dq_kernel, dkdv_kernel, convert_kernel = kernels
                stream = _current_stream(self.index)
                if convert_kernel is not None:
                    accum = torch.zeros((b, hq, nq, d), dtype=torch.float32,
                                        device=self.device)
                    delta_kernel((dout, out, delta), stream)
                    dkdv_kernel((q, k, v, dout, lse, delta, accum, dk, dvv), stream)
                    convert_kernel((accum, dq), stream)
                    return dq, dk, dvv
                dq_args = (q, k, v, dout, lse, delta, out, dq)
                dkdv_args = (q, k, v, dout, lse, delta, dk, dvv)
                if delta_kernel is None:
                    dq_kernel(dq_args, stream)
                    dkdv_kernel(dkdv_args, stream)
                else:
                    delta_kernel((dout, out, delta), stream)
                    # Prepared (tensor maps copied) on this stream before the
                    # fork, so the side stream's wait covers the copies too.
                    entry = dkdv_kernel.entry(dkdv_args, stream)
                    side = _side_stream(self.index)
                    with _Fork(self.index, stream, side):
                        dkdv_kernel.launch(entry, side)
                        dq_kernel(dq_args, stream)
        return dq, dk, dvv

    def _backward_kernels(self, config):
        """(delta, dQ, dK/dV, dQ conversion) kernels of `config`; the dQ
        kernel is None where the dK/dV kernel adds dQ up (then there is a
        conversion kernel), the delta kernel None in an older lowering's
        module."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        compiled, functions = _module(config, self.device)
        qs, ks, vs, rows, os_ = (b, hq, nq, d), (b, hkv, nk, d), (b, hkv, nk, dv), (b, hq, nq), \
            (b, hq, nq, dv)

        def has(prefix):
            return any(name.startswith(prefix) for name in compiled.launches)

        def kernel(prefix, rows_dim, heads, shapes):
            return _Kernel(compiled, functions, prefix, rows_dim, heads, b, shapes, self.index)

        delta_kernel = None
        if has("swba_attention_bwd_delta"):
            delta_kernel = kernel("swba_attention_bwd_delta", nq, hq, (os_, os_, rows))
        if has("swba_attention_bwd_dqconvert"):
            return (delta_kernel, None,
                    kernel("swba_attention_bwd_dkdvdq", nk, hkv,
                           (qs, ks, vs, os_, rows, rows, qs, ks, vs)),
                    kernel("swba_attention_bwd_dqconvert", nq, hq, (qs, qs)))
        return (delta_kernel,
                kernel("swba_attention_bwd_dq", nq, hq, (qs, ks, vs, os_, rows, rows, os_, qs)),
                kernel("swba_attention_bwd_dkdv", nk, hkv, (qs, ks, vs, os_, rows, rows, ks, vs)),
                None)


_side_streams: dict = {}  # device index -> torch.cuda.Stream


def _side_stream(index: int) -> int:
    """The raw handle of the device's second stream (made once; PyTorch
    owns it)."""
    found = _side_streams.get(index)
    if found is None:
        found = _side_streams[index] = torch.cuda.Stream(device=index)
    return found.cuda_stream


_thread_events = threading.local()


class _Fork:
    """`with _Fork(index, stream, side)`: `side` waits for `stream`'s work
    so far on entry, and `stream` waits for `side`'s on exit, through two
    events of this thread (so that no other thread records them in
    between). Both waits are on the device; a CUDA graph capture on
    `stream` takes `side` in and joins it back."""

    __slots__ = ("events", "stream", "side")

    def __init__(self, index, stream, side):
        per_device = getattr(_thread_events, "events", None)
        if per_device is None:
            per_device = _thread_events.events = {}
        events = per_device.get(index)
        if events is None:
            events = per_device[index] = (runtime.Event(), runtime.Event())
        self.events, self.stream, self.side = events, stream, side

    def __enter__(self):
        fork = self.events[0]
        fork.record(self.stream)
        fork.wait_on(self.side)

    def __exit__(self, *exc):
        join = self.events[1]
        join.record(self.side)
        join.wait_on(self.stream)


class _on_device:
    """`with torch.cuda.device(index)` when that is not the current device
    already (a kernel belongs to its device's context), and that device's
    context current for the driver calls (`runtime.make_current`); in the
    common case a check that costs about a microsecond."""

    __slots__ = ("index", "previous")

    def __init__(self, index):
        self.index = index

    def __enter__(self):
        self.previous = torch.cuda.current_device()
        if self.previous != self.index:
            torch.cuda.set_device(self.index)
        runtime.make_current(self.index)

    def __exit__(self, *exc):
        if self.previous != self.index:
            torch.cuda.set_device(self.previous)
            runtime.forget_current()


_device_chips: dict = {}


def chip_for(device: torch.device) -> str:
    """The chip `device`'s kernels are compiled for (see the module's doc)."""
    chip = os.environ.get("SWBA_CHIP")
    if chip:
        return chip
    chip = _device_chips.get(device.index)
    if chip is None:
        major, minor = torch.cuda.get_device_capability(device)
        chip = "sm_90a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"
        _device_chips[device.index] = chip
    return chip


_MAX_PLANS = 64
_plans: OrderedDict = OrderedDict()


def _plan(q, k, v, block_size, window, scale) -> _Plan:
    """The plan of this call's shapes and configuration (checked when first
    seen), the most recently used kept."""
    chip = os.environ.get("SWBA_CHIP", "")
    options = os.environ.get("SWBA_LOWER_OPTIONS", "")
    key = (q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.get_device(),
           k.get_device(), v.get_device(), block_size, window, scale, chip, options)
    plan = _plans.get(key)
    if plan is None:
        plan = _Plan(q, k, v, block_size, window, scale, options)
        _plans[key] = plan
        if len(_plans) > _MAX_PLANS:
            _plans.popitem(last=False)
    return plan


def _dense(t):
    """t, or a copy of it, contiguous and 16-byte aligned (as TMA reads it)."""
    if t.is_contiguous() and t.data_ptr() % 16 == 0:
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _check(q, k, v):
    if q.dtype not in _TORCH_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must all be float16 or bfloat16, got "
                        f"{q.dtype}, {k.dtype}, {v.dtype}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D [B, H, N, D]")
    b, hq, nq, d = q.shape
    _, hkv, nk, dv = v.shape
    if k.shape != (b, hkv, nk, d):
        raise ValueError(f"k has shape {tuple(k.shape)}, expected {(b, hkv, nk, d)}")
    if hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({hkv})")
    if nq > nk:
        raise ValueError(f"Nq ({nq}) must not exceed Nk ({nk})")
    if not (q.is_cuda and k.device == q.device and v.device == q.device):
        raise ValueError("q, k, v must be on one CUDA device")


def attention_forward(q, k, v, block_size, window, scale, out=None):
    """out [B, Hq, Nq, Dv] and the f32 log-sum-exp [B, Hq, Nq]."""
    return _plan(q, k, v, block_size, window, scale).forward(q, k, v, out)


def attention_backward(q, k, v, out, dout, lse, block_size, window, scale):
    """dq, dk, dv of `attention_forward` (see `_Plan.backward`: bitwise
    reproducible under `torch.use_deterministic_algorithms(True)`)."""
    return _plan(q, k, v, block_size, window, scale).backward(
        q, k, v, _dense(out), dout, _dense(lse))


def attention(q, k, v, block_size: int, window: int, scale: float | None = None,
              return_lse: bool = False, out=None):
    """`swba.attention` (see `swba.library.attention`): the `swba::attention`
    custom op; eager CUDA calls launch through `attention_forward` and
    `attention_backward` without the dispatcher's round trip."""
    from .library import attention as public

    return public(q, k, v, block_size, window, scale, return_lse, out)
