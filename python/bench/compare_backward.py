"""Whole forward+backward steps under several --lower-swba option strings,
alternating in one process, on the cases of bench_frontier.py (bf16): each
option's step captured in a CUDA graph (every kernel of it: the backward's
zeroing and conversion with grad-fused-dq=true too) and replayed, the
median over rounds of triton's do_bench median, in ms and effective
TFLOP/s, and the largest difference of each option's gradients from the
first option's.

    python3 python/bench/compare_backward.py "" "grad-fused-dq=true" \\
        [--cases frames-d128-16k ...] [--shape B,HQ,HKV,N,D,BS,WS ...] [--rounds 5]

The empty string is the lowering's default. Kernels come from
SWBA_KERNEL_DIR, as everywhere (SWBA_LOWER_OPTIONS picks each option's);
compare_options.py does the same for the forward alone.
"""

import argparse
import math
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

from bench_frontier import CASES, Case, visible_pairs  # noqa: E402
from configs import refuse_repeated_options  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("options", nargs="+")
    ap.add_argument("--cases", nargs="*", help="bench_frontier.py's cases (all by default)")
    ap.add_argument("--shape", action="append", default=[], metavar="B,HQ,HKV,N,D,BS,WS",
                    help="a case of its own (repeatable); with --shape alone, only those run")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    refuse_repeated_options(ap, args.options)
    unknown = set(args.cases or ()) - {c.name for c in CASES}
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; known: {[c.name for c in CASES]}")
    extra = []
    for text in args.shape:
        try:
            b, hq, hkv, n, d, bs, ws = (int(x) for x in text.split(","))
        except ValueError:
            ap.error(f"--shape wants seven integers B,HQ,HKV,N,D,BS,WS, got {text!r}")
        extra.append(Case(f"{b}x{hq}/{hkv}x{n} d{d} bs{bs} ws{ws}", b, hq, hkv, n, d, bs, ws, ()))
    cases = [c for c in CASES if (args.cases is None and not extra) or c.name in (args.cases or ())]

    import torch
    from triton.testing import do_bench

    import swba
    from swba import ops
    from cuda_graphs import capture

    print("| case | options | ms | TFLOP/s | max gradient difference |")
    print("| --- | --- | --- | --- | --- |")
    for c in cases + extra:
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(c.b, h, c.n, c.d, device="cuda", dtype=torch.bfloat16,
                               generator=g, requires_grad=True)
                   for h in (c.hq, c.hkv, c.hkv))
        dout = torch.randn_like(q)
        flops = 3.5 * 4 * visible_pairs(c.n, c.bs, c.ws) * c.d * c.b * c.hq
        graphs, grads = {}, {}
        for options in args.options:
            os.environ["SWBA_LOWER_OPTIONS"] = options
            ops._plans.clear()

            def step():
                for t in (q, k, v):
                    t.grad = None
                swba.attention(q, k, v, c.bs, c.ws, 1 / math.sqrt(c.d)).backward(dout)
            step()
            torch.cuda.synchronize()
            grads[options] = [t.grad.float().clone() for t in (q, k, v)]
            graphs[options] = capture(step)
        os.environ.pop("SWBA_LOWER_OPTIONS", None)
        times = {o: [] for o in graphs}
        for r in range(args.rounds):
            # Every other round in reverse order, so that the clock's drift
            # hits every option alike.
            for o in args.options if r % 2 == 0 else args.options[::-1]:
                times[o].append(do_bench(graphs[o].replay, warmup=10, rep=150,
                                         return_mode="median"))
        first = grads[args.options[0]]
        for o in args.options:
            ms = statistics.median(times[o])
            diff = max((a - b).abs().max().item() for a, b in zip(first, grads[o]))
            print(f"| {c.name} | {o or 'default'} | {ms:.4f} | {flops / ms / 1e9:.0f} | {diff:.2e} |",
                  flush=True)


if __name__ == "__main__":
    main()
