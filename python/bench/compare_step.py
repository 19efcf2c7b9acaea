"""Before/after of one training step (forward+backward) and of the forward
alone, an older checkout of the Python package against this one, in one
process and interleaved (the host CPU changes speed between processes):
eager (kernels and the host's enqueueing) and replayed from a CUDA graph (the
kernels alone, no host cost).
    python3 python/bench/compare_step.py OLD/python OLD_KERNELS NEW_KERNELS [--rounds 5]
(old and new kernels go in one cache directory: their cache keys differ).
Prints per configuration and mode the median over rounds of do_bench's median,
in ms."""
import argparse
import importlib.util
import math
import os
import shutil
import statistics
import sys

ap = argparse.ArgumentParser()
ap.add_argument("old_python")
ap.add_argument("old_kernels")
ap.add_argument("new_kernels")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--first", type=int, default=2, help="the first N design configurations")
args = ap.parse_args()

merged = "/tmp/swba-compare-kernels"
os.makedirs(merged, exist_ok=True)
for src in (args.old_kernels, args.new_kernels):
    for f in os.listdir(src):
        if os.path.isfile(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), merged)
os.environ["SWBA_KERNEL_DIR"] = merged
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

import torch  # noqa: E402
from triton.testing import do_bench  # noqa: E402

import swba as new  # noqa: E402
from configs import DESIGN as CONFIGS  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "swba_old", os.path.join(args.old_python, "swba", "__init__.py"),
    submodule_search_locations=[os.path.join(args.old_python, "swba")])
old = importlib.util.module_from_spec(spec)
sys.modules["swba_old"] = old
spec.loader.exec_module(old)


def graphed(fn, replays=10):
    """fn captured in a CUDA graph; the returned callable replays it
    `replays` times (so that the host's replay call is hidden)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()

    def replay():
        for _ in range(replays):
            graph.replay()
    replay.replays = replays
    return replay


def ms(fn):
    t = do_bench(fn, warmup=25, rep=200, return_mode="median")
    return t / getattr(fn, "replays", 1)


for (b, h, n, d, bs, ws) in CONFIGS[:args.first]:
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
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

    fns = {}
    for tag, mod in (("old", old), ("new", new)):
        fns[tag] = {"fwd eager": forward(mod), "step eager": step(mod),
                    "fwd graph": graphed(forward(mod)), "step graph": graphed(step(mod))}
    times = {(tag, mode): [] for tag in fns for mode in fns[tag]}
    for _ in range(args.rounds):
        for tag in ("old", "new"):
            for mode, fn in fns[tag].items():
                times[(tag, mode)].append(ms(fn))
    print(f"config {(b, h, n, d, bs, ws)}: median of {args.rounds} rounds (min-max), ms")
    for mode in fns["old"]:
        o, nw = times[("old", mode)], times[("new", mode)]
        print(f"  {mode:10s} old {statistics.median(o):.4f} ({min(o):.4f}-{max(o):.4f})"
              f"  new {statistics.median(nw):.4f} ({min(nw):.4f}-{max(nw):.4f})"
              f"  new/old {statistics.median(nw) / statistics.median(o):.3f}", flush=True)
    del q, k, v, dout, fns
    torch.cuda.empty_cache()
