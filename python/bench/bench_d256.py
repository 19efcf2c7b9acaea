"""Head dim 256 on sm_90a against FlexAttention (compiled, with the
equivalent block mask), forward and forward+backward, bf16, on a token
window (block_size 1, window 1024) and a frame window (block_size 256,
window 4). Prints effective TFLOP/s over the visible (query, key) pairs
(docs/DESIGN.md section 7: fwd = 4 pairs D B H, fwd+bwd = 3.5 fwd) for
both and the ratio; first a check of our output and gradients against
Flex's on the same inputs (bf16 rounding apart).

    python3 python/bench/bench_d256.py            # on the GPU
    python3 python/bench/bench_d256.py --prepare  # compile the kernels
                                                  # (where swba-opt is)
"""

import argparse
import math
import os
import sys
from collections import namedtuple

sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..")]

Config = namedtuple("Config", "name b h n d bs ws")

CONFIGS = [
    Config("token window", 1, 16, 8192, 256, 1, 1024),
    Config("frame window", 1, 16, 16384, 256, 256, 4),
]


def kernel_configs():
    from swba.compiler import KernelConfig
    return [KernelConfig("bf16", c.d, c.d, c.bs, c.ws, 1.0 / math.sqrt(c.d), grad=grad,
                         chip="sm_90a")
            for c in CONFIGS for grad in (False, True)]


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
    args = p.parse_args()
    if args.prepare:
        from swba import compiler
        for config in kernel_configs():
            compiler.load_or_compile(config)
            print(config)
        return

    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from triton.testing import do_bench

    from swba import attention

    os.environ.setdefault("SWBA_CHIP", "sm_90a")
    flex = torch.compile(flex_attention, dynamic=False)
    rows = []
    for c in CONFIGS:
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
                 "flex": lambda q, k, v: flex(q, k, v, block_mask=bm, scale=scale)}

        # Ours against Flex on the same inputs: out, dq, dk, dv.
        got = {}
        for name, fn in impls.items():
            for t in (q, k, v):
                t.grad = None
            out = fn(q, k, v)
            out.backward(dout)
            got[name] = [out.detach().float()] + [t.grad.float() for t in (q, k, v)]
        worst = max(((a - b).abs().max() / b.abs().max()).item()
                    for a, b in zip(got["ours"], got["flex"]))
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

    print(f"| shape (B, H, N, D, bs, ws) | pass | ours TFLOP/s | Flex TFLOP/s | ratio |"
          f" max diff / scale |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        c = row["cfg"]
        for what in ("fwd", "fwdbwd"):
            ours, fx = row["ours", what], row["flex", what]
            print(f"| {c.name} {c.b}, {c.h}, {c.n}, {c.d}, {c.bs}, {c.ws} | {what} | "
                  f"{ours:.0f} | {fx:.0f} | {ours / fx:.2f}x | {row['agree']:.1e} |")


if __name__ == "__main__":
    main()
