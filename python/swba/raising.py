"""Raising block-window masked attention to `swba::attention` inside
`torch.compile`.

Opt in with one line::

    model = torch.compile(model, backend=swba.backend)

`backend` runs `raise_attention` on the graph Dynamo captured, then hands it
to Inductor (`make_backend(inner)` picks another backend). Where it can
prove the attention is sliding window block attention it puts one
`torch.ops.swba.attention` node in place of:

- `F.scaled_dot_product_attention(q, k, v, attn_mask=M)` with a boolean or
  an additive (0 / -inf) mask M, no dropout, not causal;
- the naive form `softmax(q @ k.transpose(-2, -1) * scale + M, -1) @ v` (the
  mask added, or applied by `masked_fill`/`torch.where` with -inf; the scale
  a constant on the scores, q or k, or absent; dtype casts anywhere, as in
  `q.float() @ ...`; either product also as a two-operand `torch.einsum`
  over the last two dims, `bhqd,bhkd->bhqk` or `...qk,...kd->...qd`);
- `flex_attention(q, k, v, block_mask=B)` whose score_mod is the identity
  and whose mask (the BlockMask's block tables together with its mask_mod)
  is a block window.

Why a backend wrapper on Dynamo's graph: that graph is still at the PyTorch
level and before autograd, so a pattern is a handful of torch calls (not
their ATen decomposition), and its backward becomes the op's backward
kernels when AOTAutograd traces the rewritten graph; an ATen-level pass
after autograd would have to find and replace the forward and the
decomposed backward separately. A backend is the public, stable way in
(Inductor's pre-grad custom pass hook is a private config).

The proof is the one of `--raise-swba`: the mask is evaluated on the CPU at
compile time (it has to come from constants, `arange`s and the like: a mask
that depends on a graph input, a buffer or a random op is not evaluated),
every (query, key) pair, and `swba.mask.infer_swba_mask` checks it is
exactly a block window, bottom-right aligned. Every candidate left alone is
logged at INFO on the `swba.raising` logger with the reason (and returned by
`raise_attention`).

With symbolic shapes (`dynamic=True`, or automatic dynamic shapes after a
new length) the mask is proven at the traced sizes as above, and the node
put in place is `swba::attention_dynamic`: the mask's computation, from the
symbolic sizes it reads, is kept as a program of its own (`_MaskProgram`),
and each new set of sizes met at run time evaluates it (on the operands'
device) and proves it again, once; where it is no block window there, that
size runs the mask densely.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import math
import operator
import threading
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F

from . import library  # noqa: F401  (registers torch.ops.swba)
from .mask import (NotSWBAMask, _check_sizes, frame_edges, infer_from_ranges, infer_swba_mask,
                   window_of_row, window_ranges)

__all__ = ["backend", "make_backend", "raise_attention", "Decision", "MAX_MASK_PAIRS"]

log = logging.getLogger("swba.raising")

# Masks (or mask evaluations) larger than this many elements are not
# evaluated: a bool mask of this size takes 256 MiB on the CPU.
MAX_MASK_PAIRS = 1 << 28


@dataclasses.dataclass
class Decision:
    """What the pass did with one candidate: `raised` with the attributes it
    proved, or left alone with `reason`."""

    node: str
    form: str  # "sdpa", "naive" or "flex_attention"
    raised: bool
    reason: str = ""
    block_size: int | None = None
    window: int | None = None
    scale: float | None = None
    # Shapes symbolic: the window is proven again at each size at run time
    # (block_size and window are the traced size's).
    dynamic: bool = False


class _NotProven(Exception):
    pass


# --- graph helpers -----------------------------------------------------------

def _val(node: Any):
    """The traced value of a node (Dynamo: example_value; export: val)."""
    if not isinstance(node, fx.Node):
        return node
    meta = node.meta
    return meta.get("example_value", meta.get("val"))


def _is_call(node: Any, functions: Sequence[Any] = (), methods: Sequence[str] = ()) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_function":
        return node.target in functions
    if node.op == "call_method":
        return node.target in methods
    return False


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """A call's argument by position (counting self for a method) or name."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_CAST_METHODS = {"float": torch.float32, "half": torch.float16, "bfloat16": torch.bfloat16,
                 "double": torch.float64}


_DROPOUT = (F.dropout, torch.dropout)


def _is_identity_dropout(node: fx.Node) -> bool:
    """Dropout that keeps every value: p = 0, or not training (as a model in
    eval mode calls `F.dropout(x, p, training=self.training)`)."""
    if not _is_call(node, _DROPOUT):
        return False
    p = _arg(node, 1, "p", 0.5)
    training = _arg(node, 2, "training" if node.target is F.dropout else "train", True)
    return (isinstance(p, (int, float)) and p == 0) or training is False


def _strip_casts(node: Any) -> Any:
    """The node under float dtype casts, `contiguous` and dropout that keeps
    every value, which change no value the pattern depends on (the kernel
    computes in f32 itself)."""
    while isinstance(node, fx.Node):
        if _is_identity_dropout(node):
            node = node.args[0]
        elif node.op == "call_method" and node.target in _CAST_METHODS and len(node.args) == 1:
            node = node.args[0]
        elif node.op == "call_method" and node.target == "contiguous":
            node = node.args[0]
        elif node.op == "call_method" and node.target in ("to", "type") and len(node.args) == 2 \
                and not node.kwargs and node.args[1] in _FLOAT_DTYPES:
            node = node.args[0]
        elif node.op == "call_method" and node.target == "to" and len(node.args) == 1 \
                and set(node.kwargs) == {"dtype"} and node.kwargs["dtype"] in _FLOAT_DTYPES:
            node = node.args[0]
        else:
            break
    return node


_MATMUL = (operator.matmul, torch.matmul)
_EINSUM = (torch.einsum, torch.functional.einsum)
_SOFTMAX_FUNCTIONS = (torch.softmax, F.softmax, torch.nn.functional.softmax)
_SDPA = (F.scaled_dot_product_attention, torch._C._nn.scaled_dot_product_attention)
_ADD = (operator.add, torch.add, operator.iadd)
_MUL = (operator.mul, torch.mul, operator.imul)
_DIV = (operator.truediv, torch.div, torch.true_divide, operator.itruediv)


def _transposed_last_two(node: Any) -> Any:
    """x where node is x with its last two dims swapped (4-D), else None."""
    if _is_call(node, (torch.transpose, torch.swapaxes, torch.swapdims),
                ("transpose", "swapaxes", "swapdims")):
        dims = {_arg(node, 1, "dim0"), _arg(node, 2, "dim1")}
        if dims in ({-2, -1}, {2, 3}, {-2, 3}, {2, -1}):
            return node.args[0]
    if _is_call(node, (torch.permute,), ("permute",)):
        dims = node.args[1:] if len(node.args) > 2 else _arg(node, 1, "dims")
        if tuple(dims) in ((0, 1, 3, 2), (0, 1, -1, -2)):
            return node.args[0]
    # x.mT: as Dynamo records the property (an aten call, or getattr).
    if _is_call(node, (torch.ops.aten.mT, torch.ops.aten.mT.default)) and len(node.args) == 1:
        return node.args[0]
    if _is_call(node, (getattr,)) and node.args[1:] == ("mT",):
        return node.args[0]
    return None


@dataclasses.dataclass(frozen=True)
class _Scale:
    """A product of constants and of symbolic numbers (the graph's nodes of
    a size, such as `1 / sqrt(q.shape[-1])` with a symbolic head dim), each
    to the power 1 or -1."""

    const: float = 1.0
    factors: tuple[tuple[fx.Node, int], ...] = ()

    def __mul__(self, other: "_Scale") -> "_Scale":
        return _Scale(self.const * other.const, self.factors + other.factors)


def _is_number(c: Any) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def _is_symbolic_number(c: Any) -> bool:
    return isinstance(c, fx.Node) and isinstance(_val(c), (torch.SymInt, torch.SymFloat))


def _constant_factor(node: fx.Node) -> tuple[Any, _Scale] | None:
    """(x, factor) where node is x times a number (or x divided by one),
    constant or symbolic, else None."""
    if _is_call(node, _MUL, ("mul", "__mul__")) and len(node.args) == 2:
        a, b = node.args
        for x, c in ((a, b), (b, a)):
            if isinstance(x, fx.Node) and not _is_symbolic_number(x):
                if _is_number(c):
                    return x, _Scale(float(c))
                if _is_symbolic_number(c):
                    return x, _Scale(factors=((c, 1),))
    if _is_call(node, _DIV, ("div", "__truediv__")) and len(node.args) == 2:
        x, c = node.args
        if isinstance(x, fx.Node) and not _is_symbolic_number(x):
            if _is_number(c) and c != 0:
                return x, _Scale(1.0 / float(c))
            if _is_symbolic_number(c):
                return x, _Scale(factors=((c, -1),))
    return None


def _strip_scale(node: Any) -> tuple[Any, _Scale]:
    """The node under casts and constant factors, and the product of those."""
    scale = _Scale()
    while True:
        node = _strip_casts(node)
        found = _constant_factor(node) if isinstance(node, fx.Node) else None
        if found is None:
            return node, scale
        node, factor = found
        scale = scale * factor


# --- evaluating a mask at compile time ---------------------------------------

# Ops whose result is not a function of their inputs: a mask made with one
# of them is not evaluated.
_UNSTABLE = ("rand", "bernoulli", "dropout", "normal", "multinomial", "uniform", "poisson",
             "exponential", "geometric", "cauchy", "log_normal", "empty", "random")


def _name_of(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.device):
        return torch.device("cpu")
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    return value


def _is_symbolic(value: Any) -> bool:
    return isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _hint(value: Any) -> Any:
    """The value a symbolic int had when traced (ints as they are)."""
    if isinstance(value, torch.SymInt):
        node = value.node
        hint = getattr(node, "hint", None)
        if hint is None and getattr(node, "shape_env", None) is not None:
            hint = node.shape_env.size_hint(node.expr, allow_none=True)
        if hint is None:
            raise _NotProven(f"the size {value} has no traced value")
        return int(hint)
    return value


def _shape(node: Any) -> tuple[int, ...]:
    """The traced shape of a node's tensor, symbolic sizes at their hints."""
    return tuple(_hint(d) for d in _val(node).shape)


def _check_static(value: Any) -> None:
    if _is_symbolic(value):
        raise _NotProven("the mask depends on a dynamic shape (compile with dynamic=False)")
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_static(v)


class _Evaluator:
    """Evaluates nodes of a graph from constants only (memoized), on the CPU
    or on `device`; `inputs` gives the values of the placeholders it may
    read. With `dynamic`, a node whose value is a symbolic int is taken at
    its traced value and recorded in `leaves` (the sizes the mask reads)."""

    def __init__(self, gm: fx.GraphModule, inputs: dict[fx.Node, Any] | None = None,
                 dynamic: bool = False, device: torch.device | None = None):
        self.gm = gm
        self.inputs = inputs or {}
        self.dynamic = dynamic
        self.device = device or torch.device("cpu")
        self.values: dict[fx.Node, Any] = {}
        self.leaves: list[fx.Node] = []
        self.order: dict[fx.Node, int] | None = None  # the graph's, when first needed

    def __call__(self, node: Any) -> Any:
        if not isinstance(node, fx.Node):
            _check_static(node)
            return self._move(node)
        if node not in self.values and self._is_size(node):
            self.leaves.append(node)
            self.values[node] = _hint(_val(node))
        if node not in self.values:
            # The node's slice of the graph, in the graph's order: vmap's
            # levels (functorch's nesting calls, which no value depends on)
            # and in-place writes then happen as the program makes them.
            nesting = 0
            try:
                for n in self._slice(node):
                    if n.op == "call_function" and n.target in _VMAP_NESTING:
                        nesting += _VMAP_NESTING[n.target]
                    self.values[n] = self._evaluate(n)
            finally:
                for _ in range(nesting):  # a failure inside a vmap: unwind its levels
                    torch._C._functorch._vmap_decrement_nesting()
        return self.values[node]

    def _is_size(self, node: fx.Node) -> bool:
        """A symbolic int the evaluation takes at its traced value."""
        return self.dynamic and node not in self.inputs and isinstance(_val(node), torch.SymInt)

    def _slice(self, root: fx.Node) -> list[fx.Node]:
        """The nodes not yet evaluated that `root` depends on (stopping at
        symbolic sizes), with vmap's bookkeeping, in the graph's order."""
        if self.order is None:
            self.order = _graph_order(self.gm)
        return _graph_slice(self.gm, [root], lambda n: n in self.values or self._is_size(n),
                            self.order)

    def _move(self, value: Any) -> Any:
        if self.device.type == "cpu":
            return _on_cpu(value)
        if isinstance(value, torch.device):
            return self.device
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        if isinstance(value, (list, tuple)):
            return type(value)(self._move(v) for v in value)
        if isinstance(value, dict):
            return {k: self._move(v) for k, v in value.items()}
        return value

    def _evaluate(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if node in self.inputs:
                return self._move(self.inputs[node])
            raise _NotProven(f"the mask depends on the graph input {node.target!r} (a tensor "
                             f"passed in, a buffer or a global): its values are only known at "
                             f"run time; build the mask inside the compiled code from shapes "
                             f"and aranges, or call swba.attention")
        if node.op == "get_attr":
            value = self.gm
            for part in str(node.target).split("."):
                value = getattr(value, part)
            # A copy: nothing evaluated here may touch the module's tensors.
            return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value
        if node.op not in ("call_function", "call_method"):
            raise _NotProven(f"the mask depends on {node.op} {node.name}")
        name = _name_of(node.target)
        if any(word in name.lower() for word in _UNSTABLE):
            raise _NotProven(f"the mask depends on {name}, whose result is not a function "
                             f"of its inputs")
        written = _mutated(node)
        if written is not None and not _fresh_and_private(written, node):
            raise _NotProven(f"the mask is built with {name}, which writes in place")
        shown = _val(node)
        if isinstance(shown, torch.Tensor) and _hint(shown.numel()) > MAX_MASK_PAIRS:
            raise _NotProven(f"the mask's computation makes {_hint(shown.numel())} elements "
                             f"at {node.name}, over the limit of {MAX_MASK_PAIRS}")
        args = tuple(fx.node.map_arg(node.args, self))
        kwargs = dict(fx.node.map_arg(node.kwargs, self))
        _check_static(args)
        _check_static(list(kwargs.values()))
        if "device" in kwargs:  # also a device given by name
            kwargs["device"] = self.device
        try:
            if node.op == "call_method":
                self_value, rest = args[0], args[1:]
                if node.target in ("cuda", "cpu"):
                    return self_value
                if node.target == "to":
                    rest = tuple(a for a in rest if not isinstance(a, (torch.device, str)))
                    kwargs.pop("device", None)
                    kwargs.pop("non_blocking", None)
                return self._move(getattr(self_value, node.target)(*rest, **kwargs))
            return self._move(node.target(*args, **kwargs))
        except Exception as e:  # user code run on other devices and values
            raise _NotProven(f"evaluating the mask on the CPU failed at {node.name}: "
                             f"{type(e).__name__}: {e}") from None


def _graph_order(gm: fx.GraphModule) -> dict[fx.Node, int]:
    return {n: i for i, n in enumerate(gm.graph.nodes)}


def _graph_slice(gm: fx.GraphModule, roots: Sequence[fx.Node],
                 stop: Callable[[fx.Node], bool],
                 order: dict[fx.Node, int]) -> list[fx.Node]:
    """The nodes `roots` depend on, up to (not including) the ones `stop`
    accepts, with the vmap bookkeeping calls between the first and the last
    of them, in the graph's order (`order`, `_graph_order(gm)`)."""
    needed, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in needed:
            continue
        if stop(n):
            continue
        needed.add(n)
        todo.extend(n.all_input_nodes)
    if not needed:
        return []
    nodes = list(order)
    span = [order[n] for n in needed]
    for n in nodes[min(span):max(span)]:
        if n.op == "call_function" and n.target in _VMAP_BOOKKEEPING:
            needed.add(n)
    return sorted(needed, key=order.__getitem__)


def _functorch_calls(name: str) -> set:
    """functorch's vmap bookkeeping function `name`, as Dynamo may record
    it (its pre-dispatch wrapper or the binding)."""
    modules = (getattr(torch._functorch, "predispatch", None), torch._C._functorch)
    return {getattr(m, name) for m in modules if m is not None and hasattr(m, name)}


# vmap as Dynamo inlines it: levels entered and left by calls no value
# depends on (+1 / -1 each), and decompositions loaded once.
_VMAP_NESTING = {fn: 1 for fn in _functorch_calls("_vmap_increment_nesting")}
_VMAP_NESTING.update({fn: -1 for fn in _functorch_calls("_vmap_decrement_nesting")})
_VMAP_BOOKKEEPING = set(_VMAP_NESTING) | _functorch_calls("lazy_load_decompositions")


_IN_PLACE_FUNCTIONS = (operator.setitem, operator.iadd, operator.isub, operator.imul,
                       operator.itruediv, operator.ifloordiv, operator.imod, operator.iand,
                       operator.ior, operator.ixor, operator.ilshift, operator.irshift,
                       operator.ipow)


def _mutated(node: fx.Node) -> Any:
    """The tensor node changes in place (its first operand, or out=), or None."""
    if node.op not in ("call_function", "call_method"):
        return None
    name = _name_of(node.target)
    if isinstance(node.kwargs.get("out"), fx.Node):
        return node.kwargs["out"]
    # Trailing underscore: PyTorch's in-place spelling (operator.and_ and
    # its kin are not in place).
    trailing = name.endswith("_") and not name.endswith("__") and (
        node.op == "call_method" or getattr(node.target, "__module__", None) != "_operator")
    in_place = (node.target in _IN_PLACE_FUNCTIONS or node.kwargs.get("inplace") is True
                or trailing)
    if in_place and node.args and isinstance(node.args[0], fx.Node):
        return node.args[0]
    return None


_FACTORIES = (torch.arange, torch.zeros, torch.ones, torch.full, torch.empty_like,
              torch.zeros_like, torch.ones_like, torch.full_like)


def _fresh_and_private(written: fx.Node, writer: fx.Node) -> bool:
    """Whether `written` is a tensor a factory made that nothing but
    `writer` reads: writing it in place changes no other value (the
    evaluation, in the graph's order, makes the same write)."""
    return (written.op == "call_function" and written.target in _FACTORIES
            and set(written.users) == {writer})


def _check_unmutated(gm: fx.GraphModule, evaluated: set, root: fx.Node) -> None:
    """Raises unless no in-place op of the graph writes into a tensor that
    may alias one the mask was evaluated from (one derived from them without
    passing through the attention `root`): the evaluation reads the values
    before any such write. (A write the evaluation made itself, in order,
    into a fresh tensor no one else reads, is part of it.)"""
    for node in gm.graph.nodes:
        target = _mutated(node)
        if target is None or (node in evaluated and _fresh_and_private(target, node)):
            continue
        seen, todo = set(), [target]
        while todo:
            n = todo.pop()
            shown = _val(n)
            if n in seen or n is root or (shown is not None
                                          and not isinstance(shown, torch.Tensor)):
                continue  # (a size or a number aliases no tensor)
            seen.add(n)
            if n in evaluated:
                raise _NotProven(f"the mask is changed in place by {node.name} "
                                 f"({_name_of(node.target)})")
            if not (n.op == "call_function" and n.target in _FACTORIES):
                todo.extend(a for a in n.all_input_nodes)  # (a factory's tensor is new)


def _visibility(mask: torch.Tensor, lead: tuple[int, ...], nq: int, nk: int,
                kind: str) -> np.ndarray:
    """The [Nq, Nk] visibility of a mask broadcast to [*lead, Nq, Nk]: bool
    (True = seen) or additive (0 = seen, -inf or at most half the lowest
    finite value = hidden, as --raise-swba takes them: PyTorch's finfo.min,
    JAX's -0.7 times the largest), checked to be the same for every batch
    and head. Works on the
    mask's own leading dims (never materializes the broadcast)."""
    if not isinstance(mask, torch.Tensor):
        raise _NotProven(f"the mask is a {type(mask).__name__}, not a tensor")
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), (*lead, nq, nk))
    except RuntimeError:
        shape = None
    if shape != (*lead, nq, nk):
        raise _NotProven(f"the mask's shape {tuple(mask.shape)} does not broadcast to the "
                         f"scores' {(*lead, nq, nk)}")
    while mask.dim() < 2:
        mask = mask.unsqueeze(0)
    mask = mask.expand(*mask.shape[:-2], nq, nk).reshape(-1, nq, nk)
    if kind == "bool":
        if mask.dtype != torch.bool:
            raise _NotProven(f"the mask is {mask.dtype}, expected bool")
        visible = mask
    elif kind == "fill":  # True where the fill (-inf) goes
        if mask.dtype != torch.bool:
            raise _NotProven(f"the fill condition is {mask.dtype}, expected bool")
        visible = ~mask
    else:
        if not mask.is_floating_point():
            raise _NotProven(f"the additive mask is {mask.dtype}, expected a float type")
        visible = mask == 0
        hidden = mask <= _hiding_threshold(mask.dtype)
        other = ~(hidden | visible)
        if other.any():
            bad = tuple(other.nonzero()[0].tolist())
            raise _NotProven(f"the additive mask holds {mask[bad].item()} at (query, key) "
                             f"{bad[1:]}: only 0 and -inf (or at most half the lowest finite "
                             f"value) make a visibility mask")
    if not bool((visible == visible[0]).all()):
        raise _NotProven("the mask varies over batch or heads")
    return visible[0]


def _row_ranges(visible: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """swba.mask's row ranges (same checks and messages) computed where the
    [Nq, Nk] tensor is: only the ranges come back to the host."""
    nq, nk = visible.shape
    seen = visible.any(dim=1)
    if not bool(seen.all()):
        raise NotSWBAMask(f"query row {int((~seen).nonzero()[0])} sees no key")
    lo = visible.to(torch.uint8).argmax(dim=1)
    cols = torch.arange(nk, device=visible.device)
    after = ~visible & (cols[None, :] > lo[:, None])
    hi = torch.where(after.any(dim=1), after.to(torch.uint8).argmax(dim=1),
                     torch.full_like(lo, nk))
    broken = visible.sum(dim=1) != hi - lo
    if bool(broken.any()):
        i = int(broken.nonzero()[0])
        a, b = int(lo[i]), int(hi[i])
        extra = int(visible[i, b:].nonzero()[0]) + b
        raise NotSWBAMask(f"query row {i} sees keys [{a}, {b}) and key {extra}: "
                          f"not one contiguous range")
    return lo.cpu().numpy(), hi.cpu().numpy()


def _prove(visible: torch.Tensor) -> tuple[int, int]:
    try:
        if visible.device.type == "cpu":
            return infer_swba_mask(visible.numpy())
        nq, nk = visible.shape
        _check_sizes(nq, nk)
        lo, hi = _row_ranges(visible)
        return infer_from_ranges(lo, hi, nk)
    except NotSWBAMask as e:
        raise _NotProven(str(e)) from None


def _ranges(visible: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The keys each row of the [Nq, Nk] visibility sees, [lo, hi), on the
    host; raises _NotProven where a row's keys are no one range."""
    nq, nk = visible.shape
    try:
        _check_sizes(nq, nk)
        return _row_ranges(visible)
    except NotSWBAMask as e:
        raise _NotProven(str(e)) from None


def _fits(lo: np.ndarray, hi: np.ndarray, nk: int, block_size: int, window: int) -> bool:
    """Whether rows that see keys [lo, hi) of nk (bottom-right aligned) are
    exactly the block window (block_size, window)."""
    nq = lo.shape[0]
    if nq < 1 or nk < nq:
        return False
    want_lo, want_hi = window_ranges(nq, nk, block_size, window)
    return np.array_equal(want_lo, lo) and np.array_equal(want_hi, hi)


# A window past every length: rows that see back to key 0 (decode before
# the cache outgrows the window) are a causal mask of this window at every
# length the proofs reach (MaskEvaluator's bound).
_UNBOUNDED_WINDOW = 1 << 30


def _candidates(lo: np.ndarray, hi: np.ndarray, nk: int) -> list[tuple[int, int]]:
    """Every (block_size, window) whose block window the rows [lo, hi) of nk
    are exactly, where few rows leave several (one decode row fits a window
    of any block size that divides its first key): the unbounded token
    window where every row sees back to key 0, then each divisor of the
    frame edges as the block size, the window from a row not clipped at 0."""
    nq = lo.shape[0]
    found = []
    if _fits(lo, hi, nk, 1, _UNBOUNDED_WINDOW):
        found.append((1, _UNBOUNDED_WINDOW))
    edges = frame_edges(lo, hi, nk)
    unclipped = np.flatnonzero(lo > 0)
    if edges == 0 or not unclipped.size:
        return found
    i = int(unclipped[0])
    for bs in range(1, math.isqrt(edges) + 1):
        if edges % bs:
            continue
        for b in {bs, edges // bs}:
            ws = window_of_row(i, int(lo[i]), nq, nk, b)
            if ws >= 1 and _fits(lo, hi, nk, b, ws) and (b, ws) not in found:
                found.append((b, ws))
    return found


def _hiding_threshold(dtype: torch.dtype) -> float:
    """The largest value that hides a key: half the lowest finite value of
    `dtype` (its exponential relative to a row's finite maximum underflows to
    0 unless the row's visible scores are astronomically negative)."""
    return torch.finfo(dtype).min / 2


def _fill_value_hides(value: Any, dtype: torch.dtype | None) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if value == float("-inf"):
        return True
    return dtype is not None and dtype.is_floating_point and value <= _hiding_threshold(dtype)


# --- the three forms -----------------------------------------------------------

@dataclasses.dataclass
class _Match:
    q: fx.Node
    k: fx.Node
    v: fx.Node
    block_size: int
    window: int
    scale: float | None  # None: 1 / sqrt(D) at run time (D symbolic)
    # For shapes that are symbolic: the mask node and how it applies.
    mask: Any = None
    kind: str | None = None
    # Symbolic numbers the scale is also multiplied by (power 1 or -1).
    scale_factors: tuple[tuple[fx.Node, int], ...] = ()
    # What multiplies an added mask too (factors outside the sum).
    outer: _Scale = _Scale()


def _check_operands(q: Any, k: Any, v: Any) -> bool:
    """The op's contract, on the traced values (symbolic sizes at their
    traced values; the run time checks each size again). Whether any size
    is symbolic."""
    vals = [_val(x) for x in (q, k, v)]
    if not all(isinstance(x, torch.Tensor) for x in vals):
        raise _NotProven("q, k or v has no traced tensor value")
    shapes = [tuple(t.shape) for t in vals]
    symbolic = any(_is_symbolic(d) for shape in shapes for d in shape)
    if any(len(shape) != 4 for shape in shapes):
        raise _NotProven(f"q, k, v must be 4-D [B, H, N, D], got "
                         f"{', '.join(str(tuple(_hint(d) for d in x)) for x in shapes)}")
    try:
        if symbolic:
            metas = [torch.empty(_shape(x), dtype=t.dtype, device="meta")
                     for x, t in zip((q, k, v), vals)]
            library._check_tensors(*metas)
            library._check_device(vals[0].dtype, metas[0].shape[3], metas[2].shape[3],
                                  vals[0].device)
        else:
            library._check_tensors(*vals)
    except (TypeError, ValueError) as e:
        raise _NotProven(f"the swba op does not take these operands: {e}") from None
    return symbolic


def _match_sdpa(gm: fx.GraphModule, node: fx.Node, evaluate: _Evaluator) -> _Match:
    q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
    mask = _arg(node, 3, "attn_mask")
    if mask is None:
        raise _NotProven("no attn_mask")
    if _arg(node, 4, "dropout_p", 0.0) != 0.0:
        raise _NotProven("dropout_p is not 0")
    if _arg(node, 5, "is_causal", False):
        raise _NotProven("is_causal=True")
    scale = _arg(node, 6, "scale")
    _check_operands(q, k, v)
    qs, ks = _shape(q), _shape(k)
    if qs[1] != ks[1] and not _arg(node, 7, "enable_gqa", False):
        raise _NotProven("query and kv heads differ without enable_gqa")
    if scale is None:
        if qs[-1] == 0:
            raise _NotProven("the head dim is 0 (SDPA's default scale 1/sqrt(0) is infinite)")
        # A symbolic head dim: the scale follows it at run time.
        scale = None if _is_symbolic(_val(q).shape[-1]) else 1.0 / math.sqrt(qs[-1])
    factors = ()
    if _is_symbolic_number(scale):
        factors, scale = ((scale, 1),), 1.0
        if not float(evaluate(factors[0][0])) > 0:
            raise _NotProven(f"the scale {evaluate(factors[0][0])} is not positive")
    if scale is not None and (not isinstance(scale, (int, float)) or not scale > 0):
        raise _NotProven(f"the scale {scale!r} is not a positive constant")
    value = evaluate(mask)
    kind = "bool" if isinstance(value, torch.Tensor) and value.dtype == torch.bool else "add"
    visible = _visibility(value, qs[:2], qs[2], ks[2], kind)
    bs, ws = _prove(visible)
    return _Match(q, k, v, bs, ws, None if scale is None else float(scale), mask, kind,
                  factors)


def _einsum(node: Any) -> tuple[str, Any, Any] | None:
    """("scores", a, b) where node is a two-operand einsum computing a @ b^T
    over the last two dims (`bhqd,bhkd->bhqk`), ("product", a, b) where it
    computes a @ b (`bhqk,bhkd->bhqd`), the leading dims the same letters
    in all three (or one `...` before them); else None."""
    if not _is_call(node, _EINSUM) or not node.args or not isinstance(node.args[0], str):
        return None
    operands = node.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    equation = node.args[0].replace(" ", "")
    if len(operands) != 2 or equation.count("->") != 1:
        return None
    inputs, out = equation.split("->")
    terms = inputs.split(",") + [out]
    if len(terms) != 3:
        return None
    if any("..." in t for t in terms):
        if not all(t.startswith("...") and "..." not in t[3:] for t in terms):
            return None
        terms = [t[3:] for t in terms]
    a, b, out = terms
    if not (len(a) == len(b) == len(out) >= 2) or not all(t.isalpha() for t in terms):
        return None
    lead = a[:-2]
    if b[:-2] != lead or out[:-2] != lead or len(set(a)) != len(a) or len(set(b)) != len(b):
        return None
    (x, y), (z, w), rest = a[-2:], b[-2:], out[-2:]
    if set(lead) & {x, y, z, w}:
        return None
    if y == w and x != z and rest == x + z:
        return "scores", operands[0], operands[1]
    if y == z and x != w and x != y and w != y and rest == x + w:
        return "product", operands[0], operands[1]
    return None


def _is_product(node: Any, kind: str) -> bool:
    """Whether node is p @ v (kind "product": matmul or einsum) or q @ k^T
    (kind "scores": a matmul, whose right operand is checked later, or an
    einsum of q and k)."""
    if _is_call(node, _MATMUL, ("matmul",)):
        return True
    found = _einsum(node)
    # q @ kt as an einsum is a product: kt is checked later like matmul's.
    return found is not None and (found[0] == kind or kind == "scores")


def _leads_to_product(node: Any, depth: int = 8) -> bool:
    """Whether node is a product through casts, constant factors, adds and
    fills: the scores side of a masked sum."""
    node = _strip_scale(node)[0]
    if depth == 0 or not isinstance(node, fx.Node):
        return False
    if _is_product(node, "scores"):
        return True
    if _is_call(node, _ADD, ("add", "__add__")):
        return any(_leads_to_product(a, depth - 1) for a in node.args[:2])
    if _is_call(node, (torch.masked_fill,), ("masked_fill",)):
        return _leads_to_product(_arg(node, 0, "input"), depth - 1)
    if _is_call(node, (torch.where,)) and len(node.args) == 3:
        return any(_leads_to_product(a, depth - 1) for a in node.args[1:])
    return False


def _match_naive(gm: fx.GraphModule, node: fx.Node, evaluate: _Evaluator) -> _Match:
    """node: `p @ v`; p the softmax over the last dim of the masked, scaled
    scores `q @ k^T` (either product an einsum too)."""
    einsum = _einsum(node)
    if einsum is not None:
        _, p, v = einsum
    else:
        p, v = _arg(node, 0, "input"), _arg(node, 1, "other")
    p = _strip_casts(p)
    if not _is_call(p, _SOFTMAX_FUNCTIONS, ("softmax",)):
        raise _NotProven("no softmax feeds the product")
    dim = _arg(p, 1, "dim")
    scores = _arg(p, 0, "input")
    shown = _val(scores)
    if not isinstance(shown, torch.Tensor) or dim not in (-1, len(shown.shape) - 1):
        raise _NotProven(f"the softmax runs over dim {dim}, not the key axis")
    scale, mask, kind, outer = _Scale(), None, None, _Scale()
    x = scores
    while True:
        x, factor = _strip_scale(x)
        scale = scale * factor
        if mask is None and _is_call(x, _ADD, ("add", "__add__")) and len(x.args) == 2 \
                and all(isinstance(a, fx.Node) for a in x.args):
            # The scores side is the one that leads to a product.
            a, b = x.args
            (x, mask), kind = ((a, b) if _leads_to_product(a) else (b, a)), "add"
            outer = scale
            continue
        if mask is None and _is_call(x, (torch.masked_fill,), ("masked_fill",)):
            dtype = getattr(_val(x), "dtype", None)
            if not _fill_value_hides(_arg(x, 2, "value"), dtype):
                raise _NotProven(f"masked_fill with {_arg(x, 2, 'value')!r}, not -inf")
            x, mask, kind = _arg(x, 0, "input"), _arg(x, 1, "mask"), "fill"
            continue
        if mask is None and _is_call(x, (torch.where,)) and len(x.args) == 3:
            cond, a, b = x.args
            dtype = getattr(_val(x), "dtype", None)
            if _fill_value_hides(b, dtype) and isinstance(a, fx.Node):
                x, mask, kind = a, cond, "bool"
            elif _fill_value_hides(a, dtype) and isinstance(b, fx.Node):
                x, mask, kind = b, cond, "fill"
            else:
                raise _NotProven("torch.where without a -inf branch")
            continue
        break
    if mask is None:
        raise _NotProven("no mask on the scores (plain attention)")
    einsum = _einsum(x)
    if einsum is not None and einsum[0] == "scores":
        q, scale_q = _strip_scale(einsum[1])
        k, scale_k = _strip_scale(einsum[2])
        scale_k2 = _Scale()
    elif _is_call(x, _MATMUL, ("matmul",)) or einsum is not None:
        a, b = einsum[1:] if einsum else (_arg(x, 0, "input"), _arg(x, 1, "other"))
        q, scale_q = _strip_scale(a)
        kt, scale_k = _strip_scale(b)
        k = _transposed_last_two(kt)
        if k is None:
            raise _NotProven("the scores' right operand is not k with its last two dims "
                             "swapped")
        k, scale_k2 = _strip_scale(k)
    else:
        raise _NotProven("the scores are not a product q @ k^T")
    v = _strip_casts(v)
    scale = scale * scale_q * scale_k * scale_k2
    traced = scale.const * math.prod(float(evaluate(n)) ** e for n, e in scale.factors)
    if not traced > 0:
        raise _NotProven(f"the scale {traced} is not positive")
    _check_operands(q, k, v)
    qs, ks = _shape(q), _shape(k)
    visible = _visibility(evaluate(mask), _shape(scores)[:2], qs[2], ks[2], kind)
    bs, ws = _prove(visible)
    if scale.factors:
        return _Match(q, k, v, bs, ws, scale.const, mask, kind, scale.factors, outer)
    return _Match(q, k, v, bs, ws, traced, mask, kind, outer=outer)


def _is_identity_score_mod(gm: fx.GraphModule, node: Any) -> bool:
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return False
    sub = getattr(gm, node.target)
    placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
    outputs = [n for n in sub.graph.nodes if n.op == "output"]
    if not placeholders or len(outputs) != 1:
        return False
    result = outputs[0].args[0]
    if isinstance(result, (tuple, list)) and len(result) == 1:
        result = result[0]
    return result is placeholders[0]


def _blocks(num: Any, indices: Any, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """[B, H, q blocks, kv blocks] bool of a BlockMask's block table."""
    if num is None:
        return torch.zeros(shape, dtype=torch.bool)
    b, h, rows, cols = shape
    num = num.expand(b, h, rows)
    indices = indices.expand(b, h, rows, indices.shape[-1])
    listed = torch.arange(indices.shape[-1])[None, None, None, :] < num[..., None]
    out = torch.zeros((b, h, rows, cols + 1), dtype=torch.bool)
    # Entries past each row's count may hold anything: sent to a spare column.
    target = torch.where(listed, indices.long().clamp(0, cols), cols)
    out.scatter_(3, target, True)
    return out[..., :cols]


def _match_flex(gm: fx.GraphModule, node: fx.Node, evaluate: _Evaluator) -> _Match:
    q, k, v, score_mod, blocks, scale = node.args[:6]
    other = node.args[7:9]
    if any(len(x) for x in other):
        raise _NotProven("score_mod or mask_mod reads other buffers")
    if not _is_identity_score_mod(gm, score_mod):
        raise _NotProven("score_mod is not the identity")
    if any(u.op != "call_function" or u.target is not operator.getitem or u.args[1] != 0
           for u in node.users):
        raise _NotProven("flex_attention's log-sum-exp is used")
    if _check_operands(q, k, v):
        raise _NotProven("flex_attention with symbolic shapes is not raised (its BlockMask "
                         "is made for one size): compile with dynamic=False")
    qv, kv = _val(q), _val(k)
    b, hq, nq = qv.shape[:3]
    nk = kv.shape[2]
    # The BlockMask as a tuple: [Q_LEN, KV_LEN,] (PyTorch 2.7 on) the
    # kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices tables,
    # more tables, Q_BLOCK_SIZE, KV_BLOCK_SIZE, mask_mod.
    blocks = list(blocks)
    lengths = []
    while blocks and not isinstance(blocks[0], fx.Node) and blocks[0] is not None:
        lengths.append(blocks.pop(0))
    q_len, kv_len = lengths if len(lengths) == 2 else (nq, nk)
    q_block, kv_block, mask_mod = blocks[-3], blocks[-2], blocks[-1]
    _check_static([q_len, kv_len, q_block, kv_block])
    if not all(isinstance(x, int) and x > 0 for x in (q_len, kv_len, q_block, kv_block)):
        raise _NotProven("the BlockMask's lengths and block sizes are not positive constants")
    if (q_len, kv_len) != (nq, nk):
        raise _NotProven(f"the BlockMask is for ({q_len}, {kv_len}), the operands are "
                         f"({nq}, {nk})")
    if not isinstance(scale, (int, float)) or not scale > 0:
        raise _NotProven(f"the scale {scale!r} is not a positive constant")
    if not isinstance(mask_mod, fx.Node) or mask_mod.op != "get_attr":
        raise _NotProven("the mask_mod is not a traced function")
    mod = getattr(gm, mask_mod.target)
    pairs = nq * nk
    if pairs > MAX_MASK_PAIRS:
        raise _NotProven(f"{pairs} (query, key) pairs, over the limit of {MAX_MASK_PAIRS}")
    # The mask_mod over every pair, per batch and head only where it reads them.
    args = [n for n in mod.graph.nodes if n.op == "placeholder"]
    reads_bh = any(len(n.users) for n in args[:2])
    lead = (b, hq) if reads_bh else (1, 1)
    if reads_bh and b * hq * pairs > MAX_MASK_PAIRS:
        raise _NotProven("the mask_mod reads the batch or head index, and evaluating it for "
                         f"every one makes over {MAX_MASK_PAIRS} elements")
    idx = (torch.arange(lead[0]).view(-1, 1, 1, 1), torch.arange(lead[1]).view(1, -1, 1, 1),
           torch.arange(nq).view(1, 1, -1, 1), torch.arange(nk).view(1, 1, 1, -1))
    try:
        element = mod(*idx)
    except Exception as e:  # user code: anything may go wrong on the CPU
        raise _NotProven(f"the mask_mod does not evaluate on index tensors: {e}") from None
    element = torch.as_tensor(element).bool().expand(*lead, nq, nk)
    # The block tables decide which blocks flex_attention visits: full
    # blocks see everything, partial ones apply the mask_mod.
    tables = [evaluate(t) if t is not None else None for t in blocks[:4]]
    rows, cols = -(-nq // q_block), -(-nk // kv_block)
    if tables[0] is None or tables[1] is None:
        raise _NotProven("the BlockMask has no kv block table")
    for num, indices in (tables[:2], tables[2:]):
        if num is not None and (num.dim() != 3 or num.shape[-1] != rows or indices.dim() != 4
                                or indices.shape[-2] != rows):
            raise _NotProven(f"the BlockMask's block tables {tuple(num.shape)}, "
                             f"{tuple(indices.shape)} do not fit {rows} query blocks of "
                             f"{q_block}")
    bb = max(t.shape[0] for t in tables if t is not None)
    hh = max(t.shape[1] for t in tables if t is not None)
    partial = _blocks(tables[0], tables[1], (bb, hh, rows, cols))
    full = _blocks(tables[2], tables[3], (bb, hh, rows, cols))

    def spread(x):
        return x.repeat_interleave(q_block, 2)[:, :, :nq].repeat_interleave(
            kv_block, 3)[:, :, :, :nk]

    visible = spread(full) | (spread(partial) & element)
    bs, ws = _prove(_visibility(visible, (b, hq), nq, nk, "bool"))
    return _Match(q, k, v, bs, ws, float(scale))


def _form(node: fx.Node) -> str | None:
    if _is_call(node, _SDPA):
        return "sdpa"
    if _is_product(node, "product"):
        einsum = _einsum(node)
        p = _strip_casts(einsum[1] if einsum else _arg(node, 0, "input"))
        if _is_call(p, _SOFTMAX_FUNCTIONS, ("softmax",)):
            return "naive"
        return None
    if node.op == "call_function" and node.target is torch.ops.higher_order.flex_attention:
        return "flex_attention"
    return None


_MATCHERS: dict[str, Callable[..., _Match]] = {
    "sdpa": _match_sdpa, "naive": _match_naive, "flex_attention": _match_flex}


# --- symbolic shapes: the window proven at each size, at run time ------------

@dataclasses.dataclass
class _Plan:
    """How `swba::attention_dynamic` runs at one size: the block window
    proven (`bias` None), or the mask densely (`bias`: bool, True where a
    key is seen, or float, added to the scaled scores)."""

    scale: float
    block_size: int = 0
    window: int = 0
    bias: torch.Tensor | None = None


_FRESH_DISPATCH: tuple | None = None


def _eager_dispatch():
    """Runs the enclosed code with the dispatch keys eager code has (those
    of a fresh thread): the op runs below autograd and functorch, with
    their keys excluded, and a mask program made with vmap (as
    transformers builds its masks) needs them."""
    global _FRESH_DISPATCH
    if _FRESH_DISPATCH is None:
        box = []
        thread = threading.Thread(target=lambda: box.append(
            (torch._C._dispatch_tls_local_include_set(),
             torch._C._dispatch_tls_local_exclude_set())))
        thread.start()
        thread.join()
        _FRESH_DISPATCH = box[0]
    return torch._C._ForceDispatchKeyGuard(*_FRESH_DISPATCH)


class _MaskProgram:
    """The mask of one raised attention as a graph of its own, from the
    symbolic sizes it reads to the mask (and to the symbolic numbers of the
    scale), and what each size proved."""

    MAX_SIZES = 256  # sizes remembered (least recently used dropped)

    def __init__(self, name: str, module: fx.GraphModule, kind: str,
                 scale_powers: tuple[int, ...] = (), outer: float = 1.0,
                 outer_powers: tuple[int, ...] = ()):
        self.name, self.module, self.kind = name, module, kind
        self.scale_powers, self.outer, self.outer_powers = scale_powers, outer, outer_powers
        self.inputs = [n for n in module.graph.nodes if n.op == "placeholder"]
        # The mask, then the symbolic numbers of the scale, then those that
        # also multiply an added mask.
        outputs = next(n for n in module.graph.nodes if n.op == "output").args[0]
        self.output = outputs[0]
        self.scale_nodes = outputs[1:1 + len(scale_powers)]
        self.outer_nodes = outputs[1 + len(scale_powers):]
        self.verdicts: collections.OrderedDict = collections.OrderedDict()
        # The windows proven so far, most recently proven or met first: a
        # new size takes the first that is exactly its mask, so that decode,
        # whose one row fits many windows, keeps one kernel.
        self.windows: list[tuple[int, int]] = []
        # (q, k and v shapes, the sizes now, Nk) -> the sizes at keys Nk,
        # where the sizes are expressions of the operands' (_sizes_of_lengths).
        self.sizes_of_lengths: Callable | None = None
        self.lock = threading.Lock()

    def _evaluator(self, sizes: tuple[int, ...], device: torch.device) -> "_Evaluator":
        return _Evaluator(self.module, dict(zip(self.inputs, sizes)), device=device)

    def _product(self, evaluate, const, nodes, powers) -> float:
        return const * math.prod(float(evaluate(n)) ** e for n, e in zip(nodes, powers))

    def _mask(self, q: torch.Tensor, sizes: tuple[int, ...], proof: bool = False) -> Any:
        """The mask at these sizes: the program run as the graph wrote it
        (its ops were checked when it was made; a CUDA graph being captured
        records them, as it would the graph's own), or, for a proof while a
        CUDA graph is captured, evaluated on the CPU (a proof reads the
        mask on the host)."""
        if proof and q.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            with _eager_dispatch():
                return self._evaluator(sizes, torch.device("cpu"))(self.output)
        with torch.no_grad(), _eager_dispatch():
            return self.module(*sizes)[0]

    def _failed(self, q, k, why) -> RuntimeError:
        return RuntimeError(f"swba: the attention {self.name} (raised with symbolic shapes) "
                            f"cannot run at Nq={q.shape[2]} Nk={k.shape[2]}: {why}")

    def bias(self, q: torch.Tensor, k: torch.Tensor, sizes: tuple[int, ...],
             outer: float) -> torch.Tensor:
        """The mask as the dense path applies it: bool (True = seen) or the
        float32 values (times `outer`, what multiplies an added mask too)
        added to the scaled scores, [.., Nq, Nk] broadcast to [B, Hq, Nq,
        Nk], on q's device."""
        mask = self._mask(q, sizes)
        want = (*q.shape[:2], q.shape[2], k.shape[2])
        if not isinstance(mask, torch.Tensor):
            raise self._failed(q, k, f"the mask is a {type(mask).__name__}")
        try:
            fits = torch.broadcast_shapes(tuple(mask.shape), want) == want
        except RuntimeError:
            fits = False
        if not fits:
            raise self._failed(q, k, f"the mask's shape {tuple(mask.shape)} does not "
                                     f"broadcast to the scores' {want}")
        mask = mask.to(q.device)
        if self.kind == "bool":
            return mask.bool()
        if self.kind == "fill":
            return ~mask.bool()
        return mask.float() * outer

    def plan(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sizes: tuple[int, ...],
             scale: float | None) -> _Plan:
        key = (sizes, tuple(q.shape), tuple(k.shape), tuple(v.shape), q.dtype, q.device, scale)
        with self.lock:
            entry = self.verdicts.get(key)
            if entry is not None:
                self.verdicts.move_to_end(key)
        if entry is None:
            d = q.shape[3]
            if scale is None:  # SDPA's default, infinite at D = 0 as there
                scale = 1.0 / math.sqrt(d) if d else math.inf
            evaluate = self._evaluator(sizes, torch.device("cpu"))
            scale = self._product(evaluate, scale, self.scale_nodes, self.scale_powers)
            outer = self._product(evaluate, self.outer, self.outer_nodes, self.outer_powers)
            entry = (scale, outer, self._verdict(q, k, v, sizes, scale))
            with self.lock:
                self.verdicts[key] = entry
                while len(self.verdicts) > self.MAX_SIZES:
                    self.verdicts.popitem(last=False)
        scale, outer, verdict = entry
        if isinstance(verdict, tuple):
            return _Plan(scale, *verdict)
        return _Plan(scale, bias=self.bias(q, k, sizes, outer))

    MAX_WINDOWS = 8  # windows remembered
    # Key counts (Nk grown by these) whose masks decide between windows that
    # a few rows all fit (where the probes' masks take at most
    # MAX_MASK_PAIRS / 16 elements each).
    PROBES = tuple(range(1, 17)) + tuple(1 << e for e in range(5, 17))

    def _ranges_at(self, q, sizes, nq: int, nk: int, probe: bool = False):
        """The rows' key ranges [lo, hi) of the mask at `sizes` (Nq, Nk);
        raises _NotProven where it is no visibility mask of one range a row
        there. A probe evaluates the program on the CPU."""
        if probe:
            with torch.no_grad(), _eager_dispatch():
                mask = self._evaluator(sizes, torch.device("cpu"))(self.output)
        else:
            mask = self._mask(q, sizes, proof=True)
        return _ranges(_visibility(mask, tuple(q.shape[:2]), nq, nk, self.kind))

    def _choose(self, q, k, v, sizes, lo, hi, nq: int, nk: int) -> tuple[int, int]:
        """The block window of rows [lo, hi): a window proven at another
        size where it fits (one kernel for every size it fits); else, where
        several fit (few rows, as in decode), the one that also fits the
        most of the masks at Nk grown by PROBES (the program evaluated on
        the CPU at the sizes of those key counts; the one of the largest
        block size among equals); else the inferred one. (Each size's window
        is still checked on its own mask: the probes only choose.)"""
        with self.lock:
            known = list(self.windows)
        chosen = next(((bs, ws) for bs, ws in known if _fits(lo, hi, nk, bs, ws)), None)
        if chosen is None:
            fits = _candidates(lo, hi, nk)
            grow = self.sizes_of_lengths
            probe_pairs = nq * (nk + self.PROBES[-1])
            if len(fits) == 1:
                chosen = fits[0]
            elif len(fits) > 1 and grow is not None and probe_pairs <= MAX_MASK_PAIRS // 16:
                score = [0] * len(fits)
                shapes = (tuple(q.shape), tuple(k.shape), tuple(v.shape))
                for t in self.PROBES:
                    try:
                        grown = grow(shapes, sizes, nk + t)
                        rows = self._ranges_at(q, grown, nq, nk + t, probe=True)
                    except Exception:  # noqa: BLE001 (a probe the program does not take)
                        continue
                    for n, (bs, ws) in enumerate(fits):
                        score[n] += _fits(*rows, nk + t, bs, ws)
                best = max(range(len(fits)), key=lambda n: (score[n], fits[n][0]))
                chosen = fits[best]
            if chosen is None:
                try:
                    chosen = infer_from_ranges(lo, hi, nk)
                except NotSWBAMask as e:
                    raise _NotProven(str(e)) from None
        with self.lock:
            if chosen in self.windows:
                self.windows.remove(chosen)
            self.windows.insert(0, chosen)
            del self.windows[self.MAX_WINDOWS:]
        return chosen

    def _verdict(self, q, k, v, sizes, scale) -> tuple[int, int] | str:
        """(block_size, window) where the mask is a block window at these
        sizes and the kernels take the operands, else why not."""
        nq, nk = q.shape[2], k.shape[2]
        try:
            library._check_tensors(q, k, v)
            library._check_scalars(1, 1, scale)
            lo, hi = self._ranges_at(q, sizes, nq, nk)
            verdict = self._choose(q, k, v, sizes, lo, hi, nq, nk)
            log.info("swba: %s at Nq=%d Nk=%d: block_size=%d window=%d", self.name, nq, nk,
                     *verdict)
        except (TypeError, ValueError, _NotProven) as e:
            verdict = str(e)
            log.info("swba: %s at Nq=%d Nk=%d runs the mask densely: %s", self.name, nq, nk,
                     verdict)
        return verdict

    def proofs(self) -> list[tuple[int, int] | str]:
        """What each size remembered proved: (block_size, window), or why
        it runs densely."""
        with self.lock:
            return [verdict for *_, verdict in self.verdicts.values()]


_PROGRAMS: dict[str, _MaskProgram] = {}
_PROGRAM_IDS = itertools.count()


def plan_dynamic(program: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 sizes: Sequence[int], scale: float | None) -> _Plan:
    """The plan of `swba::attention_dynamic` for these operands and sizes."""
    found = _PROGRAMS.get(program)
    if found is None:
        raise RuntimeError(f"swba: no mask program {program!r} in this process: "
                           f"swba::attention_dynamic runs only where swba.raising made it")
    return found.plan(q, k, v, tuple(int(x) for x in sizes), scale)


def _register_program(gm: fx.GraphModule, m: _Match, leaves: list[fx.Node]) -> str:
    """Copies the mask's computation, from `leaves` (the symbolic sizes it
    reads) on, into a graph of its own; returns its name."""
    if not isinstance(m.mask, fx.Node):
        raise _NotProven("the mask is no value of the graph")
    outputs = [m.mask] + [n for n, _ in m.scale_factors + m.outer.factors]
    stop = set(leaves)
    graph = fx.Graph()
    env = {leaf: graph.placeholder(f"size{i}") for i, leaf in enumerate(leaves)}

    def copied(x: fx.Node) -> fx.Node:
        if x not in env:
            raise _NotProven(f"the mask's computation reads {x.name} out of order")
        return env[x]

    for n in _graph_slice(gm, outputs, stop.__contains__, _graph_order(gm)):
        env[n] = graph.node_copy(n, copied)
    graph.output(tuple(env[n] for n in outputs))
    name = f"swba_mask_{next(_PROGRAM_IDS)}"
    program = _MaskProgram(name, fx.GraphModule(gm, graph), m.kind,
                           tuple(e for _, e in m.scale_factors),
                           m.outer.const, tuple(e for _, e in m.outer.factors))
    program.sizes_of_lengths = _sizes_of_lengths(m, leaves)
    _PROGRAMS[name] = program
    return name


def _sizes_of_lengths(m: _Match, leaves: list[fx.Node]) -> Callable | None:
    """The values of the symbolic sizes `leaves` where k's length (and v's,
    where it is the same symbol) is another: (q, k and v shapes, the
    sizes now, Nk) -> sizes. A size that is a symbol of its own (not a dim
    of q, k or v: an int Dynamo made symbolic) keeps its value; None where
    a size is no expression of those."""
    exprs = []
    for leaf in leaves:
        value = _val(leaf)
        if not isinstance(value, torch.SymInt):
            return None
        exprs.append(value.node.expr)
    dims, length = {}, None
    for a, x in enumerate((m.q, m.k, m.v)):
        for d, size in enumerate(_val(x).shape):
            if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                dims.setdefault(size.node.expr, (a, d))
                if a == 1 and d == 2:
                    length = size.node.expr
    own = {e: i for i, e in enumerate(exprs) if e.is_Symbol and e not in dims}
    if length is None or any(not e.free_symbols <= dims.keys() | own.keys() for e in exprs):
        return None

    def sizes(shapes, now, nk: int) -> tuple[int, ...]:
        bound = {sym: (nk if sym == length else shapes[a][d]) for sym, (a, d) in dims.items()}
        bound.update({sym: now[i] for sym, i in own.items()})
        return tuple(int(e.xreplace(bound)) for e in exprs)

    return sizes


def _replace(gm: fx.GraphModule, node: fx.Node, form: str, m: _Match,
             leaves: list[fx.Node] | None = None) -> None:
    """Puts the op in place of `node`: `swba::attention`, or with `leaves`
    (symbolic shapes) `swba::attention_dynamic`."""
    graph = gm.graph
    qv = _val(m.q)
    if leaves is not None:
        target = torch.ops.swba.attention_dynamic
        args = (m.q, m.k, m.v, _register_program(gm, m, leaves), list(leaves), m.scale)
    else:
        target = torch.ops.swba.attention
        args = (m.q, m.k, m.v, m.block_size, m.window, m.scale)
    with graph.inserting_before(node):
        op = graph.call_function(target.default, args)
        out = graph.call_function(operator.getitem, (op, 0))
        key = "example_value" if "example_value" in m.q.meta else "val"
        modes = {getattr(_val(x), "fake_mode", None) for x in (m.q, m.k, m.v)}
        fake_mode = modes.pop() if len(modes) == 1 else None
        if fake_mode is not None:
            with fake_mode:
                values = target(*fx.node.map_arg(args, _val))
            op.meta[key], out.meta[key] = values, values[0]
        result = out
        shown = _val(node)
        if form == "flex_attention":
            shown = shown[0] if isinstance(shown, (tuple, list)) else shown
        want = getattr(shown, "dtype", qv.dtype)
        if want != qv.dtype:
            result = graph.call_method("to", (out, want))
            if out.meta.get(key) is not None:
                result.meta[key] = out.meta[key].to(want)
    if form == "flex_attention":
        for user in list(node.users):
            user.replace_all_uses_with(result)
    else:
        node.replace_all_uses_with(result)


def raise_attention(gm: fx.GraphModule,
                    example_inputs: Sequence[Any] | None = None) -> list[Decision]:
    """Replaces, in place, every block-window attention in `gm` (a graph
    Dynamo captured, at the torch level) that it proves by `swba::attention`
    and returns what it decided for each candidate; the ones left alone are
    logged with the reason. `example_inputs` (the values of the graph's
    placeholders) are read only for a flex_attention BlockMask's block
    tables, which the BlockMask's mask_mod made."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    inputs = {}
    if example_inputs is not None:
        inputs = {p: x for p, x in zip(placeholders, example_inputs)
                  if isinstance(x, torch.Tensor) and not isinstance(
                      x, torch._subclasses.fake_tensor.FakeTensor)}
    decisions = []
    changed = False
    for node in list(gm.graph.nodes):
        form = _form(node)
        if form is None:
            continue
        evaluate = _Evaluator(gm, inputs if form == "flex_attention" else None,
                              dynamic=form != "flex_attention")
        try:
            m = _MATCHERS[form](gm, node, evaluate)
            _check_unmutated(gm, set(evaluate.values), node)
            symbolic = bool(evaluate.leaves) or any(
                _is_symbolic(d) for x in (m.q, m.k, m.v) for d in _val(x).shape)
            _replace(gm, node, form, m, evaluate.leaves if symbolic else None)
        except _NotProven as e:
            decision = Decision(node.name, form, False, str(e))
            log.info("swba: %s (%s) not raised to swba.attention: %s", node.name, form, e)
        except Exception as e:  # a graph this pass misreads must still compile
            decision = Decision(node.name, form, False, f"internal error: {e!r}")
            log.warning("swba: %s (%s) left alone after an internal error of the raising "
                        "pass: %r", node.name, form, e)
        else:
            changed = True
            decision = Decision(node.name, form, True, "", m.block_size, m.window, m.scale,
                                symbolic)
            if symbolic:
                log.info("swba: %s (%s) raised to swba.attention, its window proven at each "
                         "size when the size is first met (block_size=%d window=%d at the "
                         "traced size)", node.name, form, m.block_size, m.window)
            else:
                log.info("swba: %s (%s) raised to swba.attention block_size=%d window=%d "
                         "scale=%g", node.name, form, m.block_size, m.window, m.scale)
        decisions.append(decision)
    if changed:
        gm.graph.eliminate_dead_code()
        gm.graph.lint()
        gm.recompile()
    return decisions


def make_backend(inner: str | Callable[..., Any] = "inductor") -> Callable[..., Any]:
    """A `torch.compile` backend that raises, then compiles with `inner` (a
    backend name such as "inductor", "aot_eager", "eager", or a backend
    callable)."""

    def swba_backend(gm: fx.GraphModule, example_inputs: list[Any]):
        raise_attention(gm, example_inputs)
        compile_with = inner
        if isinstance(inner, str):
            from torch._dynamo import lookup_backend
            compile_with = lookup_backend(inner)
        return compile_with(gm, example_inputs)

    return swba_backend


backend = make_backend("inductor")
backend.__doc__ = ("`torch.compile(model, backend=swba.backend)`: raises block-window "
                   "attention to swba.attention (see swba.raising), then Inductor.")
