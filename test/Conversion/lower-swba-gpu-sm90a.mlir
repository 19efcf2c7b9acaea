// --lower-swba{target=gpu chip=sm_90a}: the Hopper forward kernel. A
// producer warpgroup loads Q and a two-stage ring of K/V tiles with TMA on
// mbarriers; consumer warpgroups (three at head dim 64, two at 128) run
// both products on warpgroup MMA. A workgroup per query tile here
// (tile-scheduler=grid; head dim 64 is persistent by default:
// lower-swba-gpu-sm90a-persistent.mlir).
// The same op for another chip, another head dim, or the backward op keeps
// the mma.sync kernels.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a tile-scheduler=grid" --canonicalize --cse --split-input-file | FileCheck %s
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90" --split-input-file | FileCheck %s --check-prefix=SM80
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=64 stages=3" --split-input-file | FileCheck %s --check-prefix=OPTS
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a overlap-softmax=false" --split-input-file | FileCheck %s --check-prefix=PLAIN
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-ping-pong=true" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=TURNS
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a consumers=2 tile-scheduler=grid" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=TWO

// CHECK-LABEL: func @forward_f16_d64
// The host side makes one TMA descriptor per operand over [B * H][N][D], in
// boxes of 64 elements (128 bytes: the 128B swizzle span): 192 rows of Q
// (three consumers of 64), 128 of K and V.
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c192, %c64] : memref<*xf16> -> <tensor = memref<1x192x64xf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, l2promo = l2promo_256b, oob = zero, interleave = none>
// CHECK-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64] : memref<*xf16> -> <tensor = memref<1x128x64xf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, l2promo = l2promo_256b, oob = zero, interleave = none>
// Four warpgroups, 24 KiB of Q and two stages of 16 KiB K and V tiles; the
// launch's 64K registers split four ways (128 a thread).
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%c4, %{{.*}}, %{{.*}}) threads in (%c512, %c1, %c1) dynamic_shared_memory_size %c90112_i32
// CHECK: memref.global @swba_smem : memref<0xi8, #gpu.address_space<workgroup>> {alignment = 1024 : i64}
// CHECK: gpu.func @swba_fwd({{.*}}, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr) kernel attributes {{{.*}}nvvm.maxnreg = 128 : i32, nvvm.maxntid = array<i32: 512, 1, 1>, swba.launch = {{.*}}}
// CHECK: %[[BARS:.*]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 9>
// The key window of the workgroup's 192 rows: frames of 100, window 6.
// CHECK: arith.divui %{{.*}}, %c100
// CHECK: arith.subi %{{.*}}, %c5
// Full barriers (Q, K, V) take one arrival; empty ones one per consumer warp.
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c0], %c1
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c5], %c12
// CHECK: nvvm.fence.mbarrier.init
// Producer: fewer registers, Q once, then per tile wait for the slot to be
// empty and load K and V into it.
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%c0], %c24576
// CHECK: nvgpu.tma.async.load %{{.*}}[%c0, %{{.*}}, %{{.*}}], %[[BARS]][%c0] to %{{.*}} : {{.*}} -> memref<1x192x64xf16, #gpu.address_space<workgroup>>
// CHECK: scf.for
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%{{.*}}], %c16384
// CHECK: nvgpu.tma.async.load
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.tma.async.load
// Consumers: more registers; Q; then S_0 = Q K_0^T as 4 k16 slices of
// m64n128 from shared memory, retired at once, K_0 released.
// The consumers take turns at the tensor cores, round robin (named
// barriers 1-3 of 256 threads: the waiting warpgroup and the one passing
// the turn; consumer 2 first lets consumer 0 go). 160 registers each.
// CHECK: nvvm.setmaxregister  increase 160
// CHECK: nvgpu.mbarrier.try_wait.parity %[[BARS]][%c0], %false
// CHECK: nvvm.barrier.arrive id = %[[OTHER:.*]] number_of_threads = %c256_i32
// A consumer's 64 rows see fewer key tiles than the workgroup's 192 where
// the band's edges cut the tiles (frames of 100, window 6: 700-800 keys
// against 600-700): it runs its own tiles [first, end) and, before and
// after them, releases the workgroup's others once they have landed, with
// a turn taken for each.
// CHECK: arith.divui %{{.*}}, %c100
// CHECK: arith.ceildivui %{{.*}}, %c128
// CHECK: scf.for %{{.*}} = %c0 to %[[FIRST:.*]] step %c1
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive
// CHECK: nvvm.barrier id = %[[MINE:.*]] number_of_threads = %c256_i32
// CHECK-NEXT: nvvm.barrier.arrive id = %[[OTHER]]
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvvm.barrier id = %[[MINE]] number_of_threads = %c256_i32
// CHECK-NEXT: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>, D[<f32>, <{{zero|one}}>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.barrier.arrive id = %[[OTHER]] number_of_threads = %c256_i32
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: nvgpu.mbarrier.arrive
// Tile j: wait for K_j and V_{j-1}, issue S_j and O += P_{j-1} V_{j-1}
// (P from registers: 8 k16 slices of m64n64) as two groups, retire S_j
// only, mask edge tiles only and run the softmax of S_j while the P V
// product is in flight, then retire it. The row maxima (the tree, then the
// quad's shuffles, for each of the thread's two rows) are made in both
// branches of the mask's test, the exponentials after them: ptxas keeps
// what a branch computes before the wait for P V that follows.
// CHECK: scf.for
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvvm.barrier id = %[[MINE]]
// CHECK-NEXT: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.barrier.arrive id = %[[OTHER]]
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: %{{.*}}:66 = scf.if %{{.*}} -> (f32
// CHECK-COUNT-2: gpu.shuffle  xor
// CHECK-NOT: ex2.approx
// CHECK-COUNT-2: gpu.shuffle  xor
// CHECK-NOT: ex2.approx
// CHECK: scf.yield
// CHECK-NEXT: } else {
// CHECK: arith.select
// CHECK-COUNT-2: gpu.shuffle  xor
// CHECK-NOT: ex2.approx
// CHECK-COUNT-2: gpu.shuffle  xor
// CHECK-NOT: ex2.approx
// CHECK: scf.yield
// CHECK-NEXT: }
// CHECK: ex2.approx.ftz.f32
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: nvgpu.mbarrier.arrive
// CHECK: scf.yield
// On a band of more than 512 keys (600 here) the interior tiles run in a
// loop of their own, the same step with neither the test nor the mask,
// and the tiles after them in a third loop like the first.
// CHECK: scf.for
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NOT: scf.if %{{.*}} -> (f32
// CHECK: ex2.approx.ftz.f32
// CHECK: scf.yield
// CHECK: scf.for
// CHECK: scf.if %{{.*}} -> (f32
// CHECK: ex2.approx.ftz.f32
// CHECK: scf.yield
// The last tile's P V after the loops, then the tiles after this
// consumer's.
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.for
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvvm.barrier id = %[[MINE]]
// CHECK-NEXT: nvvm.barrier.arrive id = %[[OTHER]]

// Without the overlap, each tile in turn: S_j, its softmax, P_j V_j.
// PLAIN-LABEL: func @forward_f16_d64
// PLAIN-NOT: nvvm.barrier
// PLAIN: scf.for
// PLAIN: nvvm.wgmma.fence.aligned
// PLAIN-COUNT-4: nvvm.wgmma.mma_async
// PLAIN-NEXT: nvvm.wgmma.commit.group.sync.aligned
// PLAIN-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// PLAIN: scf.if %{{.*}} -> (f32
// PLAIN: nvvm.wgmma.fence.aligned
// PLAIN-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// PLAIN: nvvm.wgmma.commit.group.sync.aligned
// PLAIN-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// PLAIN: scf.yield

// SM80-LABEL: func @forward_f16_d64
// SM80: gpu.launch_func @swba_attention_kernels::@swba_fwd
// SM80-NOT: wgmma
// SM80: nvgpu.mma.sync
// SM80-NOT: wgmma

// Two consumers, as asked: 128 rows, 168 registers at launch, 240 after.
// TWO-LABEL: func @forward_f16_d64
// TWO: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%c4, %{{.*}}, %{{.*}}) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c81920_i32
// TWO: gpu.func @swba_fwd({{.*}}) kernel attributes {{{.*}}nvvm.maxnreg = 168 : i32, nvvm.maxntid = array<i32: 384, 1, 1>, swba.launch = {{.*}}}
// TWO: nvvm.setmaxregister  increase 240

// OPTS-LABEL: func @forward_f16_d64
// OPTS: gpu.launch_func @swba_attention_kernels::@swba_fwd
// OPTS: nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 13>
func.func @forward_f16_d64(%q: memref<?x4x?x64xf16>, %k: memref<?x4x?x64xf16>,
                           %v: memref<?x4x?x64xf16>, %o: memref<?x4x?x64xf16>,
                           %l: memref<?x4x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>)
      outs(%o, %l : memref<?x4x?x64xf16>, memref<?x4x?xf32>) block_size = 100 window = 6
  return
}

// -----

// bf16, head dim 128: Q and every K/V tile are two 64-column boxes, 4 + 4
// k16 slices for S, and P V is m64n128 with bf16 operands.
// CHECK-LABEL: func @forward_bf16_d128
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.*}}[%c0], %c32768
// CHECK-COUNT-2: nvgpu.tma.async.load
// CHECK: nvvm.setmaxregister  increase 240
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>, D[<f32>, <{{zero|one}}>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// SM80-LABEL: func @forward_bf16_d128
// SM80: gpu.launch_func @swba_attention_kernels::@swba_fwd
func.func @forward_bf16_d128(%q: memref<?x8x?x128xbf16>, %k: memref<?x2x?x128xbf16>,
                             %v: memref<?x2x?x128xbf16>, %o: memref<?x8x?x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x8x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>)
      outs(%o : memref<?x8x?x128xbf16>) block_size = 256 window = 4
  return
}

// -----

// Head dim 32 has no 128-byte box: the mma.sync kernel, also on sm_90a.
// CHECK-LABEL: func @forward_d32_falls_back
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd
// CHECK-NOT: wgmma
func.func @forward_d32_falls_back(%q: memref<1x2x256x32xf16>, %k: memref<1x2x256x32xf16>,
                                  %v: memref<1x2x256x32xf16>, %o: memref<1x2x256x32xf16>) {
  swba.attention ins(%q, %k, %v : memref<1x2x256x32xf16>, memref<1x2x256x32xf16>, memref<1x2x256x32xf16>)
      outs(%o : memref<1x2x256x32xf16>) block_size = 64 window = 2
  return
}

// -----

// The backward at head dim 64 (with grad-fused-dq, whose dK/dV kernel adds
// dQ up: lower-swba-gpu-sm90a-grad-fused.mlir): delta in a device buffer
// written by the delta kernel (32 query rows a workgroup, from dout and out), then the dK/dV
// kernel (128 keys, 128-row Q/dO boxes) and the dQ kernel (128 query rows,
// 128-key K/V boxes, maps of q, k, v, dout), both warp-specialized: the
// producer's TMA loads on mbarriers, per tile S and dP (or S^T and dP^T) as
// one group of shared-memory wgmmas, then the register-A products.
// CHECK-LABEL: func @grad_f16_d64
// CHECK-SAME: %[[Q:[^:]*]]: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %{{[^:]*}}: memref<?x4x?x64xf16>, %[[O:[^:]*]]: memref<?x4x?x64xf16>, %[[DO:[^:]*]]: memref<?x4x?x64xf16>
// CHECK: %[[N:.*]] = memref.dim %[[Q]], %c2
// CHECK: %[[DELTA:.*]] = gpu.alloc
// CHECK: %[[ROWS:.*]] = arith.ceildivui %[[N]], %c32
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta blocks in (%c4, %[[ROWS]], %{{.*}}) threads in (%c128, %c1, %c1) args(%[[DO]] : {{.*}}, %[[O]] : {{.*}}, %[[DELTA]] : memref<?x?x?xf32>)
// CHECK-COUNT-4: nvgpu.tma.create.descriptor
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv {{.*}} threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c102400_i32
// CHECK-COUNT-4: nvgpu.tma.create.descriptor
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c98304_i32
// CHECK: gpu.dealloc %[[DELTA]]
// CHECK: gpu.func @swba_bwd_dq(%{{[^:]*}}: {{.*}}, %{{[^:]*}}: {{.*}}, %{{[^:]*}}: {{.*}}, %{{[^:]*}}: {{.*}}, %{{[^:]*}}: {{.*}}, %[[DQDELTA:[^:]*]]: memref<?x?x?xf32>
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: nvgpu.tma.async.load
// CHECK: nvvm.setmaxregister  increase 240
// Each consumer reads its two rows' delta from the delta kernel's buffer.
// CHECK-COUNT-2: memref.load %[[DQDELTA]]
// The consumers issue their products without taking turns (256-thread
// named barriers; grad-ping-pong=true has them, TURNS below).
// CHECK-NOT: number_of_threads = %c256_i32
// CHECK: scf.for
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK-NOT: number_of_threads = %c256_i32
// S and dP are two groups: P's exponentials, in both branches of the
// mask's test, run under dP's product; dS after dP's wait.
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: scf.if %{{.*}} -> (f32
// CHECK-COUNT-64: ex2.approx.ftz.f32
// CHECK: scf.yield
// CHECK-COUNT-64: ex2.approx.ftz.f32
// CHECK: scf.yield
// CHECK-NEXT: }
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NOT: ex2.approx
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK-NOT: number_of_threads = %c256_i32
// On a band of more than 512 keys (600 here) at head dim 64 the interior
// tiles run in a loop of their own, with neither the test nor the mask
// (P made once), then the tiles after them as in the first loop.
// CHECK: scf.for
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NOT: scf.if %{{.*}} -> (f32
// CHECK-COUNT-64: ex2.approx.ftz.f32
// CHECK-NOT: ex2.approx
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK: scf.for
// CHECK: scf.if %{{.*}} -> (f32
// CHECK: gpu.func @swba_bwd_dkdv(
// CHECK: nvvm.setmaxregister  increase 240
// CHECK-NOT: number_of_threads = %c256_i32
// CHECK: scf.for
// CHECK-NOT: number_of_threads = %c256_i32
// At head dim 64 the same split, and dV += P^T dO is issued before dS^T
// is made: dS^T waits for dP^T's group alone, and dK's product follows.
// While S^T and dP^T run, the tile's row statistics go to their shared
// slot (a barrier of the consumer's 128 threads) and the next tile's are
// loaded.
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 128, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NOT: nvvm.wgmma
// CHECK: memref.view {{.*}} to memref<256xf32
// CHECK-COUNT-2: memref.store
// CHECK-NOT: nvvm.wgmma
// CHECK: nvvm.barrier id = %{{.*}} number_of_threads = %c128_i32
// CHECK-NOT: nvvm.wgmma
// CHECK: memref.load %arg4
// CHECK-NOT: nvvm.wgmma
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: scf.if %{{.*}} -> (f32
// CHECK-COUNT-64: ex2.approx.ftz.f32
// CHECK: scf.yield
// CHECK-COUNT-64: ex2.approx.ftz.f32
// CHECK: scf.yield
// CHECK-NOT: ex2.approx
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK-NOT: ex2.approx
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// The delta kernel, after the two others: each quad of threads sums a row
// from 16-byte loads and combines by shuffles; the quad's first lane stores.
// CHECK: gpu.func @swba_bwd_delta(%[[DOK:[^:]*]]: memref<?x4x?x64xf16>, %[[OK:[^:]*]]: memref<?x4x?x64xf16>, %[[DK:[^:]*]]: memref<?x?x?xf32>)
// CHECK: scf.if
// CHECK-COUNT-2: vector.load %[[DOK]]{{.*}} vector<8xf16>
// CHECK: gpu.shuffle xor
// CHECK: gpu.shuffle xor
// CHECK: scf.if
// CHECK-NEXT: memref.store %{{.*}}, %[[DK]]
// With grad-ping-pong=true both kernels' consumers take turns: each
// turn's products are issued between a 256-thread barrier and an arrive
// (dQ's S and dP as two groups in one turn).
// TURNS-LABEL: func @grad_f16_d64
// TURNS: gpu.func @swba_bwd_dq(
// TURNS: scf.for
// TURNS: nvvm.barrier id = %{{.*}} number_of_threads = %c256_i32
// TURNS-NEXT: nvvm.wgmma.fence.aligned
// TURNS: nvvm.wgmma.commit.group.sync.aligned
// TURNS-NOT: nvvm.barrier
// TURNS: nvvm.wgmma.commit.group.sync.aligned
// TURNS-NEXT: nvvm.barrier.arrive id = %{{.*}} number_of_threads = %c256_i32
// TURNS: gpu.func @swba_bwd_dkdv(
// TURNS: scf.for
// TURNS: nvvm.barrier id = %{{.*}} number_of_threads = %c256_i32
// TURNS-NEXT: nvvm.wgmma.fence.aligned
// TURNS: nvvm.wgmma.commit.group.sync.aligned
// TURNS-NEXT: nvvm.barrier.arrive id = %{{.*}} number_of_threads = %c256_i32
// The mma.sync backward has the same delta kernel first.
// SM80-LABEL: func @grad_f16_d64
// SM80: @swba_bwd_delta
// SM80: @swba_bwd_dq
// SM80: @swba_bwd_dkdv
func.func @grad_f16_d64(%q: memref<?x4x?x64xf16>, %k: memref<?x4x?x64xf16>, %v: memref<?x4x?x64xf16>,
                        %o: memref<?x4x?x64xf16>, %do: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>,
                        %dq: memref<?x4x?x64xf16>, %dk: memref<?x4x?x64xf16>, %dv: memref<?x4x?x64xf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xf16>, memref<?x4x?x64xf16>, memref<?x4x?x64xf16>) block_size = 100 window = 6
  return
}
