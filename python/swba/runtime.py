"""Loads compiled kernels through the CUDA driver API (NVIDIA's cuda-python
bindings) and launches them on a stream."""

from __future__ import annotations

import ctypes

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


class Module:
    """A cubin (or PTX, compiled by the driver on load) in the current
    context."""

    def __init__(self, image: bytes):
        self.module = _check(cu.cuModuleLoadData(image))

    def function(self, name: str) -> "Kernel":
        return Kernel(_check(cu.cuModuleGetFunction(self.module, name.encode())))


class Kernel:
    def __init__(self, function):
        self.function = function
        self._layouts = {}

    def launch(self, grid, block, args, stream: int, shared_bytes: int = 0):
        """`args`: a list of (value, ctypes type) in the kernel's order.

        The parameters go to the driver the way C passes them: one buffer
        holding every value (a ctypes structure whose layout is built once
        per signature) and an array of pointers into it. This costs a few
        microseconds, where handing cuda-python a tuple of values and types
        costs about a microsecond per parameter."""
        types = tuple(t for _, t in args)
        layout = self._layouts.get(types)
        if layout is None:
            struct = type("Params", (ctypes.Structure,),
                          {"_fields_": [(f"a{i}", t) for i, t in enumerate(types)]})
            offsets = [getattr(struct, f"a{i}").offset for i in range(len(types))]
            layout = self._layouts[types] = (struct, offsets,
                                             ctypes.c_void_p * len(types))
        struct, offsets, array = layout
        params = struct(*(v for v, _ in args))
        base = ctypes.addressof(params)
        pointers = array(*(base + o for o in offsets))
        _check(cu.cuLaunchKernel(self.function, *grid, *block, shared_bytes,
                                 cu.CUstream(stream), ctypes.addressof(pointers), 0))


def memref_args(tensor) -> list:
    """The expanded memref descriptor MLIR's GPU lowering gives a kernel
    parameter: allocated and aligned pointers, offset, sizes, strides."""
    ptr = tensor.data_ptr()
    args = [(ptr, ctypes.c_void_p), (ptr, ctypes.c_void_p), (0, ctypes.c_int64)]
    args += [(int(s), ctypes.c_int64) for s in tensor.shape]
    args += [(int(s), ctypes.c_int64) for s in tensor.stride()]
    return args
