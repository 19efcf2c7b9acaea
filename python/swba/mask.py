"""Is a visibility matrix a sliding window block mask? The proof of
`--raise-swba` (the row ranges of MaskEvaluator.cpp, the inference of
MaskAnalysis.cpp, in lib/Dialect/SWBA/Transforms), step for step, with the
same diagnostics, for the PyTorch-level raising.

Pure Python and numpy on the [Nq, Nk] boolean matrix of a mask already
evaluated: no PyTorch needed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NotSWBAMask", "infer_swba_mask", "infer_from_ranges", "swba_mask"]


class NotSWBAMask(ValueError):
    """The matrix is no SWBA mask; the message says why (the closest
    candidate's first mismatching row)."""


def swba_mask(nq: int, nk: int, block_size: int, window: int) -> np.ndarray:
    """[Nq, Nk] bool: key j visible to query i, positions bottom-right aligned."""
    qf = (np.arange(nq) + nk - nq) // block_size
    kf = np.arange(nk) // block_size
    return (kf[None, :] <= qf[:, None]) & (qf[:, None] - kf[None, :] < window)


def _row_ranges(visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the keys each row sees, [lo, hi), checked to be one
    contiguous non-empty run per row."""
    nq, nk = visible.shape
    seen = visible.any(axis=1)
    if not seen.all():
        raise NotSWBAMask(f"query row {int(np.argmin(seen))} sees no key")
    lo = visible.argmax(axis=1)
    # hi: the first unseen key after lo (nk when the run reaches the end).
    cols = np.arange(nk)[None, :]
    after = ~visible & (cols > lo[:, None])
    hi = np.where(after.any(axis=1), after.argmax(axis=1), nk)
    counts = visible.sum(axis=1)
    broken = counts != hi - lo
    if broken.any():
        i = int(np.argmax(broken))
        extra = int(np.flatnonzero(visible[i, hi[i]:])[0]) + int(hi[i])
        raise NotSWBAMask(f"query row {i} sees keys [{lo[i]}, {hi[i]}) and key {extra}: "
                          f"not one contiguous range")
    return lo.astype(np.int64), hi.astype(np.int64)


def _divisors_desc(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small) | {n // d for d in small}, reverse=True)


def infer_swba_mask(visible: np.ndarray) -> tuple[int, int]:
    """(block_size, window) of the SWBA mask equal to `visible` ([Nq, Nk]
    bool, True where the key is seen), positions bottom-right aligned; the
    window is the smallest that fits (at most the number of frames).
    Raises NotSWBAMask saying why where there is none."""
    visible = np.asarray(visible, dtype=bool)
    if visible.ndim != 2:
        raise NotSWBAMask(f"expected an [Nq, Nk] matrix, got shape {visible.shape}")
    nq, nk = visible.shape
    _check_sizes(nq, nk)
    lo, hi = _row_ranges(visible)
    return infer_from_ranges(lo, hi, nk)


def _check_sizes(nq: int, nk: int) -> None:
    if nq < 1 or nk < nq:
        raise NotSWBAMask(f"needs 1 <= Nq <= Nk, got Nq={nq} Nk={nk}")


def window_ranges(nq: int, nk: int, block_size: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The keys [lo, hi) each of nq rows sees in the block window of nk keys
    (positions bottom-right aligned)."""
    fq = (np.arange(nq, dtype=np.int64) + nk - nq) // block_size
    return np.maximum(0, (fq - window + 1) * block_size), np.minimum((fq + 1) * block_size, nk)


def frame_edges(lo: np.ndarray, hi: np.ndarray, nk: int) -> int:
    """The gcd of the range bounds not clipped to [0, Nk], which a block
    size divides (0 where every bound is clipped)."""
    edges = 0
    for v in lo.tolist() + hi[hi < nk].tolist():
        edges = math.gcd(edges, int(v))
    return edges


def window_of_row(i: int, lo_i: int, nq: int, nk: int, block_size: int) -> int:
    """The window that row i, which sees back to key lo_i > 0, gives for
    `block_size`."""
    return (i + nk - nq) // block_size - lo_i // block_size + 1


def infer_from_ranges(lo: np.ndarray, hi: np.ndarray, nk: int) -> tuple[int, int]:
    """`infer_swba_mask` from the rows' ranges: query row i sees keys
    [lo[i], hi[i]) of nk (each a non-empty contiguous run)."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    nq = lo.shape[0]
    _check_sizes(nq, nk)
    # Frame edges are multiples of the block size: it divides every range
    # bound that is not clipped to [0, Nk].
    edges = frame_edges(lo, hi, nk)
    if edges == 0:
        edges = nk
    # Candidates: the divisors of the common edge, then (for a better
    # diagnosis of near misses) those of the first row's end, largest first.
    candidates = _divisors_desc(edges)
    candidates += [d for d in _divisors_desc(int(hi[0])) if d not in candidates]
    closest, closest_matches = "", -1
    unclipped = np.flatnonzero(lo > 0)
    for bs in candidates:
        frames = (nk + bs - 1) // bs
        # The window follows from any row whose range is not clipped at 0;
        # with none, every row sees back to key 0 and any window past the
        # frames fits.
        ws = frames
        if unclipped.size:
            i = int(unclipped[0])
            ws = window_of_row(i, int(lo[i]), nq, nk, bs)
        if ws < 1:
            continue
        want_lo, want_hi = window_ranges(nq, nk, bs, ws)
        ok = (want_lo == lo) & (want_hi == hi)
        matches = int(ok.sum())
        if matches == nq:
            return bs, min(ws, frames)
        if matches > closest_matches:
            i = int(np.argmin(ok))
            closest_matches = matches
            closest = (f"query row {i} sees keys [{lo[i]}, {hi[i]}) but block_size={bs} "
                       f"window={ws} would give [{want_lo[i]}, {want_hi[i]})")
    raise NotSWBAMask("not a sliding window block mask for any block size; the closest: "
                      + closest)
