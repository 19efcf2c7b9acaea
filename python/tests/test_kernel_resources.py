"""scripts/kernel_resources.py's reading of ptxas -v (no GPU, no ptxas)."""

import os
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import kernel_resources  # noqa: E402

REPORT = """\
ptxas info    : 0 bytes gmem
ptxas info    : (C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'swba_bwd_dq'
ptxas info    : Compiling entry function 'swba_fwd' for 'sm_90a'
ptxas info    : Function properties for swba_fwd
    32 bytes stack frame, 36 bytes spill stores, 40 bytes spill loads
ptxas info    : Used 128 registers, used 1 barriers, 32 bytes cumulative stack size
ptxas info    : Compiling entry function 'swba_bwd_dq' for 'sm_90a'
ptxas info    : Function properties for swba_bwd_dq
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 80 registers, used 1 barriers
"""


def test_reads_each_kernel():
    report = kernel_resources.parse_ptxas(REPORT)
    assert report == {
        "swba_fwd": dict(registers=128, stack=32, stores=36, loads=40, serialized=0),
        "swba_bwd_dq": dict(registers=80, stack=0, stores=0, loads=0, serialized=1),
    }
