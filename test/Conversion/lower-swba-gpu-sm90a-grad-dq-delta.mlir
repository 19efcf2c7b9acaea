// grad-dq-delta: the sm_90a dQ kernel computes delta = rowsum(dO * O) of
// its rows and writes it for the dK/dV kernel, which runs after it on the
// same stream (stream 0 in the manifest); no delta kernel. The default on
// bands of at most 512 keys at head dim 64 (the 128-token window below),
// not on a token window at head dim 128 (DEFAULT128), and asked for there
// (TRUE128). false keeps the delta kernel first and the dK/dV kernel on
// the second stream (FALSE).
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a" --canonicalize --cse | FileCheck %s --check-prefixes=CHECK,DEFAULT128
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-dq-delta=true" --canonicalize --cse | FileCheck %s --check-prefixes=CHECK,TRUE128
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-dq-delta=false" --canonicalize --cse | FileCheck %s --check-prefix=FALSE
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-dq-delta=yes" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-dq-delta=true grad-fused-dq=true" 2>&1 | FileCheck %s --check-prefix=FUSED
// BAD: error: --lower-swba: grad-dq-delta must be empty, 'true' or 'false', got 'yes'
// FUSED: error: --lower-swba: grad-dq-delta=true computes delta in the separate dQ kernel; grad-fused-dq=true has none

// The dQ kernel takes O's tensor map after dO's (the manifest's fifth
// map) and its producer loads O's 64 rows with Q's and dO's on the once
// barrier (3 x 8 KiB), into 8 KiB after the K/V stages (56 KiB in all).
// After the consumer's wait for them (barrier 0), each of a thread's two
// rows (rowBase, rowBase + 8) is the dot of 16-byte chunks of dO (at 8
// KiB) and O (at 48 KiB) in shared memory, combined over the quad by
// shuffles (xor 1, xor 2), and the quad's first lane stores it into delta
// (%arg5).
// CHECK-LABEL: func @narrow_band_d64
// CHECK-NOT: swba_bwd_delta
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} dynamic_shared_memory_size %c57344_i32
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// CHECK: gpu.func @swba_bwd_dq(
// CHECK-SAME: tensor = "dout"
// CHECK-SAME: tensor = "out"
// CHECK-SAME: stream = 0
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.*}}[%c0], %c24576
// CHECK: nvgpu.tma.async.load
// CHECK: nvgpu.tma.async.load
// CHECK: %[[OVIEW:.*]] = memref.view %{{.*}}[%c49152][]
// CHECK-NEXT: nvgpu.tma.async.load %{{.*}}, %{{.*}}[%c0] to %[[OVIEW]]
// CHECK: nvvm.setmaxregister  increase
// CHECK: nvgpu.mbarrier.try_wait.parity %{{.*}}[%c0], %false
// CHECK: %[[DO:.*]] = memref.view %{{.*}}[%c8192][]
// CHECK-NEXT: %[[O:.*]] = memref.view %{{.*}}[%c49152][]
// CHECK: vector.load %[[O]][%c0, %[[ROW0:.*]], %[[COL0:.*]]] : {{.*}}, vector<8xbf16>
// CHECK: vector.load %[[DO]][%c0, %[[ROW0]], %[[COL0]]] : {{.*}}, vector<8xbf16>
// CHECK: vector.reduction <add>
// CHECK: vector.load %[[O]][%c0, %[[ROW0]], %[[COL1:.*]]] : {{.*}}, vector<8xbf16>
// CHECK: vector.load %[[DO]][%c0, %[[ROW0]], %[[COL1]]] : {{.*}}, vector<8xbf16>
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK: scf.if
// CHECK-NEXT: memref.store %{{.*}}, %arg5[
// CHECK: vector.load %[[O]][%c0, %[[ROW1:.*]], %[[COL0]]] : {{.*}}, vector<8xbf16>
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32 : f32
// CHECK: scf.if
// CHECK-NEXT: memref.store %{{.*}}, %arg5[
// CHECK: gpu.func @swba_bwd_dkdv(
// CHECK-SAME: stream = 0
// CHECK-NOT: gpu.func @swba_bwd_delta(
// FALSE-LABEL: func @narrow_band_d64
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq
// Without it, no kernel lets another start early nor waits for one.
// FALSE-NOT: griddepcontrol
// FALSE: gpu.func @swba_bwd_dq(
// FALSE-NOT: memref.store {{.*}} %arg5
// FALSE-NOT: griddepcontrol
// FALSE: gpu.func @swba_bwd_dkdv(
// FALSE-NOT: early_start
// FALSE-SAME: stream = 1
// FALSE-NOT: griddepcontrol
// FALSE: gpu.func @swba_bwd_delta(
func.func @narrow_band_d64(%q: memref<?x4x?x64xbf16>, %k: memref<?x4x?x64xbf16>, %v: memref<?x4x?x64xbf16>,
    %o: memref<?x4x?x64xbf16>, %do: memref<?x4x?x64xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x64xbf16>, %dk: memref<?x4x?x64xbf16>, %dv: memref<?x4x?x64xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>) block_size = 1 window = 128
  return
}

// -----

// A token window at head dim 128 with a value dim of 112 (rounded up to
// 128 in the kernels: TMA's zeros fill O's and dO's last 16 columns): the
// row dot reads both 64-column boxes of each.
// CHECK-LABEL: func @token_window_d128_dv112
// DEFAULT128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta
// DEFAULT128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// DEFAULT128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq
// TRUE128-NOT: swba_bwd_delta
// TRUE128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq
// TRUE128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// TRUE128: gpu.func @swba_bwd_dq(
// TRUE128-COUNT-8: vector.load %{{.*}} : memref<1x128x64xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// TRUE128: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32 : f32
// TRUE128: gpu.func @swba_bwd_dkdv(
// TRUE128-SAME: stream = 0
// TRUE128-NOT: gpu.func @swba_bwd_delta(
func.func @token_window_d128_dv112(%q: memref<?x8x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x112xbf16>,
    %o: memref<?x8x?x112xbf16>, %do: memref<?x8x?x112xbf16>, %l: memref<?x8x?xf32>,
    %dq: memref<?x8x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x112xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x8x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x112xbf16>, memref<?x8x?x112xbf16>, memref<?x8x?x112xbf16>, memref<?x8x?xf32>)
      outs(%dq, %dk, %dv : memref<?x8x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x112xbf16>) block_size = 1 window = 1024
  return
}
