"""Stand-ins for torch and NVIDIA's cuda-python driver bindings that record
what python/swba/ops.py asks of them, so that its launch path (plans, grids,
buffers, tensor maps, parameters, streams) runs without a GPU or torch.
`install()` puts them in sys.modules: only for a process of its own, never
next to the real torch."""

import contextlib
import itertools
import math
import sys
import types

calls = []  # what was asked, in order: (kind, ...)
capturing = [False]  # whether the current stream is capturing a CUDA graph


class _Enum:
    """Any attribute is a name: the recorded calls show which one was
    passed."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return f"{self._name}.{attr}"


def _driver():
    cu = types.ModuleType("cuda.bindings.driver")
    cu.CUresult = types.SimpleNamespace(CUDA_SUCCESS="ok")
    for enum in ("CUtensorMapDataType", "CUtensorMapSwizzle", "CUtensorMapL2promotion",
                 "CUtensorMapFloatOOBfill", "CUtensorMapInterleave",
                 "CUfunction_attribute", "CUevent_flags", "CUstreamCaptureMode"):
        setattr(cu, enum, _Enum(enum.removeprefix("CU")))
    cu.cuuint64_t = cu.cuuint32_t = int
    cu.CUstream = int
    events = itertools.count(1)

    def record(kind):
        def call(*args):
            calls.append((kind, *args))
            return ("ok",)
        return call

    def encode(dtype, rank, ptr, dims, strides, box, elements, *modes):
        calls.append(("tensor_map", dtype, ptr, tuple(dims), tuple(strides), tuple(box),
                      modes))
        return ("ok", types.SimpleNamespace(opaque=[0] * 16))

    def launch(function, gx, gy, gz, bx, by, bz, smem, stream, params, extra):
        calls.append(("launch", function, (gx, gy, gz), (bx, by, bz), smem, stream))
        return ("ok",)

    def launch_ex(config, function, params, extra):
        # (Only programmatic stream serialization is asked for this way.)
        assert config.numAttrs == 1 and config.attrs[0].id == (
            "CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION")
        assert config.attrs[0].value.programmaticStreamSerializationAllowed == 1
        calls.append(("early_start", function))
        return launch(function, config.gridDimX, config.gridDimY, config.gridDimZ,
                      config.blockDimX, config.blockDimY, config.blockDimZ,
                      config.sharedMemBytes, config.hStream, params, extra)

    cu.cuModuleLoadData = lambda image: ("ok", "module")
    cu.cuModuleGetFunction = lambda module, name: ("ok", name.decode())
    cu.cuFuncSetAttribute = record("allow_shared")
    cu.cuLaunchKernel = launch
    cu.cuLaunchKernelEx = launch_ex
    cu.CUlaunchConfig = types.SimpleNamespace
    cu.CUlaunchAttribute = lambda: types.SimpleNamespace(
        id=None, value=types.SimpleNamespace(programmaticStreamSerializationAllowed=0))
    cu.CUlaunchAttributeID = _Enum("CUlaunchAttributeID")
    cu.cuTensorMapEncodeTiled = encode
    cu.cuEventCreate = lambda flags: ("ok", next(events))
    cu.cuEventRecord = record("event_record")
    cu.cuStreamWaitEvent = lambda stream, event, flags: record("stream_wait")(stream, event)
    cu.cuDeviceGet = lambda index: ("ok", index)
    cu.cuDevicePrimaryCtxRetain = lambda device: ("ok", 1)
    cu.cuCtxGetCurrent = lambda: ("ok", 1)
    cu.cuCtxSetCurrent = lambda context: ("ok",)
    slabs = itertools.count(1 << 40, 1 << 20)
    cu.cuMemAlloc = lambda size: ("ok", next(slabs))
    cu.cuMemcpyHtoDAsync = lambda dst, src, size, stream: record("map_copy")(dst, size, stream)
    cu.cuThreadExchangeStreamCaptureMode = lambda mode: ("ok", mode)
    cu.CUstream_flags = types.SimpleNamespace(
        CU_STREAM_NON_BLOCKING=types.SimpleNamespace(value=1))
    cu.cuStreamCreate = lambda flags: ("ok", 3)  # the runtime's copy stream
    cu.cuStreamSynchronize = record("stream_sync")
    return cu


class DType:
    def __init__(self, name, size):
        self.name, self.size = name, size

    def __repr__(self):
        return f"torch.{self.name}"


class Device:
    type = "cuda"

    def __init__(self, kind="cuda", index=0):
        self.index = index

    def __eq__(self, other):
        return isinstance(other, Device) and other.index == self.index

    def __hash__(self):
        return self.index


_addresses = itertools.count(1 << 20, 1 << 20)


class Tensor:
    """A contiguous device tensor: shape, dtype and an address."""

    requires_grad = False
    is_cuda = True

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.device = tuple(shape), dtype, Device()
        self._address = next(_addresses)

    def data_ptr(self):
        return self._address

    def stride(self):
        strides, step = [], 1
        for size in reversed(self.shape):
            strides.append(step)
            step *= size
        return tuple(reversed(strides))

    def is_contiguous(self):
        return True

    def element_size(self):
        return self.dtype.size

    def numel(self):
        return math.prod(self.shape)

    def dim(self):
        return len(self.shape)

    def get_device(self):
        return 0

    def pin_memory(self):
        return self

    def copy_(self, other, non_blocking=False):
        return self


def _torch():
    torch = types.ModuleType("torch")
    torch.float16, torch.bfloat16 = DType("float16", 2), DType("bfloat16", 2)
    torch.float32, torch.uint8 = DType("float32", 4), DType("uint8", 1)
    torch.int32 = DType("int32", 4)

    def make(kind):
        def new(shape, dtype=None, device=None):
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            calls.append((kind, shape, dtype))
            return Tensor(shape, dtype)
        return new

    torch.empty, torch.zeros = make("empty"), make("zeros")
    torch.empty_like = lambda t: Tensor(t.shape, t.dtype)
    torch.frombuffer = lambda data, dtype: Tensor((len(data),), dtype)
    torch.device = Device
    torch.is_grad_enabled = lambda: False
    torch.are_deterministic_algorithms_enabled = lambda: False
    torch.autograd = types.SimpleNamespace(Function=object)
    torch.cuda = types.SimpleNamespace(
        device=lambda device: contextlib.nullcontext(),
        current_stream=lambda device=None: types.SimpleNamespace(cuda_stream=1),
        current_device=lambda: 0, set_device=lambda index: None,
        get_device_capability=lambda device: (9, 0),
        get_device_properties=lambda device: types.SimpleNamespace(
            multi_processor_count=132),
        is_current_stream_capturing=lambda: capturing[0],
        Stream=lambda device=None: types.SimpleNamespace(cuda_stream=2))
    torch._C = types.SimpleNamespace(_cuda_getCurrentRawStream=lambda index: 1,
                                     _cuda_isCurrentStreamCapturing=lambda: capturing[0])
    return torch


MAIN_STREAM, SIDE_STREAM = 1, 2


def install():
    """Fake torch and cuda.bindings.driver in sys.modules; returns torch."""
    driver = _driver()
    cuda = types.ModuleType("cuda")
    cuda.bindings = types.ModuleType("cuda.bindings")
    cuda.bindings.driver = driver
    torch = _torch()
    sys.modules.update({"cuda": cuda, "cuda.bindings": cuda.bindings,
                        "cuda.bindings.driver": driver, "torch": torch})
    return torch
