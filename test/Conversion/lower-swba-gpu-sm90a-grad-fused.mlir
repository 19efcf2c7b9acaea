// --lower-swba{target=gpu chip=sm_90a grad-fused-dq=true}: the backward
// whose dK/dV kernel also adds dQ up (five products instead of seven). On
// the host: delta and a zeroed f32 dqAccum, the delta kernel, the dK/dV kernel with a fifth
// tensor map (dqAccum, [64 rows][32 f32] boxes), then the conversion
// kernel that scales dqAccum into dq. In the kernel, each consumer writes
// its dS^T of the tile into a swizzled shared slot, fences it for the async
// proxy, issues dV, meets the other consumer at a barrier of both, then
// multiplies the tile's dS by K (both operands MN-major) and issues dK,
// stages its share of dQ under dK's product and has one thread issue TMA
// reduce-adds, waiting for them to read the staging before it is reused.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true" --canonicalize --cse | FileCheck %s
// Without the option the dQ kernel recomputes S and dP (no reductions).
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a" | FileCheck %s --check-prefix=SEPARATE

// CHECK-LABEL: func @grad_f16_d64
// CHECK-SAME: %[[Q:[^:]*]]: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?xf32>, %[[DQ:[^:]*]]: memref<?x4x?x64xf16>
// CHECK: %[[DELTA:.*]] = gpu.alloc
// CHECK: %[[ACC:.*]] = gpu.alloc (%{{.*}}) : memref<?x?x?x64xf32>
// CHECK-NEXT: gpu.memset %[[ACC]], %{{.*}} : memref<?x?x?x64xf32>, f32
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta
// CHECK-COUNT-4: nvgpu.tma.create.descriptor {{.*}} : memref<*xf16>
// CHECK: nvgpu.tma.create.descriptor {{.*}} box[%c1, %c64, %c32] : memref<*xf32> -> <tensor = memref<1x64x32xf32, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdvdq {{.*}} threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c200704_i32 args({{.*}}, %[[DELTA]] : memref<?x?x?xf32>, %[[ACC]] : memref<?x?x?x64xf32>,
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dqconvert {{.*}} threads in (%c128, %c1, %c1) args(%[[ACC]] : memref<?x?x?x64xf32>, %[[DQ]] : memref<?x4x?x64xf16>)
// CHECK: gpu.dealloc %[[ACC]]
// CHECK: gpu.dealloc %[[DELTA]]

// CHECK: gpu.func @swba_bwd_dkdvdq(
// CHECK-SAME: %[[MAP:[^:]*]]: !llvm.ptr) kernel
// CHECK: scf.for
// The window spans 600 keys: each tile starts from opaque copies of the
// thread's and the tile's indices and the descriptors' bases (17 of them),
// so that what is computed from them stays in the loop.
// CHECK: scf.for
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "", "=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,0,
// The row statistics' barrier of the warpgroup.
// CHECK: nvvm.barrier id = %{{.*}} number_of_threads = %c128_i32
// CHECK-NOT: nvvm.cp.async.bulk.wait_group
// dS^T: 16 n8 blocks x 2 rows of pairs into the slot, then the fence.
// CHECK-COUNT-32: memref.store %{{.*}} : memref<{{[0-9]+}}xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// dV (register A) in a group of its own; the consumers meet at named
// barrier 7 (both warpgroups: the slot holds both halves of dS^T); then
// dQ = dS K of the tile as a group, dK += dS^T Q as another, and the wait
// for all but dK's: the consumer stages its dQ while dK's product runs.
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK-NOT: wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// The previous tile's reduce has read its staging (its first thread waits
// for that) before the consumers' barrier.
// CHECK: nvvm.cp.async.bulk.wait_group 0 {read}
// CHECK: nvvm.barrier id = %c7_i32 number_of_threads = %c256_i32
// CHECK-NEXT: nvvm.wgmma.fence.aligned
// CHECK: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 64, k = 16>, D[<f32>, <zero>], A[<f16>, <one>, <col>], B[<f16>, <one>, <row>]
// CHECK-COUNT-7: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <col>], B[<f16>, <one>, <row>]
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK-NOT: wgmma.mma_async
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// Staging (8-byte pairs), fence, the warpgroup's barrier, two reduce-adds.
// Lanes of odd rows g store column group k ^ 2 in store k (select), at
// swizzle row g ^ 4 (g & 1): no two rows of a half-warp share a bank.
// CHECK: %[[PARITY:.*]] = arith.remui %[[G:.*]], %c2 : index
// CHECK-NEXT: %[[ODD:.*]] = arith.cmpi eq, %[[PARITY]], %c1 : index
// CHECK-NEXT: %[[FLIP:.*]] = arith.muli %[[PARITY]], %c4 : index
// CHECK-NEXT: arith.xori %[[G]], %[[FLIP]] : index
// CHECK: %[[A:.*]] = arith.select %[[ODD]], %{{.*}}, %{{.*}} : f32
// CHECK-NEXT: %[[B:.*]] = arith.select %[[ODD]], %{{.*}}, %{{.*}} : f32
// CHECK-NEXT: %[[PAIR:.*]] = vector.from_elements %[[A]], %[[B]] : vector<2xf32>
// CHECK-NEXT: arith.divui
// CHECK-NEXT: vector.store %[[PAIR]], %{{.*}} : memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK-COUNT-15: vector.store %{{.*}} : memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: nvvm.barrier id = %{{.*}} number_of_threads = %c128_i32
// CHECK: nvvm.cp.async.bulk.tensor.reduce %[[MAP]], %{{.*}}, box[%c0_i32, %{{.*}}, %{{.*}}] {redKind = #nvvm.tma_redux_kind<add>}
// CHECK: nvvm.cp.async.bulk.tensor.reduce %[[MAP]], %{{.*}}, box[%c32_i32, %{{.*}}, %{{.*}}] {redKind = #nvvm.tma_redux_kind<add>}
// CHECK-NEXT: nvvm.cp.async.bulk.commit.group
// Then the wait for dK's product.
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// After the loop no more products: only the wait for the last reduce's
// read of its staging.
// CHECK-NOT: wgmma
// CHECK: nvvm.cp.async.bulk.wait_group 0 {read}
// CHECK-NOT: wgmma
// CHECK: gpu.return

// The conversion: 8 f32 a thread and step, scaled (1/8 at head dim 64),
// into 8 f16.
// CHECK: gpu.func @swba_bwd_dqconvert(%[[A:[^:]*]]: memref<?x?x?x64xf32>, %[[D:[^:]*]]: memref<?x4x?x64xf16>)
// CHECK-DAG: %[[SCALE:.*]] = arith.constant dense<1.250000e-01> : vector<8xf32>
// CHECK: %[[SUM:.*]] = vector.load %[[A]]{{.*}} vector<8xf32>
// CHECK: %[[SCALED:.*]] = arith.mulf %[[SUM]], %[[SCALE]] : vector<8xf32>
// CHECK: %[[HALF:.*]] = arith.truncf %[[SCALED]] : vector<8xf32> to vector<8xf16>
// CHECK: vector.store %[[HALF]], %[[D]]

// SEPARATE-LABEL: func @grad_f16_d64
// SEPARATE-NOT: gpu.memset
// SEPARATE: gpu.func @swba_bwd_dq(
// SEPARATE: gpu.func @swba_bwd_dkdv(
// SEPARATE-NOT: cp.async.bulk.tensor.reduce
// SEPARATE-NOT: dqconvert
// The separate dK/dV kernel keeps what does not change from tile to tile
// out of its loop.
// SEPARATE-NOT: "=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,=l,0,
func.func @grad_f16_d64(%q: memref<?x4x?x64xf16>, %k: memref<?x4x?x64xf16>, %v: memref<?x4x?x64xf16>,
                        %o: memref<?x4x?x64xf16>, %do: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>,
                        %dq: memref<?x4x?x64xf16>, %dk: memref<?x4x?x64xf16>, %dv: memref<?x4x?x64xf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>) block_size = 100 window = 6
  return
}

