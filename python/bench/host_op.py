"""Host cost of one attention call through each entry point, on tiny
shapes (the GPU work is negligible, so the time per call is the host's):
`swba.attention` in eager mode (the short path: one autograd.Function over
the kernels), `torch.ops.swba.attention` (the dispatcher's path, which
torch.compile and torch.export see), and a torch.compile'd function calling
`swba.attention`, with and without CUDA graphs (mode="reduce-overhead").
`python/bench/overhead.py` measures the first path as the earlier releases
had it."""

import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import swba  # noqa: E402

BS, WS = 256, 16  # the kernels host_parts.py and overhead.py use


def per_call(fn, n=500):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e6


def main():
    q, k, v = (torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.float16, requires_grad=True)
               for _ in range(3))
    dout = torch.randn_like(q)
    qd, kd, vd = q.detach(), k.detach(), v.detach()

    def eager_fwd():
        swba.attention(qd, kd, vd, BS, WS)

    def op_fwd():
        torch.ops.swba.attention(qd, kd, vd, BS, WS, 0.125)

    def eager_step():
        for t in (q, k, v):
            t.grad = None
        swba.attention(q, k, v, BS, WS).backward(dout)

    def op_step():
        for t in (q, k, v):
            t.grad = None
        torch.ops.swba.attention(q, k, v, BS, WS, 0.125)[0].backward(dout)

    compiled = torch.compile(lambda q, k, v: swba.attention(q, k, v, BS, WS), fullgraph=True)
    graphed = torch.compile(lambda q, k, v: swba.attention(q, k, v, BS, WS), fullgraph=True,
                            mode="reduce-overhead")

    def compiled_step():
        for t in (q, k, v):
            t.grad = None
        compiled(q, k, v).backward(dout)

    with torch.no_grad():
        rows = [("swba.attention, eager", per_call(eager_fwd)),
                ("torch.ops.swba.attention", per_call(op_fwd)),
                ("torch.compile(swba.attention)", per_call(lambda: compiled(qd, kd, vd))),
                ("torch.compile(..., reduce-overhead)", per_call(lambda: graphed(qd, kd, vd)))]
    print("host us per call, forward (no grad):")
    for name, us in rows:
        print(f"  {name:40s} {us:7.1f}")
    print("host us per call, forward+backward:")
    for name, fn in (("swba.attention, eager", eager_step), ("torch.ops.swba.attention", op_step),
                     ("torch.compile(swba.attention)", compiled_step)):
        print(f"  {name:40s} {per_call(fn):7.1f}")


if __name__ == "__main__":
    main()
