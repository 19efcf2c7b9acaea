"""Before/after of one training step (forward+backward) and of the forward
alone, an older checkout of the Python package against this one, in one
process and interleaved (the host CPU changes speed between processes):
eager (kernels and the host's enqueueing) and replayed from a CUDA graph (the
kernels alone, no host cost).
    python3 python/bench/compare_step.py OLD/python OLD_KERNELS NEW_KERNELS [--rounds 5]
        [--first N | --frontier [NAME ...]]
(each checkout loads its kernels from its own directory, before the timing).
The design configurations (fp16) by default; --frontier takes the cases of
bench_frontier.py (bf16, GQA), all or those named. Prints per configuration
and mode the median over rounds of do_bench's median, in ms."""
import argparse
import importlib.util
import math
import os
import statistics
import sys

ap = argparse.ArgumentParser()
ap.add_argument("old_python")
ap.add_argument("old_kernels")
ap.add_argument("new_kernels")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--first", type=int, default=4, help="the first N design configurations")
ap.add_argument("--frontier", nargs="*", help="bench_frontier.py's cases (all, or these)")
args = ap.parse_args()

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

import torch  # noqa: E402
from triton.testing import do_bench  # noqa: E402

import swba as new  # noqa: E402
from bench_frontier import CASES, visible_pairs  # noqa: E402
from configs import DESIGN as CONFIGS  # noqa: E402
from cuda_graphs import capture  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "swba_old", os.path.join(args.old_python, "swba", "__init__.py"),
    submodule_search_locations=[os.path.join(args.old_python, "swba")])
old = importlib.util.module_from_spec(spec)
sys.modules["swba_old"] = old
spec.loader.exec_module(old)


def graphed(fn, replays=10):
    """fn captured in a CUDA graph; the returned callable replays it
    `replays` times (so that the host's replay call is hidden)."""
    graph = capture(fn)

    def replay():
        for _ in range(replays):
            graph.replay()
    replay.replays = replays
    return replay


def ms(fn):
    t = do_bench(fn, warmup=25, rep=200, return_mode="median")
    return t / getattr(fn, "replays", 1)


if args.frontier is not None:
    RUNS = [(c.b, c.hq, c.hkv, c.n, c.d, c.bs, c.ws, torch.bfloat16) for c in CASES
            if not args.frontier or c.name in args.frontier]
else:
    RUNS = [(b, h, h, n, d, bs, ws, torch.float16) for (b, h, n, d, bs, ws) in CONFIGS[:args.first]]

for (b, h, hkv, n, d, bs, ws, dtype) in RUNS:
    torch.manual_seed(0)
    q = torch.randn(b, h, n, d, device="cuda", dtype=dtype, requires_grad=True)
    k, v = (torch.randn(b, hkv, n, d, device="cuda", dtype=dtype, requires_grad=True)
            for _ in range(2))
    dout = torch.randn_like(q)
    scale = 1 / math.sqrt(d)

    def forward(mod):
        def f():
            with torch.no_grad():
                mod.attention(q, k, v, bs, ws, scale)
        return f

    def step(mod):
        def f():
            for t in (q, k, v):
                t.grad = None
            mod.attention(q, k, v, bs, ws, scale).backward(dout)
        return f

    fwd_flops = 4 * visible_pairs(n, bs, ws) * d * b * h

    def tflops(mode, t_ms):
        return (3.5 if mode.startswith("step") else 1.0) * fwd_flops / (t_ms * 1e-3) / 1e12

    fns = {}
    for tag, mod, kernels in (("old", old, args.old_kernels), ("new", new, args.new_kernels)):
        # Each package keeps the kernels it loaded: the directory matters
        # only for these first calls.
        os.environ["SWBA_KERNEL_DIR"] = os.path.abspath(kernels)
        fns[tag] = {"fwd eager": forward(mod), "step eager": step(mod),
                    "fwd graph": graphed(forward(mod)), "step graph": graphed(step(mod))}
    times = {(tag, mode): [] for tag in fns for mode in fns[tag]}
    for _ in range(args.rounds):
        for tag in ("old", "new"):
            for mode, fn in fns[tag].items():
                times[(tag, mode)].append(ms(fn))
    print(f"config {(b, h, hkv, n, d, bs, ws)}: median of {args.rounds} rounds (min-max), ms")
    for mode in fns["old"]:
        o, nw = times[("old", mode)], times[("new", mode)]
        print(f"  {mode:10s} old {statistics.median(o):.4f} ({min(o):.4f}-{max(o):.4f})"
              f"  new {statistics.median(nw):.4f} ({min(nw):.4f}-{max(nw):.4f})"
              f"  new/old {statistics.median(nw) / statistics.median(o):.3f}"
              f"  TFLOP/s {tflops(mode, statistics.median(o)):.0f}"
              f" -> {tflops(mode, statistics.median(nw)):.0f}", flush=True)
    del q, k, v, dout, fns
    torch.cuda.empty_cache()
