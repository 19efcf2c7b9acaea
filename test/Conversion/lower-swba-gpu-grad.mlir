// --lower-swba{target=gpu} on swba.attention_grad: a delta buffer filled by
// the delta kernel (32 query rows a workgroup), then the dK/dV kernel over
// each key tile's reverse window and its GQA group and the dQ kernel over
// each query tile's window (both read only delta), in that order.
// RUN: swba-opt %s --lower-swba=target=gpu --canonicalize --cse | FileCheck %s

// CHECK-LABEL: func @backward
// CHECK-SAME: (%[[Q:[^:]*]]: memref<?x8x?x64xf16>, %[[K:[^:]*]]: memref<?x2x?x64xf16>, %[[V:[^:]*]]: memref<?x2x?x64xf16>, %[[O:[^:]*]]: memref<?x8x?x64xf16>, %[[DO:[^:]*]]: memref<?x8x?x64xf16>, %[[L:[^:]*]]: memref<?x8x?xf32>, %[[DQ:[^:]*]]: memref<?x8x?x64xf16>, %[[DK:[^:]*]]: memref<?x2x?x64xf16>, %[[DV:[^:]*]]: memref<?x2x?x64xf16>)
// The dynamic sizes the verifier cannot compare are asserted before any
// launch (here the last: Nq <= Nk).
// CHECK: %[[B:.*]] = memref.dim %[[Q]], %c0
// CHECK: %[[NQ:.*]] = memref.dim %[[Q]], %c2
// CHECK: %[[KB:.*]] = memref.dim %[[K]], %c0
// CHECK: %[[NK:.*]] = memref.dim %[[K]], %c2
// CHECK: %[[LE:.*]] = arith.cmpi ule, %[[NQ]], %[[NK]]
// CHECK: cf.assert %[[LE]], "swba.attention_grad: more queries than keys"
// CHECK: %[[DELTA:.*]] = gpu.alloc (%[[B]], %c8, %[[NQ]]) : memref<?x?x?xf32>
// CHECK: %[[DT:.*]] = arith.ceildivui %[[NQ]], %c32
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta blocks in (%c8, %[[DT]], %[[B]]) threads in (%c128, %c1, %c1) args(%[[DO]] : {{.*}}, %[[O]] : {{.*}}, %[[DELTA]] : memref<?x?x?xf32>)
// CHECK: %[[KT:.*]] = arith.ceildivui %[[NK]], %c64
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv blocks in (%c2, %[[KT]], %[[KB]]) threads in (%c128, %c1, %c1) args({{.*}}, %[[DELTA]] : {{.*}}, %[[DK]] : {{.*}}, %[[DV]] : {{.*}})
// CHECK: %[[QT:.*]] = arith.ceildivui %[[NQ]], %c64
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq blocks in (%c8, %[[QT]], %[[B]]) threads in (%c128, %c1, %c1) args(%[[Q]] : {{.*}}, %[[K]] : {{.*}}, %[[V]] : {{.*}}, %[[DO]] : {{.*}}, %[[L]] : {{.*}}, %[[DELTA]] : {{.*}}, %[[O]] : {{.*}}, %[[DQ]] : {{.*}})
// CHECK: gpu.dealloc %[[DELTA]]

// dQ: reads delta (writes none), then the key window of its rows.
// CHECK: gpu.func @swba_bwd_dq
// CHECK-NOT: memref.store %{{.*}}, %{{.*}} : memref<?x?x?xf32>
// CHECK: memref.load %{{.*}} : memref<?x?x?xf32>
// CHECK-NOT: memref.store %{{.*}}, %{{.*}} : memref<?x?x?xf32>
// CHECK: %[[LOW:.*]] = arith.maxsi %{{.*}}, %c2
// CHECK: %[[LOWF:.*]] = arith.subi %[[LOW]], %c2
// CHECK: %[[KB:.*]] = arith.muli %[[LOWF]], %c100
// CHECK: %[[LAST:.*]] = arith.muli %{{.*}}, %c100
// CHECK: %[[REST:.*]] = arith.minsi %{{.*}}, %c100 : index
// CHECK: %[[KE:.*]] = arith.addi %[[LAST]], %[[REST]] : index
// CHECK: scf.for %{{.*}} = %[[KB]] to %[[KE]] step %c64 iter_args
// CHECK: nvgpu.mma.sync
// CHECK: scf.if %{{.*}} -> (vector<2x2xf32>
// CHECK-NEXT: scf.yield
// CHECK-NEXT: } else {

// dK/dV: K and V tiles in shared memory (head dim 64), the reverse window
// [max(frame(k0) * 100, off) - off, max((frame(k1 - 1) + 3) * 100, off) - off)
// clipped to Nq (the window of 3 frames first clipped to the frames left
// before Nk, so that the end cannot wrap), times the 4 query heads of the
// group, as one loop.
// CHECK: gpu.func @swba_bwd_dkdv({{.*}}) workgroup({{.*}}, %{{.*}} : memref<64xf32, #gpu.address_space<workgroup>>, %{{.*}} : memref<64xf32, #gpu.address_space<workgroup>>, %[[SK:.*]] : memref<64x72xf16, #gpu.address_space<workgroup>>, %[[SV:.*]] : memref<64x72xf16, #gpu.address_space<workgroup>>)
// CHECK: %[[K0:.*]] = arith.muli %block_id_y, %c64
// CHECK: %[[KF0:.*]] = arith.divui %[[K0]], %c100
// CHECK: %[[KF1:.*]] = arith.divui %{{.*}}, %c100
// CHECK: %[[PB:.*]] = arith.muli %[[KF0]], %c100
// CHECK: %[[LAST:.*]] = arith.muli %[[KF1]], %c100
// CHECK: %[[LEFT:.*]] = arith.subi %{{.*}}, %[[LAST]]
// CHECK: %[[FR:.*]] = arith.minsi %{{.*}}, %c3
// CHECK: %[[SPAN0:.*]] = arith.muli %[[FR]], %c100
// CHECK: %[[SPANC:.*]] = arith.minsi %[[SPAN0]], %[[LEFT]]
// CHECK: %[[PE:.*]] = arith.addi %[[LAST]], %[[SPANC]]
// CHECK: %[[PBC:.*]] = arith.maxsi %[[PB]], %[[OFF:.*]] : index
// CHECK: %[[QB0:.*]] = arith.subi %[[PBC]], %[[OFF]]
// CHECK: %[[PEC:.*]] = arith.maxsi %[[PE]], %[[OFF]]
// CHECK: %[[QE0:.*]] = arith.subi %[[PEC]], %[[OFF]]
// CHECK: %[[QB:.*]] = arith.minsi %[[QB0]], %{{.*}}
// CHECK: %[[QE:.*]] = arith.minsi %[[QE0]], %{{.*}}
// CHECK: %[[SPAN:.*]] = arith.subi %[[QE]], %[[QB]]
// CHECK: %[[TILES:.*]] = arith.ceildivui %[[SPAN]], %c64
// CHECK: %[[PAIRS:.*]] = arith.muli %[[TILES]], %c4
// CHECK: scf.for %{{.*}} = %c0 to %[[PAIRS]] step %c1 iter_args
// CHECK: nvgpu.ldmatrix %[[SK]][{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.ldmatrix %[[SV]][{{.*}}] {numTiles = 4 : i32, transpose = false}
// CHECK: nvgpu.mma.sync
// CHECK: scf.if %{{.*}} -> (vector<2x2xf32>
// CHECK-NEXT: scf.yield
// CHECK-NEXT: } else {
func.func @backward(%q: memref<?x8x?x64xf16>, %k: memref<?x2x?x64xf16>, %v: memref<?x2x?x64xf16>, %o: memref<?x8x?x64xf16>, %do: memref<?x8x?x64xf16>, %l: memref<?x8x?xf32>, %dq: memref<?x8x?x64xf16>, %dk: memref<?x2x?x64xf16>, %dv: memref<?x2x?x64xf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x8x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>, memref<?x8x?x64xf16>, memref<?x8x?x64xf16>, memref<?x8x?xf32>) outs(%dq, %dk, %dv : memref<?x8x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>) block_size = 100 window = 3
  return
}
