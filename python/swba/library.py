"""The `torch.library` registration of sliding window block attention.

Two custom ops, so that `torch.compile(fullgraph=True)`, `torch.export` and
`torch.library.opcheck` see the attention as one node:

- `torch.ops.swba.attention(q, k, v, block_size, window, scale) -> (out, lse)`
- `torch.ops.swba.attention_backward(q, k, v, out, dout, lse, block_size,
  window, scale) -> (dq, dk, dv)`

and the pair `swba.raising` puts in graphs with symbolic shapes,
`torch.ops.swba.attention_dynamic(q, k, v, program, sizes, scale)` and its
backward, whose block size and window are proven per size at run time.

Each has a fake implementation (shapes and dtypes only, for tracing) and
the forward an autograd formula calling the backward op. On CUDA tensors
they run the kernels compiled by SWBA-MLIR (`swba.ops`); on CPU tensors a
dense float32 reference of the same semantics, meant for tests and for
tracing on machines without a GPU, not for speed.

`attention`, the public entry point, calls the op whenever PyTorch traces
(Dynamo, export, FX proxies, fake or meta tensors) and, in plain eager mode
on CUDA, calls the same kernels through a thin `autograd.Function`: the
dispatcher's round trip to a Python kernel costs microseconds per call that
matter below a few thousand tokens (python/bench/host_op.py measures both).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .compiler import F32_MAX as _F32_MAX
from .compiler import F32_MIN_SUBNORMAL as _F32_MIN_SUBNORMAL
from .compiler import INT64_MAX as _INT64_MAX
from .compiler import default_scale, scale_problem

__all__ = ["attention", "reference_forward", "reference_backward"]

_KERNEL_DTYPES = (torch.float16, torch.bfloat16)
_REFERENCE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check_scalars(block_size, window, scale) -> None:
    if (type(block_size) is int and type(window) is int and 0 < block_size <= _INT64_MAX
            and 0 < window <= _INT64_MAX
            and (scale is None
                 or (type(scale) is float and _F32_MIN_SUBNORMAL <= scale <= _F32_MAX))):
        return  # the common case, in a fraction of a microsecond
    for name, value in (("block_size", block_size), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
        if value > _INT64_MAX:
            raise ValueError(f"{name} must be at most 2**63 - 1, got {value}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, torch.SymFloat)):
            raise TypeError(f"scale must be a float or None, got {type(scale).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        problem = scale_problem(scale)
        if problem:
            raise ValueError(problem)


def _check_tensors(q: Tensor, k: Tensor, v: Tensor) -> None:
    """The op's contract on q, k, v (design: shapes [B, H, N, D], GQA,
    Nq <= Nk, one device, one dtype the device's implementation takes)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [B, H, N, D], got shape {tuple(t.shape)}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    b, hq, nq, d = q.shape
    _, hkv, nk, dv = v.shape
    if tuple(k.shape) != (b, hkv, nk, d):
        raise ValueError(f"k has shape {tuple(k.shape)}, expected {(b, hkv, nk, d)} "
                         f"(q is {tuple(q.shape)}, v is {tuple(v.shape)})")
    if hkv < 1 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({hkv})")
    if nq > nk:
        raise ValueError(f"Nq ({nq}) must not exceed Nk ({nk})")
    _check_device(q.dtype, d, dv, q.device)


def _check_device(dtype: torch.dtype, d: int, dv: int, device: torch.device) -> None:
    """What the device's implementation takes: dtype and head dims."""
    if device.type == "cuda":
        if dtype not in _KERNEL_DTYPES:
            raise TypeError(f"on CUDA, q, k, v must be float16 or bfloat16, got {dtype}")
        from . import compiler, ops
        problem = compiler.head_dims_problem(d, dv, ops.chip_for(device))
        if problem:
            raise ValueError(problem)
    elif device.type in ("cpu", "meta"):
        if dtype not in _REFERENCE_DTYPES:
            raise TypeError(f"q, k, v must be float16, bfloat16 or float32, got {dtype}")
    else:
        raise ValueError(f"swba attention runs on CUDA (or CPU, as a reference), not {device}")


def _visible(nq: int, nk: int, block_size: int, window: int, device) -> Tensor:
    """[Nq, Nk] bool, bottom-right aligned (design.md section 1)."""
    qf = (torch.arange(nq, device=device) + (nk - nq)) // block_size
    kf = torch.arange(nk, device=device) // block_size
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < window)


def _expand_kv(x: Tensor, hq: int) -> Tensor:
    return x.repeat_interleave(hq // x.shape[1], dim=1)


def _masked(s: Tensor, block_size: int, window: int, mask: Tensor | None) -> Tensor:
    """Scaled scores [B, Hq, Nq, Nk] masked: by the block window, or by
    `mask` broadcast to them (bool: True where the key is seen; float:
    added)."""
    if mask is None:
        mask = _visible(s.shape[2], s.shape[3], block_size, window, s.device)
    if mask.dtype == torch.bool:
        return s.masked_fill(~mask, float("-inf"))
    return s + mask


def reference_forward(q: Tensor, k: Tensor, v: Tensor, block_size: int, window: int,
                      scale: float, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Dense masked attention in float32: out (q's dtype, contiguous) and
    the float32 log-sum-exp. `mask`, where given, is the mask instead of
    the block window's (`_masked`)."""
    hq = q.shape[1]
    s = _masked((q.float() @ _expand_kv(k, hq).float().transpose(-1, -2)) * scale,
                block_size, window, mask)
    lse = torch.logsumexp(s, dim=-1)
    out = torch.exp(s - lse[..., None]) @ _expand_kv(v, hq).float()
    return out.to(q.dtype).contiguous(), lse.contiguous()


def reference_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dout: Tensor, lse: Tensor,
                       block_size: int, window: int, scale: float,
                       mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv of `reference_forward` in float32 (dk, dv summed over
    each kv head's query heads), in the inputs' dtypes."""
    b, hq, nq, d = q.shape
    hkv, nk, dvd = k.shape[1], k.shape[2], v.shape[3]
    qf, ke, ve = q.float(), _expand_kv(k, hq).float(), _expand_kv(v, hq).float()
    s = _masked((qf @ ke.transpose(-1, -2)) * scale, block_size, window, mask)
    p = torch.exp(s - lse.float()[..., None])
    do = dout.float()
    dvv = p.transpose(-1, -2) @ do
    dp = do @ ve.transpose(-1, -2)
    delta = (do * out.float()).sum(-1, keepdim=True)
    ds = p * (dp - delta)
    dq = (ds @ ke) * scale
    dk = (ds.transpose(-1, -2) @ qf) * scale
    group = hq // hkv
    dk = dk.reshape(b, hkv, group, nk, d).sum(2)
    dvv = dvv.reshape(b, hkv, group, nk, dvd).sum(2)
    return (dq.to(q.dtype).contiguous(), dk.to(k.dtype).contiguous(),
            dvv.to(v.dtype).contiguous())


@torch.library.custom_op("swba::attention", mutates_args=())
def attention_op(q: Tensor, k: Tensor, v: Tensor, block_size: int, window: int,
                 scale: float) -> tuple[Tensor, Tensor]:
    """Sliding window block attention: out [B, Hq, Nq, Dv] (q's dtype) and
    the float32 natural-log sum of exp of the scaled, masked scores
    [B, Hq, Nq]."""
    _check_scalars(block_size, window, scale)
    _check_tensors(q, k, v)
    if q.is_cuda:
        from . import ops
        return ops.attention_forward(q, k, v, block_size, window, scale)
    return reference_forward(q, k, v, block_size, window, scale)


@attention_op.register_fake
def _attention_fake(q, k, v, block_size, window, scale):
    _check_scalars(block_size, window, scale)
    _check_tensors(q, k, v)
    b, hq, nq, _ = q.shape
    return (q.new_empty((b, hq, nq, v.shape[3])),
            q.new_empty((b, hq, nq), dtype=torch.float32))


@torch.library.custom_op("swba::attention_backward", mutates_args=())
def attention_backward_op(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dout: Tensor,
                          lse: Tensor, block_size: int, window: int, scale: float
                          ) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv of `swba::attention` (with GQA, dk and dv sum over each kv
    head's query heads)."""
    if q.is_cuda:
        from . import ops
        return ops.attention_backward(q, k, v, out, dout, lse, block_size, window, scale)
    return reference_backward(q, k, v, out, dout, lse, block_size, window, scale)


@attention_backward_op.register_fake
def _attention_backward_fake(q, k, v, out, dout, lse, block_size, window, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _register_autograd(op, backward_op) -> None:
    """op(q, k, v, *attrs) -> (out, lse): its gradient is backward_op(q, k,
    v, out, dout, lse, *attrs) -> (dq, dk, dv)."""

    def setup_context(ctx, inputs, output):
        q, k, v, *attrs = inputs
        out, lse = output
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.attrs = tuple(attrs)
        # The kernels give no gradient through the log-sum-exp.
        ctx.mark_non_differentiable(lse)

    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = backward_op(q, k, v, out, dout, lse, *ctx.attrs)
        return (dq, dk, dv) + (None,) * len(ctx.attrs)

    op.register_autograd(backward, setup_context=setup_context)


_register_autograd(attention_op, torch.ops.swba.attention_backward)


@torch.library.custom_op("swba::attention_dynamic", mutates_args=())
def attention_dynamic_op(q: Tensor, k: Tensor, v: Tensor, program: str, sizes: list[int],
                         scale: float | None) -> tuple[Tensor, Tensor]:
    """What `swba.raising` puts in place of a masked attention whose shapes
    are dynamic: the mask is program `program` of `swba.raising` (made from
    the graph), evaluated and proven a block window at each new size
    (`sizes`: the symbolic sizes it reads) when first met; then
    `swba::attention` with that size's block size and window. A size where
    it is no block window, or where the kernels do not take the operands,
    runs the mask densely (float32, as the reference). `scale` None: 1 /
    sqrt(D)."""
    from . import raising
    plan = raising.plan_dynamic(program, q, k, v, sizes, scale)
    if plan.bias is None:
        return attention_op(q, k, v, plan.block_size, plan.window, plan.scale)
    return reference_forward(q, k, v, 1, 1, plan.scale, plan.bias)


@attention_dynamic_op.register_fake
def _attention_dynamic_fake(q, k, v, program, sizes, scale):
    b, hq, nq, _ = q.shape
    return (q.new_empty((b, hq, nq, v.shape[3])),
            q.new_empty((b, hq, nq), dtype=torch.float32))


@torch.library.custom_op("swba::attention_dynamic_backward", mutates_args=())
def attention_dynamic_backward_op(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dout: Tensor,
                                  lse: Tensor, program: str, sizes: list[int],
                                  scale: float | None) -> tuple[Tensor, Tensor, Tensor]:
    """dq, dk, dv of `swba::attention_dynamic` (the size's plan, as the
    forward made it)."""
    from . import raising
    plan = raising.plan_dynamic(program, q, k, v, sizes, scale)
    if plan.bias is None:
        return attention_backward_op(q, k, v, out, dout, lse, plan.block_size, plan.window,
                                     plan.scale)
    return reference_backward(q, k, v, out, dout, lse, 1, 1, plan.scale, plan.bias)


@attention_dynamic_backward_op.register_fake
def _attention_dynamic_backward_fake(q, k, v, out, dout, lse, program, sizes, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


_register_autograd(attention_dynamic_op, torch.ops.swba.attention_dynamic_backward)


class _EagerAttention(torch.autograd.Function):
    """The eager CUDA path: the op's kernels without the dispatcher's round
    trip. out is the one output (lse reaches the caller through `lse_box`),
    so autograd tracks no second output."""

    @staticmethod
    def forward(ctx, q, k, v, block_size, window, scale, lse_box):
        from . import ops
        # The plan is kept for the backward: one lookup per step, not two.
        plan = ops.plan_for(q, k, v, block_size, window, scale)
        out, lse = plan.forward(q, k, v)
        ctx.save_for_backward(q, k, v, out)
        ctx.lse, ctx.plan = lse, plan
        ctx.set_materialize_grads(False)
        lse_box.append(lse)
        return out

    @staticmethod
    def backward(ctx, dout):
        if dout is None:
            return (None,) * 7
        q, k, v, out = ctx.saved_tensors
        dq, dk, dv = ctx.plan.backward(q, k, v, out, dout, ctx.lse)
        return dq, dk, dv, None, None, None, None


def _eager_cuda(q, k, v) -> bool:
    return (type(q) is Tensor and type(k) is Tensor and type(v) is Tensor and q.is_cuda
            and not torch.compiler.is_compiling())


def attention(q: Tensor, k: Tensor, v: Tensor, block_size: int, window: int,
              scale: float | None = None, return_lse: bool = False,
              out: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Sliding window block attention.

    Args:
        q: [B, Hq, Nq, D]; k: [B, Hkv, Nk, D]; v: [B, Hkv, Nk, Dv]. float16 or
            bfloat16 on one CUDA device (float32 too on CPU, where a dense
            reference runs). Hq a multiple of Hkv (grouped-query attention),
            Nq <= Nk: query i sits at position i + Nk - Nq.
        block_size: tokens per frame (>= 1); frame(p) = p // block_size.
        window: frames a query sees (>= 1), its own included: a query in
            frame f sees the keys of frames f - window + 1 .. f.
        scale: multiplies the scores; default 1 / sqrt(D) (1 when D = 0).
            Positive and finite in float32, where the kernels apply it.
        return_lse: also return the float32 log-sum-exp [B, Hq, Nq].
        out: a contiguous [B, Hq, Nq, Dv] tensor like q, 16-byte aligned, to
            write into (eager CUDA only, no autograd).

    Returns:
        out [B, Hq, Nq, Dv] in q's dtype, differentiable in q, k and v; with
        return_lse, (out, lse).

    Raises:
        TypeError, ValueError: for arguments outside this contract, before
            anything is compiled or launched.
    """
    _check_scalars(block_size, window, scale)
    eager = _eager_cuda(q, k, v)
    if not eager:
        # Checked here too for errors in the caller's terms rather than the
        # dispatcher's (when traced, once at trace time). The eager path's
        # plans check what they are made for.
        _check_tensors(q, k, v)
    if scale is None:
        scale = default_scale(q.shape[-1])
    if out is not None:
        if not eager:
            raise ValueError("out= is supported in eager mode on CUDA tensors only")
        if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
            raise ValueError("out= takes no part in autograd: call it under torch.no_grad()")
        from . import ops
        o, lse = ops.attention_forward(q, k, v, block_size, window, scale, out)
    elif eager:
        from . import ops
        if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
            box: list = []
            o = _EagerAttention.apply(q, k, v, block_size, window, scale, box)
            lse = box[0]
        else:
            o, lse = ops.attention_forward(q, k, v, block_size, window, scale)
    else:
        o, lse = torch.ops.swba.attention(q, k, v, block_size, window, float(scale))
    return (o, lse) if return_lse else o
