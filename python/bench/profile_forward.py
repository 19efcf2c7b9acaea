"""One forward launch of a benchmark configuration, for `ncu` to profile:
python3 profile_forward.py B H N D BS WS"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention  # noqa: E402

b, h, n, d, bs, ws = map(int, sys.argv[1:7])
q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
attention(q, k, v, bs, ws, 1.0 / math.sqrt(d))
torch.cuda.synchronize()
