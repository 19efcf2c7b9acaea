"""Is a forward+backward step host-bound or GPU-bound? At one configuration
(config 1 by default): the host time to enqueue a step, the time per step
of back-to-back steps, the GPU time of its kernels, and the gap between the
end of one kernel and the start of the next, for ours and SDPA with a mask.

    python3 python/bench/step_timeline.py [B H N D bs ws]
"""

import math
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from swba import attention  # noqa: E402
from bench_attention import bool_mask  # noqa: E402


def measure(step, n=50):
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    host = (t1 - t0) / n * 1e6
    per_step = (t2 - t0) / n * 1e6
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    events = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                     and e.time_range.elapsed_us() > 0), key=lambda e: e.time_range.start)
    busy = sum(e.time_range.elapsed_us() for e in events) / 5
    span = (events[-1].time_range.end - events[0].time_range.start) / 5
    return host, per_step, busy, span


def main():
    b, h, n, d, bs, ws = map(int, sys.argv[1:7]) if len(sys.argv) > 6 else (1, 12, 4096, 64, 256, 16)
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)
    mask = bool_mask(n, bs, ws, q.device)
    scale = 1.0 / math.sqrt(d)

    def ours():
        for t in (q, k, v):
            t.grad = None
        attention(q, k, v, bs, ws, scale).backward(dout)

    def sdpa():
        for t in (q, k, v):
            t.grad = None
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).backward(dout)

    print(f"config {b},{h},{n},{d},{bs},{ws}: us per step")
    print(f"{'peer':8s} {'host enqueue':>13s} {'step (loop)':>12s} {'GPU busy':>9s} {'GPU span':>9s}")
    for name, fn in (("ours", ours), ("sdpa", sdpa), ("ours", ours), ("sdpa", sdpa)):
        host, per_step, busy, span = measure(fn)
        print(f"{name:8s} {host:13.1f} {per_step:12.1f} {busy:9.1f} {span:9.1f}")


if __name__ == "__main__":
    main()
