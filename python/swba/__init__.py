"""SWBA-MLIR from Python: sliding window block attention kernels compiled by
swba-opt (`attention`, needs PyTorch and a CUDA device) and the numpy
reference of the op's semantics (`swba.reference`)."""


def __getattr__(name):
    # PyTorch is imported only when the GPU entry point is asked for, so the
    # compiler and the reference work on machines without it.
    if name == "attention":
        from .ops import attention

        return attention
    raise AttributeError(name)
