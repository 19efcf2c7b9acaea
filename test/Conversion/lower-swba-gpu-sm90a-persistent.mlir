// --lower-swba{target=gpu chip=sm_90a tile-scheduler=persistent}: the
// forward as a persistent kernel. One workgroup an SM (the launch scalar
// sm_count; the host code made here launches 132, or fewer where there are
// fewer query tiles) claims query tiles from
// a zeroed i32 counter, a launch buffer, until the count is passed. The
// producer (40 registers: two consumers keep 232) waits until every
// consumer warp has released Q (a tenth mbarrier), claims a tile with an
// atomic add and writes its index into a shared slot after the stages,
// which Q's barrier publishes; past the count it arrives without loading.
// The consumers read the index after Q's barrier and stop past the count.
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
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%[[WORKGROUPS]], %c1, %c1) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c163856_i32 args({{.*}}%[[COUNTER]] : memref<1xi32>
// CHECK: gpu.dealloc %[[COUNTER]] : memref<1xi32>
// CHECK: gpu.module @swba_attention_kernels attributes {swba.buffers = [{element_type = "i32", name = "tile_counter", shape = [1], zero = true}], swba.scalars = ["sm_count"]}
// CHECK: gpu.func @swba_fwd(%{{.*}}, %[[ARG4:.*]]: memref<1xi32>, %{{.*}}: !llvm.ptr
// CHECK-SAME: grid = [{per = 1 : i64, size = {scalar = "sm_count"}}, {per = 1 : i64, size = {product = []}}, {per = 1 : i64, size = {product = []}}]
// CHECK: %[[BARS:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 10>
// The producer.
// CHECK: nvvm.setmaxregister  decrease 40
// CHECK: %[[SLOT:.*]] = memref.view %{{.*}}[%c163840][] : memref<163856xi8, #gpu.address_space<workgroup>> to memref<1xi32, #gpu.address_space<workgroup>>
// CHECK: scf.while
// CHECK: nvgpu.mbarrier.try_wait.parity %[[BARS]][%c9]
// CHECK-NEXT: %[[CLAIMED:.*]] = memref.atomic_rmw addi %c1_i32, %[[ARG4]][%c0] : (i32, memref<1xi32>) -> i32
// CHECK-NEXT: memref.store %[[CLAIMED]], %[[SLOT]][%c0]
// CHECK-NEXT: %[[MORE:.*]] = arith.cmpi ult, %[[CLAIMED]], %{{.*}} : i32
// CHECK: nvgpu.mbarrier.arrive %[[BARS]][%c0]
// CHECK: scf.condition(%[[MORE]])
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%c0], %c32768
// The consumers.
// CHECK: nvvm.setmaxregister  increase 232
// CHECK: scf.while
// CHECK: nvgpu.mbarrier.try_wait.parity %[[BARS]][%c0]
// CHECK-NEXT: %[[INDEX:.*]] = memref.load %{{.*}}[%c0] : memref<1xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[GO:.*]] = arith.cmpi ult, %[[INDEX]], %{{.*}} : i32
// CHECK-NEXT: scf.condition(%[[GO]])
// Q released by each consumer warp's lane 0 once its products are done
// and its lanes have reread the tile slot (a warp barrier orders their
// reads before the arrival, after which the producer overwrites it).
// CHECK: nvvm.bar.warp.sync %c-1_i32 : i32
// CHECK-NEXT: scf.if
// CHECK-NEXT: nvgpu.mbarrier.arrive %[[BARS]][%c9]
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
