# -*- Python -*-
# lit configuration of the SWBA regression tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "SWBA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.swba_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]

config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%llvm_lib_dir", config.llvm_lib_dir))
config.substitutions.append(("%swba_lib_dir", config.swba_lib_dir))
config.substitutions.append(("%swba_src_root", config.swba_src_root))
config.substitutions.append(("%swba_tools_dir", config.swba_tools_dir))
config.substitutions.append((
    "%mlir_runner_libs",
    "-shared-libs=" + ",".join(
        os.path.join(config.llvm_lib_dir, f"lib{name}{config.llvm_shlib_ext}")
        for name in ("mlir_c_runner_utils", "mlir_runner_utils"))))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.swba_tools_dir, config.llvm_tools_dir]
tools = [
    "swba-opt",
    "mlir-opt",
    "mlir-runner",
    "mlir-translate",
    "llc",
    "not",
    ToolSubst("%python", config.python_executable, unresolved="fatal"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# Python tests that need PyTorch (CPU is enough) run when the lit Python has it.
import subprocess
if subprocess.run([config.python_executable, "-c", "import torch"],
                  capture_output=True).returncode == 0:
    config.available_features.add("torch")

# MPI tests (test/Integration/CPU/*-mpi.mlir): the split program and its
# driver are compiled ahead of time and linked against libmpi, then run by
# mpirun. The lowering to LLVM of a program with mpi ops: the swba-to-llvm
# steps without buffer deallocation (which rejects the mpi ops' unknown
# memory effects), with convert-to-llvm for the mpi dialect.
import shutil
mpirun, mpicc = shutil.which("mpirun"), shutil.which("mpicc")
if mpirun and mpicc:
    config.available_features.add("mpi")
    # Open MPI refuses to run as root (CI containers) unless told, and runs
    # more processes than cores only when oversubscribed.
    config.environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    config.environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    config.substitutions.append(("%mpirun", mpirun + " --oversubscribe"))
    config.substitutions.append((
        "%mpicc",
        f"{mpicc} -L{config.llvm_lib_dir} -Wl,-rpath,{config.llvm_lib_dir}"))
    config.substitutions.append((
        "%swba_mpi_to_llvm",
        "convert-elementwise-to-linalg,"
        "one-shot-bufferize{bufferize-function-boundaries "
        "function-boundary-type-conversion=identity-layout-map},"
        "convert-linalg-to-loops,lower-swba{target=cpu},lower-affine,"
        "convert-scf-to-cf,expand-strided-metadata,lower-affine,"
        "arith-expand{include-bf16=true},convert-math-to-llvm,"
        "convert-math-to-libm,convert-to-llvm,reconcile-unrealized-casts"))
