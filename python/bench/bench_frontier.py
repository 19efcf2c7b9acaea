"""The window shapes of real models against the fastest peers, in one run on
the same inputs (bf16): token windows of Mistral-class LLMs against
FlashAttention-3 (its Hopper kernels through the JAX binding
`flash-attn3-jax`, head dim 128, `window_size=(W - 1, 0)`) and FlexAttention,
narrow 128-token windows, small frames, frame windows at head dim 128;
forward and forward+backward (loss = sum(out * dout)). "ours" is the
lowering's default tiling, "tuned" the one `swba.autotune` picks for the
shapes (its candidates must be compiled: prepare_kernels.py --frontier-tune;
--frontier compiles the defaults, for --no-tune).

Effective TFLOP/s count visible (query, key) pairs only (docs/DESIGN.md):
fwd = 4 * pairs * D * B * Hq, fwd+bwd = 3.5 * fwd.

    python3 python/bench/bench_frontier.py [--only NAME ...] [--no-fa3] [--no-tune]
        [--rounds R] [--timing do_bench|loop|graph]

Ours and Flex are timed with triton's do_bench (each call alone, after
an L2 flush) unless --timing loop times them as FlashAttention-3 is
(20 calls back to back, no flush, median of 5 runs), or --timing graph
replays each call captured in a CUDA graph under do_bench (each replay
after an L2 flush): the kernels alone, without the host's enqueueing,
which bounds the eager steps of the short cases (narrow windows, small
frames: both contenders' rounds spread by a third there).

The contenders of a case take turns, R rounds (3 by default), and each
reports its median round: the GPU's clocks drift with its power and heat
over a run, and timing one contender after another lets that drift
favour whichever comes first.
"""

import argparse
import math
import os
import sys
import time
from collections import namedtuple

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]

Case = namedtuple("Case", "name b hq hkv n d bs ws peers")
# The peers each case's bar names (the frame windows' bars are absolute).
CASES = [
    Case("token-16k", 1, 32, 8, 16384, 128, 1, 4096, ("fa3", "flex")),
    Case("token-32k", 1, 32, 8, 32768, 128, 1, 4096, ("fa3",)),
    Case("narrow", 1, 64, 64, 8192, 64, 1, 128, ("flex",)),
    Case("small-frames", 4, 16, 16, 4096, 64, 64, 8, ("flex",)),
    Case("frames-d64-16k", 1, 12, 12, 16384, 64, 256, 16, ()),
    Case("frames-d128-16k", 1, 24, 24, 16384, 128, 1024, 4, ()),
    Case("frames-d128-32k", 1, 24, 24, 32768, 128, 2048, 4, ()),
]


def kernel_configs(candidates=True):
    """The forward and backward kernels of every case for sm_90a, with the
    autotuner's candidates unless `candidates` is false."""
    from swba import tuning
    from swba.compile import configs_for
    out = set()
    for c in CASES:
        for base in configs_for("bf16", c.d, c.bs, c.ws, chip="sm_90a"):
            out |= set(tuning.candidate_configs(base)) if candidates else {base}
    return out


def visible_pairs(n, bs, ws):
    import torch
    pos = torch.arange(n, dtype=torch.int64)
    f = pos // bs
    lo = torch.clamp(f - ws + 1, min=0) * bs
    hi = torch.clamp((f + 1) * bs, max=n)
    return int((hi - lo).sum())


TIMING = "do_bench"


def sm_clock():
    """The GPU's SM clock now (MHz), through NVML where nvidia-ml-py is
    installed, else None: read right after a contender's timing, it shows
    how far power and heat have pulled the clock down."""
    try:
        import pynvml
        pynvml.nvmlInit()
        import torch
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        return pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
    except Exception:  # noqa: BLE001 (no NVML: no clock in the report)
        return None


def time_torch(fn, q, k, v, dout, backward):
    """ms per call of `fn` (with the backward: per step). "do_bench":
    triton's, each call timed alone after a 256 MB L2 flush; "loop": as
    FlashAttention-3 is timed (fa3_timer), the median of 5 runs of 20
    calls back to back, no flush."""
    import torch
    from triton.testing import do_bench

    def step():
        for t in (q, k, v):
            t.grad = None
        fn(q, k, v).backward(dout)
    call = step if backward else (lambda: fn(q, k, v))
    if TIMING == "do_bench":
        return do_bench(call, warmup=25, rep=200, return_mode="median")
    if TIMING == "graph":
        # One call (a step: the forward, the backward and the gradients'
        # allocation) captured after warm-up calls; its replays timed.
        from cuda_graphs import capture
        graph = capture(call)
        ms = do_bench(graph.replay, warmup=25, rep=200, return_mode="median")
        del graph
        return ms
    for _ in range(3):
        call()
    runs = []
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            call()
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) / 20 * 1e3)
    return sorted(runs)[len(runs) // 2]


def fa3_timer(c, q, k, v, dout, backward):
    """FlashAttention-3 through JAX on the same values, [B, N, H, D]: a
    function that times it (ms, the median of 5 runs of 20 calls)."""
    import jax
    import jax.numpy as jnp
    from flash_attn3_jax import flash_mha

    def to_jax(t):
        return jnp.asarray(t.detach().transpose(1, 2).float().cpu().numpy(), dtype=jnp.bfloat16)
    jq, jk, jv, jd = (to_jax(t) for t in (q, k, v, dout))
    scale = 1 / math.sqrt(c.d)
    window = (c.ws * c.bs - 1, 0) if c.bs == 1 else None
    if window is None:
        raise ValueError("frame windows have no FlashAttention-3 form")

    def fwd(q, k, v):
        return flash_mha(q, k, v, softmax_scale=scale, is_causal=True, window_size=window)

    if backward:
        def loss(q, k, v):
            return jnp.sum(fwd(q, k, v).astype(jnp.float32) * jd.astype(jnp.float32))
        fn = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    else:
        fn = jax.jit(fwd)
    for _ in range(3):
        jax.block_until_ready(fn(jq, jk, jv))

    def timed():
        best = []
        for _ in range(5):
            reps = 20
            t0 = time.perf_counter()
            for _ in range(reps):
                r = fn(jq, jk, jv)
            jax.block_until_ready(r)
            best.append((time.perf_counter() - t0) / reps * 1e3)
        return sorted(best)[len(best) // 2]
    return timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-fa3", action="store_true")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of every contender in turn; the median round is reported")
    ap.add_argument("--timing", choices=("do_bench", "loop", "graph"), default="do_bench",
                    help="how ours and Flex are timed (FlashAttention-3 always as "
                         "'loop': its JAX calls run back to back)")
    args = ap.parse_args()
    global TIMING
    TIMING = args.timing
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import torch
    import swba
    from swba import tuning, ops
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    flex = torch.compile(flex_attention, dynamic=False)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, timing {TIMING}")
    rows = []
    for c in CASES:
        if args.only and c.name not in args.only:
            continue
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(c.b, c.hq, c.n, c.d, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(c.b, c.hkv, c.n, c.d, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(c.b, c.hkv, c.n, c.d, device="cuda", dtype=torch.bfloat16, generator=g)
        dout = torch.randn_like(q)
        for t in (q, k, v):
            t.requires_grad_()
        scale = 1 / math.sqrt(c.d)
        flops = 4 * visible_pairs(c.n, c.bs, c.ws) * c.d * c.b * c.hq
        bs, ws = c.bs, c.ws

        def mask_mod(b, h, qi, ki):
            qf, kf = qi // bs, ki // bs
            return (kf <= qf) & (qf - kf < ws)
        block_mask = None if args.no_flex or "flex" not in c.peers else create_block_mask(
            mask_mod, None, None, c.n, c.n, device="cuda")
        for backward in (False, True):
            mult = 3.5 if backward else 1.0
            res = {"case": c.name, "what": "fwd+bwd" if backward else "fwd"}

            def ours(entries):
                """Timing ours with the tuning cache `entries` (None: the
                autotuner's winners; {}: the lowering's default tiling)."""
                def timed():
                    ops._plans.clear()
                    tuning._entries = entries
                    return time_torch(lambda q, k, v: swba.attention(q, k, v, bs, ws, scale),
                                      q, k, v, dout, backward)
                return timed
            # Each contender: a function that times it (ms).
            contenders = {"ours": ours({})}
            if not args.no_tune:
                tuning._entries = None
                chosen = swba.autotune(q, k, v, bs, ws, scale, backward=backward)
                res["tuning"] = chosen.backward if backward else chosen.forward
                contenders["tuned"] = ours(None)
            if block_mask is not None:
                contenders["flex"] = lambda: time_torch(lambda q, k, v: flex(
                    q, k, v, block_mask=block_mask, scale=scale, enable_gqa=c.hq != c.hkv),
                    q, k, v, dout, backward)
            if not args.no_fa3 and "fa3" in c.peers:
                try:
                    contenders["fa3"] = fa3_timer(c, q, k, v, dout, backward)
                except Exception as e:  # noqa: BLE001 (a peer that does not run is reported)
                    print(f"FA3 {c.name}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            # Every contender once a round, in turn, so that the clocks'
            # drift (power and heat) hits each alike; the median round.
            times = {name: [] for name in contenders}
            clocks = {name: [] for name in contenders}
            for _ in range(args.rounds):
                for name, timed in contenders.items():
                    times[name].append(timed())
                    clocks[name].append(sm_clock())
            res["sm_mhz"] = {name: c for name, c in clocks.items() if any(c)}
            for name, ts in times.items():
                res[name] = sorted(ts)[len(ts) // 2]
                res[name + "_rounds"] = [round(t, 4) for t in ts]
            tuning._entries = None
            for col in ("ours", "tuned", "flex", "fa3"):
                if res.get(col):
                    res[col + "_tf"] = mult * flops / (res[col] * 1e-3) / 1e12
            rows.append(res)
            print(res, flush=True)
        del q, k, v, dout
        torch.cuda.empty_cache()
    print("\n| case | pass | ours TFLOP/s | tuned TFLOP/s (options) | Flex | FA3 "
          "| best ours / Flex | best ours / FA3 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        best = max(r.get("ours_tf", 0), r.get("tuned_tf", 0))
        cell = lambda col: f"{r[col + '_tf']:.0f}" if r.get(col + "_tf") else "-"  # noqa: E731
        ratio = lambda col: f"{best / r[col + '_tf']:.2f}x" if r.get(col + "_tf") else "-"  # noqa
        print(f"| {r['case']} | {r['what']} | {cell('ours')} | {cell('tuned')} "
              f"({r.get('tuning', '') or 'default'}) | {cell('flex')} | {cell('fa3')} "
              f"| {ratio('flex')} | {ratio('fa3')} |")


if __name__ == "__main__":
    main()
