// Head dims past 64 that are not multiples of 64 on sm_90a (kernelHeadDim
// in Hopper/Tiling.h): the kernels of the next multiple of 64, whose last
// TMA box of a row reaches past the tensor's columns (TMA fills them with
// zeros). The launches, boxes and shared memory are the head-dim-128
// kernels'; the epilogues store the tensor's columns only, and the fused
// backward reduce-adds only the boxes of dQ's columns.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s
// RUN: sed 's/x96x/x128x/g' %s | swba-opt --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s --check-prefix=D128
// (grad-fused-dq refuses the last case: FUSED160 below.)
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true" 2>/dev/null | FileCheck %s --check-prefix=FUSED
// Head dims up to 64 that are not 64 keep the mma.sync kernels.
// RUN: sed 's/x96x/x32x/g' %s | swba-opt --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s --check-prefix=D32
// A band of more than 512 keys: the dK/dV kernel stores pairs (WIDE below).
// RUN: sed 's/window = 300/window = 1000/' %s | swba-opt --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s --check-prefix=WIDE

// Forward: two consumers (384 threads), Q boxes of 128 rows and K/V boxes
// of 128 keys, 64 columns each: 163840 bytes of shared memory, as at 128.
// O's rows leave the registers 8 bytes a store: lanes t and t ^ 1 trade a
// word of two column blocks (a shuffle), so that a thread stores 4 columns
// at once, 6 stores a row (2 rows: 12), not 8, through a view of the
// (batch, head) plane that keeps the 96 columns of the type.
// CHECK-LABEL: gpu.func @swba_fwd(
// CHECK-SAME: swba.launch = {block = [384, 1, 1],
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "q"
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "k"
// CHECK-SAME: shared_memory = 163840 : i64
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32
// CHECK-COUNT-12: vector.store {{.*}} : memref<1x1x?x96xbf16, strided<{{.*}}>>, vector<4xbf16>
// CHECK-NOT: vector.store {{.*}} : memref<1x1x?x96xbf16
// CHECK: gpu.return
// D128-LABEL: gpu.func @swba_fwd(
// D128-SAME: swba.launch = {block = [384, 1, 1],
// D128-SAME: shared_memory = 163840 : i64
// D128-COUNT-16: vector.store {{.*}} : memref<1x1x?x128xbf16, strided<{{.*}}>>, vector<4xbf16>
// D32-LABEL: gpu.func @swba_fwd(
// D32-SAME: block = [128, 1, 1]
// D32-NOT: nvvm.wgmma
// D32: gpu.func @swba_bwd_dq(
// D32-SAME: block = [128, 1, 1]
// D32-NOT: nvvm.wgmma
// D32: gpu.func @swba_bwd_delta(
func.func @forward(%q: memref<?x4x?x96xbf16>, %k: memref<?x2x?x96xbf16>, %v: memref<?x2x?x96xbf16>,
                   %o: memref<?x4x?x96xbf16>, %l: memref<?x4x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x96xbf16>, memref<?x2x?x96xbf16>, memref<?x2x?x96xbf16>)
      outs(%o, %l : memref<?x4x?x96xbf16>, memref<?x4x?xf32>) block_size = 1 window = 300
  return
}

// -----

// Backward: the dQ kernel and the dK/dV kernel, of 384 threads, storing
// 6 quads of columns a thread and row (dK and dV: 24 stores); the delta
// kernel reads the tensors' 96 columns. On wider bands the dK/dV kernel
// stores 12 pairs a row instead (48 stores).
// WIDE-LABEL: gpu.func @swba_bwd_dkdv(
// WIDE-NOT: gpu.shuffle
// WIDE-COUNT-48: vector.store {{.*}} : memref<?x2x?x96xbf16>, vector<2xbf16>
// WIDE-NOT: vector.store {{.*}} : memref<?x2x?x96xbf16>
// WIDE: gpu.func @swba_bwd_delta(
// CHECK-LABEL: gpu.module @swba_attention_grad_kernels
// CHECK: gpu.func @swba_bwd_dq(
// CHECK-SAME: block = [384, 1, 1]
// CHECK-COUNT-12: vector.store {{.*}} : memref<?x4x?x96xbf16>, vector<4xbf16>
// CHECK-NOT: vector.store {{.*}} : memref<?x4x?x96xbf16>
// CHECK: gpu.func @swba_bwd_dkdv(
// CHECK-SAME: block = [384, 1, 1]
// CHECK-COUNT-24: vector.store {{.*}} : memref<?x2x?x96xbf16>, vector<4xbf16>
// CHECK-NOT: vector.store {{.*}} : memref<?x2x?x96xbf16>
// CHECK: gpu.func @swba_bwd_delta(
// CHECK-SAME: memref<?x4x?x96xbf16>
// With grad-fused-dq the dK/dV kernel reduce-adds dQ in boxes of 32 f32
// columns; a consumer's share has two (64 rows of the 128 columns), each
// issued only where its first column is below 96.
// FUSED-LABEL: gpu.func @swba_bwd_dkdvdq(
// FUSED-SAME: memref<?x?x?x96xf32>
// FUSED: %[[C96:.*]] = arith.constant 96 : index
// FUSED-NEXT: %[[IN:.*]] = arith.cmpi ult, %{{.*}}, %[[C96]] : index
// FUSED-NEXT: scf.if %[[IN]] {
// FUSED: nvvm.cp.async.bulk.tensor.reduce
// FUSED: gpu.func @swba_bwd_dqconvert(
// FUSED-SAME: memref<?x?x?x96xf32>
func.func @backward(%q: memref<?x4x?x96xbf16>, %k: memref<?x2x?x96xbf16>, %l: memref<?x4x?xf32>,
                    %dk: memref<?x2x?x96xbf16>) {
  swba.attention_grad ins(%q, %k, %k, %q, %q, %l : memref<?x4x?x96xbf16>, memref<?x2x?x96xbf16>, memref<?x2x?x96xbf16>, memref<?x4x?x96xbf16>, memref<?x4x?x96xbf16>, memref<?x4x?xf32>)
      outs(%q, %dk, %dk : memref<?x4x?x96xbf16>, memref<?x2x?x96xbf16>, memref<?x2x?x96xbf16>) block_size = 1 window = 300
  return
}

// -----

// 160 and 80 take the kernels of 192 and 128: past d + dv = 256 (rounded)
// the dK/dV work is a dV and a dK kernel, as at 192/128, and
// grad-fused-dq, which needs them in one kernel, is refused.
// CHECK-LABEL: gpu.module @swba_attention_grad_kernels
// CHECK: gpu.func @swba_bwd_dq(
// CHECK-SAME: shared_memory = 163840 : i64
// CHECK: gpu.func @swba_bwd_dv(
// CHECK-SAME: shared_memory = 133120 : i64
// CHECK: gpu.func @swba_bwd_dk(
// CHECK-SAME: shared_memory = 165888 : i64
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true" 2>&1 | FileCheck %s --check-prefix=FUSED160
// FUSED160: error: 'swba.attention_grad' op chip=sm_90a: grad-fused-dq needs dK and dV in one kernel (head dims with d + dv <= 256, each rounded up to a multiple of 64), got 160 and 80
func.func @backward_160_80(%q: memref<?x2x?x160xf16>, %v: memref<?x2x?x80xf16>, %l: memref<?x2x?xf32>) {
  swba.attention_grad ins(%q, %q, %v, %v, %v, %l : memref<?x2x?x160xf16>, memref<?x2x?x160xf16>, memref<?x2x?x80xf16>, memref<?x2x?x80xf16>, memref<?x2x?x80xf16>, memref<?x2x?xf32>)
      outs(%q, %q, %v : memref<?x2x?x160xf16>, memref<?x2x?x160xf16>, memref<?x2x?x80xf16>) block_size = 37 window = 3
  return
}
