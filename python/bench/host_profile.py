"""cProfile of the host side of forward+backward on tiny shapes."""

import cProfile
import os
import pstats
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention  # noqa: E402

q, k, v = (torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.float16, requires_grad=True)
           for _ in range(3))
dout = torch.randn_like(q)


def fb():
    for t in (q, k, v):
        t.grad = None
    attention(q, k, v, 256, 16).backward(dout)


fb()
torch.cuda.synchronize()
cProfile.run("for _ in range(200): fb()", "/tmp/prof")
torch.cuda.synchronize()
pstats.Stats("/tmp/prof").sort_stats("tottime").print_stats(14)
