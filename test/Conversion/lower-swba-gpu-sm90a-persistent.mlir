// --lower-swba{target=gpu chip=sm_90a tile-scheduler=persistent}: the
// forward as a persistent kernel. One workgroup an SM (the launch scalar
// sm_count; the host code made here launches 132, or fewer where there are
// fewer query tiles) claims query tiles from
// a zeroed i32 counter, a launch buffer, until the count is passed. The
// producer (40 registers: two consumers keep 232) waits until every
// consumer thread has released the round's Q buffer (one of two, so that
// the next tile's Q loads under this one's products), claims a tile with
// an atomic add and writes its index, and the batch, head and query tile
// it divides out of it, into the buffer's shared slot after the stages,
// which the buffer's barrier publishes; past the count it arrives without
// loading. The consumers read the slot after that barrier and stop past
// the count.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a tile-scheduler=persistent" --canonicalize --cse | FileCheck %s
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a" --canonicalize --cse | FileCheck %s --check-prefix=GRID
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a tile-scheduler=ring" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a tile-scheduler=persistent workgroups-per-sm=2" 2>&1 | FileCheck %s --check-prefix=TWO

// The host code launches 132 workgroups, or one a query tile where there
// are fewer (B x 24 heads x ceil(Nq / 128)), at least one.
// CHECK-LABEL: func @frames_d128
// CHECK: %[[B:.*]] = memref.dim %arg0, %c0
// CHECK: %[[NQ:.*]] = memref.dim %arg0, %c2
// CHECK: %[[QT:.*]] = arith.ceildivui %[[NQ]], %c128 : index
// CHECK-NEXT: %[[BH:.*]] = arith.muli %[[B]], %c24 : index
// CHECK-NEXT: %[[TILES:.*]] = arith.muli %[[BH]], %[[QT]] : index
// CHECK-NEXT: %[[FEWER:.*]] = arith.minui %[[TILES]], %c132 : index
// CHECK-NEXT: %[[WORKGROUPS:.*]] = arith.maxui %[[FEWER]], %c1 : index
// CHECK: %[[COUNTER:.*]] = gpu.alloc () : memref<1xi32>
// CHECK-NEXT: gpu.memset %[[COUNTER]], %c0_i32 : memref<1xi32>, i32
// Two Q buffers of 32 KiB, two K/V stages of 64 KiB, two tile slots.
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%[[WORKGROUPS]], %c1, %c1) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c196800_i32 args({{.*}}%[[COUNTER]] : memref<1xi32>
// CHECK: gpu.dealloc %[[COUNTER]] : memref<1xi32>
// CHECK: gpu.module @swba_attention_kernels attributes {swba.buffers = [{element_type = "i32", name = "tile_counter", shape = [1], zero = true}], swba.scalars = ["sm_count"]}
// CHECK: gpu.func @swba_fwd(%{{.*}}, %[[ARG4:.*]]: memref<1xi32>, %{{.*}}: !llvm.ptr
// CHECK-SAME: grid = [{per = 1 : i64, size = {scalar = "sm_count"}}, {per = 1 : i64, size = {product = []}}, {per = 1 : i64, size = {product = []}}]
// mbarriers: Q buffer 0's "full" (0), the K/V ring (1-8), the two Q
// buffers' "empty" (9, 10: an arrival from each of the 2 x 128 consumer
// threads) and Q buffer 1's "full" (11), initialized by thread 0 behind
// one branch (the other warps skip the inits).
// CHECK: %[[BARS:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 12>
// CHECK: %[[T0:.*]] = arith.cmpi eq, %thread_id_x, %c0 : index
// CHECK-NEXT: scf.if %[[T0]] {
// CHECK-NEXT: nvgpu.mbarrier.init %[[BARS]][%c0], %c1 :
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c8], %c8 :
// CHECK-NEXT: nvgpu.mbarrier.init %[[BARS]][%c9], %c256 :
// CHECK-NEXT: nvgpu.mbarrier.init %[[BARS]][%c10], %c256 :
// CHECK-NEXT: nvgpu.mbarrier.init %[[BARS]][%c11], %c1 :
// The producer: round r takes buffer r % 2, whose "empty" barrier it
// waits on with parity !((r / 2) % 2) before claiming a tile into the
// buffer's slot (after the stages, 24 i32s a buffer: the tile, and
// the plan of narrow bands, none here).
// CHECK: nvvm.setmaxregister  decrease 40
// CHECK: scf.while (%[[ROUND:.*]] = %c0, %{{.*}} = %c0)
// CHECK-NEXT: %[[BUF:.*]] = arith.remui %[[ROUND]], %c2 : index
// CHECK-NEXT: %[[SLOTOFF:.*]] = arith.muli %[[BUF]], %c96 : index
// CHECK-NEXT: %[[SLOTAT:.*]] = arith.addi %[[SLOTOFF]], %c196608 : index
// CHECK-NEXT: %[[SLOT:.*]] = memref.view %{{.*}}[%[[SLOTAT]]][]
// CHECK-NEXT: %[[USES:.*]] = arith.divui %[[ROUND]], %c2 : index
// CHECK: %[[FREE:.*]] = arith.xori
// CHECK-NEXT: %[[EMPTY:.*]] = arith.addi %[[BUF]], %c9 : index
// CHECK-NEXT: nvgpu.mbarrier.try_wait.parity %[[BARS]][%[[EMPTY]]], %[[FREE]]
// CHECK-NEXT: %[[CLAIMED:.*]] = memref.atomic_rmw addi %c1_i32, %[[ARG4]][%c0] : (i32, memref<1xi32>) -> i32
// CHECK-NEXT: memref.store %[[CLAIMED]], %[[SLOT]][%c0]
// CHECK-NEXT: %[[MORE:.*]] = arith.cmpi ult, %[[CLAIMED]], %{{.*}} : i32
// Tile `claimed` of B x 24 heads x QT query tiles (late tiles first):
// batch, head and query tile, once for the workgroup.
// CHECK-NEXT: scf.if %[[MORE]] {
// CHECK-NEXT: %[[PER:.*]] = arith.muli %[[QTP:.*]], %c24 : index
// CHECK-NEXT: %[[PER32:.*]] = arith.index_castui %[[PER]] : index to i32
// CHECK-NEXT: %[[WITHIN:.*]] = arith.remui %[[CLAIMED]], %[[PER32]] : i32
// CHECK-NEXT: %[[BATCH:.*]] = arith.divui %[[CLAIMED]], %[[PER32]] : i32
// CHECK-NEXT: %[[QT32:.*]] = arith.index_castui %[[QTP]] : index to i32
// CHECK-NEXT: %[[HEAD:.*]] = arith.divui %[[WITHIN]], %[[QT32]] : i32
// CHECK-NEXT: %[[TILE:.*]] = arith.remui %[[WITHIN]], %[[QT32]] : i32
// CHECK: memref.store %[[BATCH]], %[[SLOT]][%c1]
// CHECK-NEXT: memref.store %[[HEAD]], %[[SLOT]][%c2]
// CHECK: memref.store %{{.*}}, %[[SLOT]][%c3]
// Frames of whole tiles at head dim 128: the consumers share the
// workgroup's tiles and work the tile out themselves (no plan).
// CHECK-NOT: memref.store %{{.*}}, %[[SLOT]][%c4]
// Past the count: the buffer's "full" barrier (0, or 11 for buffer 1)
// completes without a load.
// CHECK: %[[OTHER:.*]] = arith.addi %[[BUF]], %c10 : index
// CHECK-NEXT: %[[IS0:.*]] = arith.cmpi eq, %[[BUF]], %c0 : index
// CHECK-NEXT: %[[FULL:.*]] = arith.select %[[IS0]], %c0, %[[OTHER]] : index
// CHECK-NEXT: nvgpu.mbarrier.arrive %[[BARS]][%[[FULL]]]
// CHECK: scf.condition(%[[MORE]])
// Q into the round's buffer: 32 KiB in.
// CHECK: %[[FULL2:.*]] = arith.select %{{.*}}, %c0, %{{.*}} : index
// CHECK-NEXT: nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%[[FULL2]]], %c32768
// CHECK-NEXT: %[[QAT:.*]] = arith.muli %{{.*}}, %c32768 : index
// CHECK-NEXT: memref.view %{{.*}}[%[[QAT]]][]
// The consumers.
// CHECK: nvvm.setmaxregister  increase 232
// CHECK: scf.while
// CHECK: nvgpu.mbarrier.try_wait.parity %[[BARS]][%{{.*}}]
// CHECK-NEXT: %[[INDEX:.*]] = memref.load %{{.*}}[%c0] : memref<24xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[GO:.*]] = arith.cmpi ult, %[[INDEX]], %{{.*}} : i32
// CHECK-NEXT: scf.condition(%[[GO]])
// CHECK: } do {
// CHECK-NEXT: ^bb0(%[[CROUND:.*]]: index, %{{.*}}: index):
// CHECK-NEXT: %[[CBUF:.*]] = arith.remui %[[CROUND]], %c2 : index
// The tile's batch, head and query tile from the slot, not divided again.
// CHECK: memref.load %{{.*}}[%c1] : memref<24xi32
// CHECK-NEXT: arith.index_castui
// CHECK-NEXT: memref.load %{{.*}}[%c2] : memref<24xi32
// CHECK-NEXT: arith.index_castui
// CHECK-NEXT: memref.load %{{.*}}[%c3] : memref<24xi32
// CHECK-NOT: arith.divui %{{.*}} : i32
// Q's buffer released by every consumer thread once its products are done
// and it has reread the tile slot (its arrival orders its own reads
// before the producer's overwrite), not under a lane-0 branch: the
// epilogue's row sums follow in the same block, no closing brace.
// CHECK: %[[RELEASED:.*]] = arith.addi %[[CBUF]], %c9 : index
// CHECK-NEXT: nvgpu.mbarrier.arrive %[[BARS]][%[[RELEASED]]]
// CHECK-NOT: }
// CHECK: gpu.shuffle
// GRID-LABEL: func @frames_d128
// GRID-NOT: tile_counter
// GRID: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%c24, %{{.*}}, %{{.*}})
// GRID-NOT: sm_count
// BAD: tile-scheduler must be empty, 'grid' or 'persistent', got 'ring'
// TWO: tile-scheduler=persistent launches one workgroup an SM; workgroups-per-sm=2 needs tile-scheduler=grid
func.func @frames_d128(%q: memref<?x24x?x128xbf16>, %k: memref<?x24x?x128xbf16>,
                       %v: memref<?x24x?x128xbf16>, %o: memref<?x24x?x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x24x?x128xbf16>, memref<?x24x?x128xbf16>, memref<?x24x?x128xbf16>)
      outs(%o : memref<?x24x?x128xbf16>) block_size = 1024 window = 4
  return
}
