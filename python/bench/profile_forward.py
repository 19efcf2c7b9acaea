"""One forward (or, with --backward, one forward+backward) step of a
benchmark configuration, for `ncu` to profile (--hkv: K and V with fewer
heads, GQA; --steps: that many steps, so that `--launch-skip` can leave
the first, compiling, one out):

    python3 profile_forward.py B H N D BS WS [--backward] [--bf16] [--hkv N] [--steps N]
    ncu -k regex:bwd_dkdv --section SpeedOfLight python3 profile_forward.py \\
        1 24 16384 128 1024 4 --backward
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention  # noqa: E402


def flag(name, default):
    rest = sys.argv[7:]
    return int(rest[rest.index(name) + 1]) if name in rest else default


b, h, n, d, bs, ws = map(int, sys.argv[1:7])
backward = "--backward" in sys.argv[7:]
dtype = torch.bfloat16 if "--bf16" in sys.argv[7:] else torch.float16
hkv = flag("--hkv", h)
q = torch.randn(b, h, n, d, device="cuda", dtype=dtype, requires_grad=backward)
k, v = (torch.randn(b, hkv, n, d, device="cuda", dtype=dtype,
                    requires_grad=backward) for _ in range(2))
for _ in range(flag("--steps", 1)):
    out = attention(q, k, v, bs, ws, 1.0 / math.sqrt(d))
    if backward:
        out.backward(torch.randn_like(out))
torch.cuda.synchronize()
