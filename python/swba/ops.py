"""`attention(q, k, v, block_size, window, scale=None)` on CUDA tensors: the
sliding window block attention compiled by SWBA-MLIR, forward and backward
(a `torch.autograd.Function`).

A device's kernels are compiled for the chip `chip_for` names: `SWBA_CHIP`
when set, else sm_90a on compute capability 9.0 (whose forward at head dims
64 and 128 is the TMA + wgmma kernel; SWBA_CHIP=sm_90 keeps the mma.sync one
there) and sm_XY on other devices."""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import torch

from . import compiler, runtime

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16"}
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
_tensor_maps: OrderedDict = OrderedDict()  # key -> (device pointer, its tensor)


def _tensor_map(t, box_rows: int, device: int, stream: int) -> int:
    """Device pointer to the CUtensorMap of the contiguous t [B, H, N, D]
    seen as [B * H][N][D], in boxes of [box_rows][64] (the kernel reads a D
    of 128 as two boxes). A map depends only on t's address, shape and dtype
    and on the box, so the last maps made are kept, least recently used out
    first. They are kept per stream too: the copy that puts a map on the
    device runs on the stream of the kernels that read it, which orders them
    and makes the memory of a dropped map safe to reuse. Not handled: a CUDA
    graph captured with these launches keeps the maps' device pointers, and
    a map dropped from the cache later leaves the graph a dangling pointer."""
    key = (t.data_ptr(), t.shape, t.dtype, box_rows, device, stream)
    found = _tensor_maps.get(key)
    if found is not None:
        _tensor_maps.move_to_end(key)
        return found[0]
    b, h, n, d = t.shape
    size = t.element_size()
    raw = runtime.encode_tensor_map(_TORCH_DTYPES[t.dtype], key[0], (d, n, b * h),
                                    (d * size, n * d * size), (64, box_rows, 1))
    host = torch.frombuffer(bytearray(raw), dtype=torch.uint8).pin_memory()
    on_device = torch.empty(128, dtype=torch.uint8, device=t.device)
    on_device.copy_(host, non_blocking=True)  # the pinned buffer lives until it is done
    _tensor_maps[key] = found = (on_device.data_ptr(), on_device)
    if len(_tensor_maps) > _MAX_TENSOR_MAPS:
        _tensor_maps.popitem(last=False)
    return found[0]


def _launch(config, device, prefix, rows_dim, heads, batch, tensors):
    if torch.cuda.current_device() == device.index:
        _launch_on_current(config, device, prefix, rows_dim, heads, batch, tensors)
    else:  # the kernel belongs to that device's context
        with torch.cuda.device(device):
            _launch_on_current(config, device, prefix, rows_dim, heads, batch, tensors)


def _launch_on_current(config, device, prefix, rows_dim, heads, batch, tensors):
    compiled, functions = _module(config, device)
    name, launch = compiled.entry(prefix)
    stream = torch.cuda.current_stream(device).cuda_stream
    signature = "".join(runtime.memref_signature(t.dim()) for t in tensors)
    values = [x for t in tensors for x in runtime.memref_values(t)]
    if launch.box_n is not None:
        # A TMA kernel: then the maps of q, k, v (boxes of `rows` query rows
        # and `box_n` key rows) and, for the backward, of dout (query rows).
        q, k, v = tensors[:3]
        maps = [_tensor_map(q, launch.rows, device.index, stream),
                _tensor_map(k, launch.box_n, device.index, stream),
                _tensor_map(v, launch.box_n, device.index, stream)]
        if "_bwd_" in name:
            maps.append(_tensor_map(tensors[3], launch.rows, device.index, stream))
        signature += "P" * len(maps)
        values += maps
    # Rows of the launch's row dimension per workgroup: a TMA dK/dV kernel
    # owns box_n keys (its `rows` are the query rows of its Q/dO boxes).
    per_workgroup = launch.box_n if "_dkdv_wgmma_" in name else launch.rows
    grid = (heads, (rows_dim + per_workgroup - 1) // per_workgroup, batch)  # as the lowering's
    functions[name].launch(grid, (launch.threads, 1, 1), signature, values, stream,
                           launch.smem)


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


_configs: dict = {}


def _config(q, v, block_size, window, scale, grad):
    chip = chip_for(q.device)
    options = os.environ.get("SWBA_LOWER_OPTIONS", "")
    key = (chip, options, q.dtype, q.shape[-1], v.shape[-1], block_size, window,
           scale, grad)
    config = _configs.get(key)
    if config is None:
        config = _configs[key] = compiler.KernelConfig(
            dtype=_TORCH_DTYPES[q.dtype], head_dim=q.shape[-1],
            value_dim=v.shape[-1], block_size=int(block_size), window=int(window),
            scale=float(scale), with_lse=True, chip=chip, grad=grad,
            options=options)
    return config


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
    b, hq, nq, _ = q.shape
    dv = v.shape[-1]
    q, k, v = _dense(q), _dense(k), _dense(v)
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
    q, k, v, out, dout = (_dense(t) for t in (q, k, v, out, dout))
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
