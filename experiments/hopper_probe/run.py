#!/usr/bin/env python3
"""Hopper probe: runs the kernels of experiments/hopper_probe/qk.mlir (built by build.sh
into probe.cubin on the CPU machine) on an sm_90 GPU and checks them.

    python3 experiments/hopper_probe/run.py            # every test, each in a child process
    python3 experiments/hopper_probe/run.py qk pv      # only some tests
    python3 experiments/hopper_probe/run.py --inproc   # all tests in this process

Tests (see gen.py for the kernels):
  tma_copy   rank-3 TMA box + mbarrier, raw 128B-swizzled smem dumped to global
  qk         S = Q K^T, SS wgmma, accumulator -> global with the plan's layout
  pv         O = f16(S) V, RS wgmma (inline asm), V MN-major (trans-b 1)
  smem_attr  dynamic smem above 48 KiB with/without cuFuncSetAttribute

Needs torch (CUDA), numpy, cuda-python (cuda.bindings.driver).
Each child process has a hard timeout so a hung mbarrier cannot block the run.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = ["tma_copy", "qk", "pv", "smem_attr"]
KERNEL_TIMEOUT_S = 10.0   # per kernel, polled with cuStreamQuery
CHILD_TIMEOUT_S = 30.0    # per child process
TOTAL_BUDGET_S = 57.0
DEV = os.environ.get("PROBE_TORCH_DEVICE", "cuda")  # "cpu" only for the host-glue mock test

# ----------------------------------------------------------------------------
# Pure host-side analysis (numpy only; testable without a GPU)
# ----------------------------------------------------------------------------


def swizzle128(tile_u16):
    """The smem image TMA SWIZZLE_128B writes for a [rows][64] 16-bit tile whose
    base is 1024-B aligned: 16-byte chunk c of row r lands at chunk c ^ (r % 8)."""
    import numpy as np
    rows = tile_u16.shape[0]
    t = tile_u16.reshape(rows, 8, 8)
    out = np.empty_like(t)
    for r in range(rows):
        for c in range(8):
            out[r, c ^ (r % 8)] = t[r, c]
    return out.reshape(rows, 64)


def block_map(err, bad, bs=8):
    """8x8 grid over a 64x64 error matrix: '.' every element ok, 'X' some bad."""
    n = err.shape[0] // bs
    lines = []
    for i in range(n):
        lines.append("      " + "".join(
            "X" if bad[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs].any() else "."
            for j in range(err.shape[1] // bs)))
    return "\n".join(lines)


def check_matrix(name, got, ref, rel_tol):
    """Returns (ok, lines). got/ref: 2-D float arrays (got may hold NaN for
    elements the kernel never wrote)."""
    import numpy as np
    lines = []
    nan = np.isnan(got)
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = np.abs(np.where(nan, np.inf, got) - ref)
    max_err = float(np.max(np.where(nan, 0, err)))
    bad = (err > rel_tol * scale) | nan
    ok = not bad.any()
    lines.append(f"  {name}: max abs err {max_err:.3e} (max |ref| {scale:.3e}, "
                 f"rel {max_err / scale:.3e}, tol rel {rel_tol:g}); "
                 f"unwritten(NaN) {int(nan.sum())}; bad {int(bad.sum())}/{bad.size}")
    if ok:
        return True, lines
    lines.append(f"  {name}: 8x8-block map of bad elements (rows down, cols across):")
    lines.append(block_map(err, bad))
    g = np.where(nan, 0.0, got)
    if got.shape == ref.shape and got.shape[0] == got.shape[1]:
        e_t = float(np.abs(g - ref.T).max())
        lines.append(f"  {name}: max err vs transposed reference {e_t:.3e}")
    # Which reference row/column does each output row/column look like?
    d_rows = ((g[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    best_r = d_rows.argmin(1)
    d_cols = ((g.T[:, None, :] - ref.T[None, :, :]) ** 2).sum(-1)
    best_c = d_cols.argmin(1)
    wr = [(i, int(j)) for i, j in enumerate(best_r) if i != j]
    wc = [(i, int(j)) for i, j in enumerate(best_c) if i != j]
    lines.append(f"  {name}: rows whose nearest reference row is another row: {len(wr)} "
                 f"{wr[:16]}")
    lines.append(f"  {name}: cols whose nearest reference col is another col: {len(wc)} "
                 f"{wc[:16]}")
    idx = np.argwhere(bad)[:8]
    lines.append(f"  {name}: first bad (row, col, got, ref): " + ", ".join(
        f"({r},{c},{got[r, c]:.4g},{ref[r, c]:.4g})" for r, c in idx))
    return False, lines


def a_fragment_positions(w, g, q, kk):
    """Plan 3.4: the 4 A registers of thread (warp w, g = lane/4, q = lane%4) in
    k slice kk, each a pair (row, first col) of P; second element = col + 1."""
    r0, r1 = 16 * w + g, 16 * w + g + 8
    c0, c1 = 16 * kk + 2 * q, 16 * kk + 8 + 2 * q
    return [(r0, c0), (r1, c0), (r0, c1), (r1, c1)]


def permuted_a(P, perm, swap_halves):
    """The A matrix the hardware would see if the register the kernel fills for
    slot s were read as slot perm[s] (and, if swap_halves, with the two f16
    halves of every register exchanged)."""
    import numpy as np
    A = np.zeros_like(P)
    for w in range(4):
        for g in range(8):
            for q in range(4):
                for kk in range(P.shape[1] // 16):
                    pos = a_fragment_positions(w, g, q, kk)
                    for s in range(4):
                        (sr, sc), (dr, dc) = pos[s], pos[perm[s]]
                        v0, v1 = P[sr, sc], P[sr, sc + 1]
                        if swap_halves:
                            v0, v1 = v1, v0
                        A[dr, dc], A[dr, dc + 1] = v0, v1
    return A


def diagnose_pv(P, V, O):
    """Compare O against alternative hypotheses (A pairing, V orientation)."""
    import itertools
    import numpy as np
    res = []
    scale = max(float(np.abs(P @ V).max()), 1e-30)
    g = np.nan_to_num(O, nan=0.0)
    for perm in itertools.permutations(range(4)):
        for sw in (False, True):
            A = permuted_a(P, perm, sw)
            res.append((float(np.abs(g - A @ V).max()) / scale,
                        f"A slot perm {perm}{' + f16 halves swapped' if sw else ''}"))
    res.append((float(np.abs(g - P @ V.T).max()) / scale, "B = V^T (trans-b wrong)"))
    for kperm_name, Vp in (("V k16 slices reversed", np.concatenate(
            [V[16 * i:16 * i + 16] for i in (3, 2, 1, 0)])),
            ("only V k16 slice 0 used (descriptor not advanced)",
             np.concatenate([V[0:16]] * 4))):
        res.append((float(np.abs(g - P @ Vp).max()) / scale, kperm_name))
    res.sort()
    return [f"    rel err {e:.3e}: {n}" for e, n in res[:5]]


# ----------------------------------------------------------------------------
# Driver plumbing (GPU machine only)
# ----------------------------------------------------------------------------

def import_driver():
    try:
        from cuda.bindings import driver as cu
    except ImportError:  # cuda-python before 12.6
        from cuda import cuda as cu
    return cu


class DriverError(RuntimeError):
    pass


def err_text(cu, err):
    try:
        _, name = cu.cuGetErrorName(err)
        _, desc = cu.cuGetErrorString(err)
        return f"{name.decode() if name else err}: {desc.decode() if desc else ''}"
    except Exception:  # noqa: BLE001
        return str(err)


def check(cu, result, what):
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cu.CUresult.CUDA_SUCCESS:
        raise DriverError(f"{what} failed: {err_text(cu, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class Env:
    """torch + driver context + loaded module."""

    def __init__(self):
        import torch
        self.torch = torch
        self.cu = cu = import_driver()
        if not torch.cuda.is_available():
            raise SystemExit("torch.cuda is not available")
        torch.cuda.init()
        torch.empty(1, device=DEV)  # creates the primary context
        check(cu, cu.cuInit(0), "cuInit")
        ctx = check(cu, cu.cuCtxGetCurrent(), "cuCtxGetCurrent")
        try:
            null = ctx is None or int(ctx) == 0
        except TypeError:
            null = ctx is None
        if null:
            dev = check(cu, cu.cuDeviceGet(torch.cuda.current_device()), "cuDeviceGet")
            ctx = check(cu, cu.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
            check(cu, cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        self.dev = check(cu, cu.cuCtxGetDevice(), "cuCtxGetDevice")
        drv = check(cu, cu.cuDriverGetVersion(), "cuDriverGetVersion")
        cc = torch.cuda.get_device_capability()
        print(f"  device: {torch.cuda.get_device_name()} sm_{cc[0]}{cc[1]}, driver API "
              f"{drv // 1000}.{drv % 1000 // 10}, torch {torch.__version__}")
        if cc != (9, 0):
            print("  WARNING: probe is built for sm_90a; this device is not sm_90")
        self.stream = torch.cuda.current_stream().cuda_stream
        self.module, self.how = self._load()
        print(f"  module loaded from {self.how}")

    def _load(self):
        cu = self.cu
        cubin_path = os.path.join(HERE, "probe.cubin")
        ptx_path = os.path.join(HERE, "probe.ptx")
        errors = []
        if os.environ.get("PROBE_FROM_PTX") != "1" and os.path.exists(cubin_path):
            image = open(cubin_path, "rb").read()
            err, mod = cu.cuModuleLoadData(image)
            if err == cu.CUresult.CUDA_SUCCESS:
                return mod, "probe.cubin (ptxas 13.0 on the CPU machine)"
            errors.append(f"cuModuleLoadData(probe.cubin): {err_text(cu, err)}")
        for ptxas in (shutil.which("ptxas"), "/usr/local/cuda/bin/ptxas"):
            if not ptxas or not os.path.exists(ptxas):
                continue
            out = os.path.join(tempfile.mkdtemp(), "probe.cubin")
            p = subprocess.run([ptxas, "-arch=sm_90a", "-O3", ptx_path, "-o", out],
                               capture_output=True, text=True)
            if p.returncode != 0:
                errors.append(f"{ptxas}: {p.stderr.strip()[:500]}")
                continue
            err, mod = cu.cuModuleLoadData(open(out, "rb").read())
            if err == cu.CUresult.CUDA_SUCCESS:
                return mod, f"probe.ptx re-assembled here by {ptxas}"
            errors.append(f"cuModuleLoadData(local cubin): {err_text(cu, err)}")
            break
        err, mod = cu.cuModuleLoadData(open(ptx_path, "rb").read() + b"\0")
        if err == cu.CUresult.CUDA_SUCCESS:
            return mod, "probe.ptx JIT-compiled by the driver"
        errors.append(f"cuModuleLoadData(probe.ptx): {err_text(cu, err)}")
        raise DriverError("could not load the module:\n    " + "\n    ".join(errors))

    def function(self, name):
        cu = self.cu
        f = check(cu, cu.cuModuleGetFunction(self.module, name.encode()),
                  f"cuModuleGetFunction({name})")
        A = cu.CUfunction_attribute
        regs = check(cu, cu.cuFuncGetAttribute(A.CU_FUNC_ATTRIBUTE_NUM_REGS, f), "attr")
        smem = check(cu, cu.cuFuncGetAttribute(A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f), "attr")
        print(f"  {name}: {regs} registers, {smem} B static smem")
        return f

    def tensor_map(self, t, dims, strides_bytes, box):
        """CUtensorMap for an f16 tensor, innermost dimension first; copied to a
        128-byte device buffer whose pointer is the kernel parameter."""
        cu, torch = self.cu, self.torch
        rank = len(dims)
        u64, u32 = cu.cuuint64_t, cu.cuuint32_t
        # Plain Python ints in these lists are rejected by cuda-bindings 13.5
        # ("Cannot convert int to cuda.bindings.driver.cuuint32_t").
        m = check(cu, cu.cuTensorMapEncodeTiled(
            cu.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT16, rank, t.data_ptr(),
            [u64(d) for d in dims], [u64(s) for s in strides_bytes],
            [u32(b) for b in box], [u32(1)] * rank,
            cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
            cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
            cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
            f"cuTensorMapEncodeTiled(dims={dims}, strides={strides_bytes}, box={box})")
        raw = struct.pack("<16Q", *[int(x) for x in m.opaque])
        try:
            raw2 = ctypes.string_at(m.getPtr(), 128)
            if raw2 != raw:
                print("  NOTE: CUtensorMap.getPtr() bytes differ from .opaque; using .opaque")
        except Exception as e:  # noqa: BLE001
            print(f"  NOTE: CUtensorMap.getPtr() unusable ({e}); using .opaque")
        d = torch.empty(128, dtype=torch.uint8, device=DEV)  # allocator-aligned (>= 256 B)
        d.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
        torch.cuda.synchronize()
        assert d.data_ptr() % 64 == 0, "tensor map copy not 64-byte aligned"
        return d

    def launch(self, f, name, signature, values, shared, check_err=True):
        """Packs the parameters like python/swba/runtime.py and launches one
        CTA of 128 threads; waits (polling) up to KERNEL_TIMEOUT_S.
        Returns the CUresult of the launch."""
        cu = self.cu
        fmt = struct.Struct("@" + signature)
        buf = ctypes.create_string_buffer(max(fmt.size, 8))
        base = ctypes.addressof(buf)
        offsets, off = [], 0
        for code in signature:
            size = struct.calcsize("@" + code)
            off = (off + size - 1) // size * size
            offsets.append(base + off)
            off += size
        ptrs = (ctypes.c_void_p * len(signature))(*offsets)
        fmt.pack_into(buf, 0, *values)
        err, = cu.cuLaunchKernel(f, 1, 1, 1, 128, 1, 1, shared, cu.CUstream(self.stream),
                                 ctypes.addressof(ptrs), 0)
        if err != cu.CUresult.CUDA_SUCCESS:
            if check_err:
                raise DriverError(f"cuLaunchKernel({name}, shared={shared}) failed: "
                                  f"{err_text(cu, err)}")
            return err
        t0 = time.time()
        while True:
            err, = cu.cuStreamQuery(cu.CUstream(self.stream))
            if err == cu.CUresult.CUDA_SUCCESS:
                break
            if err != cu.CUresult.CUDA_ERROR_NOT_READY:
                raise DriverError(f"{name}: kernel failed: {err_text(cu, err)}")
            if time.time() - t0 > KERNEL_TIMEOUT_S:
                print(f"  {name}: TIMEOUT: kernel still running after {KERNEL_TIMEOUT_S} s "
                      "(most likely the mbarrier phase never completed: expect_tx bytes "
                      "vs TMA bytes, or TMA faulted silently)")
                sys.stdout.flush()
                os._exit(3)
            time.sleep(0.001)
        return cu.CUresult.CUDA_SUCCESS


def memref_sig(rank):
    return "PPq" + "q" * (2 * rank)


def memref_vals(t):
    p = t.data_ptr()
    return [p, p, 0, *t.shape, *t.stride()]


# ----------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------

def test_tma_copy(env):
    import numpy as np
    torch = env.torch
    f = env.function("tma_copy")
    torch.manual_seed(0)
    BH, N, D, row, bh = 3, 100, 64, 64, 1
    q3 = torch.randn(BH, N, D, dtype=torch.float16, device=DEV)
    m = env.tensor_map(q3, [D, N, BH], [D * 2, N * D * 2], [64, 64, 1])
    out = torch.full((4096,), float("nan"), dtype=torch.float16, device=DEV)
    env.launch(f, "tma_copy", "Pqq" + memref_sig(1), [m.data_ptr(), row, bh, *memref_vals(out)],
               shared=8192)
    raw = out.cpu().view(torch.int16).numpy().view(np.uint16).reshape(64, 64)
    q3u = q3.cpu().view(torch.int16).numpy().view(np.uint16)
    tile = np.zeros((64, 64), np.uint16)
    tile[:N - row] = q3u[bh, row:N]
    exp = swizzle128(tile)
    if np.array_equal(raw, exp):
        print(f"  TMA box (0,{row},{bh}) of a [{BH}][{N}][{D}] tensor: bit-exact 128B-swizzled "
              f"image, rows {N - row}..63 zero-filled")
        return True
    print(f"  mismatching halfs: {int((raw != exp).sum())}/4096")
    hyps = {
        "unswizzled (swizzle not applied)": tile,
        "no zero fill (rows past N read from the next head)": swizzle128(np.concatenate(
            [q3u[bh, row:N], q3u[bh + 1, 0:64 - (N - row)]])),
        "row coordinate ignored (box at row 0)": swizzle128(q3u[bh, 0:64]),
        "head 0 (bh coordinate ignored)": swizzle128(np.concatenate(
            [q3u[0, row:N], np.zeros((64 - (N - row), 64), np.uint16)])),
        "all zero": np.zeros((64, 64), np.uint16),
    }
    for k, v in hyps.items():
        print(f"    vs {k}: {int((raw != v).sum())} mismatches")
    bad_rows = sorted(set(np.argwhere(raw != exp)[:, 0].tolist()))
    print(f"  rows with mismatches: {bad_rows[:32]}")
    return False


def make_qkv(env, need_v):
    torch = env.torch
    torch.manual_seed(1)
    q = torch.randn(128, 64, dtype=torch.float16, device=DEV)
    k = torch.randn(192, 64, dtype=torch.float16, device=DEV)
    v = torch.randn(192, 64, dtype=torch.float16, device=DEV) if need_v else None
    maps = [env.tensor_map(t, [64, t.shape[0]], [128], [64, 64]) for t in (q, k, v) if t is not None]
    return q, k, v, maps


ROW, KEY = 64, 128  # TMA row coordinates of the Q and K/V tiles


def s_reference(q, k):
    return (q[ROW:ROW + 64].double() @ k[KEY:KEY + 64].double().T).cpu().numpy()


def test_qk(env):
    torch = env.torch
    f = env.function("qk")
    q, k, _, (mq, mk) = make_qkv(env, False)
    S = torch.full((64, 64), float("nan"), dtype=torch.float32, device=DEV)
    env.launch(f, "qk", "PPqq" + memref_sig(2),
               [mq.data_ptr(), mk.data_ptr(), ROW, KEY, *memref_vals(S)], shared=16384)
    ok, lines = check_matrix("S", S.double().cpu().numpy(), s_reference(q, k), 1e-3)
    print("\n".join(lines))
    # the brief's reference, in torch, on the GPU (float32, no TF32)
    torch.backends.cuda.matmul.allow_tf32 = False
    ref32 = q[ROW:ROW + 64].float() @ k[KEY:KEY + 64].float().T
    print(f"  S vs torch f32 (Q.float() @ K.float().T): max abs err "
          f"{(S - ref32).abs().max().item():.3e}")
    print("  S OK" if ok else "  S WRONG")
    return ok


def test_pv(env):
    import numpy as np
    torch = env.torch
    f = env.function("pv")
    q, k, v, (mq, mk, mv) = make_qkv(env, True)
    S = torch.full((64, 64), float("nan"), dtype=torch.float32, device=DEV)
    O = torch.full((64, 64), float("nan"), dtype=torch.float32, device=DEV)
    env.launch(f, "pv", "PPPqq" + memref_sig(2) + memref_sig(2),
               [mq.data_ptr(), mk.data_ptr(), mv.data_ptr(), ROW, KEY,
                *memref_vals(S), *memref_vals(O)], shared=24576)
    s_ok, lines = check_matrix("S", S.double().cpu().numpy(), s_reference(q, k), 1e-3)
    print("\n".join(lines))
    print("  S OK" if s_ok else "  S WRONG")
    # P = the f16 rounding of the kernel's own S (that is what the kernel multiplied)
    P = S.half().double().cpu().numpy()
    Vt = v[KEY:KEY + 64].double().cpu().numpy()
    ref = P @ Vt
    o_ok, lines = check_matrix("O", O.double().cpu().numpy(), ref, 2e-3)
    print("\n".join(lines))
    ref_t = (torch.from_numpy(s_reference(q, k)).half().double().numpy() @ Vt)
    print(f"  O vs f16(reference S) @ V: max abs err "
          f"{np.nanmax(np.abs(O.double().cpu().numpy() - ref_t)):.3e} (informational)")
    if not o_ok:
        print("  O hypotheses, P = the kernel's own f16(S) (best 5; perm (0, 1, 2, 3) "
              "without swap is the plan's pairing):")
        print("\n".join(diagnose_pv(P, Vt, O.double().cpu().numpy())))
    print("  O OK" if o_ok else "  O WRONG")
    return s_ok and o_ok


def test_smem_attr(env):
    cu, torch = env.cu, env.torch
    f = env.function("qk")
    A = cu.CUfunction_attribute
    optin = check(cu, cu.cuDeviceGetAttribute(
        cu.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, env.dev), "attr")
    static = check(cu, cu.cuFuncGetAttribute(A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f), "attr")
    dyn0 = check(cu, cu.cuFuncGetAttribute(A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f),
                 "attr")
    print(f"  opt-in max smem per block {optin} B; qk static smem {static} B; "
          f"default max dynamic {dyn0} B")
    q, k, _, (mq, mk) = make_qkv(env, False)
    S = torch.full((64, 64), float("nan"), dtype=torch.float32, device=DEV)
    args = [mq.data_ptr(), mk.data_ptr(), ROW, KEY, *memref_vals(S)]
    sig = "PPqq" + memref_sig(2)
    big = 100 * 1024
    err = env.launch(f, "qk", sig, args, shared=big, check_err=False)
    print(f"  launch with {big} B dynamic smem, no cuFuncSetAttribute: "
          f"{'SUCCESS (unexpected)' if err == cu.CUresult.CUDA_SUCCESS else err_text(cu, err)}")
    ok = err != cu.CUresult.CUDA_SUCCESS
    top = optin - static
    err, = cu.cuFuncSetAttribute(f, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, top)
    print(f"  cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, optin - static = {top}): "
          f"{'ok' if err == cu.CUresult.CUDA_SUCCESS else err_text(cu, err)}")
    ok &= err == cu.CUresult.CUDA_SUCCESS
    err = env.launch(f, "qk", sig, args, shared=top, check_err=False)
    print(f"  launch with {top} B dynamic smem after the attribute: "
          f"{'ok' if err == cu.CUresult.CUDA_SUCCESS else err_text(cu, err)}")
    if err == cu.CUresult.CUDA_SUCCESS:
        s_ok, lines = check_matrix("S", S.double().cpu().numpy(), s_reference(q, k), 1e-3)
        print("\n".join(lines))
        ok &= s_ok
    else:
        ok = False
    err, = cu.cuFuncSetAttribute(f, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, top + 1024)
    print(f"  cuFuncSetAttribute(..., optin - static + 1024 = {top + 1024}): "
          f"{'ok (static smem NOT counted?)' if err == cu.CUresult.CUDA_SUCCESS else err_text(cu, err)}")
    if err == cu.CUresult.CUDA_SUCCESS:
        err = env.launch(f, "qk", sig, args, shared=top + 1024, check_err=False)
        print(f"  launch with {top + 1024} B: "
              f"{'ok' if err == cu.CUresult.CUDA_SUCCESS else err_text(cu, err)}")
    print("  SMEM_ATTR OK (behaves as the plan expects)" if ok else "  SMEM_ATTR UNEXPECTED")
    return ok


def run_test(name, env=None):
    print(f"=== {name}")
    sys.stdout.flush()
    try:
        env = env or Env()
        ok = globals()["test_" + name](env)
    except DriverError as e:
        print(f"  DRIVER ERROR: {e}")
        ok = False
    print(f"RESULT {name} {'PASS' if ok else 'FAIL'}")
    sys.stdout.flush()
    return ok


def selftest():
    """Host-side analysis only (numpy, no GPU)."""
    import numpy as np
    rng = np.random.default_rng(0)
    t = rng.integers(0, 65535, (64, 64), dtype=np.uint16)
    s = swizzle128(t)
    assert np.array_equal(swizzle128(s), t)  # XOR swizzle is an involution
    assert np.array_equal(s[1, 0:8], t[1, 8:16]) and np.array_equal(s[0], t[0])
    P = rng.standard_normal((64, 64)).astype(np.float16).astype(np.float64)
    V = rng.standard_normal((64, 64))
    assert np.array_equal(permuted_a(P, (0, 1, 2, 3), False), P)
    ok, lines = check_matrix("O", P @ V + 1e-9, P @ V, 2e-3)
    assert ok, lines
    bad = P @ V
    bad[3, 5] = np.nan
    ok, lines = check_matrix("O", bad, P @ V, 2e-3)
    assert not ok and "unwritten(NaN) 1" in lines[0], lines
    wrong = permuted_a(P, (0, 2, 1, 3), False) @ V
    ok, lines = check_matrix("O", wrong, P @ V, 2e-3)
    assert not ok
    print("\n".join(lines))
    d = diagnose_pv(P, V, wrong)
    print("\n".join(d))
    assert "(0, 2, 1, 3)" in d[0], d
    wrong_t = P @ V.T
    d = diagnose_pv(P, V, wrong_t)
    assert "trans-b" in d[0], d
    S = rng.standard_normal((64, 64))
    ok, lines = check_matrix("S", S[::-1].copy(), S, 1e-3)
    print("\n".join(lines))
    print("selftest OK")


def main():
    args = [a for a in sys.argv[1:]]
    if args[:1] == ["--selftest"]:
        selftest()
        return
    if args[:1] == ["--child"]:
        ok = run_test(args[1])
        sys.stdout.flush()
        os._exit(0 if ok else 1)
    inproc = "--inproc" in args
    tests = [a for a in args if not a.startswith("--")] or TESTS
    for t in tests:
        if t not in TESTS:
            raise SystemExit(f"unknown test {t}; known: {TESTS}")
    for fname in ("probe.cubin", "probe.ptx"):
        if not os.path.exists(os.path.join(HERE, fname)):
            raise SystemExit(f"{fname} missing in {HERE}: run experiments/hopper_probe/build.sh on the "
                             "CPU machine (and carry experiments/hopper_probe to the GPU machine)")
    t0 = time.time()
    results = {}
    if inproc:
        env = Env()
        for t in tests:
            results[t] = "PASS" if run_test(t, env) else "FAIL"
    else:
        for t in tests:
            left = TOTAL_BUDGET_S - (time.time() - t0)
            if left < 5:
                results[t] = "SKIPPED (time budget)"
                continue
            try:
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", t],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=min(CHILD_TIMEOUT_S, left))
                out = p.stdout.decode(errors="replace")
                sys.stdout.write(out)
                if f"RESULT {t} PASS" in out:
                    results[t] = "PASS"
                elif f"RESULT {t} FAIL" in out:
                    results[t] = "FAIL"
                elif "TIMEOUT:" in out:
                    results[t] = "TIMEOUT (kernel hung)"
                else:
                    results[t] = f"CRASH (exit {p.returncode})"
            except subprocess.TimeoutExpired as e:
                out = e.output or b""
                sys.stdout.write(out.decode(errors="replace") if isinstance(out, bytes) else out)
                print(f"  child for {t} killed after {min(CHILD_TIMEOUT_S, left):.0f} s")
                results[t] = "TIMEOUT"
            sys.stdout.flush()
    print("=== summary (%.1f s)" % (time.time() - t0))
    for t in tests:
        print(f"  {t:10s} {results[t]}")
    sys.exit(0 if all(v == "PASS" for v in results.values()) else 1)


if __name__ == "__main__":
    main()
