"""SWBA-MLIR from Python: sliding window block attention kernels compiled by
swba-opt.

- `attention(q, k, v, block_size, window, scale=None)`: the
  `torch.ops.swba.attention` custom op (CUDA kernels; a dense reference on
  CPU), differentiable, traceable by `torch.compile` and `torch.export`.
- `paged_attention(q, k_cache, v_cache, page_table, seq_lens, block_size,
  window, scale=None)`: the forward against a paged KV cache (serving).
- `backend`: a `torch.compile` backend that first replaces block-window
  masked attention it can prove (SDPA with a mask, matmul-softmax-matmul,
  `flex_attention`) by that op: `torch.compile(model, backend=swba.backend)`
  (`make_backend(inner)` for another backend than Inductor).
- `load_bundle(path)`: run from kernels built ahead of time by
  `swba-compile` (also `SWBA_KERNEL_BUNDLE`).
- `autotune(q, k, v, block_size, window)`: times the candidate tilings of
  one configuration on this GPU and keeps the fastest for later calls
  (also `SWBA_AUTOTUNE=1`).
- `swba.reference`: the numpy definition of the op's semantics.

PyTorch is imported only when a name that needs it is asked for, so the
compiler, the bundle tools and the reference work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["attention", "autotune", "paged_attention", "backend", "make_backend",
           "load_bundle", "raise_attention", "__version__"]

if TYPE_CHECKING:
    from .tuning import autotune
    from .bundle import load_bundle
    from .library import attention
    from .paged import paged_attention
    from .raising import backend, make_backend, raise_attention


def __getattr__(name: str) -> Any:
    if name == "attention":
        from .library import attention

        return attention
    if name == "paged_attention":
        from .paged import paged_attention

        return paged_attention
    if name in ("backend", "make_backend", "raise_attention"):
        from . import raising

        return getattr(raising, name)
    if name == "autotune":
        from .tuning import autotune

        return autotune
    if name == "load_bundle":
        from .bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'swba' has no attribute {name!r}")
