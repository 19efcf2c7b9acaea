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
  `q.float() @ ...`);
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
`raise_attention`). Dynamic shapes are not raised: compile with
`dynamic=False`, or call `swba.attention` directly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F

from . import library  # noqa: F401  (registers torch.ops.swba)
from .mask import NotSWBAMask, infer_swba_mask

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


def _strip_casts(node: Any) -> Any:
    """The node under float dtype casts and `contiguous`, which change no
    value the pattern depends on (the kernel computes in f32 itself)."""
    while isinstance(node, fx.Node):
        if node.op == "call_method" and node.target in _CAST_METHODS and len(node.args) == 1:
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
    return None


def _constant_factor(node: fx.Node) -> tuple[Any, float] | None:
    """(x, factor) where node is x times a positive number (or x divided by
    one), else None."""
    if _is_call(node, _MUL, ("mul", "__mul__")) and len(node.args) == 2:
        a, b = node.args
        for x, c in ((a, b), (b, a)):
            if isinstance(x, fx.Node) and isinstance(c, (int, float)) and not isinstance(c, bool):
                return x, float(c)
    if _is_call(node, _DIV, ("div", "__truediv__")) and len(node.args) == 2:
        x, c = node.args
        if isinstance(x, fx.Node) and isinstance(c, (int, float)) and not isinstance(c, bool) \
                and c != 0:
            return x, 1.0 / float(c)
    return None


def _strip_scale(node: Any) -> tuple[Any, float]:
    """The node under casts and constant factors, and the product of those."""
    scale = 1.0
    while True:
        node = _strip_casts(node)
        found = _constant_factor(node) if isinstance(node, fx.Node) else None
        if found is None:
            return node, scale
        node, factor = found
        scale *= factor


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


def _check_static(value: Any) -> None:
    if isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        raise _NotProven("the mask depends on a dynamic shape (compile with dynamic=False)")
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_static(v)


class _Evaluator:
    """Evaluates nodes of a graph on the CPU from constants only (memoized);
    `inputs` gives the values of the placeholders it may read."""

    def __init__(self, gm: fx.GraphModule, inputs: dict[fx.Node, Any] | None = None):
        self.gm = gm
        self.inputs = inputs or {}
        self.values: dict[fx.Node, Any] = {}

    def __call__(self, node: Any) -> Any:
        if not isinstance(node, fx.Node):
            _check_static(node)
            return _on_cpu(node)
        if node not in self.values:
            self.values[node] = self._evaluate(node)
        return self.values[node]

    def _evaluate(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if node in self.inputs:
                return _on_cpu(self.inputs[node])
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
        if _mutated(node) is not None:
            raise _NotProven(f"the mask is built with {name}, which writes in place")
        shown = _val(node)
        if isinstance(shown, torch.Tensor) and shown.numel() > MAX_MASK_PAIRS:
            raise _NotProven(f"the mask's computation makes {shown.numel()} elements at "
                             f"{node.name}, over the limit of {MAX_MASK_PAIRS}")
        args = tuple(fx.node.map_arg(node.args, self))
        kwargs = dict(fx.node.map_arg(node.kwargs, self))
        _check_static(args)
        _check_static(list(kwargs.values()))
        if "device" in kwargs:  # also a device given by name
            kwargs["device"] = "cpu"
        try:
            if node.op == "call_method":
                self_value, rest = args[0], args[1:]
                if node.target in ("cuda", "cpu"):
                    return self_value
                if node.target == "to":
                    rest = tuple(a for a in rest if not isinstance(a, (torch.device, str)))
                    kwargs.pop("device", None)
                    kwargs.pop("non_blocking", None)
                return _on_cpu(getattr(self_value, node.target)(*rest, **kwargs))
            return _on_cpu(node.target(*args, **kwargs))
        except Exception as e:  # user code run on other devices and values
            raise _NotProven(f"evaluating the mask on the CPU failed at {node.name}: "
                             f"{type(e).__name__}: {e}") from None


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


def _check_unmutated(gm: fx.GraphModule, evaluated: set, root: fx.Node) -> None:
    """Raises unless no in-place op of the graph writes into a tensor that
    may alias one the mask was evaluated from (one derived from them without
    passing through the attention `root`): the evaluation reads the values
    before any such write."""
    for node in gm.graph.nodes:
        target = _mutated(node)
        if target is None:
            continue
        seen, todo = set(), [target]
        while todo:
            n = todo.pop()
            if n in seen or n is root:
                continue
            seen.add(n)
            if n in evaluated:
                raise _NotProven(f"the mask is changed in place by {node.name} "
                                 f"({_name_of(node.target)})")
            todo.extend(a for a in n.all_input_nodes)


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
    return visible[0].numpy()


def _prove(visible: np.ndarray) -> tuple[int, int]:
    try:
        return infer_swba_mask(visible)
    except NotSWBAMask as e:
        raise _NotProven(str(e)) from None


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
    scale: float


def _check_operands(q: Any, k: Any, v: Any) -> None:
    """The op's contract, on the traced values (static shapes only)."""
    vals = [_val(x) for x in (q, k, v)]
    if not all(isinstance(x, torch.Tensor) for x in vals):
        raise _NotProven("q, k or v has no traced tensor value")
    qv, kv, vv = vals
    for t in vals:
        _check_static(tuple(t.shape))
    if qv.dim() != 4 or kv.dim() != 4 or vv.dim() != 4:
        raise _NotProven(f"q, k, v must be 4-D [B, H, N, D], got {tuple(qv.shape)}, "
                         f"{tuple(kv.shape)}, {tuple(vv.shape)}")
    try:
        library._check_tensors(qv, kv, vv)
    except (TypeError, ValueError) as e:
        raise _NotProven(f"the swba op does not take these operands: {e}") from None


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
    qv, kv = _val(q), _val(k)
    if qv.shape[1] != kv.shape[1] and not _arg(node, 7, "enable_gqa", False):
        raise _NotProven("query and kv heads differ without enable_gqa")
    if scale is None:
        if qv.shape[-1] == 0:
            raise _NotProven("the head dim is 0 (SDPA's default scale 1/sqrt(0) is infinite)")
        scale = 1.0 / math.sqrt(qv.shape[-1])
    if not isinstance(scale, (int, float)) or not scale > 0:
        raise _NotProven(f"the scale {scale!r} is not a positive constant")
    value = evaluate(mask)
    kind = "bool" if isinstance(value, torch.Tensor) and value.dtype == torch.bool else "add"
    visible = _visibility(value, tuple(qv.shape[:2]), qv.shape[2], kv.shape[2], kind)
    bs, ws = _prove(visible)
    return _Match(q, k, v, bs, ws, float(scale))


def _leads_to_product(node: Any, depth: int = 8) -> bool:
    """Whether node is a product through casts, constant factors, adds and
    fills: the scores side of a masked sum."""
    node = _strip_scale(node)[0]
    if depth == 0 or not isinstance(node, fx.Node):
        return False
    if _is_call(node, _MATMUL, ("matmul",)):
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
    scores `q @ k^T`."""
    p, v = _arg(node, 0, "input"), _arg(node, 1, "other")
    p = _strip_casts(p)
    if not _is_call(p, _SOFTMAX_FUNCTIONS, ("softmax",)):
        raise _NotProven("no softmax feeds the product")
    dim = _arg(p, 1, "dim")
    scores = _arg(p, 0, "input")
    shown = _val(scores)
    if not isinstance(shown, torch.Tensor) or dim not in (-1, shown.dim() - 1):
        raise _NotProven(f"the softmax runs over dim {dim}, not the key axis")
    scale, mask, kind = 1.0, None, None
    x = scores
    while True:
        x, factor = _strip_scale(x)
        scale *= factor
        if mask is None and _is_call(x, _ADD, ("add", "__add__")) and len(x.args) == 2 \
                and all(isinstance(a, fx.Node) for a in x.args):
            # The scores side is the one that leads to a product.
            a, b = x.args
            (x, mask), kind = ((a, b) if _leads_to_product(a) else (b, a)), "add"
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
    if not _is_call(x, _MATMUL, ("matmul",)):
        raise _NotProven("the scores are not a product q @ k^T")
    q, scale_q = _strip_scale(_arg(x, 0, "input"))
    kt, scale_k = _strip_scale(_arg(x, 1, "other"))
    k = _transposed_last_two(kt)
    if k is None:
        raise _NotProven("the scores' right operand is not k with its last two dims swapped")
    k, scale_k2 = _strip_scale(k)
    v = _strip_casts(v)
    scale *= scale_q * scale_k * scale_k2
    if not scale > 0:
        raise _NotProven(f"the scale {scale} is not positive")
    _check_operands(q, k, v)
    qv, kv = _val(q), _val(k)
    visible = _visibility(evaluate(mask), tuple(_val(scores).shape[:2]), qv.shape[2],
                          kv.shape[2], kind)
    bs, ws = _prove(visible)
    return _Match(q, k, v, bs, ws, scale)


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
    _check_operands(q, k, v)
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
    if _is_call(node, _MATMUL, ("matmul",)):
        p = _strip_casts(_arg(node, 0, "input"))
        if _is_call(p, _SOFTMAX_FUNCTIONS, ("softmax",)):
            return "naive"
        return None
    if node.op == "call_function" and node.target is torch.ops.higher_order.flex_attention:
        return "flex_attention"
    return None


_MATCHERS: dict[str, Callable[..., _Match]] = {
    "sdpa": _match_sdpa, "naive": _match_naive, "flex_attention": _match_flex}


def _replace(gm: fx.GraphModule, node: fx.Node, form: str, m: _Match) -> None:
    graph = gm.graph
    qv = _val(m.q)
    with graph.inserting_before(node):
        op = graph.call_function(torch.ops.swba.attention.default,
                                 (m.q, m.k, m.v, m.block_size, m.window, m.scale))
        out = graph.call_function(operator.getitem, (op, 0))
        key = "example_value" if "example_value" in m.q.meta else "val"
        modes = {getattr(_val(x), "fake_mode", None) for x in (m.q, m.k, m.v)}
        fake_mode = modes.pop() if len(modes) == 1 else None
        if fake_mode is not None:
            with fake_mode:
                values = torch.ops.swba.attention(_val(m.q), _val(m.k), _val(m.v),
                                                  m.block_size, m.window, m.scale)
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
        evaluate = _Evaluator(gm, inputs if form == "flex_attention" else None)
        try:
            m = _MATCHERS[form](gm, node, evaluate)
            _check_unmutated(gm, set(evaluate.values), node)
        except _NotProven as e:
            decision = Decision(node.name, form, False, str(e))
            log.info("swba: %s (%s) not raised to swba.attention: %s", node.name, form, e)
        except Exception as e:  # a graph this pass misreads must still compile
            decision = Decision(node.name, form, False, f"internal error: {e!r}")
            log.warning("swba: %s (%s) left alone after an internal error of the raising "
                        "pass: %r", node.name, form, e)
        else:
            _replace(gm, node, form, m)
            changed = True
            decision = Decision(node.name, form, True, "", m.block_size, m.window, m.scale)
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
