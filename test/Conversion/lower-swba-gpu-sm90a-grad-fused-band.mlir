// --lower-swba{target=gpu chip=sm_90a grad-fused-dq=true} on a band of
// 128 keys (a 128-token window): the loops of its dK/dV kernel run a few
// tiles, and it keeps what does not change from tile to tile out of them
// (no opaque copies of the thread's and the tile's indices, which wider
// windows make in every tile: lower-swba-gpu-sm90a-grad-fused.mlir).
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true" | FileCheck %s

// CHECK: gpu.func @swba_bwd_dkdvdq(
// CHECK: scf.for
// CHECK-NOT: "=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,0,
// CHECK: nvvm.cp.async.bulk.tensor.reduce
// CHECK: gpu.func @swba_bwd_dqconvert(
func.func @grad_f16_band(%q: memref<?x4x?x64xf16>, %k: memref<?x4x?x64xf16>, %v: memref<?x4x?x64xf16>,
                         %o: memref<?x4x?x64xf16>, %do: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>,
                         %dq: memref<?x4x?x64xf16>, %dk: memref<?x4x?x64xf16>, %dv: memref<?x4x?x64xf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>) block_size = 1 window = 128
  return
}
