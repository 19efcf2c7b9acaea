"""Is a forward+backward step host-bound or GPU-bound? At one configuration
(config 1 by default), for ours and SDPA with a mask: the host time to
enqueue a step; the time per step of back-to-back steps; the GPU time of
its kernels (busy) and their span; the span of one step's kernels after a
256 MB fill, as do_bench runs them (flushed, median of 5); and triton's
do_bench figure; then the same for each step captured in a CUDA graph.

    python3 python/bench/step_timeline.py [B H N D bs ws]
"""

import math
import os
import sys
import time

import torch
from triton.testing import do_bench
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from swba import attention  # noqa: E402
from cuda_graphs import capture  # noqa: E402
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
    # As do_bench runs it: a 256 MB fill (its L2 flush) before every step;
    # the span of a step's own kernels, first start to last end.
    flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            flush.zero_()
            step()
        torch.cuda.synchronize()
    events = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                     and e.time_range.elapsed_us() > 0), key=lambda e: e.time_range.start)
    spans, current = [], None
    for e in events:
        if "fill" in e.name.lower() and e.time_range.elapsed_us() > 30:
            current = None
            continue
        if current is None:
            current = [e.time_range.start, e.time_range.end]
            spans.append(current)
        current[1] = e.time_range.end
    flushed = sorted(end - start for start, end in spans)[len(spans) // 2]
    return host, per_step, busy, span, flushed


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
    print(f"{'peer':14s} {'host enqueue':>13s} {'step (loop)':>12s} {'GPU busy':>9s} "
          f"{'GPU span':>9s} {'flushed':>9s} {'do_bench':>9s}")
    def captured(fn):
        """fn's step as one CUDA graph replay (no host work per kernel)."""
        return capture(fn).replay

    graphs = [(f"{name} (graph)", captured(fn)) for name, fn in (("ours", ours), ("sdpa", sdpa))]
    peers = (("ours", ours), ("sdpa", sdpa), ("ours", ours), ("sdpa", sdpa), *graphs)
    # do_bench first: a process that has run the profiler keeps paying for
    # it on every CUDA call (host times up to 2x were seen after it).
    benches = [do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3 for _, fn in peers]
    for (name, fn), bench in zip(peers, benches):
        host, per_step, busy, span, flushed = measure(fn)
        print(f"{name:14s} {host:13.1f} {per_step:12.1f} {busy:9.1f} {span:9.1f} {flushed:9.1f} "
              f"{bench:9.1f}")


if __name__ == "__main__":
    main()
