"""GPU time of each kernel of a forward+backward step (torch.profiler, CUDA
activity) at the design configurations, on the default path and on the
mma.sync one (SWBA_CHIP=sm_90): where the time goes.

    python3 python/bench/kernel_times.py
    python3 python/bench/kernel_times.py --options "" "grad-key-tile=128"
    python3 python/bench/kernel_times.py --forward --options "" "ping-pong=false"
    python3 python/bench/kernel_times.py --frontier narrow small-frames \
        --options "" "grad-stages=3"
    python3 python/bench/kernel_times.py --frontier token-16k \
        --options "" "grad-fused-dq=true" --kernel-dirs .kernels-a .kernels-b

With --options: the sm_90a kernels under each SWBA_LOWER_OPTIONS value,
taken in turn for 4 rounds (--rounds N; every other round in reverse
order, so that drift hits every option alike), the
best and the median round of each kernel: an A/B of tile choices on GPU
time alone, without the host or the L2 flush in it. With --kernel-dirs
DIR... as well, each option's kernels from each of those SWBA_KERNEL_DIRs
in turn (kernels that two builds of swba-opt compiled: an A/B of a
change to the lowering, in one process). With --forward the
steps are forward passes only (options of the forward kernel, whose
backward kernels need not be compiled). --frontier takes the cases of
bench_frontier.py (bf16, GQA), all or those named, instead of the design
configurations (fp16); --head-dims D ... the token and frame windows of
bench_head_dims.py at those head dims (bf16); --shape B,H,N,D,BS,WS ...
shapes of one's own (bf16, as many kv heads as query heads).

Kernels launch plainly here (SWBA_EARLY_START=0 unless set): a kernel
started while the one before it ends would count its wait for that one.
"""

import math
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from swba import attention  # noqa: E402
from configs import DESIGN, Config  # noqa: E402


FORWARD_ONLY = "--forward" in sys.argv
os.environ.setdefault("SWBA_EARLY_START", "0")


def step(q, k, v, dout, c):
    out = attention(q, k, v, c.bs, c.ws, 1.0 / math.sqrt(c.d))
    if not FORWARD_ONLY:
        out.backward(dout)


def args_after(flag):
    """The arguments after `flag` up to the next flag."""
    if flag not in sys.argv:
        return None
    rest = sys.argv[sys.argv.index(flag) + 1:]
    return rest[:next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))]


def configs():
    """The design configurations, bench_frontier.py's cases (--frontier),
    bench_head_dims.py's shapes at the head dims given (--head-dims), or
    shapes of one's own (--shape B,H,N,D,BS,WS ..., bf16)."""
    shapes = args_after("--shape")
    if shapes is not None:
        return [(Config(*(int(x) for x in s.split(","))), None, torch.bfloat16)
                for s in shapes]
    dims = args_after("--head-dims")
    if dims is not None:
        import bench_head_dims
        return [(Config(c.b, c.h, c.n, c.d, c.bs, c.ws), c.h, torch.bfloat16)
                for c in bench_head_dims.configs([int(d) for d in dims])]
    names = args_after("--frontier")
    if names is None:
        return [(c, c.h, torch.float16) for c in DESIGN]
    from bench_frontier import CASES
    return [(Config(c.b, c.hq, c.n, c.d, c.bs, c.ws), c.hkv, torch.bfloat16)
            for c in CASES if not names or c.name in names]


def times(c, hkv=None, dtype=torch.float16, reps=10):
    torch.manual_seed(0)
    hkv = hkv or c.h
    q = torch.randn(c.b, c.h, c.n, c.d, device="cuda", dtype=dtype,
                    requires_grad=not FORWARD_ONLY)
    k, v = (torch.randn(c.b, hkv, c.n, c.d, device="cuda", dtype=dtype,
                        requires_grad=not FORWARD_ONLY) for _ in range(2))
    dout = torch.randn_like(q)
    for _ in range(3):
        step(q, k, v, dout, c)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            step(q, k, v, dout, c)
        torch.cuda.synchronize()
    total = defaultdict(float)
    for ev in prof.events():
        if ev.device_type.name == "CUDA" and ev.name.startswith("swba_"):
            total[ev.name.removeprefix("swba_")] += ev.device_time / reps
    return total


KINDS = ("fwd", "bwd_delta", "bwd_dq", "bwd_dkdv", "bwd_dk", "bwd_dv", "bwd_dkdvdq",
         "bwd_dqconvert")


def compare(options, dirs=None, rounds=4):
    from swba import ops

    os.environ["SWBA_CHIP"] = "sm_90a"
    variants = [(o, d) for o in options for d in dirs or [None]]
    print("| B,H,N,D,bs,ws | options | " + ("kernels | " if dirs else "") + " | ".join(
        f"{k} best / median us" for k in KINDS) + " | sum of medians |")
    print("|" + " --- |" * (len(KINDS) + 3 + bool(dirs)))
    for c, hkv, dtype in configs():
        seen = {v: defaultdict(list) for v in variants}
        for r in range(rounds):
            # Every other round in reverse order (A B, B A, ...), so that
            # no variant always runs first on a cooler GPU.
            for o, d in variants if r % 2 == 0 else variants[::-1]:
                os.environ["SWBA_LOWER_OPTIONS"] = o
                if d:
                    # Another directory's kernels: forget the loaded ones.
                    os.environ["SWBA_KERNEL_DIR"] = os.path.abspath(d)
                    ops._modules.clear()
                    ops._plans.clear()
                for kind, us in times(c, hkv, dtype).items():
                    seen[o, d][kind].append(us)
        for o, d in variants:
            cells, total = [], 0.0
            for kind in KINDS:
                xs = sorted(seen[o, d][kind]) or [0.0]
                cells.append(f"{xs[0]:.0f} / {xs[len(xs) // 2]:.0f}")
                total += xs[len(xs) // 2]
            print(f"| {c.b},{c.h},{c.n},{c.d},{c.bs},{c.ws} | {o or 'default'} | "
                  + (f"{d} | " if d else "") + " | ".join(cells) + f" | {total:.0f} |")
    os.environ.pop("SWBA_LOWER_OPTIONS", None)


def main():
    if "--options" in sys.argv:
        rounds = args_after("--rounds")
        compare(args_after("--options"), args_after("--kernel-dirs"),
                int(rounds[0]) if rounds else 4)
        return
    for chip in ("", "sm_90"):
        if chip:
            os.environ["SWBA_CHIP"] = chip
        print(f"## {chip or 'default'} (us per step)")
        for c, hkv, dtype in configs():
            t = times(c, hkv, dtype)
            print(f"{c.b},{c.h},{c.n},{c.d},{c.bs},{c.ws}: " +
                  ", ".join(f"{k} {v:.0f}" for k, v in sorted(t.items())))


if __name__ == "__main__":
    main()
