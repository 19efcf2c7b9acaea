"""Single-query decode against a KV cache (the serving bar): B=16, Hq=32, Hkv=8,
D=128, bf16, block size 256, window 8, a 32k-token cache of which the last
2048 tokens are visible. Times swba.attention (routed to the split-KV decode
kernel), swba.paged_attention with pages of 16, 64 and 256 tokens in random
order, and SDPA on the pre-sliced window, each as a CUDA graph of `--calls`
calls (no host time); prints the K/V read rate (bytes of the visible K/V
over the time per call) and the ratio to SDPA. `--splits` also times the
decode kernel at fixed split counts (SWBA_DECODE_SPLITS). On sm_90a the
combine kernel starts while the decode kernel ends (SWBA_EARLY_START): the
profiler's "kernel" column then counts its wait for the decode kernel too,
and the per-call time is the measure."""

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import swba  # noqa: E402
from swba import ops, paged  # noqa: E402

B, HQ, HKV, D, BS, WS, CACHE = 16, 32, 8, 128, 256, 8, 32768
VISIBLE = BS * WS


def per_call(fn, calls, repeats=5):
    """Milliseconds per call: the best of `repeats` replays of a CUDA graph
    of `calls` calls."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    best = math.inf
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / calls)
    return best


def kernel_us(fn, calls=10):
    """Microseconds of GPU kernel time per call (the profiler's sum over the
    kernels a call launches: no launch gaps), or None."""
    try:
        from torch.profiler import ProfilerActivity, profile

        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
        return sum(e.self_device_time_total for e in prof.key_averages()) / calls
    except Exception:  # an older profiler: the graph timing stands alone
        return None


def paged_cache(k, v, page_size, g):
    """k, v [B, Hkv, N, D] as NHD pages in random order, with their table."""
    pages = CACHE // page_size
    order = torch.randperm(B * pages, generator=g).cuda()
    def to_pages(x):
        x = x.transpose(1, 2).reshape(B * pages, page_size, HKV, D)
        out = torch.empty_like(x)
        out[order] = x
        return out
    table = order.view(B, pages).to(torch.int32)
    return to_pages(k), to_pages(v), table


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--splits", type=int, nargs="*", default=[])
    parser.add_argument("--page-sizes", type=int, nargs="*", default=[16, 64, 256])
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16
    q = torch.randn(B, HQ, 1, D, generator=g).to(dtype).cuda()
    k = torch.randn(B, HKV, CACHE, D, generator=g).to(dtype).cuda()
    v = torch.randn(B, HKV, CACHE, D, generator=g).to(dtype).cuda()
    k_win = k[:, :, -VISIBLE:].contiguous()
    v_win = v[:, :, -VISIBLE:].contiguous()
    nbytes = 2 * B * HKV * VISIBLE * D * k.element_size()

    rows = []
    sdpa = per_call(lambda: F.scaled_dot_product_attention(q, k_win, v_win, enable_gqa=True),
                    args.calls)
    sdpa_fn = lambda: F.scaled_dot_product_attention(q, k_win, v_win, enable_gqa=True)  # noqa
    rows.append(("sdpa, pre-sliced window", sdpa, None, kernel_us(sdpa_fn)))
    ref = F.scaled_dot_product_attention(q, k_win, v_win, enable_gqa=True).float()

    def timed(name, fn, splits=None):
        if splits:
            os.environ["SWBA_DECODE_SPLITS"] = str(splits)
        else:
            os.environ.pop("SWBA_DECODE_SPLITS", None)
        ops._plans.clear()
        err = (fn().float() - ref).abs().max().item()
        rows.append((name, per_call(fn, args.calls), err, kernel_us(fn)))

    timed("swba.attention (decode kernel)", lambda: swba.attention(q, k, v, BS, WS))
    for s in args.splits:
        timed(f"swba.attention, splits={s}", lambda: swba.attention(q, k, v, BS, WS), s)
    lens = torch.full((B,), CACHE, dtype=torch.int32, device="cuda")
    for page_size in args.page_sizes:
        kc, vc, table = paged_cache(k, v, page_size, g)
        timed(f"swba.paged_attention, pages of {page_size}",
              lambda: paged.paged_attention(q, kc, vc, table, lens, BS, WS))
        for s in args.splits:
            timed(f"swba.paged_attention, pages of {page_size}, splits={s}",
                  lambda: paged.paged_attention(q, kc, vc, table, lens, BS, WS), s)
        del kc, vc
    os.environ.pop("SWBA_DECODE_SPLITS", None)
    print(f"B={B} Hq={HQ} Hkv={HKV} D={D} bf16 bs={BS} ws={WS} cache={CACHE}: "
          f"{nbytes / 2**20:.0f} MiB of visible K/V; splits by default "
          f"{ops.decode_splits(B, HKV, VISIBLE, q.device, per_sm=1)} (dense; paged by "
          f"64-key TMA boxes), {ops.decode_splits(B, HKV, VISIBLE, q.device)} (other pages)")
    print("per call: a CUDA graph of calls (us, TB/s, x SDPA); kernel: the profiler's "
          "kernel time per call (us, TB/s)")
    print(f"{'':52} {'us':>7} {'TB/s':>6} {'x SDPA':>7} {'kernel':>7} {'TB/s':>6} {'max err':>8}")
    for name, ms, err, kus in rows:
        kernel = f"{kus:7.1f} {nbytes / kus / 1e6:6.2f}" if kus else f"{'':7} {'':6}"
        print(f"{name:52} {ms * 1e3:7.1f} {nbytes / ms / 1e9:6.2f} {sdpa / ms:7.2f} {kernel} "
              f"{'' if err is None else f'{err:8.4f}'}")


if __name__ == "__main__":
    main()
