"""Before/after GPU timing of two checkouts of the Python package, one per process:
    python3 python/bench/compare_trees.py --root OLD/python --kernels OLD_KERNELS --tag old
    python3 python/bench/compare_trees.py --root python --kernels .kernels --tag new
Prints one line of {config: (forward ms, forward+backward ms)} (median of do_bench)."""
import argparse, json, math, os, sys
ap = argparse.ArgumentParser()
ap.add_argument("--root"); ap.add_argument("--kernels"); ap.add_argument("--tag")
ap.add_argument("--first", type=int, default=5, help="time only the first N configurations")
a = ap.parse_args()
os.environ["SWBA_KERNEL_DIR"] = os.path.abspath(a.kernels)
sys.path.insert(0, os.path.abspath(a.root))
import torch
from triton.testing import do_bench
from swba import attention
CFGS = [(1, 12, 4096, 64, 256, 16), (1, 12, 16384, 64, 256, 16), (1, 24, 16384, 128, 1024, 4),
        (1, 24, 32768, 128, 2048, 4), (1, 12, 1024, 64, 256, 16)]
res = {}
for (b, h, n, d, bs, ws) in CFGS[:a.first]:
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))
    dout = torch.randn_like(q)
    sc = 1 / math.sqrt(d)
    fwd = do_bench(lambda: attention(q, k, v, bs, ws, sc), warmup=25, rep=200, return_mode="median")
    def step():
        for t in (q, k, v): t.grad = None
        attention(q, k, v, bs, ws, sc).backward(dout)
    fb = do_bench(step, warmup=25, rep=200, return_mode="median")
    res[f"{b},{h},{n},{d},{bs},{ws}"] = (fwd, fb)
    del q, k, v, dout; torch.cuda.empty_cache()
print("AB", a.tag, json.dumps(res), flush=True)
