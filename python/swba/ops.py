"""`attention(q, k, v, block_size, window, scale=None)` on CUDA tensors: the
sliding window block attention compiled by SWBA-MLIR, forward and backward
(a `torch.autograd.Function`).

A device's kernels are compiled for the chip `chip_for` names: `SWBA_CHIP`
when set, else sm_90a on compute capability 9.0 (whose forward at head dims
64 and 128 is the TMA + wgmma kernel; SWBA_CHIP=sm_90 keeps the mma.sync one
there) and sm_XY on other devices."""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict

import torch

from . import compiler, runtime

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16"}
# Element types the manifest names for tensors and buffers.
_ELEMENT_TYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32,
                  "i32": torch.int32}
_modules: dict = {}


def _module(config: compiler.KernelConfig, device: torch.device):
    """(compiled kernels, {kernel name: runtime.Kernel}) for `config`."""
    key = (config, device.index)
    if key not in _modules:
        compiled = compiler.load_or_compile(config)
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # makes the primary context current
            loaded = runtime.Module(compiled.image)
            functions = {}
            for launch in compiled.launches:
                functions[launch.name] = loaded.function(launch.name)
                functions[launch.name].allow_shared(launch.shared_memory)
            _modules[key] = (compiled, functions)
    return _modules[key]


_MAX_TENSOR_MAPS = 256
_MAX_PREPARED = 8  # packed parameter sets kept per kernel of a plan
_tensor_maps: OrderedDict = OrderedDict()  # key -> (device pointer, its MapSlot, host bytes)


def _tensor_map(t, spec: compiler.TensorMap, device: int, stream: int,
                capturing: bool = False):
    """(device pointer, runtime.MapSlot, pinned host bytes) of the CUtensorMap
    that `spec` (from the launch manifest) describes for the contiguous t. A
    map depends only on t's address, shape and dtype and on the spec, so the
    last maps made are kept, least recently used out first. They are kept
    per stream too: the copy that puts a map on the device runs on the
    stream of the kernels that read it, which orders them and makes the
    memory of a dropped map safe to reuse. A launch captured in a CUDA graph
    keeps its maps for good (see `_Kernel.entry`). A map made while
    `capturing` is copied into place at once, outside of the graph
    (runtime.MapSlot), and is that graph's alone: it is not kept here, and
    other graphs and eager calls make their own."""
    key = (t.data_ptr(), t.shape, t.dtype, spec, device, stream)
    found = _tensor_maps.get(key)
    if found is not None:
        _tensor_maps.move_to_end(key)
        return found
    size = t.element_size()
    strides = t.stride()
    # The view's dims and byte strides (a merged group steps as its last
    # dim), outermost first; the driver takes them innermost first.
    dims = [math.prod(t.shape[i] for i in group) for group in spec.view]
    steps = [strides[group[-1]] * size for group in spec.view]
    raw = runtime.encode_tensor_map(
        spec, key[0], dims[::-1], steps[-2::-1], spec.box[::-1])
    host = torch.frombuffer(bytearray(raw), dtype=torch.uint8).pin_memory()
    on_device = runtime.MapSlot(device, stream, host.data_ptr(), captured=capturing)
    # (The pinned bytes are kept with the map while the copy may run.)
    found = (on_device.address, on_device, host)
    if not capturing:
        _tensor_maps[key] = found
        if len(_tensor_maps) > _MAX_TENSOR_MAPS:
            _tensor_maps.popitem(last=False)
    return found


_captured: list = []  # launch entries a CUDA graph captured, kept for good


def _capturing() -> bool:
    """Whether the current stream is capturing a CUDA graph (torch's private
    accessor when it has one: the public one costs ~1 us more)."""
    check = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None)
    return check() if check is not None else torch.cuda.is_current_stream_capturing()


def _current_stream(device_index: int) -> int:
    """The raw handle of the device's current stream. torch's private
    accessor costs a tenth of a microsecond where the public one builds a
    Stream object (5-15 us on a typical host)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return raw(device_index)
    return torch.cuda.current_stream(device_index).cuda_stream


class _Kernel:
    """One kernel of a plan: everything its launch needs but the tensors'
    addresses and the stream, from its entry in the launch manifest. It is
    called with the plan's tensors (the op's, then the buffers, in the
    order of `names`); `uses`: the positions of those it takes; `params`:
    per parameter, its tensor's position and either the tail of its memref
    descriptor (offset, sizes, strides; the tensors are contiguous, see
    `_dense`) or its tensor map's spec. `sms`: the device's SMs, for grids
    whose workgroups run several chunks (compiler.chunks_per_workgroup)."""

    __slots__ = ("function", "grid", "block", "smem", "signature", "uses", "params",
                 "device", "prepared", "early")

    def __init__(self, function, launch: compiler.Launch, names, shapes, dtypes, device,
                 sms):
        self.function = function
        self.grid = launch.grid_for(shapes, sms)
        self.early = False  # may start while the kernel before it ends (_Launches)
        self.block = tuple(launch.block)
        self.smem = launch.shared_memory
        self.device = device
        self.prepared = OrderedDict()
        position = {name: i for i, name in enumerate(names)}
        signature, params = "", []
        for p in launch.params:
            if p.tensor not in position:
                raise compiler.ManifestError(
                    f"launch manifest: kernel {launch.name!r} takes {p.tensor!r}, "
                    f"which is none of {list(names)}")
            shape = shapes[p.tensor]
            if p.map is None and p.collapse is not None:
                if [d for group in p.collapse for d in group] != list(range(len(shape))):
                    raise compiler.ManifestError(
                        f"launch manifest: kernel {launch.name!r}: collapse "
                        f"{p.collapse} of {p.tensor!r} {tuple(shape)}")
                shape = tuple(math.prod(shape[d] for d in group) for group in p.collapse)
            element_type = p.map.element_type if p.map else p.element_type
            if _ELEMENT_TYPES.get(element_type) != dtypes[p.tensor] or (
                    p.map is None and p.rank != len(shape)):
                raise compiler.ManifestError(
                    f"launch manifest: kernel {launch.name!r} takes {p.tensor!r} as "
                    f"{element_type} of rank {p.rank}, but it is {dtypes[p.tensor]} "
                    f"{tuple(shape)}")
            if p.map is not None and sorted(sum(p.map.view, ())) != list(range(len(shape))):
                raise compiler.ManifestError(
                    f"launch manifest: kernel {launch.name!r}: view {p.map.view} of "
                    f"{p.tensor!r} {tuple(shape)}")
            if p.map is None:
                signature += runtime.memref_signature(len(shape))
                params.append((position[p.tensor], (0, *shape, *_contiguous_strides(shape))))
            else:
                signature += "P"
                params.append((position[p.tensor], p.map))
        self.signature = signature
        self.params = tuple(params)
        self.uses = tuple(sorted({i for i, _ in params}))

    def __call__(self, tensors, stream):
        """Launches on `tensors` (contiguous, of the plan's shapes). The packed
        parameters of the last few tensor sets are kept: a training loop
        gets the same addresses from PyTorch's caching allocator step after
        step, and then a launch is one lookup."""
        self.launch(self.entry(tensors, stream), stream)

    def launch(self, entry, stream):
        """Launches a prepared `entry` on `stream`: the one it was prepared
        for, or one that waits for that stream's work up to now. A kernel
        that may start early does so in a CUDA graph being captured, whose
        replays gain the launch's latency; eagerly it launches plainly, by
        the cheaper host call (a step that small is bound by the host)."""
        self.function.launch_packed(self.grid, self.block, entry[0], stream, self.smem,
                                    self.early and _capturing())

    def entry(self, tensors, stream):
        """The launch entry of `tensors`, its tensor maps (if new) copied on
        `stream`."""
        key = (tuple([tensors[i].data_ptr() for i in self.uses]), stream)
        entry = self.prepared.get(key)
        if entry is None:
            capturing = _capturing()
            entry = self._prepare(tensors, stream, capturing)
            # (One prepared while capturing is that graph's alone.)
            if not capturing:
                self.prepared[key] = entry
                if len(self.prepared) > _MAX_PREPARED:
                    self.prepared.popitem(last=False)
            else:
                _captured.append(entry)
        elif _capturing():
            # A CUDA graph keeps the addresses of this launch's tensor maps
            # for every replay: their memory stays for the life of the
            # process.
            _captured.append(entry)
        return entry

    def _prepare(self, tensors, stream, capturing=False):
        # The entry holds the device memory of its tensor maps: the map
        # cache may drop one, and then it must not be reused while this
        # entry can still launch with its address.
        values, maps = [], []
        for i, how in self.params:
            if isinstance(how, tuple):
                p = tensors[i].data_ptr()
                values += (p, p)
                values += how
            else:
                found = _tensor_map(tensors[i], how, self.device, stream, capturing)
                maps.append(found)
                values.append(found[0])
        return runtime.Params(self.signature, values), maps


def _contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class _Launches:
    """The kernels of one swba op for one set of shapes, as its launch
    manifest says: device buffers made for each call (zeroed where it says
    so), then the kernels in order. A kernel on stream 1 runs on a second
    stream after the work so far on the caller's, at once with the stream-0
    kernels after it; the caller's stream waits for it before this returns
    (every wait on the device; a CUDA graph capture on the caller's stream
    takes the second stream in and joins it back)."""

    def __init__(self, compiled, functions, shapes, dtypes, device, scalars=None):
        names = tuple(shapes)
        self.device = device
        self.buffers = []
        shapes, dtypes = dict(shapes), dict(dtypes)
        scalars = dict(scalars or {})
        # A persistent kernel's grid: one workgroup an SM of this device, or
        # one a query tile where there are fewer.
        if SM_COUNT in compiled.scalars and SM_COUNT not in scalars:
            scalars[SM_COUNT] = max(1, min(sm_count(device),
                                           _query_tiles(compiled, shapes["q"])))
        if set(compiled.scalars) != set(scalars):
            raise compiler.ManifestError(
                f"launch manifest: the kernels take the launch scalars "
                f"{sorted(compiled.scalars)}, given {sorted(scalars)}")
        shapes.update(scalars)
        for buffer in compiled.buffers:
            if buffer.element_type not in _ELEMENT_TYPES:
                raise compiler.ManifestError(
                    f"launch manifest: buffer {buffer.name!r} of {buffer.element_type}")
            shapes[buffer.name] = buffer.shape_for(shapes)
            dtypes[buffer.name] = _ELEMENT_TYPES[buffer.element_type]
            self.buffers.append((shapes[buffer.name], dtypes[buffer.name], buffer.zero))
            names += (buffer.name,)
        for launch in compiled.launches:
            if launch.only_when and launch.only_when[0] not in scalars:
                raise compiler.ManifestError(
                    f"launch manifest: kernel {launch.name!r} is launched when the scalar "
                    f"{launch.only_when[0]!r} is above {launch.only_when[1]}; no such scalar")
        # (A kernel launched only when a scalar is above a bound is left out
        # for scalars at or below it: one split writes the decode's out.)
        launched = [launch for launch in compiled.launches
                    if not launch.only_when
                    or scalars[launch.only_when[0]] > launch.only_when[1]]
        self.kernels = tuple(
            (_Kernel(functions[launch.name], launch, names, shapes, dtypes, device.index,
                     sm_count(device)), launch.stream) for launch in launched)
        self.forks = any(stream for _, stream in self.kernels)
        # A kernel that says it may start while the one before it ends does
        # so where that one is the launch just before it on the same stream
        # (no fork in between). SWBA_EARLY_START=0 turns it off.
        if not self.forks and os.environ.get("SWBA_EARLY_START", "1") != "0":
            for i, ((kernel, _), launch) in enumerate(zip(self.kernels, launched)):
                kernel.early = i > 0 and launch.early_start

    def __call__(self, tensors, stream):
        """Launches on `tensors` (the op's, contiguous, in manifest order)."""
        for shape, dtype, zero in self.buffers:
            make = torch.zeros if zero else torch.empty
            tensors += (make(shape, dtype=dtype, device=self.device),)
        if not self.forks:
            for kernel, _ in self.kernels:
                kernel(tensors, stream)
            return
        # Prepared (tensor maps copied) on this stream before any fork, so
        # that the second stream's waits cover the copies too.
        entries = [kernel.entry(tensors, stream) for kernel, _ in self.kernels]
        fork, join = _events(self.device.index)
        side = None
        for (kernel, on), entry in zip(self.kernels, entries):
            if on:
                side = side or _side_stream(self.device.index)
                fork.record(stream)
                fork.wait_on(side)
                kernel.launch(entry, side)
            else:
                kernel.launch(entry, stream)
        if side is not None:
            join.record(side)
            join.wait_on(stream)


class _Plan:
    """The kernels of one configuration for one set of shapes on one
    device, made on the first call that needs them: a later call with the
    same shapes only allocates its outputs and launches (the host cost of a
    step matters below a few thousand tokens, where it is larger than the
    GPU's)."""

    def __init__(self, q, k, v, block_size, window, scale, options):
        _check(q, k, v)
        chip = chip_for(q.device)
        self.device = q.device
        self.index = q.device.index
        self.dtype = q.dtype
        self.block_size, self.window, self.scale = block_size, window, scale
        self.chip, self.options = chip, options
        b, hq, nq, d = q.shape
        _, hkv, nk, dv = v.shape
        self.shapes = (b, hq, hkv, nq, nk, d, dv)
        self._forward = None
        self._splits = None  # the split count picked for these shapes
        self._split_forward = {}  # splits -> the split-KV forward's kernels
        self._backward = {}  # deterministic? -> the backward's kernels
        self._backward_of = {}  # their KernelConfig -> the same

    def _config(self, grad, split=False):
        b, hq, hkv, nq, nk, d, dv = self.shapes
        # The decode kernel and the split-KV forward are this plan's choice
        # (decode=true, split-kv=1: their kernels; the count of splits is
        # given at each launch).
        options = compiler.planned_options(self.options, grad)
        if not grad and self._uses_decode():
            options.append("decode=true")
        elif split:
            options.append("split-kv=1")
        options = " ".join(options)
        return compiler.KernelConfig(
            dtype=_TORCH_DTYPES[self.dtype], head_dim=d, value_dim=dv,
            block_size=int(self.block_size), window=int(self.window),
            scale=float(self.scale), with_lse=True, chip=self.chip, grad=grad,
            options=options)

    def forward(self, q, k, v, out=None, splits=None):
        """out [B, Hq, Nq, Dv] and the f32 log-sum-exp [B, Hq, Nq]. With few
        query rows per kv head (`_uses_decode`), the decode kernel over
        `splits` workgroups per kv head; else with `splits` > 1 (sm_90a,
        head dims 64 to 128), the split-KV forward: the key tiles of each query
        tile divided among that many workgroups. A combine kernel merges
        their partial results. None picks the count from the shapes and the
        GPU (`split_count`)."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        q, k, v = _dense(q), _dense(k), _dense(v)
        if out is None:
            out = torch.empty((b, hq, nq, dv), dtype=self.dtype, device=self.device)
        elif (out.shape != (b, hq, nq, dv) or out.dtype != self.dtype
              or out.device != self.device or not out.is_contiguous()):
            raise ValueError("out must be a contiguous [B, Hq, Nq, Dv] tensor like q")
        elif out.data_ptr() % 16:
            # The kernels store rows of O 8 bytes at a time.
            raise ValueError("out must start at a 16-byte aligned address "
                             f"(it starts at {out.data_ptr():#x})")
        lse = torch.empty((b, hq, nq), dtype=torch.float32, device=self.device)
        if out.numel():
            tensors = (q, k, v, out, lse)
            with _on_device(self.index):
                chosen = splits is None
                if chosen:
                    splits = self.split_count()
                launches = None
                if splits > 1 or self._uses_decode():
                    launches = self._split_forward.get(splits)
                    if launches is None:
                        launches = self._split_launches(tensors, splits, chosen)
                if launches is None:
                    if self._forward is None:
                        self._forward = self._launches(self._config(False), tensors)
                    launches = self._forward
                launches(tensors, _current_stream(self.index))
        return out, lse

    def _split_launches(self, tensors, splits, chosen):
        """The split-KV forward's launches for `splits`, or None where the
        count was this plan's choice and its kernels are neither in the
        cache nor in a bundle nor compilable here (a bundle built for the
        plain forward): then the plain forward runs, as it would unsplit."""
        from . import bundle

        try:
            launches = self._launches(self._config(False, split=True), tensors,
                                      {"splits": splits})
        except bundle.MissingKernelError:
            if not chosen:
                raise
            self._splits = 1
            return None
        self._split_forward[splits] = launches
        return launches

    def split_count(self) -> int:
        """How many workgroups share a query tile's key tiles. The decode
        kernel: `decode_splits`. Else 1 unless batch x heads x query tiles
        leave SMs idle (sm_90a, head dims 64 and 128) and a query tile
        visits at least 16 key tiles, then the count that minimizes the
        waves of workgroups times the key tiles each runs (plus a fixed cost
        of about two tiles: Q, the ring's fill, the epilogue), if that saves
        at least a quarter."""
        if self._splits is None:
            b, hq, hkv, nq, nk, d, dv = self.shapes
            if self._uses_decode():
                keys = min(nk, _window_keys(self.block_size, self.window, nq))
                self._splits = decode_splits(b, hkv, keys, self.device, per_sm=1)
            else:
                self._splits = self._pick_splits()
        return self._splits

    def _pick_splits(self) -> int:
        b, hq, hkv, nq, nk, d, dv = self.shapes
        if (self.chip != "sm_90a" or compiler.kernel_head_dim(d) not in (64, 128)
                or compiler.kernel_head_dim(dv) not in (64, 128) or not nq):
            return 1
        compiled, _ = _module(self._config(False), self.device)
        # The query tiles (a workgroup each on the grid; a persistent
        # kernel's workgroups loop over them).
        block_m, block_n = _box_rows(compiled, "q"), _box_rows(compiled, "k")
        workgroups = _query_tiles(compiled, (b, hq, nq))
        sms = sm_count(self.device)
        if workgroups >= sms:
            return 1
        # The keys of the last query tile's window (the most loaded).
        first = nk - nq + (nq - 1) // block_m * block_m
        begin = max(0, (first // self.block_size - self.window + 1) * self.block_size)
        tiles = -(-(nk - begin) // block_n)

        def cost(s):
            return -(-workgroups * s // sms) * (-(-tiles // s) + 2)
        best = min(range(1, max(1, min(tiles, 65535 // max(b, 1), 256)) + 1),
                   key=lambda s: (cost(s), s))
        # A second launch (the combine) and its buffers are worth it only
        # where the key loop is long and the split saves a quarter of it;
        # short problems stay one kernel (their host cost dominates).
        if tiles < _MIN_SPLIT_TILES or cost(best) > 0.75 * cost(1):
            return 1
        return best

    def backward(self, q, k, v, out, dout, lse):
        """dq, dk, dv of `forward`, by the kernels and in the order the
        lowering's manifest gives: by default a delta kernel (delta =
        rowsum(dout * out)), then dK/dV on a second stream at once with dQ
        on this one (both read only delta), every result bitwise
        reproducible. With the sm_90a lowering option grad-fused-dq=true
        (SWBA_LOWER_OPTIONS; the lowering's default for frames at head dim
        128), one kernel makes dK and dV and adds dQ up into a zeroed f32
        buffer with TMA reduce-adds, and a last kernel converts that into
        dq: the order of the additions varies, so dq may differ in its last
        bits (the manifest says so), and under
        `torch.use_deterministic_algorithms(True)` the backward of
        grad-fused-dq=false runs instead."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        # out and lse are the forward's own (contiguous); dout may be any
        # layout (an expanded gradient has zero strides).
        q, k, v, dout = _dense(q), _dense(k), _dense(v), _dense(dout)
        dq, dk, dvv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        if q.numel() and k.numel():
            tensors = (q, k, v, out, dout, lse, dq, dk, dvv)
            with _on_device(self.index):
                deterministic = torch.are_deterministic_algorithms_enabled()
                launches = self._backward.get(deterministic)
                if launches is None:
                    # Both entries share kernels where the default's
                    # results are reproducible.
                    config = self._config(True)
                    if deterministic:
                        config = compiler.reproducible_config(
                            config, lambda c: _module(c, self.device)[0])
                    launches = self._backward_of.get(config)
                    if launches is None:
                        launches = self._backward_of[config] = self._launches(config, tensors)
                    self._backward[deterministic] = launches
                launches(tensors, _current_stream(self.index))
        return dq, dk, dvv

    def _launches(self, config, tensors, scalars=None):
        """The _Launches of `config` for tensors shaped as `tensors` (the
        op's operands in the order the manifest names them) and the launch
        `scalars`."""
        names = _GRAD_OPERANDS if config.grad else _FORWARD_OPERANDS
        return _make_launches(config, self.device, names, tensors, scalars)

    def _uses_decode(self) -> bool:
        """Whether the forward runs on the split-KV decode kernel (few query
        rows per kv head: compiler.uses_decode)."""
        b, hq, hkv, nq, nk, d, dv = self.shapes
        return compiler.uses_decode(hq, hkv, nq, d, dv)


def _make_launches(config, device, names, tensors, scalars=None):
    """The _Launches of `config` for tensors shaped as `tensors` (named
    `names`, the manifest's) and the launch `scalars`; a lone kernel
    without buffers (the forward) is called directly: one call less on the
    host's fast path."""
    compiled, functions = _module(config, device)
    launches = _Launches(compiled, functions,
                         {n: tuple(t.shape) for n, t in zip(names, tensors)},
                         {n: t.dtype for n, t in zip(names, tensors)}, device, scalars)
    if len(launches.kernels) == 1 and not launches.buffers:
        return launches.kernels[0][0]
    return launches


# The op's operands as the launch manifest names them.
_FORWARD_OPERANDS = ("q", "k", "v", "out", "lse")
_PAGED_OPERANDS = ("q", "k_cache", "v_cache", "page_table", "seq_lens", "out", "lse")

_sm_counts: dict = {}

# The launch scalar of persistent kernels (--lower-swba tile-scheduler):
# the device's count of SMs, which the launcher fills in.
SM_COUNT = "sm_count"


def _box_rows(compiled, tensor) -> int:
    """The rows of the first tensor map box of `tensor` in the launches
    (the forward's query or key tile)."""
    return next(p.map.box[1] for launch in compiled.launches for p in launch.params
                if p.map and p.tensor == tensor)


def _query_tiles(compiled, q_shape) -> int:
    """The forward's query tiles, B x Hq x ceil(Nq / rows), its rows those
    of Q's tensor map box."""
    b, hq, nq = q_shape[:3]
    return b * hq * -(-nq // _box_rows(compiled, "q"))


def sm_count(device) -> int:
    """The device's count of SMs (asked once a device)."""
    sms = _sm_counts.get(device.index)
    if sms is None:
        sms = _sm_counts[device.index] = torch.cuda.get_device_properties(
            device).multi_processor_count
    return sms


def _window_keys(block_size: int, window: int, nq: int) -> int:
    """The most keys the rows of Nq consecutive queries see together."""
    return block_size * window + nq - 1


def decode_splits(batch: int, kv_heads: int, keys: int, device,
                  per_sm: int = 2) -> int:
    """Workgroups among which the decode kernel divides each row group's
    window of (at most) `keys` keys: as many as make batch x kv heads x
    splits workgroups one wave of `per_sm` per SM (the kernel's shared
    memory and registers let two share an SM; a second, partial wave would
    leave most SMs idle at its end), with at least two 64-key tiles a split.
    Dense caches want one (39.1 against 39.8 us, 40.9 against 41.7 with
    cp.async: docs/BENCHMARKS.md), and so do paged caches loaded by TMA
    boxes of a whole 64-key tile (41.5 against 42.5 us); smaller boxes want
    two (pages of 16: 44.4 against 54 us), as do bulk row copies and
    cp.async (45-52 against 70-80). `SWBA_DECODE_SPLITS` overrides it (any
    value >= 1 gives the same result)."""
    forced = os.environ.get("SWBA_DECODE_SPLITS")
    if forced:
        return max(1, int(forced))
    want = per_sm * sm_count(device) // max(batch * kv_heads, 1)
    return max(1, min(want, -(-keys // 128), 64))
_GRAD_OPERANDS = ("q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv")

_side_streams: dict = {}  # device index -> torch.cuda.Stream


def _side_stream(index: int) -> int:
    """The raw handle of the device's second stream (made once; PyTorch
    owns it)."""
    found = _side_streams.get(index)
    if found is None:
        found = _side_streams[index] = torch.cuda.Stream(device=index)
    return found.cuda_stream


_thread_events = threading.local()


def _events(index: int):
    """This thread's two events on device `index` that fork a second stream
    off and join it back (per thread, so that no other thread records them
    in between)."""
    per_device = getattr(_thread_events, "events", None)
    if per_device is None:
        per_device = _thread_events.events = {}
    events = per_device.get(index)
    if events is None:
        events = per_device[index] = (runtime.Event(), runtime.Event())
    return events


class _on_device:
    """`with torch.cuda.device(index)` when that is not the current device
    already (a kernel belongs to its device's context), and that device's
    context current for the driver calls (`runtime.make_current`); in the
    common case a check that costs about a microsecond."""

    __slots__ = ("index", "previous")

    def __init__(self, index):
        self.index = index

    def __enter__(self):
        self.previous = torch.cuda.current_device()
        if self.previous != self.index:
            torch.cuda.set_device(self.index)
        runtime.make_current(self.index)

    def __exit__(self, *exc):
        if self.previous != self.index:
            torch.cuda.set_device(self.previous)
            runtime.forget_current()


_device_chips: dict = {}


def chip_for(device: torch.device) -> str:
    """The chip `device`'s kernels are compiled for (see the module's doc)."""
    chip = os.environ.get("SWBA_CHIP")
    if chip:
        return chip
    return _device_chip(device.index)


# (torch.compiler's, where torch has it.)
_constant_result = getattr(getattr(torch, "compiler", None), "assume_constant_result",
                           lambda fn: fn)


@_constant_result
def _device_chip(index: int) -> str:
    """The chip of CUDA device `index`, asked once. A constant to
    torch.compile, which traces the op's argument checks: traced, the cache
    got a guard that failed in the same frame when the op's first call
    filled it (dynamo's "Guard failed on the same frame it was created")."""
    chip = _device_chips.get(index)
    if chip is None:
        major, minor = torch.cuda.get_device_capability(index)
        chip = _device_chips[index] = (
            "sm_90a" if (major, minor) == (9, 0) else f"sm_{major}{minor}")
    return chip


_MAX_PLANS = 64
_MIN_SPLIT_TILES = 16  # key tiles a query tile must visit before splitting pays
_plans: OrderedDict = OrderedDict()


def plan_for(q, k, v, block_size, window, scale) -> _Plan:
    """The plan of this call's shapes and configuration (checked when first
    seen), the most recently used kept. Its lowering options are
    SWBA_LOWER_OPTIONS when set, else those `swba.autotune` chose for these
    shapes on this GPU (tuned first under SWBA_AUTOTUNE=1), else the
    lowering's defaults."""
    chip = os.environ.get("SWBA_CHIP", "")
    options = os.environ.get("SWBA_LOWER_OPTIONS", "")
    # (SWBA_WORKGROUP_CHUNKS sets grids: compiler.chunks_per_workgroup.)
    key = (q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.get_device(),
           k.get_device(), v.get_device(), block_size, window, scale, chip, options,
           os.environ.get("SWBA_WORKGROUP_CHUNKS", ""))
    plan = _plans.get(key)
    if plan is None:
        if not options:
            options = _tuned_options(q, k, v, block_size, window, scale)
        plan = _Plan(q, k, v, block_size, window, scale, options)
        _plans[key] = plan
        if len(_plans) > _MAX_PLANS:
            _plans.popitem(last=False)
    return plan


def _tuned_options(q, k, v, block_size, window, scale) -> str:
    from . import tuning

    _check(q, k, v)
    chip = chip_for(q.device)
    if chip != "sm_90a":
        return ""
    found = tuning.tuned_options(q, k, v, block_size, window, scale, chip)
    if found is None and os.environ.get("SWBA_AUTOTUNE") == "1" and not _capturing():
        found = tuning.autotune(q, k, v, block_size, window, scale,
                                  backward=q.requires_grad or k.requires_grad
                                  or v.requires_grad).options
    return found or ""


def _dense(t):
    """t, or a copy of it, contiguous and 16-byte aligned (as TMA reads it)."""
    if t.is_contiguous() and t.data_ptr() % 16 == 0:
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _check(q, k, v):
    if q.dtype not in _TORCH_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must all be float16 or bfloat16, got "
                        f"{q.dtype}, {k.dtype}, {v.dtype}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D [B, H, N, D]")
    b, hq, nq, d = q.shape
    _, hkv, nk, dv = v.shape
    if k.shape != (b, hkv, nk, d):
        raise ValueError(f"k has shape {tuple(k.shape)}, expected {(b, hkv, nk, d)}")
    if hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of kv heads ({hkv})")
    if nq > nk:
        raise ValueError(f"Nq ({nq}) must not exceed Nk ({nk})")
    if not (q.is_cuda and k.device == q.device and v.device == q.device):
        raise ValueError("q, k, v must be on one CUDA device")


def attention_forward(q, k, v, block_size, window, scale, out=None, splits=None):
    """out [B, Hq, Nq, Dv] and the f32 log-sum-exp [B, Hq, Nq]; `splits`:
    see `_Plan.forward`."""
    return plan_for(q, k, v, block_size, window, scale).forward(q, k, v, out, splits)


def attention_backward(q, k, v, out, dout, lse, block_size, window, scale):
    """dq, dk, dv of `attention_forward` (see `_Plan.backward`: bitwise
    reproducible under `torch.use_deterministic_algorithms(True)`)."""
    return plan_for(q, k, v, block_size, window, scale).backward(
        q, k, v, _dense(out), dout, _dense(lse))


def attention(q, k, v, block_size: int, window: int, scale: float | None = None,
              return_lse: bool = False, out=None):
    """`swba.attention` (see `swba.library.attention`): the `swba::attention`
    custom op; eager CUDA calls launch through `attention_forward` and
    `attention_backward` without the dispatcher's round trip."""
    from .library import attention as public

    return public(q, k, v, block_size, window, scale, return_lse, out)
