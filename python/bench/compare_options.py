"""The sm_90a forward under several --lower-swba option strings, alternating
in one process, on the cases of bench_frontier.py (bf16): each option's
forward captured in a CUDA graph and replayed, median over rounds of
triton's do_bench median, in ms and effective TFLOP/s, and each output's
largest difference from the first option's.

    python3 python/bench/compare_options.py "" "tile-scheduler=persistent" \\
        "block-n=64" ... [--cases NAME ...] [--rounds 3]            # on the GPU
    python3 python/bench/compare_options.py OPTIONS... --prepare [--cases ...]
        # compile those kernels into SWBA_KERNEL_DIR (where swba-opt is)

The empty string is the lowering's default. Kernels come from
SWBA_KERNEL_DIR, as everywhere (SWBA_LOWER_OPTIONS picks each option's).
"""

import argparse
import dataclasses
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

from bench_frontier import CASES  # noqa: E402
from configs import refuse_repeated_options  # noqa: E402


def forward_configs(cases, options):
    """The forward kernel configurations of `cases` under each option."""
    from swba.compile import configs_for
    out = []
    for c in cases:
        for base in configs_for("bf16", c.d, c.bs, c.ws, chip="sm_90a"):
            if not base.grad:
                out += [dataclasses.replace(base, options=o) for o in options]
    return out


def prepare(cases, options):
    from concurrent.futures import ThreadPoolExecutor

    from swba import compiler

    def build(config):
        try:
            compiler.load_or_compile(config)
            return None
        except (compiler.CompileError, compiler.ManifestError) as e:
            return e
    configs = forward_configs(cases, options)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        errors = list(pool.map(build, configs))
    for config, error in zip(configs, errors):
        print(f"{'FAILED' if error else 'ok'} {config.block_size} {config.window} "
              f"{config.head_dim} {config.options!r} {error or ''}")
    return 1 if any(errors) else 0


def compare(cases, options, rounds):
    import torch
    from triton.testing import do_bench

    import swba
    from swba import ops
    from bench_frontier import visible_pairs

    os.environ.setdefault("SWBA_CHIP", "sm_90a")
    for c in cases:
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(c.b, c.hq, c.n, c.d, device="cuda", dtype=torch.bfloat16, generator=g)
        k, v = (torch.randn(c.b, c.hkv, c.n, c.d, device="cuda", dtype=torch.bfloat16,
                            generator=g) for _ in range(2))
        flops = 4 * visible_pairs(c.n, c.bs, c.ws) * c.d * c.b * c.hq
        replays, diffs, first = {}, {}, None
        for o in options:
            os.environ["SWBA_LOWER_OPTIONS"] = o
            ops._plans.clear()
            out = swba.attention(q, k, v, c.bs, c.ws).float()
            first = out if first is None else first
            diffs[o] = (out - first).abs().max().item()
            graph, stream = torch.cuda.CUDAGraph(), torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                swba.attention(q, k, v, c.bs, c.ws)  # warm-up outside the capture
                with torch.cuda.graph(graph, stream=stream):
                    swba.attention(q, k, v, c.bs, c.ws)
            torch.cuda.current_stream().wait_stream(stream)
            replays[o] = graph.replay
        os.environ.pop("SWBA_LOWER_OPTIONS")
        times = {o: [] for o in options}
        for _ in range(rounds):
            for o in options:
                times[o].append(do_bench(replays[o], warmup=10, rep=100))
        for o in options:
            ms = statistics.median(times[o])
            print(f"{c.name:16s} {o or 'default':40s} {ms:.4f} ms {flops / ms / 1e9:6.1f} TFLOP/s"
                  f"  (min {min(times[o]):.4f})  max diff vs first {diffs[o]:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("options", nargs="+", help="--lower-swba option strings ('' the default)")
    ap.add_argument("--cases", nargs="*", help="bench_frontier.py cases (default: all)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prepare", action="store_true",
                    help="compile the kernels into SWBA_KERNEL_DIR and exit")
    args = ap.parse_args()
    refuse_repeated_options(ap, args.options)
    names = {c.name for c in CASES}
    unknown = set(args.cases or ()) - names
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; known: {sorted(names)}")
    cases = [c for c in CASES if not args.cases or c.name in args.cases]
    if args.prepare:
        return prepare(cases, args.options)
    compare(cases, args.options, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
