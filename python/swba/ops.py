"""`attention(q, k, v, block_size, window, scale=None)` on CUDA tensors: the
sliding window block attention forward compiled by SWBA-MLIR."""

from __future__ import annotations

import math

import torch

from . import compiler, runtime

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16"}
_THREADS = 128  # one workgroup: 4 warps, as in the GPU lowering
_kernels: dict = {}


def _kernel(config: compiler.KernelConfig, device: torch.device):
    key = (config, device.index)
    if key not in _kernels:
        compiled = compiler.load_or_compile(config)
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # makes the primary context current
            _kernels[key] = (runtime.Kernel(compiled.image, compiled.name),
                             compiled.block_m)
    return _kernels[key]


def attention(q, k, v, block_size: int, window: int, scale: float | None = None,
              return_lse: bool = False, out=None):
    """q: [B, Hq, Nq, D], k: [B, Hkv, Nk, D], v: [B, Hkv, Nk, Dv], f16 or bf16,
    on one CUDA device; Hq a multiple of Hkv; Nq <= Nk (query i sits at
    position i + Nk - Nq). A query in frame f = pos // block_size sees the keys
    of frames f - window + 1 .. f. Returns out [B, Hq, Nq, Dv] (and, with
    return_lse, the f32 log-sum-exp [B, Hq, Nq])."""
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
    if scale is None:
        scale = 1.0 / math.sqrt(d)

    config = compiler.KernelConfig(
        dtype=_TORCH_DTYPES[q.dtype], head_dim=d, value_dim=dv,
        block_size=int(block_size), window=int(window), scale=float(scale),
        with_lse=True)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if out is None:
        out = torch.empty((b, hq, nq, dv), dtype=q.dtype, device=q.device)
    elif (out.shape != (b, hq, nq, dv) or out.dtype != q.dtype
          or out.device != q.device or not out.is_contiguous()):
        raise ValueError("out must be a contiguous [B, Hq, Nq, Dv] tensor like q")
    lse = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
    if out.numel() == 0:
        return (out, lse) if return_lse else out

    kernel, block_m = _kernel(config, q.device)
    args = []
    for t in (q, k, v, out, lse):
        args += runtime.memref_args(t)
    grid = (hq, (nq + block_m - 1) // block_m, b)  # as the lowering's launch
    kernel.launch(grid, (_THREADS, 1, 1), args,
                  torch.cuda.current_stream(q.device).cuda_stream)
    return (out, lse) if return_lse else out
