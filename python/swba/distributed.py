"""Sliding window block attention over a sequence split across processes
(context parallelism with a halo instead of a ring).

Each rank of a `torch.distributed` group holds a contiguous run of the
sequence's tokens of q, k and v (rank 0 the first tokens; runs may differ in
length and need not start or end on a frame edge). A query in frame f sees
the frames f - window + 1 .. f whole, so a rank's queries need, besides its
own keys, the keys from the start of the window of its first query (a halo of
up to window * block_size - 1 keys before the run, possibly from several
ranks) and, when its run ends inside a frame, the rest of that frame (up to
block_size - 1 keys after it). `attention` exchanges exactly those rows with
point-to-point ops (`batch_isend_irecv`), computes the queries that need no
halo while the halo is in flight, then the rest; its backward returns the
halo's dK/dV contributions to their owners, where they are added, and
computes the interior while those are in flight.

Every piece is one SWBA computation whose first key starts a frame and whose
queries end where its keys end (queries padded with zero rows up to the end
of a partial frame), i.e. what the op's bottom-right alignment expresses. On
CUDA tensors the pieces run on `swba.ops.attention_forward` /
`attention_backward`; on CPU tensors on a plain masked attention in torch with
explicit query and key positions (`reference_attention`), through the same
padding, so the halo logic runs under the gloo backend without a GPU.
The layout arithmetic is `swba.halo`'s; `kernel_configs` lists the kernels
the pieces ask for, to compile ahead of time for GPUs without swba-opt.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import halo
from .compiler import default_scale

__all__ = ["attention", "reference_attention", "kernel_configs"]

kernel_configs = halo.kernel_configs


def reference_attention(q, k, v, block_size: int, window: int, scale: float,
                        q_start: int = 0, k_start: int = 0):
    """Masked attention with explicit positions: query row i sits at
    q_start + i, key row j at k_start + j (in frames of block_size tokens);
    GQA by repeating k and v. Computes in float32 at least; returns out (in
    q's dtype) and the log-sum-exp [B, Hq, Nq] (float32 or float64)."""
    acc = torch.promote_types(q.dtype, torch.float32)
    group = q.shape[1] // k.shape[1]
    kf = k.to(acc).repeat_interleave(group, dim=1)
    vf = v.to(acc).repeat_interleave(group, dim=1)
    qf = (torch.arange(q.shape[2], device=q.device) + q_start) // block_size
    kfr = (torch.arange(k.shape[2], device=q.device) + k_start) // block_size
    visible = (kfr[None, :] <= qf[:, None]) & (qf[:, None] - kfr[None, :] < window)
    s = torch.matmul(q.to(acc), kf.transpose(-1, -2)) * scale
    s = s.masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    out = torch.matmul(torch.exp(s - lse[..., None]), vf)
    return out.to(q.dtype), lse


def _layout(n: int, device, group, block_size: int, window: int,
            lengths=None) -> halo.Layout:
    world = dist.get_world_size(group)
    if lengths is None:
        gathered = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
        dist.all_gather(gathered, torch.tensor([n], dtype=torch.int64, device=device),
                        group=group)
        lengths = [int(x.item()) for x in gathered]
    lengths = [int(x) for x in lengths]
    if len(lengths) != world or lengths[dist.get_rank(group)] != n:
        raise ValueError(f"shard_lengths {lengths} do not match {world} ranks with "
                         f"{n} tokens on this one")
    return halo.layout(lengths, dist.get_rank(group), block_size, window)


def _exchange(layout: halo.Layout, group, rows_of, new_buffer, reverse=False):
    """Posts the point-to-point ops of a halo exchange and returns the
    pending requests and the receive buffers with their position ranges (in
    reverse, several peers send gradients of the same rows).
    Forward: a rank sends each peer the rows of its tokens the peer needs and
    receives the rows it needs. Reverse: the same transfers backwards (halo
    gradients go home). rows_of(a, b) gives the rows of positions [a, b) to
    send, new_buffer(length) an empty receive buffer."""
    me = layout.rank

    def global_rank(r):
        return r if group is None else dist.get_global_rank(group, r)

    ops, received = [], []
    for other in range(len(layout.starts)):
        if other == me:
            continue
        send = layout.transfers(other, me) if reverse else layout.transfers(me, other)
        recv = layout.transfers(me, other) if reverse else layout.transfers(other, me)
        if send[0] < send[1]:
            ops.append(dist.P2POp(dist.isend, rows_of(*send).contiguous(),
                                  global_rank(other), group))
        if recv[0] < recv[1]:
            received.append((recv, new_buffer(recv[1] - recv[0])))
            ops.append(dist.P2POp(dist.irecv, received[-1][1], global_rank(other), group))
    return (dist.batch_isend_irecv(ops) if ops else []), received


def _wait(requests):
    for request in requests:
        request.wait()


def _reference_forward(q, k, v, block_size, window, scale):
    """The op's semantics (bottom-right aligned) on CPU tensors."""
    return reference_attention(q, k, v, block_size, window, scale,
                               q_start=k.shape[2] - q.shape[2])


def _reference_backward(q, k, v, out, dout, lse, block_size, window, scale):
    with torch.enable_grad():
        qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
        o, _ = _reference_forward(qg, kg, vg, block_size, window, scale)
        return torch.autograd.grad(o, (qg, kg, vg), dout)


def _kernels(x):
    """Bottom-right aligned forward and backward for x's device."""
    if x.is_cuda:
        from . import ops
        return ops.attention_forward, ops.attention_backward
    return _reference_forward, _reference_backward


def _pad_rows(x, pad):
    if not pad:
        return x
    return torch.cat([x, x.new_zeros(*x.shape[:2], pad, *x.shape[3:])], dim=2)


def _piece_forward(q, k, v, block_size, window, scale, q_start, k_start):
    """One piece: queries at positions q_start.., keys at k_start.., a frame
    start, the keys ending with the last query's frame (or the sequence).
    Zero query rows up to the keys' end make it the op's bottom-right
    alignment; their outputs are dropped."""
    assert k_start % block_size == 0
    pad = k_start + k.shape[2] - (q_start + q.shape[2])
    forward, _ = _kernels(q)
    out, lse = forward(_pad_rows(q, pad).contiguous(), k.contiguous(), v.contiguous(),
                       block_size, window, scale)
    n = q.shape[2]
    return out[:, :, :n], lse[:, :, :n]


def _piece_backward(q, k, v, out, dout, lse, block_size, window, scale, q_start, k_start):
    pad = k_start + k.shape[2] - (q_start + q.shape[2])
    _, backward = _kernels(q)
    # Zero dout rows give the padded queries no part in dk and dv.
    q, out, dout, lse = (_pad_rows(x, pad).contiguous() for x in (q, out, dout, lse))
    dq, dk, dv = backward(q, k.contiguous(), v.contiguous(), out, dout, lse,
                          block_size, window, scale)
    return dq[:, :, :q.shape[2] - pad], dk, dv


class _DistributedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, block_size, window, scale, group, lengths):
        layout = _layout(q.shape[2], q.device, group, block_size, window, lengths)
        s, e, d = layout.start, layout.end, k.shape[3]
        lo, hi = layout.needed(layout.rank)
        # k and v travel together, one message per peer.
        kv = torch.cat([k, v], dim=3)
        requests, received = _exchange(
            layout, group, lambda a, b: kv[:, :, a - s:b - s],
            lambda n: kv.new_empty(kv.shape[0], kv.shape[1], n, kv.shape[3]))

        out = q.new_empty(*q.shape[:3], v.shape[3])
        lse = None
        interior, edges = layout.pieces()

        def run(q0, q1, keys, keys_start):
            nonlocal lse
            k0, k1 = layout.keys_for(q0, q1)
            o, l = _piece_forward(q[:, :, q0 - s:q1 - s],
                                  keys[:, :, k0 - keys_start:k1 - keys_start, :d],
                                  keys[:, :, k0 - keys_start:k1 - keys_start, d:],
                                  block_size, window, scale, q0, k0)
            if lse is None:
                lse = l.new_empty(q.shape[:3])
            out[:, :, q0 - s:q1 - s] = o
            lse[:, :, q0 - s:q1 - s] = l

        if interior:
            run(*interior, kv, s)
        _wait(requests)
        parts = sorted(received + [((s, e), kv)], key=lambda x: x[0][0])
        kv_ext = torch.cat([t for _, t in parts], dim=2) if len(parts) > 1 else kv
        assert kv_ext.shape[2] == hi - lo
        for q0, q1 in edges:
            run(q0, q1, kv_ext, lo)

        ctx.save_for_backward(q, kv_ext, out, lse)
        ctx.layout, ctx.group, ctx.d = layout, group, d
        ctx.params = (block_size, window, scale)
        ctx.kv_dtype = k.dtype
        return out

    @staticmethod
    def backward(ctx, dout):
        q, kv_ext, out, lse = ctx.saved_tensors
        layout, group, d = ctx.layout, ctx.group, ctx.d
        block_size, window, scale = ctx.params
        s, e = layout.start, layout.end
        lo, _ = layout.needed(layout.rank)
        acc = torch.promote_types(kv_ext.dtype, torch.float32)
        dkv = torch.zeros(kv_ext.shape, dtype=acc, device=kv_ext.device)
        dq = torch.empty_like(q)
        interior, edges = layout.pieces()

        def run(q0, q1):
            k0, k1 = layout.keys_for(q0, q1)
            rows = slice(q0 - s, q1 - s)
            keys = kv_ext[:, :, k0 - lo:k1 - lo]
            gq, gk, gv = _piece_backward(q[:, :, rows], keys[..., :d], keys[..., d:],
                                         out[:, :, rows], dout[:, :, rows], lse[:, :, rows],
                                         block_size, window, scale, q0, k0)
            dq[:, :, rows] = gq
            dkv[:, :, k0 - lo:k1 - lo] += torch.cat([gk, gv], dim=3).to(acc)

        # The halo's gradients are complete once the pieces that read the
        # halo are done: send them home, then do the interior meanwhile.
        for piece in edges:
            run(*piece)
        requests, received = _exchange(
            layout, group, lambda a, b: dkv[:, :, a - lo:b - lo],
            lambda n: dkv.new_empty(dkv.shape[0], dkv.shape[1], n, dkv.shape[3]),
            reverse=True)
        if interior:
            run(*interior)
        _wait(requests)
        local = dkv[:, :, s - lo:e - lo]
        for (a, b), grad in received:
            local[:, :, a - s:b - s] += grad
        local = local.to(ctx.kv_dtype)
        return dq, local[..., :d], local[..., d:], None, None, None, None, None


def attention(q, k, v, block_size: int, window: int, group=None,
              scale: float | None = None, shard_lengths=None):
    """SWBA of this rank's tokens of a sequence split contiguously across the
    ranks of `group` (default: the world), rank order = sequence order.

    q: [B, Hq, n, D], k: [B, Hkv, n, D], v: [B, Hkv, n, Dv], this rank's n
    tokens (n may differ between ranks; n >= 1); Hq a multiple of Hkv. CUDA
    tensors (f16/bf16, NCCL) run on the compiled kernels, CPU tensors (gloo)
    on `reference_attention`. Returns out [B, Hq, n, Dv] for this rank's
    queries, differentiable in q, k, v: the backward adds the gradients that
    other ranks' queries send back for this rank's keys. Collective: every
    rank of the group must call it with the same block_size, window, scale,
    B, heads and head dims. shard_lengths (every rank's token count, in rank
    order) saves the all_gather (and its host synchronisation) that finds
    them otherwise. Without that all_gather the first call's point-to-point
    ops may be the group's first NCCL operation, which NCCL wants every rank
    in: where some rank exchanges nothing (more than two ranks, a window of
    one frame), create the group with `device_id` (eager initialization) or
    run a collective first. `swba.halo.kernel_configs` lists the kernels
    the ranks' pieces ask for (to compile ahead of time)."""
    from .library import _check_scalars

    _check_scalars(block_size, window, scale)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D [B, H, n, D]")
    b, hq, n, d = q.shape
    if k.shape[0] != b or k.shape[2] != n or k.shape[3] != d or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: "
                         "expected k [B, Hkv, n, D] and v [B, Hkv, n, Dv]")
    if n < 1:
        raise ValueError(f"every rank needs n >= 1 tokens, got q {tuple(q.shape)}")
    if k.shape[1] < 1 or hq % k.shape[1]:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({k.shape[1]})")
    if not (k.dtype == v.dtype == q.dtype and k.device == v.device == q.device):
        raise ValueError("q, k, v must share dtype and device")
    allowed = ((torch.float16, torch.bfloat16) if q.is_cuda
               else (torch.float16, torch.bfloat16, torch.float32, torch.float64))
    if q.dtype not in allowed:
        raise TypeError(f"q, k, v must be {' or '.join(str(t) for t in allowed)} on "
                        f"{q.device.type}, got {q.dtype}")
    if scale is None:
        scale = default_scale(d)
    return _DistributedAttention.apply(q, k, v, block_size, window, scale, group,
                                       shard_lengths)
