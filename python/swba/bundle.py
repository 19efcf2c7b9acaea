"""Kernel bundles: kernels compiled ahead of time, shipped to machines
without MLIR.

A bundle is a directory holding the compiled kernels of a list of
`compiler.KernelConfig`s, in the layout of the kernel cache, and a manifest
(`swba-bundle.json`) listing them. `swba-compile` (`python -m swba.compile`)
builds one on a machine with `swba-opt`; `load_bundle(path)` or the
`SWBA_KERNEL_BUNDLE` environment variable (paths separated by `os.pathsep`)
makes the runtime look there before its cache. A configuration found in no
bundle and no cache, where there is no `swba-opt` to compile it, raises
`MissingKernelError`, which names the configuration and the command that
builds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import compiler

__all__ = ["MissingKernelError", "build_bundle", "load_bundle", "loaded_bundles",
           "bundle_configs", "compile_command", "MANIFEST"]

MANIFEST = "swba-bundle.json"
_FORMAT = 1

_loaded: list[Path] = []
_env_seen: str | None = None


class MissingKernelError(RuntimeError):
    """No compiled kernel for a configuration, and no swba-opt to build it."""

    def __init__(self, config: compiler.KernelConfig, searched: list[Path], target: Path):
        self.config = config
        where = ", ".join(str(p) for p in searched)
        super().__init__(
            f"no compiled kernel for {describe(config)} (searched {where}) and no swba-opt "
            f"here to compile it. Build it on a machine with swba-opt:\n"
            f"  {compile_command(config, target)}\n"
            f"and load that bundle with SWBA_KERNEL_BUNDLE={shlex.quote(str(target))} or "
            f"swba.load_bundle({str(target)!r}).")


def describe(config: compiler.KernelConfig) -> str:
    """A one-line name of a configuration, as the progress output prints it."""
    text = (f"{config.dtype} head_dim={config.head_dim} value_dim={config.value_dim} "
            f"block_size={config.block_size} window={config.window} scale={config.scale!r} "
            f"chip={config.chip} {'backward' if config.grad else 'forward'}")
    return text + (f" options={config.options!r}" if config.options else "")


def compile_command(config: compiler.KernelConfig, bundle: Path | str) -> str:
    """The `swba-compile` command line that builds `config` into `bundle`."""
    args = ["swba-compile", "--bundle", str(bundle), "--dtype", config.dtype,
            "--head-dim", str(config.head_dim), "--value-dim", str(config.value_dim),
            "--block-size", str(config.block_size), "--window", str(config.window),
            "--scale", repr(config.scale), "--chip", config.chip,
            "--kernels", "backward" if config.grad else "paged" if config.paged else "forward"]
    if config.options:
        args += ["--options", config.options]
    if not config.with_lse:
        args += ["--no-lse"]
    if config.paged and config.chip == "sm_90a":
        args += ["--page-size", str(config.page_size)]
    return shlex.join(args)


def _read_manifest(path: Path) -> dict:
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{path} is not a kernel bundle: it has no {MANIFEST} "
                                f"(build one with swba-compile --bundle {shlex.quote(str(path))} ...)")
    info = json.loads(manifest.read_text())
    if info.get("format") != _FORMAT:
        raise ValueError(f"{manifest}: bundle format {info.get('format')!r}, this swba reads "
                         f"{_FORMAT}; rebuild the bundle with this version's swba-compile")
    return info


def bundle_configs(path: Path | str) -> list[compiler.KernelConfig]:
    """The configurations a bundle holds (as its manifest lists them)."""
    info = _read_manifest(Path(path))
    return [compiler.KernelConfig(**entry["config"]) for entry in info["kernels"]]


def load_bundle(path: Path | str) -> list[compiler.KernelConfig]:
    """Makes the runtime take kernels from the bundle at `path` (before its
    cache; bundles loaded earlier are searched first). Returns the
    configurations it holds. Kernels of a bundle are used as they are: they
    are not rebuilt when a different swba-opt is at hand."""
    path = Path(path).resolve()
    configs = bundle_configs(path)
    stale = [c for c in configs if not (path / (c.key() + ".json")).is_file()]
    if stale:
        raise ValueError(f"{path}: the manifest lists {describe(stale[0])} but its kernel is "
                         f"missing, or was built by a swba with another cache format; rebuild "
                         f"the bundle with this version's swba-compile")
    if path not in _loaded:
        _loaded.append(path)
    return configs


def loaded_bundles() -> list[Path]:
    """The bundles the runtime searches, in order (those named by
    `SWBA_KERNEL_BUNDLE` are loaded on first use)."""
    global _env_seen
    env = os.environ.get("SWBA_KERNEL_BUNDLE", "")
    if env != _env_seen:
        _env_seen = env
        for part in filter(None, env.split(os.pathsep)):
            load_bundle(part)
    return list(_loaded)


def find(config: compiler.KernelConfig) -> Path | None:
    """The loaded bundle that holds `config`, if any."""
    name = config.key() + ".json"
    for path in loaded_bundles():
        if (path / name).is_file():
            return path
    return None


def missing(config: compiler.KernelConfig) -> MissingKernelError:
    """The error for a configuration found nowhere, naming the command that
    builds it into the first loaded bundle (or a new one)."""
    bundles = loaded_bundles()
    return MissingKernelError(config, bundles + [compiler.cache_dir()],
                              bundles[0] if bundles else Path("swba-kernels"))


@contextlib.contextmanager
def _kernel_dir(path: Path) -> Iterator[None]:
    """Points the kernel cache at `path` for the duration (the compiler
    writes a configuration's kernels where its cache is)."""
    saved = os.environ.get("SWBA_KERNEL_DIR")
    os.environ["SWBA_KERNEL_DIR"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["SWBA_KERNEL_DIR"]
        else:
            os.environ["SWBA_KERNEL_DIR"] = saved


def build_bundle(configs: Iterable[compiler.KernelConfig], path: Path | str,
                 progress: Callable[[str], None] | None = print) -> Path:
    """Compiles every configuration into the bundle at `path` (created, or
    added to), printing one line per configuration through `progress`; a
    backward whose results are not bitwise reproducible (grad-fused-dq) is
    joined by the one that is (`compiler.reproducible_config`), which the
    runtime runs under torch.use_deterministic_algorithms. Raises
    RuntimeError naming the configurations that failed, after trying them
    all."""
    if compiler.find_swba_opt() is None:
        raise RuntimeError("swba-opt not found: building a bundle needs it (set SWBA_OPT, or "
                           "install swba with its compiler: pip install . on a machine with "
                           "the LLVM/MLIR 22 packages)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    todo = list(dict.fromkeys(configs))
    entries = {}
    if (path / MANIFEST).is_file():
        entries = {e["key"]: e for e in _read_manifest(path)["kernels"]}
    failed = []
    for i, config in enumerate(todo, 1):
        start = time.monotonic()
        if progress:
            progress(f"[{i}/{len(todo)}] {describe(config)} ...")
        try:
            with _kernel_dir(path):
                kernel = compiler.load_or_compile(config)
        except RuntimeError as e:
            failed.append((config, str(e)))
            if progress:
                progress(f"    FAILED: {str(e).strip().splitlines()[0]}")
            continue
        entries[config.key()] = {"key": config.key(), "config": dataclasses.asdict(config)}
        if not kernel.reproducible:
            # With what it compiled to find that one (the lowering's default).
            loaded = []

            def load(c):
                kernel = compiler.load_or_compile(c)
                loaded.append(c)
                return kernel
            try:
                with _kernel_dir(path):
                    loaded.append(compiler.reproducible_config(config, load))
            except RuntimeError as e:
                # The configuration itself is in; deterministic runs of it
                # would find no kernels.
                failed.append((config, f"its reproducible backward: {e}"))
                if progress:
                    progress(f"    FAILED (its reproducible backward): "
                             f"{str(e).strip().splitlines()[0]}")
            todo += [c for c in dict.fromkeys(loaded) if c not in todo]
        if progress:
            progress(f"    {kernel.kind}, {len(kernel.launches)} kernel(s), "
                     f"{len(kernel.image)} bytes, {time.monotonic() - start:.1f} s")
    from . import __version__
    (path / MANIFEST).write_text(json.dumps(
        {"format": _FORMAT, "swba_version": __version__, "tool": compiler.tool_digest(),
         "kernels": sorted(entries.values(), key=lambda e: e["key"])}, indent=1))
    tmp = path / "tmp"
    if tmp.is_dir():
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} configuration(s) failed:\n" + "\n".join(
            f"  {describe(c)}: {e.strip().splitlines()[0]}" for c, e in failed))
    return path
