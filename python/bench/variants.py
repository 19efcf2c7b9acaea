"""Time of the sm_90a kernels' lowering variants (--swba-to-nvvm options)
at the design configurations, in one run: what each tiling or scheduling
choice of SWBAToGPUHopper.cpp / SWBAGradToGPUHopper.cpp is worth, measured.

    python3 python/bench/variants.py              # forward, VARIANTS
    python3 python/bench/variants.py --backward   # forward+backward, GRAD_VARIANTS

The kernels come from the cache (python/tests/prepare_kernels.py compiles
them); effective TFLOP/s count visible pairs only, as bench_attention.py.
"""

import math
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

# "" is the lowering's default; each other entry changes one choice.
VARIANTS = ["", "ping-pong=false", "overlap-softmax=false", "stages=3", "block-n=192",
            "consumers=2", "consumers=3"]
# The backward's tiles (the defaults are 128 at head dim 64, 64 at 128).
GRAD_VARIANTS = ["", "grad-fused-dq=true", "grad-ping-pong=true", "grad-key-tile=64", "grad-key-tile=128",
                 "grad-query-tile=64", "grad-query-tile=128", "grad-stages=3", "grad-stages=4"]


def kernel_configs():
    """The KernelConfigs of every variant at every design configuration."""
    import dataclasses
    import configs
    out = set()
    for base in configs.kernel_configs():
        if base.grad or (base.head_dim, base.block_size) not in {
                (c.d, c.bs) for c in configs.DESIGN}:
            continue
        for options in VARIANTS[1:]:
            if options == "stages=3" and base.head_dim == 128:
                continue  # 32 KiB Q + 3 x 64 KiB does not fit with 1 KiB static
            out.add(dataclasses.replace(base, chip="sm_90a", options=options))
        for options in GRAD_VARIANTS[1:]:
            for grad in (False, True):
                out.add(dataclasses.replace(base, chip="sm_90a", options=options,
                                            grad=grad))
    return out


def main():
    import torch
    from triton.testing import do_bench
    from swba import attention
    from configs import DESIGN
    from bench_attention import fwd_bwd, visible_pairs

    backward = "--backward" in sys.argv
    variants = GRAD_VARIANTS if backward else VARIANTS
    os.environ["SWBA_CHIP"] = "sm_90a"
    rows = []
    for c in DESIGN:
        torch.manual_seed(0)
        q, k, v = (torch.randn(c.b, c.h, c.n, c.d, device="cuda", dtype=torch.float16,
                               requires_grad=backward) for _ in range(3))
        dout = torch.randn_like(q)
        scale = 1.0 / math.sqrt(c.d)
        flops = (3.5 if backward else 1.0) * 4 * visible_pairs(c.n, c.n, c.bs, c.ws) \
            * c.d * c.b * c.h
        row = [c]
        for options in variants:
            if options == "stages=3" and c.d == 128:
                row.append(None)
                continue
            os.environ["SWBA_LOWER_OPTIONS"] = options
            fn = lambda q, k, v: attention(q, k, v, c.bs, c.ws, scale)  # noqa: E731
            step = fwd_bwd(fn, q, k, v, dout) if backward else (lambda: fn(q, k, v))
            ms = do_bench(step, warmup=25, rep=100, return_mode="median")
            row.append(flops / (ms * 1e-3) / 1e12)
        rows.append(row)
    os.environ.pop("SWBA_LOWER_OPTIONS", None)
    print("| B,H,N,D,bs,ws | " + " | ".join(v or "default" for v in variants) + " |")
    print("|" + " --- |" * (len(variants) + 1))
    for row in rows:
        c = row[0]
        cells = ["-" if x is None else f"{x:.1f}" for x in row[1:]]
        print(f"| {c.b},{c.h},{c.n},{c.d},{c.bs},{c.ws} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
