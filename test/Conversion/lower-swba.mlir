// --lower-swba{target=cpu}: the loop nests, their block-window bounds, and
// the interior/edge split of key tiles (interior tiles carry no mask).
// RUN: swba-opt %s --lower-swba="target=cpu tile-q=16 tile-k=8" --canonicalize --cse --split-input-file | FileCheck %s

// Nq < Nk (a KV cache), GQA 4/2, dynamic batch and lengths, bs 12, window 3.
// CHECK-LABEL: func @forward_kv_cache
// CHECK-SAME: (%[[Q:.*]]: memref<?x4x?x16xf16>, %[[K:.*]]: memref<?x2x?x16xf16>, %[[V:.*]]: memref<?x2x?x16xf16>, %[[O:.*]]: memref<?x4x?x16xf16>)
// CHECK-DAG: %[[NQ:.*]] = memref.dim %[[Q]], %c2
// CHECK-DAG: %[[NK:.*]] = memref.dim %[[K]], %c2
// Query row i sits at position i + (Nk - Nq).
// CHECK: %[[OFF:.*]] = arith.subi %[[NK]], %[[NQ]] : index
// Scratch is allocated once, outside the loops.
// CHECK-DAG: memref.alloca() : memref<16x8xf32>
// CHECK-DAG: memref.alloca() : memref<16x16xf32>
// CHECK: scf.for %[[B:.*]] = %c0 to %{{.*}} step %c1 {
// CHECK: scf.for %[[H:.*]] = %c0 to %c4 step %c1 {
// GQA: query head h reads kv head h / 2.
// CHECK: %[[HK:.*]] = arith.divui %[[H]], %c2
// CHECK: scf.for %[[Q0:.*]] = %c0 to %[[NQ]] step %c16 {
// CHECK: %[[Q1:.*]] = arith.minsi %{{.*}}, %[[NQ]]
// Key window: [max(0, frame(q0+off) - 2) * 12, min((frame(q1-1+off) + 1) * 12, Nk)),
// the end computed as F1 * 12 + min(Nk - F1 * 12, 12), which cannot wrap.
// CHECK: %[[P0:.*]] = arith.addi %[[Q0]], %[[OFF]]
// CHECK: %[[F0:.*]] = arith.divui %[[P0]], %c12
// CHECK: %[[P1:.*]] = arith.addi %[[Q1]], %[[OFF]]
// CHECK: %[[P1M:.*]] = arith.subi %[[P1]], %c1
// CHECK: %[[F1:.*]] = arith.divui %[[P1M]], %c12
// CHECK: %[[LOWC:.*]] = arith.maxsi %[[F0]], %c2
// CHECK: %[[LOWF:.*]] = arith.subi %[[LOWC]], %c2
// CHECK: %[[KB:.*]] = arith.muli %[[LOWF]], %c12
// CHECK: %[[LAST:.*]] = arith.muli %[[F1]], %c12
// CHECK: %[[LEFT:.*]] = arith.subi %[[NK]], %[[LAST]]
// CHECK: %[[REST:.*]] = arith.minsi %[[LEFT]], %c12
// CHECK: %[[KE:.*]] = arith.addi %[[LAST]], %[[REST]]
// CHECK: scf.for %[[K0:.*]] = %[[KB]] to %[[KE]] step %c8 {
// CHECK: %[[K1:.*]] = arith.minsi %{{.*}}, %[[KE]]
// Interior iff frame(k1-1) <= frame(q0+off) and frame(q1-1+off) - frame(k0) < 3.
// CHECK: %[[KF0:.*]] = arith.divui %[[K0]], %c12
// CHECK: %[[KL:.*]] = arith.subi %[[K1]], %c1
// CHECK: %[[KF1:.*]] = arith.divui %[[KL]], %c12
// CHECK: %[[NOTFUT:.*]] = arith.cmpi ule, %[[KF1]], %[[F0]]
// CHECK: %[[DIST:.*]] = arith.subi %[[F1]], %[[KF0]]
// CHECK: %[[INWIN:.*]] = arith.cmpi ult, %[[DIST]], %c3
// CHECK: %[[INTERIOR:.*]] = arith.andi %[[NOTFUT]], %[[INWIN]]
// CHECK: scf.if %[[INTERIOR]] {
// The interior tile: scores, online softmax, P.V; no mask arithmetic.
// CHECK-NOT: arith.cmpi
// CHECK-NOT: arith.select
// CHECK: math.exp
// CHECK-NOT: arith.cmpi
// CHECK-NOT: arith.select
// CHECK: } else {
// The edge tile: the element mask on frames, and the guard for rows that
// have seen no visible key yet.
// CHECK: arith.cmpi ule
// CHECK: arith.cmpi ult
// CHECK: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// CHECK: arith.cmpf oeq
// CHECK: math.exp
// CHECK: }
// Epilogue: out = acc / sum, narrowed to f16.
// CHECK: arith.divf
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: memref.store %{{.*}}, %[[O]][%[[B]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x4x?x16xf16>
func.func @forward_kv_cache(%q: memref<?x4x?x16xf16>, %k: memref<?x2x?x16xf16>, %v: memref<?x2x?x16xf16>, %o: memref<?x4x?x16xf16>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x16xf16>, memref<?x2x?x16xf16>, memref<?x2x?x16xf16>) outs(%o : memref<?x4x?x16xf16>) block_size = 12 window = 3
  return
}

// -----

// lse = max + log(sum) is written when requested; the scale attribute is used.
// CHECK-LABEL: func @forward_lse
// CHECK-SAME: %[[L:[^:]*]]: memref<1x2x40xf32>)
// CHECK: arith.constant 5.000000e-01 : f32
// CHECK: scf.if
// CHECK: } else {
// CHECK: }
// CHECK: %[[LOG:.*]] = math.log
// CHECK: %[[LSE:.*]] = arith.addf %{{.*}}, %[[LOG]] : f32
// CHECK: memref.store %[[LSE]], %[[L]]
func.func @forward_lse(%q: memref<1x2x40x8xf32>, %o: memref<1x2x40x8xf32>, %l: memref<1x2x40xf32>) {
  swba.attention ins(%q, %q, %q : memref<1x2x40x8xf32>, memref<1x2x40x8xf32>, memref<1x2x40x8xf32>) outs(%o, %l : memref<1x2x40x8xf32>, memref<1x2x40xf32>) block_size = 5 window = 2 scale = 0.5
  return
}

// -----

// Backward: delta, then dK/dV over the reverse window, then dQ over the
// window.
// CHECK-LABEL: func @backward
// CHECK-SAME: (%[[Q:[^:]*]]: memref<?x4x?x8xf32>, %[[K:[^:]*]]: memref<?x2x?x8xf32>
// CHECK-DAG: %[[NQ:.*]] = memref.dim %[[Q]], %c2
// CHECK-DAG: %[[NK:.*]] = memref.dim %[[K]], %c2
// CHECK: %[[OFF:.*]] = arith.subi %[[NK]], %[[NQ]] : index
// CHECK: %[[DELTA:.*]] = memref.alloc(%{{.*}}, %[[NQ]]) : memref<?x4x?xf32>
// CHECK: memref.store %{{.*}}, %[[DELTA]]
// dK/dV: per kv head, per key tile, over the query heads of the group and
// the query rows [max(frame(k0) * 6, off) - off, max((frame(k1-1) + 4) * 6, off) - off),
// the window of 4 frames first clipped to the frames left before Nk, so
// that the end cannot wrap.
// CHECK: scf.for %[[HK:.*]] = %c0 to %c2 step %c1 {
// CHECK: scf.for %[[K0:.*]] = %c0 to %[[NK]] step %c8 {
// CHECK: %[[K1:.*]] = arith.minsi %{{.*}}, %[[NK]]
// CHECK: %[[KF0:.*]] = arith.divui %[[K0]], %c6
// CHECK: %[[KL:.*]] = arith.subi %[[K1]], %c1
// CHECK: %[[KF1:.*]] = arith.divui %[[KL]], %c6
// CHECK: %[[PB:.*]] = arith.muli %[[KF0]], %c6
// CHECK: %[[LAST:.*]] = arith.muli %[[KF1]], %c6
// CHECK: %[[LEFT:.*]] = arith.subi %[[NK]], %[[LAST]]
// CHECK: %[[LEFT1:.*]] = arith.subi %[[LEFT]], %c1
// CHECK: %[[FL0:.*]] = arith.divui %[[LEFT1]], %c6
// CHECK: %[[FL:.*]] = arith.addi %[[FL0]], %c1
// CHECK: %[[FR:.*]] = arith.minsi %[[FL]], %c4
// CHECK: %[[SPAN:.*]] = arith.muli %[[FR]], %c6
// CHECK: %[[SPANC:.*]] = arith.minsi %[[SPAN]], %[[LEFT]]
// CHECK: %[[PE:.*]] = arith.addi %[[LAST]], %[[SPANC]]
// CHECK: %[[PBC:.*]] = arith.maxsi %[[PB]], %[[OFF]]
// CHECK: %[[QB0:.*]] = arith.subi %[[PBC]], %[[OFF]]
// CHECK: %[[PEC:.*]] = arith.maxsi %[[PE]], %[[OFF]]
// CHECK: %[[QE0:.*]] = arith.subi %[[PEC]], %[[OFF]]
// CHECK: %[[QB:.*]] = arith.minsi %[[QB0]], %[[NQ]]
// CHECK: %[[QE:.*]] = arith.minsi %[[QE0]], %[[NQ]]
// CHECK: %[[H0:.*]] = arith.muli %[[HK]], %c2
// CHECK: %[[H1:.*]] = arith.addi %[[H0]], %c2
// CHECK: scf.for %{{.*}} = %[[H0]] to %[[H1]] step %c1 {
// CHECK: scf.for %{{.*}} = %[[QB]] to %[[QE]] step %c16 {
// CHECK: scf.if
// CHECK-NOT: arith.select
// CHECK: } else {
// CHECK: arith.select
// dQ: per query head and tile, over the key window.
// CHECK: scf.for %[[Q0:.*]] = %c0 to %[[NQ]] step %c16 {
// CHECK: %[[KB:.*]] = arith.muli %{{.*}}, %c6
// CHECK: %[[DQLAST:.*]] = arith.muli %{{.*}}, %c6
// CHECK: %[[DQLEFT:.*]] = arith.subi %[[NK]], %[[DQLAST]]
// CHECK: %[[DQREST:.*]] = arith.minsi %[[DQLEFT]], %c6
// CHECK: %[[KE:.*]] = arith.addi %[[DQLAST]], %[[DQREST]]
// CHECK: scf.for %{{.*}} = %[[KB]] to %[[KE]] step %c8 {
// CHECK: scf.if
// CHECK: memref.dealloc %[[DELTA]]
func.func @backward(%q: memref<?x4x?x8xf32>, %k: memref<?x2x?x8xf32>, %v: memref<?x2x?x8xf32>,
                    %o: memref<?x4x?x8xf32>, %do: memref<?x4x?x8xf32>, %lse: memref<?x4x?xf32>,
                    %dq: memref<?x4x?x8xf32>, %dk: memref<?x2x?x8xf32>, %dv: memref<?x2x?x8xf32>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : memref<?x4x?x8xf32>, memref<?x2x?x8xf32>, memref<?x2x?x8xf32>, memref<?x4x?x8xf32>, memref<?x4x?x8xf32>, memref<?x4x?xf32>)
                      outs(%dq, %dk, %dv : memref<?x4x?x8xf32>, memref<?x2x?x8xf32>, memref<?x2x?x8xf32>) block_size = 6 window = 4
  return
}
