"""Scaling of swba.distributed.attention: forward+backward throughput of one
sequence split over the GPUs of one host against the whole sequence on one
GPU, and how much of the halo traffic the compute hides.

    torchrun --nproc-per-node 2 python/bench/bench_distributed.py \\
        [--n 262144 --block-size 1024 --window 4 --heads 24 --d 128] \\
        [--trace /tmp/swba_trace]

Rank 0 first times the whole sequence on its GPU alone (the other ranks wait),
then every rank times its shard (N / world tokens) under the distributed op.
Printed: milliseconds per forward+backward step (median of --iters after
--warmup), tokens per second, the speedup (goal: at least 1.85x on 2 GPUs at
the default shape), and from a profiled step per rank the NCCL kernel time and
the part of it that no compute kernel overlaps ("exposed"). --trace writes the
Chrome traces (one per rank) there.
"""

import argparse
import os
import statistics
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention as single_gpu_attention  # noqa: E402
from swba.distributed import attention  # noqa: E402


def step_time(fn, iters, warmup):
    """Median milliseconds of fn() (a forward+backward step)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def make_step(attn, q, k, v, dout):
    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))

    def step():
        qg.grad = kg.grad = vg.grad = None
        attn(qg, kg, vg).backward(dout)
    return step


def overlap(prof):
    """(NCCL kernel ms, ms of it not overlapped by any other kernel)."""
    kernels = [(e.time_range.start, e.time_range.end, "nccl" in e.name.lower())
               for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    comm = [(s, e) for s, e, is_comm in kernels if is_comm]
    compute = sorted((s, e) for s, e, is_comm in kernels if not is_comm)
    total = exposed = 0.0
    for s, e in comm:
        total += e - s
        covered, cursor = 0.0, s
        for cs, ce in compute:
            if ce <= cursor or cs >= e:
                continue
            covered += min(ce, e) - max(cs, cursor)
            cursor = min(ce, e)
        exposed += (e - s) - covered
    return total / 1e3, exposed / 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=262144)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--dtype", choices=["bf16", "f16"], default="bf16")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--trace", help="directory for Chrome traces of one profiled step")
    a = ap.parse_args()

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    hkv = a.kv_heads or a.heads
    if a.n % world:
        raise SystemExit(f"--n {a.n} does not split over {world} ranks")
    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device="cuda", dtype=dtype)

    single_ms = None
    if rank == 0:
        q, k, v, dout = (randn(1, a.heads, a.n, a.d), randn(1, hkv, a.n, a.d),
                         randn(1, hkv, a.n, a.d), randn(1, a.heads, a.n, a.d))
        single_ms = step_time(make_step(lambda q, k, v: single_gpu_attention(
            q, k, v, a.block_size, a.window), q, k, v, dout), a.iters, a.warmup)
        del q, k, v, dout
        torch.cuda.empty_cache()
    dist.barrier()

    n = a.n // world
    q, k, v, dout = (randn(1, a.heads, n, a.d), randn(1, hkv, n, a.d),
                     randn(1, hkv, n, a.d), randn(1, a.heads, n, a.d))
    lengths = [n] * world
    step = make_step(lambda q, k, v: attention(q, k, v, a.block_size, a.window,
                                               shard_lengths=lengths), q, k, v, dout)
    split_ms = step_time(step, a.iters, a.warmup)
    times = [None] * world
    dist.all_gather_object(times, split_ms)

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    comm_ms, exposed_ms = overlap(prof)
    comms = [None] * world
    dist.all_gather_object(comms, (comm_ms, exposed_ms))
    if a.trace:
        os.makedirs(a.trace, exist_ok=True)
        prof.export_chrome_trace(os.path.join(a.trace, f"rank{rank}.json"))

    if rank == 0:
        slowest = max(times)
        print(f"N={a.n} bs={a.block_size} window={a.window} heads={a.heads}/{hkv} "
              f"D={a.d} {a.dtype}, forward+backward")
        print(f"1 GPU : {single_ms:9.2f} ms  {a.n / single_ms * 1e3:12.0f} tokens/s")
        print(f"{world} GPUs: {slowest:9.2f} ms  {a.n / slowest * 1e3:12.0f} tokens/s "
              f"(per rank: {', '.join(f'{t:.2f}' for t in times)} ms)")
        print(f"speedup {single_ms / slowest:.3f}x (goal >= 1.85x on 2 GPUs)")
        for r, (c, e) in enumerate(comms):
            print(f"rank {r}: NCCL kernels {c:.3f} ms, exposed {e:.3f} ms "
                  f"({100 * (1 - e / c) if c else 100:.0f}% hidden)")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
