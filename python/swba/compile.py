"""`swba-compile` (`python -m swba.compile`): builds the kernels of a list of
configurations into a kernel bundle, on a machine with swba-opt, for GPU
machines that run without MLIR (`SWBA_KERNEL_BUNDLE=DIR` or
`swba.load_bundle(DIR)` there).

Configurations come from flags (one), a JSON file (a list of objects with
the flags' names: dtype, head_dim, value_dim, block_size, window, scale,
chip, options, kernels), or a model saved by `torch.export.save` (every
`swba.attention` call in its graph)::

    swba-compile --bundle kernels --dtype bf16 --head-dim 128 --block-size 1560 --window 4
    swba-compile --bundle kernels --config-file configs.json
    swba-compile --bundle kernels --exported model.pt2 --chip sm_90a
    swba-compile --bundle kernels --dtype bf16 --head-dim 128 --block-size 1024 \\
        --window 4 --shard-lengths 131072,131072 --heads 24

`--kernels` picks the forward, the backward (training), both, or `paged`
(`swba.paged_attention`, with `--page-size` on sm_90a, whose paged kernels
are compiled per page size); a forward of decode-sized calls (see
`swba.ops`) takes `--options decode=true`. `--shard-lengths` (with
`--heads`) builds what `swba.distributed.attention` runs on ranks holding
those token counts: each rank's pieces' forward (plain, split-KV or decode
kernel, by the piece's query rows) and the backward. `--options`
are the `--swba-to-nvvm` options of `SWBA_LOWER_OPTIONS` at run time: a
bundle holds the kernels of the options it was built with. `--autotune` adds
every candidate tiling `swba.autotune` times (those that do not fit the head
dims are left out), so that it can tune where there is no swba-opt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import bundle, compiler

_KERNELS = ("forward", "backward", "both", "paged")
_TORCH_DTYPES = {"torch.float16": "f16", "torch.bfloat16": "bf16"}


def configs_for(dtype: str, head_dim: int, block_size: int, window: int,
                value_dim: int | None = None, scale: float | None = None,
                chip: str = "sm_90a", options: str = "", kernels: str = "both",
                with_lse: bool = True, page_size: int | None = None
                ) -> list[compiler.KernelConfig]:
    """The kernel configurations the runtime asks for when it runs
    `swba.attention` with these attributes: the forward, the backward, or
    both (`--options decode=true`: the forward of decode-sized calls, see
    `swba.ops`), or `swba.paged_attention`'s kernels ("paged"). The scale defaults to 1/sqrt(head_dim) as `swba.attention`'s does;
    each gets its own part of `options` (`compiler.kernel_options`), as the
    runtime asks for it."""
    if kernels not in _KERNELS:
        raise ValueError(f"kernels must be one of {_KERNELS}, got {kernels!r}")
    value_dim = head_dim if value_dim is None else value_dim
    scale = compiler.default_scale(head_dim) if scale is None else float(scale)
    common = dict(dtype=dtype, head_dim=head_dim, value_dim=value_dim, block_size=block_size,
                  window=window, scale=scale, with_lse=with_lse, chip=chip)
    if kernels == "paged":  # swba.paged_attention (swba.paged.paged_attention)
        if page_size is None and chip == "sm_90a":
            raise ValueError("sm_90a's paged kernels are compiled per page size: give "
                             "--page-size (page_size in a configuration file)")
        return [compiler.KernelConfig(**common, paged=True,
                                      page_size=compiler.kernel_page_size(page_size or 0, chip),
                                      options=compiler.kernel_options(options, False))]
    if page_size is not None:
        raise ValueError("--page-size (page_size) is for --kernels paged")
    out = []
    for grad in (False, True):
        if kernels in ("both", "backward" if grad else "forward"):
            out.append(compiler.KernelConfig(**common, grad=grad,
                                             options=compiler.kernel_options(options, grad)))
    return out


def forward_configs(dtype: str, hq: int, hkv: int, nq: int, d: int, dv: int,
                    block_size: int, window: int, chip: str = "sm_90a",
                    scale: float | None = None, options: str = ""
                    ) -> list[compiler.KernelConfig]:
    """The forward kernel configurations `swba.attention` may ask for at
    these shapes (scale default 1/sqrt(d); `options`: SWBA_LOWER_OPTIONS):
    the decode kernel where few query rows share a kv head
    (`compiler.uses_decode`), else the plain forward and the split-KV
    forward (which the runtime picks where SMs would idle)."""
    base = compiler.planned_options(options, False)
    if compiler.uses_decode(hq, hkv, nq, d, dv):
        variants: tuple[list[str], ...] = (["decode=true"],)
    else:
        variants = ([], ["split-kv=1"])
    scale = compiler.default_scale(d) if scale is None else float(scale)
    return [compiler.KernelConfig(dtype, d, dv, block_size, window, scale, chip=chip,
                                  options=" ".join(base + v)) for v in variants]


def configs_from_json(path: Path, defaults: dict[str, Any]) -> list[compiler.KernelConfig]:
    """Configurations listed in a JSON file (see the module's doc); keys a
    row leaves out come from `defaults` (chip, options, kernels)."""
    try:
        rows = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of configurations")
    out = []
    known = {"dtype", "head_dim", "value_dim", "block_size", "window", "scale", "chip",
             "options", "kernels", "with_lse", "page_size"}
    for i, row in enumerate(rows):
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"{path}: entry {i} has unknown keys {sorted(unknown)} "
                             f"(known: {sorted(known)})")
        try:
            out += configs_for(**(defaults | row))
        except TypeError as e:
            raise ValueError(f"{path}: entry {i}: {e}") from None
    return out


def configs_from_exported(path: Path, defaults: dict[str, Any]) -> list[compiler.KernelConfig]:
    """The configurations of every `swba::attention` call in a program saved
    by `torch.export.save` (dtype and head dims from the traced shapes)."""
    import torch

    from . import library  # noqa: F401  (registers the ops the program calls)

    try:
        program = torch.export.load(str(path))
    except OSError:
        raise
    except Exception as e:  # torch.export.load's errors on files it cannot read
        raise ValueError(f"{path}: not a program saved by torch.export.save "
                         f"({type(e).__name__}: {e})") from None
    out = []
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.swba.attention.default:
            continue
        q, _, v, block_size, window, scale = node.args
        qv, vv = q.meta["val"], v.meta["val"]
        dtype = _TORCH_DTYPES.get(str(qv.dtype))
        if dtype is None:
            raise ValueError(f"{path}: {node.name} runs in {qv.dtype}; the kernels take "
                             f"float16 or bfloat16")
        out += configs_for(dtype, int(qv.shape[-1]), int(block_size), int(window),
                           int(vv.shape[-1]), float(scale), **defaults)
    if not out:
        raise ValueError(f"{path}: no swba.attention call in the exported program")
    return out


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected token counts >= 1 separated by commas, got {text!r}")
    return lengths


def _heads(text: str) -> tuple[int, int]:
    parts = text.split("/")
    try:
        hq, hkv = int(parts[0]), int(parts[-1])
    except ValueError:
        hq = hkv = 0
    if len(parts) > 2:
        hq = 0
    if hq < 1 or hkv < 1 or hq % hkv:
        raise argparse.ArgumentTypeError(
            f"expected HQ or HQ/HKV with HQ a multiple of HKV, got {text!r}")
    return hq, hkv


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swba-compile", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path,
                   help="the bundle directory to create or add to")
    src = p.add_argument_group("one configuration")
    src.add_argument("--dtype", choices=("f16", "bf16"))
    src.add_argument("--head-dim", type=int, help="D of q and k")
    src.add_argument("--value-dim", type=int, help="Dv of v (default: --head-dim)")
    src.add_argument("--block-size", type=int)
    src.add_argument("--window", type=int)
    src.add_argument("--scale", type=float, help="default 1/sqrt(head dim)")
    src.add_argument("--no-lse", action="store_true", help=argparse.SUPPRESS)
    src.add_argument("--page-size", type=int,
                     help="--kernels paged: the caches' page size (sm_90a compiles a kernel "
                          "per page size)")
    src.add_argument("--shard-lengths", type=_lengths, metavar="N1,N2,...",
                     help="swba.distributed.attention over ranks holding these token counts: "
                          "the kernels of every rank's pieces (needs --heads)")
    src.add_argument("--heads", type=_heads, metavar="HQ[/HKV]",
                     help="with --shard-lengths: query heads and kv heads (pieces of few "
                          "query rows a kv head run on the decode kernel)")
    p.add_argument("--config-file", type=Path, help="a JSON list of configurations")
    p.add_argument("--exported", type=Path, action="append", default=[],
                   help="a program saved by torch.export.save: its swba.attention calls")
    p.add_argument("--chip", default="sm_90a",
                   help="the GPU: sm_90a (H100/H200, TMA + wgmma kernels), sm_90, sm_80, ... "
                        "(default sm_90a; the runtime asks for sm_90a on compute capability "
                        "9.0, sm_XY elsewhere, SWBA_CHIP when set)")
    p.add_argument("--options", default="", help="--swba-to-nvvm options (SWBA_LOWER_OPTIONS)")
    p.add_argument("--kernels", choices=_KERNELS, default="both",
                   help="forward (inference), backward, or both (training; the default)")
    p.add_argument("--autotune", action="store_true",
                   help="also the candidate tilings swba.autotune times")
    return p


def _sharded_configs(args) -> list[compiler.KernelConfig]:
    """--shard-lengths: the kernels swba.distributed.attention's pieces ask
    for (`swba.halo.kernel_configs`), those of --kernels."""
    from . import halo

    if args.heads is None:
        raise ValueError("--shard-lengths needs --heads HQ[/HKV]")
    if args.kernels == "paged" or args.page_size is not None or args.no_lse:
        raise ValueError("--shard-lengths builds swba.distributed.attention's kernels: "
                         "--kernels forward, backward or both, no --page-size")
    configs = halo.kernel_configs(args.shard_lengths, *args.heads, args.head_dim,
                                  args.block_size, args.window, args.dtype, args.value_dim,
                                  args.scale, args.chip, args.options)
    keep = {"forward": (False,), "backward": (True,), "both": (False, True)}[args.kernels]
    return [c for c in configs if c.grad in keep]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    defaults = {"chip": args.chip, "options": args.options, "kernels": args.kernels}
    one = (args.dtype, args.head_dim, args.block_size, args.window)
    configs: list[compiler.KernelConfig] = []
    try:
        if any(x is not None for x in one):
            if any(x is None for x in one):
                raise ValueError("one configuration needs --dtype, --head-dim, --block-size "
                                 "and --window")
            if args.shard_lengths is None:
                configs += configs_for(args.dtype, args.head_dim, args.block_size,
                                       args.window, args.value_dim, args.scale,
                                       with_lse=not args.no_lse, page_size=args.page_size,
                                       **defaults)
            else:
                configs += _sharded_configs(args)
        elif args.shard_lengths is not None:
            raise ValueError("--shard-lengths needs one configuration's --dtype, "
                             "--head-dim, --block-size and --window")
        if args.config_file:
            configs += configs_from_json(args.config_file, defaults)
        for path in args.exported:
            configs += configs_from_exported(path, defaults)
        if not configs:
            raise ValueError("nothing to build: give one configuration's flags, --config-file "
                             "or --exported")
    except (ValueError, OSError) as e:
        print(f"swba-compile: error: {e}", file=sys.stderr)
        return 2
    unique: Iterable[compiler.KernelConfig] = list(dict.fromkeys(configs))
    try:
        bundle.build_bundle(unique, args.bundle, progress=lambda s: print(s, flush=True))
    except RuntimeError as e:
        print(f"swba-compile: error: {e}", file=sys.stderr)
        return 1
    if args.autotune:
        from . import tuning

        candidates = [c for config in unique for c in tuning.candidate_configs(config)]
        try:
            bundle.build_bundle(dict.fromkeys(candidates), args.bundle, progress=None)
        except RuntimeError as e:
            # A candidate that does not fit these head dims is not an error.
            print(f"swba-compile: left out {str(e).splitlines()[0].split(' ')[0]} candidate "
                  f"tiling(s) that do not compile for these configurations")
    print(f"bundle {args.bundle}: {len(bundle.bundle_configs(args.bundle))} configuration(s); "
          f"run with SWBA_KERNEL_BUNDLE={args.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
