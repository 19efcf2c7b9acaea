"""Host cost of the pieces of one forward+backward call (tiny shapes, so the
GPU work is negligible): where the host time of config 1 goes.

    python3 python/bench/host_parts.py
"""

import cProfile
import ctypes
import os
import pstats
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention, ops, runtime  # noqa: E402


def per_call(fn, n=200):
    """Host time to enqueue one call: the best of 5 loops of n calls, each
    timed before the synchronization that ends it."""
    best = float("inf")
    for _ in range(5):
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
        torch.cuda.synchronize()
    return best / n * 1e6


def main():
    q, k, v = (torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)
    qd, kd, vd = q.detach(), k.detach(), v.detach()
    rows = []

    def fb():
        for t in (q, k, v):
            t.grad = None
        attention(q, k, v, 256, 16).backward(dout)

    def sdpa_fb():
        for t in (q, k, v):
            t.grad = None
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)

    class Noop(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            ctx.save_for_backward(a, b, c)
            return a.new_empty(a.shape)

        @staticmethod
        def backward(ctx, g):
            a, b, c = ctx.saved_tensors
            return torch.empty_like(a), torch.empty_like(b), torch.empty_like(c)

    def noop_fb():
        for t in (q, k, v):
            t.grad = None
        Noop.apply(q, k, v).backward(dout)

    stream = torch.cuda.current_stream().cuda_stream
    ops.attention_forward(qd, kd, vd, 256, 16, 0.125)
    plan = ops.plan_for(qd, kd, vd, 256, 16, 0.125)
    forward = plan._forward
    out = torch.empty_like(qd)
    lse = torch.empty((1, 2, 64), dtype=torch.float32, device="cuda")

    rows.append(("fwd+bwd, ours", per_call(fb)))
    rows.append(("fwd+bwd, SDPA causal", per_call(sdpa_fb)))
    rows.append(("fwd+bwd, no-op autograd.Function (3 empty_like)", per_call(noop_fb)))
    with torch.no_grad():
        o0, l0 = ops.attention_forward(qd, kd, vd, 256, 16, 0.125)
    rows.append(("ops.attention_backward (no autograd)", per_call(
        lambda: ops.attention_backward(qd, kd, vd, o0, dout, l0, 256, 16, 0.125))))
    rows.append(("ops.attention_forward (no autograd)", per_call(
        lambda: ops.attention_forward(qd, kd, vd, 256, 16, 0.125))))

    class Wrapped(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            o, lse = ops.attention_forward(a, b, c, 256, 16, 0.125)
            ctx.save_for_backward(a, b, c, o, lse)
            return o

        @staticmethod
        def backward(ctx, g):
            a, b, c, o, lse = ctx.saved_tensors
            return ops.attention_backward(a, b, c, o, g, lse, 256, 16, 0.125)

    def wrapped_fb():
        for t in (q, k, v):
            t.grad = None
        Wrapped.apply(q, k, v).backward(dout)
    rows.append(("fwd+bwd, minimal Function over ops.*", per_call(wrapped_fb)))
    rows.append(("forward, ours, no grad", per_call(lambda: attention(qd, kd, vd, 256, 16))))
    rows.append(("plan's forward kernel (prepared parameters, launch)", per_call(
        lambda: forward((qd, kd, vd, out, lse), stream))))
    rows.append(("torch.empty (one)", per_call(lambda: torch.empty((1, 2, 64, 64), dtype=torch.float16, device="cuda"))))
    rows.append(("torch.cuda.current_stream().cuda_stream", per_call(lambda: torch.cuda.current_stream(q.device).cuda_stream)))
    rows.append(("ops._current_stream", per_call(lambda: ops._current_stream(0))))
    # The tensor maps the forward takes (none on the mma.sync path).
    maps = [(i, spec) for i, spec in forward.params if not isinstance(spec, tuple)]
    tensors = (qd, kd, vd, out, lse)
    if maps:
        i, spec = maps[0]
        rows.append(("ops._tensor_map hit", per_call(
            lambda: ops._tensor_map(tensors[i], spec, 0, stream))))
    values = [x for t in tensors for x in runtime.memref_values(t)]
    values += [ops._tensor_map(tensors[i], spec, 0, stream)[0] for i, spec in maps]
    fn = forward.function
    rows.append(("runtime.Params (pack the parameters)", per_call(
        lambda: runtime.Params(forward.signature, values))))
    params = runtime.Params(forward.signature, values)
    rows.append(("Kernel.launch_packed (cuda-python cuLaunchKernel)", per_call(
        lambda: fn.launch_packed(forward.grid, forward.block, params, stream, forward.smem))))
    libcuda = ctypes.CDLL("libcuda.so.1")
    raw_fn = ctypes.c_void_p(int(fn.function))
    cl = libcuda.cuLaunchKernel
    cl.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
    rows.append(("ctypes cuLaunchKernel (same kernel)", per_call(
        lambda: cl(raw_fn, *forward.grid, *forward.block, forward.smem, stream, params.address,
                   None))))

    print(f"{'part':55s} {'us/call':>9s}")
    for label, us in rows:
        print(f"{label:55s} {us:9.1f}")
    fb()
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(200):
        fb()
    prof.disable()
    torch.cuda.synchronize()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
