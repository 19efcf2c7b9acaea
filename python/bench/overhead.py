"""Host-side cost of one call (tiny shapes, so the GPU work is negligible),
and the GPU time of each kernel at one configuration (torch.profiler)."""

import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention  # noqa: E402


def per_call(fn, n=300):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e6


def main():
    b, h, n, d, bs, ws = map(int, sys.argv[1:7]) if len(sys.argv) > 6 else (1, 12, 4096, 64, 256, 16)
    q, k, v = (torch.randn(1, 2, 64, d, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)
    print(f"host us/call, forward (no grad): {per_call(lambda: attention(q.detach(), k.detach(), v.detach(), bs, ws)):.1f}")

    def fb():
        for t in (q, k, v):
            t.grad = None
        attention(q, k, v, bs, ws).backward(dout)
    print(f"host us/call, forward+backward: {per_call(fb):.1f}")
    sd = torch.nn.functional.scaled_dot_product_attention

    def sdpa_fb():
        for t in (q, k, v):
            t.grad = None
        sd(q, k, v, is_causal=True).backward(dout)
    print(f"host us/call, SDPA causal forward+backward: {per_call(sdpa_fb):.1f}")

    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)
    fb()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fb()
        torch.cuda.synchronize()
    for e in prof.key_averages():
        if e.device_time_total > 0:
            print(f"{e.key[:60]:60s} {e.device_time_total / e.count:9.1f} us x{e.count}")


if __name__ == "__main__":
    main()
