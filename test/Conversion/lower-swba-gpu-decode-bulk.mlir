// --lower-swba{target=gpu chip=sm_90a} on swba.paged_attention of a
// dynamic page size: the decode kernel's ring is filled by one bulk copy a
// K or V row (thread j copies K
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
// columns of k and v (128B swizzle, unpadded rows: 98304 bytes, then three
// mbarriers), thread 0 announcing a tile's 32 KiB on the slot's barrier
// with its arrive, the only one the barrier waits for; ldmatrix addresses
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
// DENSE: gpu.launch_func @swba_decode_kernels::@swba_decode {{.*}} dynamic_shared_memory_size %c98328_i32
// The decode kernel lets the combine kernel start at once; the combine's
// launch says it may (early_start), and it waits for the decode kernel
// before it reads the partials. Not before sm_90 (SM80).
// DENSE: gpu.func @swba_decode(
// DENSE: nvvm.griddepcontrol  launch_dependents
// DENSE-NOT: nvgpu.device_async_copy
// DENSE-COUNT-3: nvvm.mbarrier.init %{{.*}}, %c1_i32 : !llvm.ptr<3>, i32
// DENSE: nvvm.mbarrier.arrive.expect_tx %[[BAR:.*]], %c32768_i32
// DENSE-COUNT-4: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %arg{{.*}}, %[[BAR]], box[%c{{0|64}}_i32, %{{.*}}, %{{.*}}]
// DENSE: scf.for
// DENSE: nvvm.mbarrier.try_wait.parity
// DENSE-NEXT: gpu.barrier
// DENSE: arith.xori
// DENSE: nvgpu.ldmatrix
// DENSE-NOT: nvgpu.device_async_copy
// DENSE: gpu.func @swba_split_combine(
// DENSE-SAME: early_start = true
// DENSE: nvvm.griddepcontrol  wait
// DENSE-NEXT: gpu.thread_id  x
// SM80-LABEL: func @paged
// SM80-NOT: griddepcontrol
// SM80-NOT: early_start
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
// DENSE-NOT: nvvm.cp.async.bulk.tensor
// DENSE: nvgpu.device_async_copy %arg1
func.func @dense_d32(%q: memref<2x4x1x32xf16>, %k: memref<2x2x512x32xf16>, %v: memref<2x2x512x32xf16>, %o: memref<2x4x1x32xf16>) {
  swba.attention ins(%q, %k, %v : memref<2x4x1x32xf16>, memref<2x2x512x32xf16>, memref<2x2x512x32xf16>) outs(%o : memref<2x4x1x32xf16>) block_size = 16 window = 4
  return
}

// -----

// A static page size of 16 (a multiple of 16 that divides the 64-key
// tile): TMA boxes of 16 keys x 1 head x 64 columns, one a page run and
// column half of K and of V (16 a tile); the tiles start at a multiple of
// 16 (block size 7: the window's start need not be one). Thread 0
// announces the tile's 32 KiB; lanes 0-3 each look up one run's page and
// issue its four boxes (the column halves of K and of V); a thread a key
// writes its poison word. After the wait, the V rows past the split's end
// that the last box brought from its page are zeroed and fenced.
// CHECK-LABEL: func @paged16
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c16, %c1, %c64] : memref<*xbf16> -> <tensor = memref<16x1x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c16, %c1, %c64]
// CHECK: gpu.launch_func @swba_decode_kernels::@swba_decode {{.*}} dynamic_shared_memory_size %c99096_i32
// CHECK: gpu.func @swba_decode(
// CHECK: %[[ROWS:.*]] = arith.divui %{{.*}}, %c16 : index
// CHECK-NEXT: %[[BEGIN:.*]] = arith.muli %[[ROWS]], %c16 : index
// CHECK-COUNT-3: nvvm.mbarrier.init %{{.*}}, %c1_i32 : !llvm.ptr<3>, i32
// CHECK: memref.load %arg3[%block_id_z,
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<192xf32, #gpu.address_space<workgroup>>
// CHECK: %[[ISSUER:.*]] = arith.cmpi ult, %thread_id_x, %c4 : index
// CHECK-NEXT: scf.if %[[ISSUER]] {
// CHECK: nvvm.mbarrier.arrive.expect_tx %[[BAR:.*]], %c32768_i32
// CHECK: memref.load %arg3[%block_id_z,
// CHECK-NOT: memref.load %arg3
// CHECK-COUNT-4: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %arg{{.*}}, %[[BAR]], box[%c{{0|64}}_i32, %{{.*}}, %{{.*}}] : !llvm.ptr<7>, !llvm.ptr
// CHECK-NOT: nvvm.cp.async.bulk.shared.cluster.global
// CHECK: scf.for
// CHECK: nvvm.mbarrier.try_wait.parity
// CHECK: scf.if
// CHECK: scf.for %{{.*}} = %thread_id_x to %{{.*}} step %c128
// CHECK: vector.store %{{.*}} : memref<384x64xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: }
// CHECK-NEXT: gpu.barrier
// CHECK: gpu.func @swba_split_combine(
// SM80-LABEL: func @paged16
// SM80: nvgpu.device_async_copy %arg1
func.func @paged16(%q: memref<?x4x?x128xbf16>, %kc: memref<?x16x2x128xbf16>, %vc: memref<?x16x2x128xbf16>, %pt: memref<?x?xi32>, %sl: memref<?xi32>, %o: memref<?x4x?x128xbf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : memref<?x4x?x128xbf16>, memref<?x16x2x128xbf16>, memref<?x16x2x128xbf16>, memref<?x?xi32>, memref<?xi32>) outs(%o : memref<?x4x?x128xbf16>) block_size = 7 window = 4
  return
}

// -----

// Pages of 256 (head dim 64): boxes of a whole tile (one of K and one of V
// a tile), the tile start a multiple of 64.
// CHECK-LABEL: func @paged256
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c64, %c1, %c64]
// CHECK: gpu.func @swba_decode(
// CHECK: nvvm.mbarrier.arrive.expect_tx %[[BAR:.*]], %c16384_i32
// CHECK-COUNT-2: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %arg{{.*}}, %[[BAR]], box[
// CHECK: nvvm.mbarrier.arrive.expect_tx %[[BAR1:.*]], %c16384_i32
// CHECK-COUNT-2: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %arg{{.*}}, %[[BAR1]], box[
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: scf.for
// CHECK: gpu.func @swba_split_combine(
func.func @paged256(%q: memref<?x4x?x64xf16>, %kc: memref<?x256x2x64xf16>, %vc: memref<?x256x2x64xf16>, %pt: memref<?x?xi32>, %sl: memref<?xi32>, %o: memref<?x4x?x64xf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : memref<?x4x?x64xf16>, memref<?x256x2x64xf16>, memref<?x256x2x64xf16>, memref<?x?xi32>, memref<?xi32>) outs(%o : memref<?x4x?x64xf16>) block_size = 1 window = 100
  return
}

// -----

// Pages of 24 (no multiple of 16) keep the bulk row copies.
// CHECK-LABEL: func @paged24
// CHECK-NOT: nvgpu.tma.create.descriptor
// CHECK: gpu.func @swba_decode(
// CHECK-COUNT-3: nvvm.mbarrier.init %{{.*}}, %c128_i32 : !llvm.ptr<3>, i32
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: nvvm.cp.async.bulk.shared.cluster.global
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: gpu.func @swba_split_combine(
func.func @paged24(%q: memref<?x4x?x64xf16>, %kc: memref<?x24x2x64xf16>, %vc: memref<?x24x2x64xf16>, %pt: memref<?x?xi32>, %sl: memref<?xi32>, %o: memref<?x4x?x64xf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : memref<?x4x?x64xf16>, memref<?x24x2x64xf16>, memref<?x24x2x64xf16>, memref<?x?xi32>, memref<?xi32>) outs(%o : memref<?x4x?x64xf16>) block_size = 1 window = 100
  return
}
