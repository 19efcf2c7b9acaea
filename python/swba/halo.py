"""Where a sequence split contiguously across ranks puts each rank's tokens,
the keys its queries need and the pieces `swba.distributed.attention`
computes them in; and the kernel configurations those pieces ask for, so
that they can be compiled ahead of time (`swba-compile`, bundles) for GPUs
without swba-opt. No PyTorch here: `swba.distributed` holds the exchanges.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

__all__ = ["Layout", "layout", "kernel_configs"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every rank's tokens and needed keys lie in the sequence."""
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    rank: int
    block_size: int
    window: int

    @property
    def start(self):
        return self.starts[self.rank]

    @property
    def end(self):
        return self.ends[self.rank]

    @property
    def total(self):
        return self.ends[-1]

    def keys_for(self, q0: int, q1: int) -> tuple[int, int]:
        """The keys queries [q0, q1) see: from the first frame of the first
        query's window to the end of the last query's frame."""
        bs = self.block_size
        lo = max(0, (q0 // bs - self.window + 1) * bs)
        hi = min(self.total, ((q1 - 1) // bs + 1) * bs)
        return lo, hi

    def needed(self, rank: int) -> tuple[int, int]:
        return self.keys_for(self.starts[rank], self.ends[rank])

    def interior(self) -> tuple[int, int]:
        """The own queries whose keys are all own keys (maybe empty)."""
        bs, s, e = self.block_size, self.start, self.end
        a = s if s == 0 else (-(-s // bs) + self.window - 1) * bs
        b = e if e == self.total else (e // bs) * bs
        return max(a, s), min(b, e)

    def transfers(self, rank_from: int, rank_to: int) -> tuple[int, int]:
        """The rows of rank_from's tokens that rank_to needs from it (empty
        when rank_from == rank_to)."""
        if rank_from == rank_to:
            return 0, 0
        lo, hi = self.needed(rank_to)
        a, b = max(lo, self.starts[rank_from]), min(hi, self.ends[rank_from])
        return (a, b) if a < b else (0, 0)

    def pieces(self) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
        """The own queries as pieces [q0, q1): the interior one (computed
        while the halo travels; None when empty), then those that need the
        halo."""
        s, e = self.start, self.end
        i0, i1 = self.interior()
        if i0 >= i1:
            return None, [(s, e)]
        return (i0, i1), [(q0, q1) for q0, q1 in ((s, i0), (i1, e)) if q0 < q1]

    def padded_queries(self, q0: int, q1: int) -> int:
        """The query rows of piece [q0, q1) as the kernels see it: zero rows
        up to the end of its keys (the op's bottom-right alignment)."""
        return self.keys_for(q0, q1)[1] - q0


def layout(shard_lengths: Sequence[int], rank: int, block_size: int,
           window: int) -> Layout:
    """The Layout of ranks holding shard_lengths tokens each, in rank order,
    seen from `rank`."""
    lengths = [int(x) for x in shard_lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"every rank needs at least one token, got lengths {lengths}")
    if not 0 <= rank < len(lengths):
        raise ValueError(f"rank {rank} is not one of the {len(lengths)} ranks")
    if block_size < 1 or window < 1:
        raise ValueError(f"block_size and window must be >= 1, got {block_size}, {window}")
    ends = tuple(itertools.accumulate(lengths))
    return Layout((0,) + ends[:-1], ends, rank, block_size, window)


def kernel_configs(shard_lengths: Sequence[int], q_heads: int, kv_heads: int,
                   head_dim: int, block_size: int, window: int, dtype: str = "bf16",
                   value_dim: int | None = None, scale: float | None = None,
                   chip: str = "sm_90a", options: str = "") -> list:
    """The kernel configurations (`compiler.KernelConfig`) that
    `swba.distributed.attention` asks for on CUDA ranks holding
    shard_lengths tokens each (`options`: SWBA_LOWER_OPTIONS at run time):
    every rank's pieces' forward (the plain forward and the split-KV one,
    or the decode kernel, as the runtime may pick them for the piece's
    query rows) and the backward. `swba-compile --shard-lengths` builds
    them into a bundle where swba-opt is, for GPUs where it is not."""
    from . import compiler
    from .compile import forward_configs

    value_dim = head_dim if value_dim is None else value_dim
    scale = compiler.default_scale(head_dim) if scale is None else float(scale)
    backward = " ".join(compiler.planned_options(options, True))
    configs = {compiler.KernelConfig(dtype, head_dim, value_dim, block_size, window, scale,
                                     chip=chip, grad=True, options=backward)}
    for rank in range(len(shard_lengths)):
        lay = layout(shard_lengths, rank, block_size, window)
        interior, edges = lay.pieces()
        for q0, q1 in ([interior] if interior else []) + edges:
            configs.update(forward_configs(
                dtype, q_heads, kv_heads, lay.padded_queries(q0, q1), head_dim, value_dim,
                block_size, window, chip, scale=scale, options=options))
    return sorted(configs, key=lambda c: c.key())
