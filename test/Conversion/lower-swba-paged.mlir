// --lower-swba{target=cpu} on swba.paged_attention: per sequence, positions
// from its length; per query tile, the key window walked page by page. The
// page table is loaded only for the pages of the window (and never past its
// columns), the caches only at that entry, after the check that it lies in
// the cache: --implicit-check-not makes any other load of the caches or the
// table (%arg1, %arg2, %arg3) a failure.
// RUN: swba-opt %s --split-input-file --lower-swba="target=cpu tile-q=16 tile-k=8" --canonicalize --cse \
// RUN:   | FileCheck %s --implicit-check-not="memref.load %arg1[" \
// RUN:       --implicit-check-not="memref.load %arg2[" --implicit-check-not="memref.load %arg3["

// Dynamic sizes everywhere but the heads and head dims; GQA 4/2, bs 12,
// window 3.
// CHECK-LABEL: func @paged
// CHECK-SAME: (%[[Q:.*]]: memref<?x4x?x16xf16>, %[[KC:.*]]: memref<?x?x2x16xf16>, %[[VC:.*]]: memref<?x?x2x16xf16>, %[[PT:.*]]: memref<?x?xi32>, %[[LENS:.*]]: memref<?xi32>, %[[O:.*]]: memref<?x4x?x16xf16>)
// CHECK-DAG: %[[NQ:.*]] = memref.dim %[[Q]], %c2
// A page size of 0 leaves no page valid, and divides as 1.
// CHECK-DAG: %[[PS0:.*]] = memref.dim %[[KC]], %c1
// CHECK-DAG: %[[NOPAGES:.*]] = arith.cmpi eq, %[[PS0]], %c0
// CHECK-DAG: %[[NP0:.*]] = memref.dim %[[KC]], %c0
// CHECK-DAG: %[[NP:.*]] = arith.select %[[NOPAGES]], %c0, %[[NP0]]
// CHECK-DAG: %[[PS:.*]] = arith.maxsi %[[PS0]], %c1
// CHECK-DAG: %[[MAXP:.*]] = memref.dim %[[PT]], %c1
// CHECK: scf.for %[[B:.*]] = %c0 to %{{.*}} step %c1 {
// len = max(seq_lens[b], 0); query row i at position i + len - Nq.
// CHECK: %[[LEN32:.*]] = memref.load %[[LENS]][%[[B]]]
// CHECK: %[[LENI:.*]] = arith.index_cast %[[LEN32]] : i32 to index
// CHECK: %[[LEN:.*]] = arith.maxsi %[[LENI]], %c0
// CHECK: %[[OFF:.*]] = arith.subi %[[LEN]], %[[NQ]]
// CHECK: %[[NB:.*]] = arith.subi %[[NQ]], %[[LEN]]
// CHECK: %[[FIRSTQ:.*]] = arith.maxsi %[[NB]], %c0
// CHECK: scf.for %[[H:.*]] = %c0 to %c4 step %c1 {
// CHECK: %[[HK:.*]] = arith.divui %[[H]], %c2
// Rows before the sequence start: out 0, nothing read.
// CHECK: scf.for %[[I:.*]] = %c0 to %[[FIRSTQ]] step %c1 {
// CHECK: memref.store %cst, %[[O]][%[[B]], %[[H]], %[[I]], %{{.*}}]
// The query tiles start at the first row inside the sequence.
// CHECK: scf.for %[[Q0:.*]] = %[[FIRSTQ]] to %[[NQ]] step %c16 {
// CHECK: %[[Q1:.*]] = arith.minsi %{{.*}}, %[[NQ]]
// Key window [KB, KE) of the tile, clipped to the sequence.
// CHECK: %[[P0:.*]] = arith.addi %[[Q0]], %[[OFF]]
// CHECK: %[[F0:.*]] = arith.divui %[[P0]], %c12
// CHECK: %[[P1:.*]] = arith.addi %[[Q1]], %[[OFF]]
// CHECK: %[[P1M:.*]] = arith.subi %[[P1]], %c1
// CHECK: %[[F1:.*]] = arith.divui %[[P1M]], %c12
// CHECK: %[[LOWC:.*]] = arith.maxsi %[[F0]], %c2
// CHECK: %[[LOWF:.*]] = arith.subi %[[LOWC]], %c2
// CHECK: %[[KB:.*]] = arith.muli %[[LOWF]], %c12
// CHECK: %[[LAST:.*]] = arith.muli %[[F1]], %c12
// CHECK: %[[LEFT:.*]] = arith.subi %[[LEN]], %[[LAST]]
// CHECK: %[[REST:.*]] = arith.minsi %[[LEFT]], %c12
// CHECK: %[[KE:.*]] = arith.addi %[[LAST]], %[[REST]]
// The pages of the window: [KB / ps, ceildiv(KE, ps)).
// CHECK: %[[PG0:.*]] = arith.divui %[[KB]], %[[PS]]
// CHECK: %[[PSM:.*]] = arith.subi %[[PS]], %c1
// CHECK: %[[KEUP:.*]] = arith.addi %[[KE]], %[[PSM]]
// CHECK: %[[PG1:.*]] = arith.divui %[[KEUP]], %[[PS]]
// CHECK: scf.for %[[PAGE:.*]] = %[[PG0]] to %[[PG1]] step %c1 {
// CHECK: %[[START:.*]] = arith.muli %[[PAGE]], %[[PS]]
// CHECK: %[[C0:.*]] = arith.maxsi %[[KB]], %[[START]]
// CHECK: %[[END:.*]] = arith.addi %[[START]], %[[PS]]
// CHECK: %[[C1:.*]] = arith.minsi %[[KE]], %[[END]]
// The entry, only for a page inside the table (-1 otherwise).
// CHECK: %[[INTABLE:.*]] = arith.cmpi ult, %[[PAGE]], %[[MAXP]]
// CHECK: %[[SLOT:.*]] = scf.if %[[INTABLE]] -> (index) {
// CHECK: %[[E32:.*]] = memref.load %[[PT]][%[[B]], %[[PAGE]]]
// CHECK: %[[E:.*]] = arith.index_cast %[[E32]]
// CHECK: scf.yield %[[E]]
// CHECK: } else {
// CHECK: scf.yield %c-1
// One unsigned comparison: negative entries and entries >= num_pages fail.
// CHECK: %[[VALID:.*]] = arith.cmpi ult, %[[SLOT]], %[[NP]]
// CHECK: scf.if %[[VALID]] {
// Key tiles of 8 within the page's part of the window.
// CHECK: scf.for %[[K0:.*]] = %[[C0]] to %[[C1]] step %c8 {
// Interior tile: the page's rows, no mask.
// CHECK: scf.if %{{.*}} {
// CHECK: memref.load %[[KC]][%[[SLOT]], %{{.*}}, %[[HK]], %{{.*}}]
// CHECK-NOT: arith.select
// CHECK: memref.load %[[VC]][%[[SLOT]], %{{.*}}, %[[HK]], %{{.*}}]
// CHECK: } else {
// Edge tile: the element mask.
// CHECK: memref.load %[[KC]][%[[SLOT]], %{{.*}}, %[[HK]], %{{.*}}]
// CHECK: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// CHECK: memref.load %[[VC]][%[[SLOT]], %{{.*}}, %[[HK]], %{{.*}}]
// An entry outside the cache: no load, NaN max and sum for the rows that
// see the page.
// CHECK: } else {
// CHECK: arith.select %{{.*}}, %[[NAN:.*]], %{{.*}} : f32
// CHECK: arith.select %{{.*}}, %[[NAN]], %{{.*}} : f32
// CHECK: }
// Epilogue: out = acc / sum.
// CHECK: arith.divf
// CHECK: arith.truncf
// CHECK: memref.store %{{.*}}, %[[O]][%[[B]], %[[H]]
func.func @paged(%q: memref<?x4x?x16xf16>, %kc: memref<?x?x2x16xf16>, %vc: memref<?x?x2x16xf16>,
                 %p: memref<?x?xi32>, %n: memref<?xi32>, %o: memref<?x4x?x16xf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %p, %n : memref<?x4x?x16xf16>, memref<?x?x2x16xf16>, memref<?x?x2x16xf16>, memref<?x?xi32>, memref<?xi32>)
                       outs(%o : memref<?x4x?x16xf16>) block_size = 12 window = 3
  return
}

// -----

// With lse: rows before the sequence start get -inf, the others max +
// log(sum).
// CHECK-LABEL: func @paged_lse
// CHECK-SAME: (%{{.*}}: memref<2x8x3x32xbf16>, %[[KC:.*]]: memref<40x16x1x32xbf16>, %[[VC:.*]]: memref<40x16x1x32xbf16>, %[[PT:.*]]: memref<2x10xi32>, %{{.*}}: memref<2xi32>, %{{.*}}: memref<2x8x3x32xbf16>, %[[L:.*]]: memref<2x8x3xf32>)
// CHECK-DAG: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: scf.for %[[B:.*]] = %c0 to %c2 step %c1 {
// CHECK: scf.for %[[H:.*]] = %c0 to %c8 step %c1 {
// CHECK: scf.for %[[I:.*]] = %c0 to %{{.*}} step %c1 {
// CHECK: memref.store %[[NEGINF]], %[[L]][%[[B]], %[[H]], %[[I]]]
// CHECK: %[[SLOT:.*]] = scf.if
// CHECK: memref.load %[[PT]][%[[B]], %{{.*}}]
// CHECK: memref.load %[[KC]][%[[SLOT]],
// CHECK: memref.load %[[VC]][%[[SLOT]],
// CHECK: memref.load %[[KC]][%[[SLOT]],
// CHECK: memref.load %[[VC]][%[[SLOT]],
// CHECK: math.log
// CHECK: memref.store %{{.*}}, %[[L]]
func.func @paged_lse(%q: memref<2x8x3x32xbf16>, %kc: memref<40x16x1x32xbf16>, %vc: memref<40x16x1x32xbf16>,
                     %p: memref<2x10xi32>, %n: memref<2xi32>, %o: memref<2x8x3x32xbf16>, %l: memref<2x8x3xf32>) {
  swba.paged_attention ins(%q, %kc, %vc, %p, %n : memref<2x8x3x32xbf16>, memref<40x16x1x32xbf16>, memref<40x16x1x32xbf16>, memref<2x10xi32>, memref<2xi32>)
                       outs(%o, %l : memref<2x8x3x32xbf16>, memref<2x8x3xf32>) block_size = 16 window = 4
  return
}
