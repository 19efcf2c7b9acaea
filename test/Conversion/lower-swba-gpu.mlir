// --lower-swba{target=gpu}: the launch, the kernel's shared-memory staging,
// its block-window KV loop, tensor-core products, and interior tiles that
// skip the mask.
// RUN: swba-opt %s --lower-swba=target=gpu --canonicalize --cse --split-input-file | FileCheck %s

// f16, head dim 64: two m16 tiles per warp, 128 query rows per workgroup.
// CHECK-LABEL: func @forward_f16_d64
// CHECK-SAME: (%[[Q:[^:]*]]: memref<?x4x?x64xf16>
// CHECK: %[[NQ:.*]] = memref.dim %[[Q]], %c2
// CHECK: %[[TILES:.*]] = arith.ceildivui %[[NQ]], %c128
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%c4, %[[TILES]], %{{.*}}) threads in (%c128, %c1, %c1)
// CHECK: gpu.module @swba_attention_kernels
// CHECK: gpu.func @swba_fwd({{.*}}) workgroup(%[[SK:.*]] : memref<64x72xf16, #gpu.address_space<workgroup>>, %[[SV:.*]] : memref<64x72xf16, #gpu.address_space<workgroup>>, %[[SQ:.*]] : memref<128x72xf16, #gpu.address_space<workgroup>>) kernel
// The key window of the workgroup's rows: frames of 100, window 3.
// CHECK: arith.divui %{{.*}}, %c100
// CHECK: %[[LOW:.*]] = arith.maxsi %{{.*}}, %c2
// CHECK: %[[LOWF:.*]] = arith.subi %[[LOW]], %c2
// CHECK: %[[KB:.*]] = arith.muli %[[LOWF]], %c100
// CHECK: %[[LAST:.*]] = arith.muli %{{.*}}, %c100
// CHECK: %[[REST:.*]] = arith.minsi %{{.*}}, %c100 : index
// CHECK: %[[KE:.*]] = arith.addi %[[LAST]], %[[REST]] : index
// Q goes through shared memory into A fragments, 16-byte accesses.
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<?x4x?x64xf16>, vector<8xf16>
// CHECK: vector.store %{{.*}}, %[[SQ]]
// CHECK: nvgpu.ldmatrix %[[SQ]][{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: scf.for %{{.*}} = %[[KB]] to %[[KE]] step %c64 iter_args
// CHECK: gpu.barrier
// The next K/V tile is loaded into registers before this tile's math.
// CHECK: vector.load %{{.*}} : memref<?x2x?x64xf16>, vector<8xf16>
// S = Q K^T on tensor cores, K fragments read once for both m tiles.
// CHECK: %[[KF:.*]] = nvgpu.ldmatrix %[[SK]][{{.*}}] {numTiles = 2 : i32, transpose = false}
// CHECK-NEXT: nvgpu.mma.sync(%{{.*}}, %[[KF]], %{{.*}}) {mmaShape = [16, 8, 16]}
// CHECK-NEXT: nvgpu.mma.sync(%{{.*}}, %[[KF]], %{{.*}}) {mmaShape = [16, 8, 16]}
// Interior tiles yield the scores untouched; only edge tiles mask.
// CHECK: %[[VISIBLE:.*]] = arith.andi
// CHECK: %[[INTERIOR:.*]] = arith.andi %{{.*}}, %[[VISIBLE]] : i1
// CHECK: scf.if %[[INTERIOR]] -> (vector<2x2xf32>
// CHECK-NEXT: scf.yield
// CHECK-NEXT: } else {
// CHECK: arith.cmpi ule
// CHECK: arith.select
// CHECK: nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// O += P V, V fragments transposed.
// CHECK: nvgpu.ldmatrix %[[SV]][{{.*}}] {numTiles = 2 : i32, transpose = true}
// CHECK: nvgpu.mma.sync
// CHECK: gpu.barrier
// CHECK: vector.store %{{.*}}, %[[SK]]
// CHECK: vector.store %{{.*}}, %[[SV]]
// CHECK: scf.yield
// Epilogue: lse back from the log2 domain.
// CHECK: nvvm.inline_ptx "lg2.approx.ftz.f32 $0, $1;"
// CHECK: memref.store %{{.*}}, %{{.*}} : memref<?x4x?xf32>
func.func @forward_f16_d64(%q: memref<?x4x?x64xf16>, %k: memref<?x2x?x64xf16>, %v: memref<?x2x?x64xf16>, %o: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>) outs(%o, %l : memref<?x4x?x64xf16>, memref<?x4x?xf32>) block_size = 100 window = 3
  return
}

// -----

// bf16, head dim 128: one m16 tile per warp, Q staged through the K tile,
// products on nvvm.mma.sync with packed bf16 registers.
// CHECK-LABEL: func @forward_bf16_d128
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd
// CHECK: gpu.func @swba_fwd({{.*}}) workgroup(%[[SK:.*]] : memref<64x136xbf16, #gpu.address_space<workgroup>>, %{{.*}} : memref<64x136xbf16, #gpu.address_space<workgroup>>) kernel
// CHECK: nvgpu.ldmatrix %[[SK]][{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvvm.mma.sync A[{{.*}}]  B[{{.*}}]  C[{{.*}}]  {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
func.func @forward_bf16_d128(%q: memref<2x8x?x128xbf16>, %k: memref<2x8x?x128xbf16>, %v: memref<2x8x?x128xbf16>, %o: memref<2x8x?x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<2x8x?x128xbf16>, memref<2x8x?x128xbf16>, memref<2x8x?x128xbf16>) outs(%o : memref<2x8x?x128xbf16>) block_size = 1560 window = 2
  return
}
