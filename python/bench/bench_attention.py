"""Benchmark on one GPU, in one run on the same inputs: SWBA-MLIR's kernels
against FlexAttention (compiled, equivalent block mask), SDPA with a boolean
mask, the seed's naive reference and dense causal SDPA (cuDNN); forward, or
with --backward forward+backward (loss = sum(out * dout)). "ours" is
SWBA-MLIR's default path for the device; where that is sm_90a (an H100: the
TMA + wgmma forward), the "mma_sync" column times SWBA_CHIP=sm_90 next to it.

Effective TFLOP/s count only visible (query, key) pairs (docs/DESIGN.md, section 7):
fwd = 4 * pairs * D * B * H, fwd+bwd = 3.5 * fwd. Prints a markdown table;
with --plot PATH also draws time against tokens (log scale) for the N sweep."""

import argparse
import contextlib
import math
import os
import sys

import torch
import torch.nn.functional as F
from triton.testing import do_bench

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."),
                os.path.dirname(__file__)]
from swba import attention, ops  # noqa: E402
from configs import DESIGN, SWEEP  # noqa: E402


def visible_pairs(nq, nk, bs, ws):
    pos = torch.arange(nq, dtype=torch.int64) + (nk - nq)
    f = pos // bs
    lo = torch.clamp(f - ws + 1, min=0) * bs
    hi = torch.clamp((f + 1) * bs, max=nk)
    return int((hi - lo).sum())


def naive_sba(q, k, v, bs, ws, scale):
    """The seed's SBA function (square case)."""
    n = q.shape[2]
    nb = (n + bs - 1) // bs
    mask = (torch.triu(torch.ones((nb, nb), device=q.device), diagonal=1)
            + torch.tril(torch.ones((nb, nb), device=q.device), diagonal=-ws))
    mask = torch.masked_fill(mask, mask == 1.0, float("-inf"))
    mask = mask.repeat_interleave(bs, 0).repeat_interleave(bs, 1)[:n, :n]
    attn = (q @ k.transpose(-2, -1)) * scale
    attn = attn + mask.to(attn.dtype)
    return attn.softmax(dim=-1) @ v


def bool_mask(n, bs, ws, device):
    f = torch.arange(n, device=device) // bs
    return (f[None, :] <= f[:, None]) & (f[:, None] - f[None, :] < ws)


def fwd_bwd(fn, q, k, v, dout):
    """A closure running fn forward and backward."""
    def step():
        for t in (q, k, v):
            t.grad = None
        fn(q, k, v).backward(dout)
    return step


def swba_chip():
    """The chip SWBA-MLIR compiles for on the current device."""
    return ops.chip_for(torch.device("cuda", torch.cuda.current_device()))


@contextlib.contextmanager
def forced_chip(chip):
    """SWBA-MLIR compiles for `chip` (SWBA_CHIP) inside the block."""
    saved = os.environ.get("SWBA_CHIP")
    os.environ["SWBA_CHIP"] = chip
    try:
        yield
    finally:
        if saved is None:
            del os.environ["SWBA_CHIP"]
        else:
            os.environ["SWBA_CHIP"] = saved


def run(configs, peers=True, backward=False):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    flex = torch.compile(flex_attention, dynamic=False)
    mma_sync = swba_chip() == "sm_90a"  # then sm_90 is the H100's mma.sync path
    rows = []
    for c in configs:
        torch.manual_seed(0)
        q, k, v = (torch.randn(c.b, c.h, c.n, c.d, device="cuda", dtype=torch.float16,
                               requires_grad=backward) for _ in range(3))
        dout = torch.randn_like(q)
        scale = 1.0 / math.sqrt(c.d)
        mult = 3.5 if backward else 1.0
        flops = mult * 4 * visible_pairs(c.n, c.n, c.bs, c.ws) * c.d * c.b * c.h
        res = {"cfg": c, "flops": flops}

        def t(fn):
            step = fwd_bwd(fn, q, k, v, dout) if backward else (lambda: fn(q, k, v))
            return do_bench(step, warmup=25, rep=100, return_mode="median")

        res["ours"] = t(lambda q, k, v: attention(q, k, v, c.bs, c.ws, scale))
        if mma_sync:
            with forced_chip("sm_90"):
                res["mma_sync"] = t(lambda q, k, v: attention(q, k, v, c.bs, c.ws, scale))
        if peers:
            bs, ws = c.bs, c.ws

            def mask_mod(b, h, qi, ki):
                qf, kf = qi // bs, ki // bs
                return (kf <= qf) & (qf - kf < ws)

            bm = create_block_mask(mask_mod, None, None, c.n, c.n, device="cuda")
            res["flex"] = t(lambda q, k, v: flex(q, k, v, block_mask=bm, scale=scale))
            if c.n <= 16384:
                m = bool_mask(c.n, c.bs, c.ws, "cuda")
                res["sdpa_mask"] = t(lambda q, k, v: F.scaled_dot_product_attention(
                    q, k, v, attn_mask=m, scale=scale))
                del m
            if c.n * c.n * c.h * c.b * 2 * (3 if backward else 1) <= 16 * 2**30:
                res["naive"] = t(lambda q, k, v: naive_sba(q, k, v, c.bs, c.ws, scale))
            causal_flops = mult * 4 * (c.n * (c.n + 1) // 2) * c.d * c.b * c.h
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                res["cudnn_causal"] = t(lambda q, k, v: F.scaled_dot_product_attention(
                    q, k, v, is_causal=True, scale=scale))
            res["cudnn_causal_flops"] = causal_flops
        rows.append(res)
        torch.cuda.empty_cache()
    return rows


def tflops(flops, ms):
    return flops / (ms * 1e-3) / 1e12


def table(rows):
    cols = ["ours", "mma_sync", "flex", "sdpa_mask", "naive", "cudnn_causal"]
    out = ["| B,H,N,D,bs,ws | ours ms | " + " | ".join(f"{c} TFLOP/s" for c in cols)
           + " | ours/flex | ours/sdpa_mask |",
           "|" + " --- |" * (len(cols) + 4)]
    for r in rows:
        c = r["cfg"]
        cells = []
        for col in cols:
            if col not in r:
                cells.append("-")
                continue
            flops = r["cudnn_causal_flops"] if col == "cudnn_causal" else r["flops"]
            cells.append(f"{tflops(flops, r[col]):.1f}")
        ratio = lambda p: f"{r[p] / r['ours']:.2f}x" if p in r else "-"  # noqa: E731
        out.append(f"| {c.b},{c.h},{c.n},{c.d},{c.bs},{c.ws} | {r['ours']:.3f} | "
                   + " | ".join(cells) + f" | {ratio('flex')} | {ratio('sdpa_mask')} |")
    return "\n".join(out)


def plot(rows, path, what):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for col, label in [("ours", "SWBA-MLIR"), ("mma_sync", "SWBA-MLIR mma.sync"),
                       ("flex", "FlexAttention"),
                       ("sdpa_mask", "SDPA + bool mask"), ("naive", "naive torch")]:
        pts = [(r["cfg"].n, r[col]) for r in rows if col in r]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel(f"{what} time (ms)")
    ax.set_title(f"SWBA {what}, fp16, B=1 H=12 D=64 bs=256 ws=16")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--backward", action="store_true", help="time forward+backward")
    args = ap.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"SWBA-MLIR chip {swba_chip()}")
    what = "forward+backward" if args.backward else "forward"
    design = run(DESIGN, backward=args.backward)
    print(f"\n## Configurations, {what}\n")
    print(table(design))
    if not args.no_sweep:
        sweep = run(SWEEP, backward=args.backward)
        print("\n## N sweep\n")
        print(table(sweep))
        if args.plot:
            plot(sweep, args.plot, what)
