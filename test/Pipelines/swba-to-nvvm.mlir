// --swba-to-nvvm takes tensor-level swba.attention to host code in the LLVM
// dialect (gpu.launch_func, translated with the module) launching a kernel
// embedded as PTX that uses the tensor cores.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90 format=isa" | FileCheck %s

// CHECK: llvm.func @attention
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_attention_fwd_m128
// CHECK: gpu.binary @swba_attention_kernels
// CHECK-SAME: .target sm_90
// CHECK-SAME: .entry swba_attention_fwd_m128(
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16
// CHECK-DAG: ex2.approx.ftz.f32
func.func @attention(%q: tensor<?x8x?x64xf16>, %k: tensor<?x8x?x64xf16>, %v: tensor<?x8x?x64xf16>, %o: tensor<?x8x?x64xf16>) -> tensor<?x8x?x64xf16> {
  %r = swba.attention ins(%q, %k, %v : tensor<?x8x?x64xf16>, tensor<?x8x?x64xf16>, tensor<?x8x?x64xf16>) outs(%o : tensor<?x8x?x64xf16>) block_size = 256 window = 4 -> tensor<?x8x?x64xf16>
  return %r : tensor<?x8x?x64xf16>
}
