"""What raising with symbolic shapes costs on the GPU: a token-window
attention (SDPA with a boolean mask from aranges) compiled by
`swba.backend` with dynamic=False (one graph a length) and with
dynamic=True (one graph; each length's window proven when first met),
against eager SDPA on the same mask. Prints, per length, the first call of
the dynamic graph (the proof included) and the steady forward of each."""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import swba  # noqa: E402


def fn(q, k, v, window=1024):
    n = q.shape[2]
    i = torch.arange(n, device=q.device)[:, None]
    j = torch.arange(n, device=q.device)[None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=(j <= i) & (i - j < window),
                                          enable_gqa=True)


def steady_ms(f, *args, rounds=20):
    from triton.testing import do_bench
    return do_bench(lambda: f(*args), warmup=5, rep=rounds * 10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 8192, 16384, 6000])
    args = parser.parse_args()
    dt = torch.bfloat16
    torch._dynamo.reset()
    dynamic = torch.compile(fn, backend=swba.backend, dynamic=True)
    rows = []
    for n in args.lengths:
        q = torch.randn(1, 32, n, 128, device="cuda", dtype=dt)
        k, v = (torch.randn(1, 8, n, 128, device="cuda", dtype=dt) for _ in range(2))
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = dynamic(q, k, v)
        torch.cuda.synchronize()
        first = (time.perf_counter() - start) * 1e3
        static = torch.compile(fn, backend=swba.backend, dynamic=False)
        want = static(q, k, v)
        err = (out.float() - want.float()).abs().max().item()
        # Eager SDPA's mask path runs out of memory past 8k on 32 heads.
        eager = steady_ms(fn, q, k, v) if n <= 8192 else float("nan")
        # The two graphs in turn, three times: the best of each.
        dyn, sta = [], []
        for _ in range(3):
            dyn.append(steady_ms(dynamic, q, k, v))
            sta.append(steady_ms(static, q, k, v))
        rows.append((n, first, min(dyn), min(sta), eager, err))
    print(f"{'N':>6} {'dynamic 1st call ms':>20} {'dynamic ms':>11} {'static ms':>10} "
          f"{'eager SDPA ms':>14} {'max |dyn - static|':>19}")
    for n, first, dyn, sta, eag, err in rows:
        print(f"{n:>6} {first:>20.2f} {dyn:>11.3f} {sta:>10.3f} {eag:>14.3f} {err:>19.2e}")


if __name__ == "__main__":
    main()
