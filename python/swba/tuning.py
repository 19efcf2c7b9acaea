"""`swba.autotune(q, k, v, block_size, window)` (this module's `autotune`):
times the lowering's candidate tilings of one configuration on this GPU and
keeps the fastest forward and backward beside the kernels (`autotune.json` in the kernel cache
directory, `SWBA_KERNEL_DIR`), keyed by the configuration, the shapes and
the GPU's name. Later `swba.attention` calls of that configuration and those
shapes run with them, in this process and the next.

The lowering's heuristic stays the default: without a tuned entry nothing
changes, and `SWBA_LOWER_OPTIONS`, when set, wins over a tuned entry. With
`SWBA_AUTOTUNE=1` the first eager call of shapes not tuned yet tunes them
(not while a CUDA graph is being captured).

The candidates are `--swba-to-nvvm` options of the sm_90a kernels
(`FORWARD_CANDIDATES`, `BACKWARD_CANDIDATES`); one that does not fit the
head dims (shared memory, registers) is skipped. Each must be compiled: by
swba-opt where there is one, else from the kernel cache or a loaded bundle
(`swba-compile --autotune` builds them all), and one that is missing there
is skipped too (`tune.skipped` says why).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import threading
from pathlib import Path

from . import compiler

# Each changes one or two choices of the lowering's forward tiling: query
# rows per workgroup (consumers x 64), keys per tile, tiles in flight, the
# consumers' turn-taking, the workgroups resident on an SM, the tile
# scheduler (a workgroup per query tile, or one an SM looping over them).
# Small key tiles pay on narrow windows, where a large tile is mostly masked;
# one consumer a workgroup, two or three an SM, on bands of a few key tiles.
FORWARD_CANDIDATES = (
    "", "consumers=2", "consumers=3", "block-n=64", "block-n=128", "block-n=192",
    "consumers=2 block-n=64", "consumers=3 block-n=64", "stages=3", "stages=4",
    "ping-pong=false", "ping-pong=true", "consumers=3 ping-pong=false", "workgroups-per-sm=1",
    "tile-scheduler=grid", "tile-scheduler=persistent", "consumers=1 workgroups-per-sm=2",
    "consumers=1 workgroups-per-sm=3")
# The backward's tiles and schedule: grad-stages sets the tiles in flight
# of both kernels (and takes the dQ kernel's default of 4 on narrow bands
# away), grad-key-stages those of the dQ kernel alone (the same kernels as
# the default where the backward is fused), grad-kv-consumers and
# grad-q-consumers the dK/dV and dQ kernels' consumers (one: two
# workgroups an SM), grad-kv-tiles the most key tiles a dK/dV workgroup
# runs in turn (the launcher picks how many for the grid; eight: the
# default on bands of at most 512 keys at head dim 64),
# grad-dq-delta whether the dQ kernel computes delta for the dK/dV kernel
# after it (true: the default on bands of at most 512 keys at head dim 64)
# or a delta kernel does before both run at once.
# grad-fused-dq=true (dQ added up with
# reduce-adds: not bitwise reproducible) as a candidate of its own only with
# allow_fused_dq; the lowering's default ("") is that backward on frames at
# head dim 128. Under torch.use_deterministic_algorithms the runtime runs
# the reproducible backward of whichever options won (swba.ops).
BACKWARD_CANDIDATES = (
    "", "grad-key-tile=64", "grad-key-tile=128", "grad-query-tile=64",
    "grad-query-tile=128", "grad-stages=3", "grad-stages=4", "grad-key-stages=2",
    "grad-key-stages=3", "grad-key-stages=4", "grad-kv-consumers=1", "grad-kv-consumers=2",
    "grad-q-consumers=1", "grad-ping-pong=true", "grad-kv-tiles=1", "grad-kv-tiles=2",
    "grad-kv-tiles=8", "grad-dq-delta=true", "grad-dq-delta=false")
FUSED_DQ = "grad-fused-dq=true"

FILE = "autotune.json"
_lock = threading.Lock()
_entries: dict | None = None  # the file's entries, read once per process


@dataclasses.dataclass
class Tuning:
    """What `autotune` chose: the forward's and the backward's options
    (empty: the lowering's default), the ms of each candidate timed (the
    mean of its rounds' medians) and the candidates skipped with the
    reason."""

    forward: str
    backward: str
    forward_ms: dict
    backward_ms: dict
    skipped: dict

    @property
    def options(self) -> str:
        return " ".join(o for o in (self.forward, self.backward) if o)


def _path() -> Path:
    return compiler.cache_dir() / FILE


def _gpu_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device)


def _key(q, k, v, block_size, window, scale, chip) -> str:
    b, hq, nq, d = q.shape
    _, hkv, nk, dv = v.shape
    return json.dumps({
        "gpu": _gpu_name(q.device), "chip": chip,
        "dtype": str(q.dtype).removeprefix("torch."), "head_dim": d, "value_dim": dv,
        "block_size": int(block_size), "window": int(window), "scale": float(scale),
        "shape": [b, hq, hkv, nq, nk]}, sort_keys=True)


def _load() -> dict:
    global _entries
    if _entries is None:
        try:
            _entries = json.loads(_path().read_text())
        except (OSError, ValueError):
            _entries = {}
    return _entries


def _store(key: str, tuning: Tuning):
    with _lock:
        entries = _load()
        # Entries another process wrote since are kept.
        try:
            entries.update(json.loads(_path().read_text()))
        except (OSError, ValueError):
            pass
        entries[key] = {"forward": tuning.forward, "backward": tuning.backward,
                        "forward_ms": tuning.forward_ms, "backward_ms": tuning.backward_ms}
        path = _path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(tmp, path)


def tuned_options(q, k, v, block_size, window, scale, chip) -> str | None:
    """The options tuned for this call's configuration and shapes on this
    GPU, or None."""
    entries = _load()
    if not entries:
        return None
    entry = entries.get(_key(q, k, v, block_size, window, scale, chip))
    if entry is None:
        return None
    return " ".join(o for o in (entry["forward"], entry["backward"]) if o)


def _median_ms(fn, reps: int) -> float:
    import torch

    for _ in range(3):
        fn()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(start, end):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(start, end))


def _candidates_timed(make, candidates, reps, skipped, image_of, rounds: int = 4) -> dict:
    """{options: ms} of the candidates that compile and run; the others go
    to `skipped` with the first line of why, and so does one whose kernels
    are those of a candidate kept before (an option that restates a
    default). The candidates are timed in turn, `rounds` times (an even
    count), every other round in reverse order, and each one's time is the
    mean of its rounds' medians: a clock that drifts steadily over the
    tuning (power, heat) then adds the same to every candidate, where timing
    one candidate after another credited the drift to the last ones."""
    from . import bundle

    fns, seen = {}, {}
    for options in candidates:
        try:
            image = image_of(options)
            if image in seen:
                skipped[options] = f"the same kernels as {seen[image] or 'the default'!r}"
                continue
            fn = make(options)
            fn()  # loads the kernels: one that is missing is skipped here
            seen[image] = options
            fns[options] = fn
        except (compiler.CompileError, compiler.ManifestError, bundle.MissingKernelError) as e:
            skipped[options] = str(e).strip().splitlines()[0]
    per_round = max(3, -(-reps // rounds))
    times: dict = {options: [] for options in fns}
    order = list(fns)
    for r in range(rounds):
        for options in (order if r % 2 == 0 else reversed(order)):
            times[options].append(_median_ms(fns[options], per_round))
    return {options: statistics.fmean(ts) for options, ts in times.items()}


def _fastest(times: dict, margin: float) -> str:
    """The fastest candidate, unless it beats the default ("") by less than
    `margin` (a fraction): then the default, which the lowering chose on
    purpose, stays."""
    best = min(times, key=times.get)
    if "" in times and times[best] > times[""] * (1 - margin):
        return ""
    return best


def autotune(q, k, v, block_size: int, window: int, scale: float | None = None,
             backward: bool = True, allow_fused_dq: bool = False, reps: int = 30,
             margin: float = 0.02, store: bool = True) -> Tuning:
    """Times the candidate tilings on q, k, v (read only; the backward on a
    pseudo-random dout of a private generator, so the caller's random
    stream is untouched), keeps the fastest forward and (with `backward`)
    backward (a candidate replaces the lowering's default only when it is
    faster by more than `margin`, so that timing noise does not pick), and
    stores them for this configuration, these shapes and this GPU. Returns
    the `Tuning`. `allow_fused_dq` adds grad-fused-dq=true to the backward's
    candidates. Only sm_90a kernels have options to tune: on other chips
    the defaults are returned at once."""
    import torch

    from . import library, ops

    library._check_scalars(block_size, window, scale)
    library._check_tensors(q, k, v)
    if not q.is_cuda:
        raise ValueError("autotune times CUDA kernels: q, k, v must be CUDA tensors")
    if ops._capturing():
        raise RuntimeError("autotune synchronizes the device: not while a CUDA graph is "
                           "being captured")
    if scale is None:
        scale = compiler.default_scale(q.shape[-1])
    chip = ops.chip_for(q.device)
    skipped: dict = {}
    if chip != "sm_90a":
        return Tuning("", "", {}, {}, {"*": f"{chip}: the mma.sync kernels have no options"})
    q, k, v = (ops._dense(t.detach()) for t in (q, k, v))

    def plan(options):
        return ops._Plan(q, k, v, block_size, window, scale, options)

    def image_of(grad):
        def image(options):
            return compiler.load_or_compile(plan(options)._config(grad)).image
        return image

    with torch.no_grad(), ops._on_device(q.device.index):
        forward_ms = _candidates_timed(lambda o: (lambda p=plan(o): p.forward(q, k, v)),
                                       FORWARD_CANDIDATES, reps, skipped, image_of(False))
        if not forward_ms:
            raise compiler.CompileError(
                "autotune: no forward candidate could be compiled or loaded: " +
                "; ".join(f"{o or 'default'}: {why}" for o, why in skipped.items()))
        forward = _fastest(forward_ms, margin)
        backward_ms: dict = {}
        if backward:
            out, lse = plan(forward).forward(q, k, v)
            generator = torch.Generator(device=q.device).manual_seed(0)
            dout = torch.randn(out.shape, dtype=out.dtype, device=out.device,
                               generator=generator)
            candidates = BACKWARD_CANDIDATES + ((FUSED_DQ,) if allow_fused_dq else ())
            backward_ms = _candidates_timed(
                lambda o: (lambda p=plan(o): p.backward(q, k, v, out, dout, lse)),
                candidates, reps, skipped, image_of(True))
        best_backward = _fastest(backward_ms, margin) if backward_ms else ""
    tuning = Tuning(forward, best_backward, forward_ms, backward_ms, skipped)
    if store:
        _store(_key(q, k, v, block_size, window, scale, chip), tuning)
        ops._plans.clear()  # plans made before take the tuned options from now on
    return tuning


def candidate_configs(config: compiler.KernelConfig, allow_fused_dq: bool = False
                      ) -> list[compiler.KernelConfig]:
    """The kernel configurations `autotune` may time for `config` (its
    forward candidates if it is a forward, else the backward's)."""
    if config.grad:
        options = BACKWARD_CANDIDATES + ((FUSED_DQ,) if allow_fused_dq else ())
    else:
        options = FORWARD_CANDIDATES
    return [dataclasses.replace(config, options=o) for o in options]
