// --swba-to-nvvm takes tensor-level swba.attention to host code in the LLVM
// dialect (gpu.launch_func, translated with the module) launching a kernel
// embedded as PTX that uses the tensor cores.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90 format=isa" | FileCheck %s

// CHECK: llvm.func @attention
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd
// CHECK: gpu.binary @swba_attention_kernels
// CHECK-SAME: .target sm_90
// CHECK-SAME: .entry swba_fwd(
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16
// CHECK-DAG: ex2.approx.ftz.f32

// chip=sm_90a: the host makes the TMA descriptors and launches with dynamic
// shared memory; the PTX has TMA loads, mbarrier waits, warpgroup MMA with
// shared-memory and register operands, and the register reallocation (the
// persistent kernel's producer keeps 32, and claims query tiles with an
// atomic add).
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa" | FileCheck %s --check-prefix=SM90A
// O leaves the registers four elements a store (8 bytes; lanes trade
// words with a shuffle), not as pairs or single elements.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa" | FileCheck %s --check-prefix=STORES --implicit-check-not=st.global.b16
// STORES: .entry swba_fwd(
// STORES: shfl.sync.bfly.b32 {{.*}}, 1, 31, -1;
// STORES: st.global.v2.b32
// SM90A: llvm.func @attention
// SM90A-COUNT-3: llvm.call @mgpuTensorMapEncodeTiledMemref
// SM90A: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} dynamic_shared_memory_size
// SM90A: gpu.binary @swba_attention_kernels
// SM90A-SAME: .target sm_90a
// SM90A-SAME: .entry swba_fwd(
// SM90A-SAME: .maxntid 512, 1, 1
// SM90A-SAME: .maxnreg 128
// SM90A-DAG: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// SM90A-DAG: mbarrier.try_wait.parity.shared
// SM90A-DAG: wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16
// SM90A-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// SM90A-DAG: setmaxnreg.dec.sync.aligned.u32{{ *(\\09)?}}32;
// SM90A-DAG: atom.global.add.u32
// SM90A-DAG: setmaxnreg.inc.sync.aligned.u32{{ *(\\09)?}}160;
func.func @attention(%q: tensor<?x8x?x64xf16>, %k: tensor<?x8x?x64xf16>, %v: tensor<?x8x?x64xf16>, %o: tensor<?x8x?x64xf16>) -> tensor<?x8x?x64xf16> {
  %r = swba.attention ins(%q, %k, %v : tensor<?x8x?x64xf16>, tensor<?x8x?x64xf16>, tensor<?x8x?x64xf16>) outs(%o : tensor<?x8x?x64xf16>) block_size = 256 window = 4 -> tensor<?x8x?x64xf16>
  return %r : tensor<?x8x?x64xf16>
}
