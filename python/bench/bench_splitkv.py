"""The split-KV forward (sm_90a) against one workgroup a query tile
(splits=1, the plain forward kernel), on one GPU: one frame of 256 queries
against a 128k-token cache (B=1, 32/8 heads, D=128, bf16, frames of 256,
window 64: 16384 visible keys), a decode step, and the four design
configurations, which fill the GPU with query tiles and must keep the plain
kernel (the runtime's pick, "auto", is 1 there). Prints ms (median of
triton's do_bench), the split count picked, effective TFLOP/s and the
speedup over splits=1, then forced counts for the serving case.

    python3 python/bench/bench_splitkv.py [--prepare]

--prepare compiles the kernels it needs into SWBA_KERNEL_DIR (on a machine
with swba-opt) and exits."""

import math
import os
import sys
from collections import namedtuple

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."),
                os.path.dirname(__file__)]

Shape = namedtuple("Shape", "name b hq hkv nq nk d bs ws dtype")

SHAPES = [
    Shape("frame vs 128k cache", 1, 32, 8, 256, 131072, 128, 256, 64, "bf16"),
    Shape("decode B=16", 16, 32, 8, 1, 32768, 128, 256, 8, "bf16"),
    Shape("design 1", 1, 12, 12, 4096, 4096, 64, 256, 16, "f16"),
    Shape("design 2", 1, 12, 12, 16384, 16384, 64, 256, 16, "f16"),
    Shape("design 3", 1, 24, 24, 16384, 16384, 128, 1024, 4, "f16"),
    Shape("design 4", 1, 24, 24, 32768, 32768, 128, 2048, 4, "f16"),
]
FORCED = (2, 3, 4, 6, 8, 16)


def kernel_configs():
    """The forward's kernels of each shape, as swba.ops picks them."""
    from swba.compile import forward_configs

    return {config for s in SHAPES
            for config in forward_configs(s.dtype, s.hq, s.hkv, s.nq, s.d, s.d, s.bs, s.ws)}


def visible_pairs(nq, nk, bs, ws):
    pos = [i + nk - nq for i in range(nq)]
    return sum(min((p // bs + 1) * bs, nk) - max(p // bs - ws + 1, 0) * bs for p in pos)


def main():
    import torch
    from triton.testing import do_bench

    from swba import ops

    os.environ["SWBA_CHIP"] = "sm_90a"
    dtypes = {"f16": torch.float16, "bf16": torch.bfloat16}
    rows = []
    for s in SHAPES:
        torch.manual_seed(0)
        dt = dtypes[s.dtype]
        q = torch.randn(s.b, s.hq, s.nq, s.d, device="cuda", dtype=dt)
        k = torch.randn(s.b, s.hkv, s.nk, s.d, device="cuda", dtype=dt)
        v = torch.randn(s.b, s.hkv, s.nk, s.d, device="cuda", dtype=dt)
        scale = 1.0 / math.sqrt(s.d)
        plan = ops.plan_for(q, k, v, s.bs, s.ws, scale)
        flops = 4 * visible_pairs(s.nq, s.nk, s.bs, s.ws) * s.d * s.b * s.hq

        def t(splits):
            return do_bench(lambda: plan.forward(q, k, v, splits=splits),
                            warmup=25, rep=100, return_mode="median")

        base = t(1)
        auto = plan.split_count()
        timed = [("auto", auto, t(None))]
        if s.name.startswith("frame"):
            timed += [("forced", n, t(n)) for n in FORCED]
        for how, n, ms in timed:
            rows.append((s.name, how, n, base, ms, flops / ms / 1e9))
    print("| shape | splits | count | ms splits=1 | ms | TFLOP/s | speedup |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, how, n, base, ms, tflops in rows:
        print(f"| {name} | {how} | {n} | {base:.4f} | {ms:.4f} | {tflops:.0f} | "
              f"{base / ms:.2f}x |")


if __name__ == "__main__":
    if "--prepare" in sys.argv[1:]:
        from swba import compiler
        for config in sorted(kernel_configs(), key=lambda c: c.key()):
            compiler.load_or_compile(config)
        print(f"{len(kernel_configs())} kernels in {compiler.cache_dir()}")
    else:
        main()
