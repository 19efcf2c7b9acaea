"""The Python mask proof (swba.mask, used by the PyTorch-level raising)
decides every mask as --raise-swba's MaskAnalysis.cpp does: the same
block_size and window, or the same reason for leaving it alone. Pseudo-random
SWBA masks, bottom-right aligned (Nq <= Nk), and each with one pair
flipped, through swba-opt. Needs numpy and swba-opt (skipped without it),
not PyTorch."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import compiler  # noqa: E402
from swba.mask import NotSWBAMask, infer_swba_mask, swba_mask  # noqa: E402

pytestmark = pytest.mark.cpu


def masked_attention(name: str, mask: np.ndarray) -> str:
    """A function computing softmax(select(mask, q k^T, -inf)) v with `mask`
    a dense constant."""
    nq, nk = mask.shape
    rows = ", ".join("[" + ", ".join("true" if x else "false" for x in row) + "]" for row in mask)
    return f"""
func.func @{name}(%q: tensor<1x{nq}x4xf32>, %k: tensor<1x{nk}x4xf32>, %v: tensor<1x{nk}x4xf32>) -> tensor<1x{nq}x4xf32> {{
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x{nq}x{nk}xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x{nq}x{nk}xf32>) -> tensor<1x{nq}x{nk}xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<1x{nq}x4xf32>, tensor<1x{nk}x4xf32>) outs(%sz : tensor<1x{nq}x{nk}xf32>) -> tensor<1x{nq}x{nk}xf32>
  %mask = arith.constant dense<[{rows}]> : tensor<{nq}x{nk}xi1>
  %xe = tensor.empty() : tensor<1x{nq}x{nk}xf32>
  %x = linalg.generic {{indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%s, %mask : tensor<1x{nq}x{nk}xf32>, tensor<{nq}x{nk}xi1>) outs(%xe : tensor<1x{nq}x{nk}xf32>) {{
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  }} -> tensor<1x{nq}x{nk}xf32>
  %pe = tensor.empty() : tensor<1x{nq}x{nk}xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<1x{nq}x{nk}xf32>) outs(%pe : tensor<1x{nq}x{nk}xf32>) -> tensor<1x{nq}x{nk}xf32>
  %oe = tensor.empty() : tensor<1x{nq}x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x{nq}x4xf32>) -> tensor<1x{nq}x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<1x{nq}x{nk}xf32>, tensor<1x{nk}x4xf32>) outs(%oz : tensor<1x{nq}x4xf32>) -> tensor<1x{nq}x4xf32>
  return %o : tensor<1x{nq}x4xf32>
}}
"""


def cases():
    rng = np.random.default_rng(5)
    out = []
    for i in range(60):
        nk = int(rng.integers(1, 20))
        nq = int(rng.integers(1, nk + 1))
        m = swba_mask(nq, nk, int(rng.integers(1, 8)), int(rng.integers(1, 5)))
        if i % 2:
            m[rng.integers(nq), rng.integers(nk)] ^= True
        out.append(m)
    return out


def test_python_proof_decides_as_raise_swba():
    tool = compiler.find_swba_opt()
    if tool is None:
        pytest.skip("no swba-opt")
    masks = cases()
    source = "\n// -----\n".join(masked_attention(f"m{i}", m) for i, m in enumerate(masks))
    proc = subprocess.run([tool, "--raise-swba", "--remarks-filter-missed=raise-swba",
                           "--split-input-file"], input=source, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    functions = proc.stdout.split("func.func @m")[1:]
    raised = {}
    for text in functions:
        index = int(re.match(r"\d+", text).group())
        found = re.search(r"block_size = (\d+) window = (\d+)", text)
        if found:
            raised[index] = tuple(map(int, found.groups()))
    reasons = re.findall(r'Reason="not raised to swba.attention: ([^"]*)"', proc.stderr)
    rejected = iter(reasons)
    checked = 0
    for i, m in enumerate(masks):
        try:
            got = infer_swba_mask(m)
        except NotSWBAMask as e:
            assert i not in raised, (i, m.astype(int), raised[i], str(e))
            assert next(rejected) == str(e), (i, m.astype(int))
        else:
            assert raised.get(i) == got, (i, m.astype(int), got)
        checked += 1
    assert checked == len(masks) and next(rejected, None) is None
