"""`paged_attention(q, k_cache, v_cache, page_table, seq_lens, block_size,
window, scale=None)`: sliding window block attention against a KV cache in
pages, the way serving engines hold it (vLLM, FlashInfer).

- q: [B, Hq, Nq, D], the last Nq tokens of each sequence (Nq = 1: decode);
- k_cache, v_cache: [num_pages, page_size, Hkv, D] / [..., Dv] (NHD pages);
- page_table: [B, max_pages] int32, the cache page of each sequence page;
- seq_lens: [B] int32, tokens of each sequence (read on the device, so a
  captured CUDA graph replays correctly after the lengths change in place).

Query row i of sequence b sits at position seq_lens[b] - Nq + i; rows before
the sequence's start, and sequences of length 0, get out 0 and lse -inf.
Only the pages of the block window are read: pages of frames that left it
(and their table entries) can be reused by the caller at once. A table
entry that is read and lies outside the cache is not dereferenced: the rows
that see its keys get NaN.

On CUDA the forward runs on the split-KV decode kernel (`--lower-swba`'s
swba.paged_attention lowering), which takes at most 64 query rows per kv
head (Hq / Hkv * Nq); on CPU tensors the float64 reference
(`swba.reference.paged_attention_forward`) runs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from . import compiler, ops

__all__ = ["paged_attention"]


def _check(q, k_cache, v_cache, page_table, seq_lens) -> None:
    named = (("q", q), ("k_cache", k_cache), ("v_cache", v_cache),
             ("page_table", page_table), ("seq_lens", seq_lens))
    for name, t in named:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t, rank in (("q", q, 4), ("k_cache", k_cache, 4), ("v_cache", v_cache, 4),
                          ("page_table", page_table, 2), ("seq_lens", seq_lens, 1)):
        if t.dim() != rank:
            raise ValueError(f"{name} must be {rank}-D, got shape {tuple(t.shape)}")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32) or \
            k_cache.dtype != q.dtype or v_cache.dtype != q.dtype:
        raise TypeError(f"q, k_cache, v_cache must share one float dtype, got "
                        f"{q.dtype}, {k_cache.dtype}, {v_cache.dtype}")
    if page_table.dtype != torch.int32 or seq_lens.dtype != torch.int32:
        raise TypeError(f"page_table and seq_lens must be int32, got {page_table.dtype} "
                        f"and {seq_lens.dtype}")
    b, hq, nq, d = q.shape
    pages, page_size, hkv, _ = k_cache.shape
    if pages < 1 or page_size < 1:
        raise ValueError(f"the cache must hold at least one page of at least one token, "
                         f"got k_cache of shape {tuple(k_cache.shape)}")
    if k_cache.shape[3] != d:
        raise ValueError(f"k_cache head dim {k_cache.shape[3]} differs from q's {d}")
    if v_cache.shape[:3] != k_cache.shape[:3]:
        raise ValueError(f"v_cache {tuple(v_cache.shape)} and k_cache "
                         f"{tuple(k_cache.shape)} differ in pages, page size or heads")
    if page_table.shape[0] != b or seq_lens.shape[0] != b:
        raise ValueError(f"page_table {tuple(page_table.shape)} and seq_lens "
                         f"{tuple(seq_lens.shape)} must have q's batch {b}")
    if hkv < 1 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({hkv})")
    devices = {t.device for _, t in named}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")


class _PagedPlan:
    """The kernels of one configuration for one set of shapes."""

    def __init__(self, q, k_cache, v_cache, page_table, block_size, window, scale):
        b, hq, nq, d = q.shape
        _, page_size, hkv, dv = v_cache.shape
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise TypeError(f"CUDA paged attention takes float16 or bfloat16, got {q.dtype}")
        if d % 16 or not 16 <= d <= 128 or dv % 16 or not 16 <= dv <= 128:
            raise ValueError(f"head dims must be multiples of 16 in [16, 128], got {d}, {dv}")
        if hq // hkv * nq > compiler.DECODE_ROWS:
            raise ValueError(f"the GPU kernel takes at most {compiler.DECODE_ROWS} query rows per "
                             f"kv head (Hq / Hkv * Nq), got {hq // hkv * nq}")
        self.device = q.device
        self.config = compiler.KernelConfig(
            dtype=ops._TORCH_DTYPES[q.dtype], head_dim=d, value_dim=dv,
            block_size=int(block_size), window=int(window), scale=float(scale),
            with_lse=True, chip=ops.chip_for(q.device), paged=True,
            # (sm_90a: the lowering picks TMA boxes or bulk row copies by it.)
            page_size=compiler.kernel_page_size(page_size, ops.chip_for(q.device)),
            options=compiler.kernel_options(ops.os.environ.get("SWBA_LOWER_OPTIONS", ""), False))
        keys = min(ops._window_keys(block_size, window, nq), page_table.shape[1] * page_size)
        self.rows = (b, hkv, keys)
        self.launches = None

    def __call__(self, tensors):
        index = self.device.index
        with ops._on_device(index):
            if self.launches is None:
                # Kernels loading whole 64-key tiles by TMA want one
                # workgroup an SM, as dense caches do; bulk row copies,
                # cp.async and smaller boxes two (docs/BENCHMARKS.md).
                compiled, _ = ops._module(self.config, self.device)
                whole = compiler.loads_whole_tiles(compiled, "k_cache")
                splits = ops.decode_splits(*self.rows, self.device, per_sm=1 if whole else 2)
                self.launches = ops._make_launches(self.config, self.device,
                                                   ops._PAGED_OPERANDS, tensors,
                                                   {"splits": splits})
            self.launches(tensors, ops._current_stream(index))


_MAX_PLANS = 64
_plans: OrderedDict = OrderedDict()


def _plan(q, k_cache, v_cache, page_table, block_size, window, scale) -> _PagedPlan:
    key = (q.shape, k_cache.shape, v_cache.shape, page_table.shape, q.dtype, q.device,
           block_size, window, scale, ops.os.environ.get("SWBA_CHIP", ""),
           ops.os.environ.get("SWBA_LOWER_OPTIONS", ""),
           ops.os.environ.get("SWBA_DECODE_SPLITS", ""))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _PagedPlan(q, k_cache, v_cache, page_table, block_size,
                                        window, scale)
        if len(_plans) > _MAX_PLANS:
            _plans.popitem(last=False)
    else:
        _plans.move_to_end(key)
    return plan


def _reference(q, k_cache, v_cache, page_table, seq_lens, block_size, window, scale):
    from . import reference

    out, lse = reference.paged_attention_forward(
        q.double().numpy(), k_cache.double().numpy(), v_cache.double().numpy(),
        page_table.numpy(), seq_lens.numpy(), block_size, window, scale)
    return torch.from_numpy(out).to(q.dtype), torch.from_numpy(lse).float()


def paged_attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, page_table: Tensor,
                    seq_lens: Tensor, block_size: int, window: int,
                    scale: float | None = None, return_lse: bool = False
                    ) -> Tensor | tuple[Tensor, Tensor]:
    """Sliding window block attention of q against a paged KV cache (see the
    module's doc for the layout). Returns out [B, Hq, Nq, Dv] in q's dtype,
    and with return_lse also the float32 log-sum-exp [B, Hq, Nq]. Forward
    only (no autograd). Raises TypeError/ValueError for arguments outside
    this contract before anything is compiled or launched."""
    from .library import _check_scalars

    _check_scalars(block_size, window, scale)
    _check(q, k_cache, v_cache, page_table, seq_lens)
    if scale is None:
        scale = compiler.default_scale(q.shape[-1])
    if not q.is_cuda:
        out, lse = _reference(q, k_cache, v_cache, page_table, seq_lens, block_size,
                              window, scale)
        return (out, lse) if return_lse else out
    plan = _plan(q, k_cache, v_cache, page_table, block_size, window, scale)
    b, hq, nq, _ = q.shape
    out = torch.empty((b, hq, nq, v_cache.shape[3]), dtype=q.dtype, device=q.device)
    lse = torch.empty((b, hq, nq), dtype=torch.float32, device=q.device)
    if out.numel():
        tensors = tuple(ops._dense(t) for t in (q, k_cache, v_cache, page_table, seq_lens))
        plan(tensors + (out, lse))
    return (out, lse) if return_lse else out
