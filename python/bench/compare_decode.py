"""The decode kernels of two kernel caches at the serving bar's shape
(bench_decode.py's: B=16, Hq=32, Hkv=8, D=128, bf16, block size 256,
window 8, a 32k-token cache), alternating between them for `--rounds`
rounds, each run in its own process: dense at 1 and 2 splits, paged
(pages of 16 and 64, random order) at 1 and 2 splits, each timed as
bench_decode.py times (a CUDA graph of 20 calls, best of 5 replays; us and
TB/s of visible K/V). Paged results are checked against the dense one.

    python3 python/bench/compare_decode.py OLD_KERNEL_DIR NEW_KERNEL_DIR [--rounds 2]
        [--old-python OLD_CHECKOUT/python]

`--old-python` runs the old kernels with that checkout's swba package (when
the kernel configurations' keys changed between the two).
"""

import argparse
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))


def measure():
    sys.path[:0] = [os.environ.get("SWBA_COMPARE_PYTHON", os.path.join(here, "..")), here]
    import torch

    import swba
    from bench_decode import B, BS, CACHE, D, HKV, HQ, VISIBLE, WS, paged_cache, per_call
    from swba import ops, paged

    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, HQ, 1, D, generator=g).bfloat16().cuda()
    k = torch.randn(B, HKV, CACHE, D, generator=g).bfloat16().cuda()
    v = torch.randn(B, HKV, CACHE, D, generator=g).bfloat16().cuda()
    nbytes = 2 * B * HKV * VISIBLE * D * 2
    out, ref = [], None

    def timed(label, fn, splits):
        nonlocal ref
        os.environ["SWBA_DECODE_SPLITS"] = str(splits)
        ops._plans.clear()
        got = fn().float()
        err = "" if ref is None else f" err {(got - ref).abs().max().item():.0e}"
        ref = got if ref is None else ref
        t = per_call(fn, 20)
        out.append(f"{label} s{splits} {t * 1e3:5.1f} us {nbytes / t / 1e9:4.2f}{err}")

    for s in (1, 2):
        timed("dense", lambda: swba.attention(q, k, v, BS, WS), s)
    lens = torch.full((B,), CACHE, dtype=torch.int32, device="cuda")
    for page_size in (16, 64):
        kc, vc, table = paged_cache(k, v, page_size, g)
        for s in (1, 2):
            timed(f"pages of {page_size}",
                  lambda: paged.paged_attention(q, kc, vc, table, lens, BS, WS), s)
        del kc, vc
    print(" | ".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--old-python", default=os.path.join(here, ".."))
    args = ap.parse_args()
    for _ in range(args.rounds):
        for name, kernels, package in (("old", args.old, args.old_python),
                                       ("new", args.new, os.path.join(here, ".."))):
            env = dict(os.environ, SWBA_KERNEL_DIR=os.path.abspath(kernels),
                       SWBA_COMPARE_DECODE_CHILD="1",
                       SWBA_COMPARE_PYTHON=os.path.abspath(package))
            proc = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env,
                                  capture_output=True, text=True)
            lines = proc.stdout.strip().splitlines()
            print(f"{name}: {lines[-1] if lines else proc.stderr.strip()[-300:]}", flush=True)


if __name__ == "__main__":
    if os.environ.get("SWBA_COMPARE_DECODE_CHILD"):
        measure()
    else:
        main()
