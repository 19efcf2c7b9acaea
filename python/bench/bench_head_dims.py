"""Head dims other than 64 and 128 on sm_90a against FlexAttention
(compiled, with the equivalent block mask), forward and forward+backward,
bf16, on a token window (block_size 1, window 1024) and a frame window
(block_size 256, window 4): 256 (Gemma-class), and the head dims the
kernels round up to whole TMA boxes (96 -> 128, 160 -> 192). Up to 128
also our mma.sync kernels (SWBA_CHIP=sm_90), which took those head dims
before. Prints effective TFLOP/s over the visible (query, key) pairs
(docs/DESIGN.md section 7: fwd = 4 pairs D B H, fwd+bwd = 3.5 fwd) and the
ratio to Flex; first a check of our output and gradients against Flex's on
the same inputs (bf16 rounding apart).

    python3 python/bench/bench_head_dims.py [--head-dims 256 96 ...]  # on the GPU
    python3 python/bench/bench_head_dims.py --prepare [--head-dims ...]
        # compile the kernels (where swba-opt is)
"""

import argparse
import math
import os
import sys
from collections import namedtuple

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..")]

Config = namedtuple("Config", "name b h n d bs ws")

def configs(head_dims):
    return [cfg for d in head_dims for cfg in (
        Config("token window", 1, 16, 8192, d, 1, 1024),
        Config("frame window", 1, 16, 16384, d, 256, 4))]


# The peers of each head dim: our mma.sync kernels take head dims up to 128.
def impl_names(d):
    return ("ours", "mma_sync", "flex") if d <= 128 else ("ours", "flex")


def kernel_configs(head_dims):
    from swba.compiler import KernelConfig
    chips = lambda d: ("sm_90a", "sm_90") if d <= 128 else ("sm_90a",)  # noqa: E731
    return [KernelConfig("bf16", c.d, c.d, c.bs, c.ws, 1.0 / math.sqrt(c.d), grad=grad,
                         chip=chip)
            for c in configs(head_dims) for grad in (False, True) for chip in chips(c.d)]


def visible_pairs(n, bs, ws):
    pos = list(range(n))
    total = 0
    for p in pos:
        f = p // bs
        total += min((f + 1) * bs, n) - max(f - ws + 1, 0) * bs
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", action="store_true",
                   help="compile the kernels into SWBA_KERNEL_DIR and exit")
    p.add_argument("--head-dims", type=int, nargs="+", default=[256])
    args = p.parse_args()
    if args.prepare:
        from swba import compiler
        for config in kernel_configs(args.head_dims):
            compiler.load_or_compile(config)
            print(config)
        return

    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from triton.testing import do_bench

    from swba import attention

    os.environ["SWBA_CHIP"] = "sm_90a"
    flex = torch.compile(flex_attention, dynamic=False)

    def on_mma_sync(q, k, v, bs, ws, scale):
        # ops picks the chip's kernels at each call (the backward keeps the
        # forward's).
        os.environ["SWBA_CHIP"] = "sm_90"
        try:
            return attention(q, k, v, bs, ws, scale)
        finally:
            os.environ["SWBA_CHIP"] = "sm_90a"

    rows = []
    for c in configs(args.head_dims):
        torch.manual_seed(0)
        q, k, v, dout = (torch.randn(c.b, c.h, c.n, c.d, device="cuda", dtype=torch.bfloat16)
                         for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_()
        scale = 1.0 / math.sqrt(c.d)
        bs, ws = c.bs, c.ws

        def mask_mod(b, h, qi, ki):
            qf, kf = qi // bs, ki // bs
            return (kf <= qf) & (qf - kf < ws)

        bm = create_block_mask(mask_mod, None, None, c.n, c.n, device="cuda")
        impls = {"ours": lambda q, k, v: attention(q, k, v, c.bs, c.ws, scale),
                 "mma_sync": lambda q, k, v: on_mma_sync(q, k, v, c.bs, c.ws, scale),
                 "flex": lambda q, k, v: flex(q, k, v, block_mask=bm, scale=scale)}
        impls = {name: impls[name] for name in impl_names(c.d)}

        # Ours against Flex on the same inputs: out, dq, dk, dv.
        got = {}
        for name, fn in impls.items():
            for t in (q, k, v):
                t.grad = None
            out = fn(q, k, v)
            out.backward(dout)
            got[name] = [out.detach().float()] + [t.grad.float() for t in (q, k, v)]
        worst = max(((a - b).abs().max() / b.abs().max()).item()
                    for name in got if name != "flex"
                    for a, b in zip(got[name], got["flex"]))
        assert worst < 2e-2, f"{c.name}: ours and Flex differ by {worst:.3e} of the scale"

        fwd_flops = 4 * visible_pairs(c.n, c.bs, c.ws) * c.d * c.b * c.h
        row = {"cfg": c, "agree": worst}
        for name, fn in impls.items():
            def fwd():
                with torch.no_grad():
                    fn(q, k, v)

            def step():
                for t in (q, k, v):
                    t.grad = None
                fn(q, k, v).backward(dout)

            row[name, "fwd"] = fwd_flops / do_bench(fwd, warmup=25, rep=100,
                                                    return_mode="median") / 1e9
            row[name, "fwdbwd"] = 3.5 * fwd_flops / do_bench(step, warmup=25, rep=100,
                                                             return_mode="median") / 1e9
        rows.append(row)
        torch.cuda.empty_cache()

    print(f"| shape (B, H, N, D, bs, ws) | pass | ours TFLOP/s | ours mma.sync | Flex TFLOP/s |"
          f" ours / Flex | max diff / scale |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        c = row["cfg"]
        for what in ("fwd", "fwdbwd"):
            ours, fx = row["ours", what], row["flex", what]
            mma = row.get(("mma_sync", what))
            print(f"| {c.name} {c.b}, {c.h}, {c.n}, {c.d}, {c.bs}, {c.ws} | {what} | "
                  f"{ours:.0f} | {'-' if mma is None else f'{mma:.0f}'} | {fx:.0f} | "
                  f"{ours / fx:.2f}x | {row['agree']:.1e} |")


if __name__ == "__main__":
    main()
