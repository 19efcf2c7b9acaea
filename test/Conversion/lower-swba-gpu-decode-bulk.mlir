// --lower-swba{target=gpu chip=sm_90a} on swba.paged_attention: the decode
// kernel's ring is filled by one bulk copy a K or V row (thread j copies K
// row j, thread 64 + j V row j of a 64-key tile), each announced to the
// slot's mbarrier (expect_tx) before it is issued; a row the split does not
// have, or of an invalid page, gets zeros, fenced before the slot's next
// bulk copy; every thread then arrives once, and the loop waits for the
// slot's phase before the workgroup barrier that frees the next slot. No
// 16-byte cp.async reads the caches. Shared memory: the ring (3 x 64 rows
// of K and V, 272 bytes a row), the poison words (3 x 64 x 4) and three
// mbarriers: 104448 + 768 + 24.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a" --canonicalize --cse \
// RUN:   | FileCheck %s --implicit-check-not=nvgpu.device_async_copy
// A dense cache (decode=true) on sm_90a: TMA boxes of 64 keys x 64
// columns of k and v (128B swizzle, unpadded rows: 98304 bytes), thread 0
// announcing a tile's 32 KiB on the slot's barrier; ldmatrix addresses
// XOR the 16-byte chunk with the row.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a decode=true" --canonicalize --cse \
// RUN:   | FileCheck %s --check-prefix=DENSE
// Before sm_90a the paged kernel keeps cp.async too.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_80" --canonicalize --cse \
// RUN:   | FileCheck %s --check-prefix=SM80 --implicit-check-not=nvvm.cp.async.bulk

// CHECK-LABEL: func @paged
// CHECK: gpu.launch_func @swba_decode_kernels::@swba_decode {{.*}} threads in (%c128, %c1, %c1) dynamic_shared_memory_size %c105240_i32
// CHECK: gpu.func @swba_decode(
// CHECK-COUNT-3: nvvm.mbarrier.init %{{.*}}, %c128_i32 : !llvm.ptr<3>, i32
// CHECK-NEXT: nvvm.fence.mbarrier.init
// CHECK: gpu.barrier
// The prologue's first tile: the row's page looked up once, then its copy.
// CHECK: %[[BAR:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<3>
// CHECK: memref.load %arg3[%block_id_z,
// CHECK: scf.if
// CHECK: nvvm.mbarrier.expect_tx %[[BAR]], %c256_i32 : !llvm.ptr<3>, i32
// CHECK: %[[SRC:.*]] = llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<1>
// CHECK: %[[DST:.*]] = llvm.addrspacecast %{{.*}} : !llvm.ptr<3> to !llvm.ptr<7>
// CHECK-NEXT: nvvm.cp.async.bulk.shared.cluster.global %[[DST]], %[[SRC]], %[[BAR]], %c256_i32
// CHECK: } else {
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %c120] : memref<192x136xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: nvvm.mbarrier.arrive %[[BAR]] : !llvm.ptr<3> -> i64
// Q staged through the last slot, fenced before the slot's bulk copy.
// CHECK: vector.load %arg0
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// The ring: tile t's slot's phase (t / 3) % 2, then the barrier, then tile
// t + 2's copies.
// CHECK: scf.for %[[T:.*]] = %c0 to %{{.*}} step %c1
// CHECK: %[[ROUND:.*]] = arith.divui %[[T]], %c3
// CHECK: %[[PAR:.*]] = arith.remui %[[ROUND]], %c2
// CHECK: %[[PHASE:.*]] = arith.index_castui %[[PAR]] : index to i32
// CHECK: nvvm.mbarrier.try_wait.parity %{{.*}}, %[[PHASE]], %c10000000_i32
// CHECK-NEXT: gpu.barrier
// CHECK: arith.addi %[[T]], %c2
// CHECK: nvvm.cp.async.bulk.shared.cluster.global
// CHECK: nvvm.mma.sync
// DENSE-LABEL: func @paged
// DENSE-LABEL: func @dense
// DENSE: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64] : memref<*xbf16> -> <tensor = memref<1x64x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// DENSE: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// DENSE: gpu.launch_func @swba_decode_kernels::@swba_decode {{.*}} dynamic_shared_memory_size %c98304_i32
// DENSE: gpu.func @swba_decode(
// DENSE-NOT: nvgpu.device_async_copy
// DENSE: nvgpu.mbarrier.arrive.expect_tx %[[BARS:.*]][%c0], %c32768
// DENSE-COUNT-4: nvgpu.tma.async.load %{{.*}}, %[[BARS]][%c0] to
// DENSE: scf.for
// DENSE: nvgpu.mbarrier.try_wait.parity %[[BARS]]
// DENSE-NEXT: gpu.barrier
// DENSE: arith.xori
// DENSE: nvgpu.ldmatrix
// DENSE-NOT: nvgpu.device_async_copy
// DENSE: gpu.func @swba_split_combine(
// SM80-LABEL: func @paged
// SM80: nvgpu.device_async_copy %arg1
func.func @paged(%q: memref<?x4x?x128xbf16>, %kc: memref<?x?x2x128xbf16>, %vc: memref<?x?x2x128xbf16>, %pt: memref<?x?xi32>, %sl: memref<?xi32>, %o: memref<?x4x?x128xbf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : memref<?x4x?x128xbf16>, memref<?x?x2x128xbf16>, memref<?x?x2x128xbf16>, memref<?x?xi32>, memref<?xi32>) outs(%o : memref<?x4x?x128xbf16>) block_size = 256 window = 8
  return
}

// -----

func.func @dense(%q: memref<16x32x1x128xbf16>, %k: memref<16x8x4096x128xbf16>, %v: memref<16x8x4096x128xbf16>, %o: memref<16x32x1x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<16x32x1x128xbf16>, memref<16x8x4096x128xbf16>, memref<16x8x4096x128xbf16>) outs(%o : memref<16x32x1x128xbf16>) block_size = 256 window = 8
  return
}

// -----

// Head dim 32 is no whole TMA box: cp.async.
// DENSE-LABEL: func @dense_d32
// DENSE: gpu.func @swba_decode(
// DENSE-NOT: nvgpu.tma.async.load
// DENSE: nvgpu.device_async_copy %arg1
func.func @dense_d32(%q: memref<2x4x1x32xf16>, %k: memref<2x2x512x32xf16>, %v: memref<2x2x512x32xf16>, %o: memref<2x4x1x32xf16>) {
  swba.attention ins(%q, %k, %v : memref<2x4x1x32xf16>, memref<2x2x512x32xf16>, memref<2x2x512x32xf16>) outs(%o : memref<2x4x1x32xf16>) block_size = 16 window = 4
  return
}
