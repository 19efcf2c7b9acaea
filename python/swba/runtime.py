"""Loads compiled kernels through the CUDA driver API (NVIDIA's cuda-python
bindings) and launches them on a stream."""

from __future__ import annotations

import ctypes
import struct

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
        self._buffers = {}

    def launch(self, grid, block, signature: str, values, stream: int,
               shared_bytes: int = 0):
        """`signature`: the parameters' `struct` format ('P' pointer, 'q'
        int64, native alignment); `values`: the parameters in order.

        The parameters go to the driver the way C passes them: one buffer
        holding every value and an array of pointers into it, both made once
        per signature (the driver copies them at launch, so they are reused),
        filled by one `struct.pack_into`. Handing cuda-python a tuple of
        values and types instead costs about a microsecond per parameter."""
        entry = self._buffers.get(signature)
        if entry is None:
            fmt = struct.Struct("@" + signature)
            buffer = ctypes.create_string_buffer(fmt.size)
            base = ctypes.addressof(buffer)
            offsets, offset = [], 0
            for code in signature:
                size = struct.calcsize("@" + code)
                offset = (offset + size - 1) // size * size
                offsets.append(base + offset)
                offset += size
            pointers = (ctypes.c_void_p * len(signature))(*offsets)
            entry = self._buffers[signature] = (fmt, buffer, pointers)
        fmt, buffer, pointers = entry
        fmt.pack_into(buffer, 0, *values)
        _check(cu.cuLaunchKernel(self.function, *grid, *block, shared_bytes,
                                 cu.CUstream(stream), ctypes.addressof(pointers), 0))


def memref_signature(rank: int) -> str:
    """`struct` codes of the expanded memref descriptor MLIR's GPU lowering
    gives a kernel parameter: allocated and aligned pointers, offset, sizes,
    strides."""
    return "PPq" + "q" * (2 * rank)


def memref_values(tensor) -> list:
    ptr = tensor.data_ptr()
    return [ptr, ptr, 0, *tensor.shape, *tensor.stride()]
