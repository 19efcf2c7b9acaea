"""Loads compiled kernels through the CUDA driver API (NVIDIA's cuda-python
bindings) and launches them on a stream."""

from __future__ import annotations

import ctypes
import struct
import threading

try:
    from cuda.bindings import driver as cu
except ImportError:  # cuda-python before 12.6
    from cuda import cuda as cu


def _check(result):
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cu.CUresult.CUDA_SUCCESS:
        _, name = cu.cuGetErrorName(err)
        raise RuntimeError(f"CUDA driver error {name.decode() if name else err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


_thread = threading.local()


def make_current(device_index: int):
    """Makes the device's primary context (the one PyTorch uses) current in
    this thread, for the driver calls that follow. A thread that has made no
    CUDA runtime call yet, such as the autograd engine's device thread
    before a backward's first launch, has no current context, and
    cuModuleLoadData or cuLaunchKernel there fail with
    CUDA_ERROR_INVALID_CONTEXT. Checked with the driver once per thread and
    device; `forget_current` drops that memory when the thread moves to
    another device."""
    if getattr(_thread, "device", None) == device_index:
        return
    device = _check(cu.cuDeviceGet(device_index))
    primary = _check(cu.cuDevicePrimaryCtxRetain(device))
    if int(_check(cu.cuCtxGetCurrent())) != int(primary):
        _check(cu.cuCtxSetCurrent(primary))
    # The reference taken by Retain is kept: PyTorch holds the primary
    # context for the life of the process anyway.
    _thread.device = device_index


def forget_current():
    _thread.device = None


class Module:
    """A cubin (or PTX, compiled by the driver on load) in the current
    context."""

    def __init__(self, image: bytes):
        self.module = _check(cu.cuModuleLoadData(image))

    def function(self, name: str) -> "Kernel":
        return Kernel(_check(cu.cuModuleGetFunction(self.module, name.encode())), name)


class Kernel:
    def __init__(self, function, name: str = ""):
        self.function = function
        self.name = name
        self._configs = {}  # (grid, block, shared bytes, stream) -> CUlaunchConfig

    def allow_shared(self, nbytes: int):
        """Lets launches use `nbytes` of dynamic shared memory. Dynamic and
        static shared memory together above 48 KiB need an opt-in (once,
        before the first launch); the kernels' static part is not known here,
        so every kernel with dynamic shared memory opts in."""
        if nbytes > 0:
            _check(cu.cuFuncSetAttribute(
                self.function,
                cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                nbytes))

    def launch_packed(self, grid, block, params: "Params", stream: int,
                      shared_bytes: int = 0, early: bool = False):
        """Launches on `stream` with the parameters packed in `params`. With
        `early`, the kernel may start while the kernel before it on the
        stream ends (programmatic stream serialization): it must wait for
        that one (griddepcontrol.wait) before it reads its results."""
        if not early:
            _check(cu.cuLaunchKernel(self.function, *grid, *block, shared_bytes,
                                     cu.CUstream(stream), params.address, 0))
            return
        # (A launch configuration is a few driver objects: made once per
        # grid and stream, as a training loop launches the same again.)
        key = (tuple(grid), tuple(block), shared_bytes, stream)
        config = self._configs.get(key)
        if config is None:
            config = cu.CUlaunchConfig()
            config.gridDimX, config.gridDimY, config.gridDimZ = grid
            config.blockDimX, config.blockDimY, config.blockDimZ = block
            config.sharedMemBytes = shared_bytes
            config.hStream = cu.CUstream(stream)
            config.attrs = [_early_start_attribute()]
            config.numAttrs = 1
            if len(self._configs) >= 64:
                self._configs.clear()
            self._configs[key] = config
        _check(cu.cuLaunchKernelEx(config, self.function, params.address, 0))


_early_start = None


def _early_start_attribute():
    """The launch attribute that lets a kernel start while the one before
    it on its stream ends (made once)."""
    global _early_start
    if _early_start is None:
        attribute = cu.CUlaunchAttribute()
        attribute.id = (cu.CUlaunchAttributeID
                        .CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
        attribute.value.programmaticStreamSerializationAllowed = 1
        _early_start = attribute
    return _early_start


class Params:
    """A kernel's parameters the way C passes them to cuLaunchKernel: one
    buffer holding every value (`struct` format `signature`: 'P' pointer, 'q'
    int64, native alignment) and an array of pointers into it. The driver
    copies them at launch, so one Params can launch any number of times.
    Handing cuda-python a tuple of values and types instead costs about a
    microsecond per parameter."""

    __slots__ = ("buffer", "pointers", "address")

    def __init__(self, signature: str, values):
        fmt = _formats.get(signature)
        if fmt is None:
            fmt = _formats[signature] = struct.Struct("@" + signature)
        self.buffer = ctypes.create_string_buffer(fmt.size)
        fmt.pack_into(self.buffer, 0, *values)
        base = ctypes.addressof(self.buffer)
        self.pointers = (ctypes.c_void_p * len(signature))(
            *(base + offset for offset in _offsets(signature)))
        self.address = ctypes.addressof(self.pointers)


_formats: dict = {}
_offset_lists: dict = {}


def _offsets(signature: str) -> list:
    found = _offset_lists.get(signature)
    if found is None:
        found, offset = [], 0
        for code in signature:
            size = struct.calcsize("@" + code)
            offset = (offset + size - 1) // size * size
            found.append(offset)
            offset += size
        _offset_lists[signature] = found
    return found


class Event:
    """A CUDA event without timing, in the current context, for ordering
    one stream after another on the device."""

    def __init__(self):
        self.event = _check(cu.cuEventCreate(cu.CUevent_flags.CU_EVENT_DISABLE_TIMING))

    def record(self, stream: int):
        _check(cu.cuEventRecord(self.event, cu.CUstream(stream)))

    def wait_on(self, stream: int):
        """`stream`'s later work waits for what the last `record` covered."""
        _check(cu.cuStreamWaitEvent(cu.CUstream(stream), self.event, 0))


class MapSlot:
    """128 bytes of device memory for one CUtensorMap, from the driver
    rather than PyTorch's allocator: a map copied while a CUDA graph is
    captured would otherwise live in the graph's private pool, which
    `torch.compile(mode="reduce-overhead")` requires to hold only the
    graph's outputs. Slots come from slabs that are never freed. A slot goes
    back, when its last reference is dropped, to the free list of the
    stream its map was copied on: a later copy into it on that stream is
    ordered after every kernel that read it there (and a kernel that read it
    on a second stream was joined back into that stream).

    A map made while a graph is `captured` goes into a fresh slot that never
    goes back (the graph may replay with it for good), copied at once on a
    stream of the runtime's own rather than on the capturing stream: a copy
    there would become a node of the graph, run again at every replay (a
    microsecond or two each, a few percent of a short training step), and
    leave the slot unwritten until the graph first replays."""

    __slots__ = ("address", "stream", "__weakref__")
    _free: dict = {}  # (device, stream) -> addresses
    _fresh: dict = {}  # device -> addresses for maps made during a capture
    _copy_streams: dict = {}  # device -> the runtime's own stream
    _lock = threading.Lock()
    _SLAB = 256  # slots per cuMemAlloc

    def __init__(self, device: int, stream: int, host_address: int,
                 captured: bool = False):
        with MapSlot._lock:
            free = (MapSlot._fresh.setdefault(device, []) if captured
                    else MapSlot._free.setdefault((device, stream), []))
            if not free:
                free.extend(_allocate_slab(MapSlot._SLAB))
            self.address = free.pop()
        if captured:
            self.stream = None
            _copy_outside_capture(device, self.address, host_address)
            return
        self.stream = (device, stream)
        _check(cu.cuMemcpyHtoDAsync(self.address, host_address, 128, cu.CUstream(stream)))

    def __del__(self):
        if self.stream is None:
            return  # (a captured graph's: never reused)
        with MapSlot._lock:
            MapSlot._free[self.stream].append(self.address)


def _copy_outside_capture(device: int, address: int, host_address: int):
    """Copies 128 bytes from pinned host memory to `address` now, on a
    non-blocking stream of the runtime's own (made once per device in the
    current context), while this thread's stream may be capturing: in the
    relaxed capture mode, as _allocate_slab."""
    relaxed = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
    previous = _check(cu.cuThreadExchangeStreamCaptureMode(relaxed))
    try:
        with MapSlot._lock:
            stream = MapSlot._copy_streams.get(device)
            if stream is None:
                stream = MapSlot._copy_streams[device] = _check(cu.cuStreamCreate(
                    cu.CUstream_flags.CU_STREAM_NON_BLOCKING.value))
        _check(cu.cuMemcpyHtoDAsync(address, host_address, 128, stream))
        _check(cu.cuStreamSynchronize(stream))
    finally:
        _check(cu.cuThreadExchangeStreamCaptureMode(previous))


def _allocate_slab(slots: int) -> list:
    """Addresses of `slots` 128-byte slots (64-byte aligned, as TMA needs)
    in one new allocation of the current context. cuMemAlloc is not allowed
    in a thread whose stream is capturing in the global mode, so it runs in
    the relaxed mode, as PyTorch's allocator does."""
    relaxed = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
    previous = _check(cu.cuThreadExchangeStreamCaptureMode(relaxed))
    try:
        base = int(_check(cu.cuMemAlloc(128 * slots)))
    finally:
        _check(cu.cuThreadExchangeStreamCaptureMode(previous))
    return [base + 128 * i for i in reversed(range(slots))]


def memref_signature(rank: int) -> str:
    """`struct` codes of the expanded memref descriptor MLIR's GPU lowering
    gives a kernel parameter: allocated and aligned pointers, offset, sizes,
    strides."""
    return "PPq" + "q" * (2 * rank)


def memref_values(tensor) -> list:
    ptr = tensor.data_ptr()
    return [ptr, ptr, 0, *tensor.shape, *tensor.stride()]


_TENSOR_MAP_TYPES = {
    "f16": cu.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    "bf16": cu.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
    "f32": cu.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
}
# The tensor map modes by the names nvgpu gives them (as the launch
# manifest carries them).
_SWIZZLES = {
    "none": cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_NONE,
    "swizzle_32b": cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_32B,
    "swizzle_64b": cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_64B,
    "swizzle_128b": cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
}
_L2_PROMOTIONS = {
    "none": cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_NONE,
    "l2promo_64b": cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
    "l2promo_128b": cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
    "l2promo_256b": cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
}
_OOB_FILLS = {
    "zero": cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
    "nan": cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA,
}
_INTERLEAVES = {
    "none": cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
    "interleave_16b": cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_16B,
    "interleave_32b": cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_32B,
}


def encode_tensor_map(spec, ptr: int, dims, strides, box) -> bytes:
    """The 128 bytes of a tiled CUtensorMap for the tensor at `ptr`, with
    the element type and modes of `spec` (a compiler.TensorMap): `dims` and
    `box` innermost first, `strides` in bytes for every dimension but the
    innermost. The kernel reads it from global memory, where it must sit
    64-byte aligned."""
    u64, u32 = cu.cuuint64_t, cu.cuuint32_t  # cuda-bindings 13 rejects plain ints
    tensor_map = _check(cu.cuTensorMapEncodeTiled(
        _TENSOR_MAP_TYPES[spec.element_type], len(dims), ptr,
        [u64(d) for d in dims], [u64(s) for s in strides],
        [u32(b) for b in box], [u32(1)] * len(dims),
        _INTERLEAVES[spec.interleave], _SWIZZLES[spec.swizzle],
        _L2_PROMOTIONS[spec.l2_promotion], _OOB_FILLS[spec.oob_fill]))
    return struct.pack("<16Q", *(int(x) for x in tensor_map.opaque))
