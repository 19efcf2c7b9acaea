"""`attention(q, k, v, block_size, window, scale=None)` on CUDA tensors: the
sliding window block attention compiled by SWBA-MLIR, forward and backward
(a `torch.autograd.Function`)."""

from __future__ import annotations

import math

import torch

from . import compiler, runtime

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16"}
_THREADS = 128  # one workgroup: 4 warps, as in the GPU lowering
_modules: dict = {}


def _module(config: compiler.KernelConfig, device: torch.device):
    """(compiled kernel info, {kernel name: runtime.Kernel}) for `config`."""
    key = (config, device.index)
    if key not in _modules:
        compiled = compiler.load_or_compile(config)
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # makes the primary context current
            loaded = runtime.Module(compiled.image)
            _modules[key] = (compiled, {n: loaded.function(n) for n in compiled.rows})
    return _modules[key]


def _launch(config, device, prefix, rows_dim, heads, batch, tensors):
    compiled, functions = _module(config, device)
    name, rows = compiled.entry(prefix)
    signature = "".join(runtime.memref_signature(t.dim()) for t in tensors)
    values = [x for t in tensors for x in runtime.memref_values(t)]
    grid = (heads, (rows_dim + rows - 1) // rows, batch)  # as the lowering's launch
    stream = torch.cuda.current_stream(device).cuda_stream
    if torch.cuda.current_device() == device.index:
        functions[name].launch(grid, (_THREADS, 1, 1), signature, values, stream)
    else:  # the kernel belongs to that device's context
        with torch.cuda.device(device):
            functions[name].launch(grid, (_THREADS, 1, 1), signature, values, stream)


_configs: dict = {}


def _config(q, v, block_size, window, scale, grad):
    key = (q.dtype, q.shape[-1], v.shape[-1], block_size, window, scale, grad)
    config = _configs.get(key)
    if config is None:
        config = _configs[key] = compiler.KernelConfig(
            dtype=_TORCH_DTYPES[q.dtype], head_dim=q.shape[-1],
            value_dim=v.shape[-1], block_size=int(block_size), window=int(window),
            scale=float(scale), with_lse=True, grad=grad)
    return config


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
    b, hq, nq, _ = q.shape
    dv = v.shape[-1]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if out is None:
        out = torch.empty((b, hq, nq, dv), dtype=q.dtype, device=q.device)
    elif (out.shape != (b, hq, nq, dv) or out.dtype != q.dtype
          or out.device != q.device or not out.is_contiguous()):
        raise ValueError("out must be a contiguous [B, Hq, Nq, Dv] tensor like q")
    lse = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
    if out.numel():
        _launch(_config(q, v, block_size, window, scale, False), q.device,
                "swba_attention_fwd", nq, hq, b, (q, k, v, out, lse))
    return out, lse


def attention_backward(q, k, v, out, dout, lse, block_size, window, scale):
    """dq, dk, dv of `attention_forward`: a dQ kernel (which also computes
    delta = rowsum(dout * out)), then a dK/dV kernel; deterministic."""
    b, hq, nq, _ = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    q, k, v, out, dout = (t.contiguous() for t in (q, k, v, out, dout))
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
    if q.numel() and k.numel():
        config = _config(q, v, block_size, window, scale, True)
        _launch(config, q.device, "swba_attention_bwd_dq", nq, hq, b,
                (q, k, v, dout, lse, delta, out, dq))
        _launch(config, q.device, "swba_attention_bwd_dkdv", nk, hkv, b,
                (q, k, v, dout, lse, delta, dk, dv))
    return dq, dk, dv


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, block_size, window, scale):
        out, lse = attention_forward(q, k, v, block_size, window, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (block_size, window, scale)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, out, dout, lse, *ctx.args)
        return dq, dk, dv, None, None, None


def attention(q, k, v, block_size: int, window: int, scale: float | None = None,
              return_lse: bool = False, out=None):
    """q: [B, Hq, Nq, D], k: [B, Hkv, Nk, D], v: [B, Hkv, Nk, Dv], f16 or bf16,
    on one CUDA device; Hq a multiple of Hkv; Nq <= Nk (query i sits at
    position i + Nk - Nq). A query in frame f = pos // block_size sees the keys
    of frames f - window + 1 .. f. Returns out [B, Hq, Nq, Dv] (and, with
    return_lse, the f32 log-sum-exp [B, Hq, Nq]); differentiable in q, k, v.
    `out`, when given (no autograd then), is a contiguous tensor of that shape
    and dtype to write into."""
    _check(q, k, v)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if out is not None or not torch.is_grad_enabled() or not (
            q.requires_grad or k.requires_grad or v.requires_grad):
        o, lse = attention_forward(q, k, v, block_size, window, scale, out)
    else:
        o, lse = _Attention.apply(q, k, v, block_size, window, scale)
    return (o, lse) if return_lse else o
