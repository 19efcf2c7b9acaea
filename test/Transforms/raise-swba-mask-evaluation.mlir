// RUN: swba-opt %s --raise-swba --remarks-filter-missed=raise-swba --split-input-file --verify-diagnostics | FileCheck %s
//
// --raise-swba's mask evaluation: masks are constant-folded through the ops
// that compute them (folders for ops without a fast path, reshapes that
// merge mask axes, broadcasts); what cannot be evaluated is refused with a
// remark naming it.

// Frames from torch's integer floor division (sitofp, divf, math.floor,
// fptosi in f64; floor and fptosi through their folders): frames of 2,
// window 2.
// CHECK-LABEL: func.func @floor_division_frames
// CHECK: swba.attention {{.*}} block_size = 2 window = 2 scale = 5.000000e-01
// CHECK-NOT: linalg.softmax
func.func @floor_division_frames(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i64
    %ji = arith.index_cast %j : index to i64
    %if = arith.sitofp %ii : i64 to f64
    %jf = arith.sitofp %ji : i64 to f64
    %two = arith.constant 2.0 : f64
    %iq = arith.divf %if, %two : f64
    %jq = arith.divf %jf, %two : f64
    %ifl = math.floor %iq : f64
    %jfl = math.floor %jq : f64
    %fq = arith.fptosi %ifl : f64 to i64
    %fk = arith.fptosi %jfl : f64 to i64
    %d = arith.subi %fq, %fk : i64
    %c0 = arith.constant 0 : i64
    %c2 = arith.constant 2 : i64
    %past = arith.cmpi sge, %d, %c0 : i64
    %near = arith.cmpi slt, %d, %c2 : i64
    %keep = arith.andi %past, %near : i1
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// A frame-level mask repeated to tokens (broadcast, then collapse_shape
// merging each frame axis with its token axis): frames of 2, window 2.
// CHECK-LABEL: func.func @frame_mask_collapsed
// CHECK: swba.attention {{.*}} block_size = 2 window = 2 scale = 5.000000e-01
func.func @frame_mask_collapsed(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %mf = arith.constant dense<[[true, false, false, false], [true, true, false, false], [false, true, true, false], [false, false, true, true]]> : tensor<4x4xi1>
  %mbe = tensor.empty() : tensor<4x2x4x2xi1>
  %mb = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%mf : tensor<4x4xi1>) outs(%mbe : tensor<4x2x4x2xi1>) {
  ^bb0(%b: i1, %bo: i1):
    linalg.yield %b : i1
  } -> tensor<4x2x4x2xi1>
  %m = tensor.collapse_shape %mb [[0, 1], [2, 3]] : tensor<4x2x4x2xi1> into tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// The same frame mask with one frame pair flipped (frame 3 sees frame 1):
// evaluated through the collapse, and refused.
// CHECK-LABEL: func.func @frame_mask_collapsed_flipped
// CHECK-NOT: swba.attention
func.func @frame_mask_collapsed_flipped(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %mf = arith.constant dense<[[true, false, false, false], [true, true, false, false], [false, true, true, false], [false, true, true, true]]> : tensor<4x4xi1>
  %mbe = tensor.empty() : tensor<4x2x4x2xi1>
  %mb = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%mf : tensor<4x4xi1>) outs(%mbe : tensor<4x2x4x2xi1>) {
  ^bb0(%b: i1, %bo: i1):
    linalg.yield %b : i1
  } -> tensor<4x2x4x2xi1>
  %m = tensor.collapse_shape %mb [[0, 1], [2, 3]] : tensor<4x2x4x2xi1> into tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{not a sliding window block mask for any block size}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// A mask that differs per batch/head (it reads linalg.index 0): refused.
// CHECK-LABEL: func.func @mask_per_head
// CHECK-NOT: swba.attention
func.func @mask_per_head(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %me = tensor.empty() : tensor<2x8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%me : tensor<2x8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %ii = arith.index_cast %i : index to i64
    %ji = arith.index_cast %j : index to i64
    %if = arith.sitofp %ii : i64 to f64
    %jf = arith.sitofp %ji : i64 to f64
    %two = arith.constant 2.0 : f64
    %iq = arith.divf %if, %two : f64
    %jq = arith.divf %jf, %two : f64
    %ifl = math.floor %iq : f64
    %jfl = math.floor %jq : f64
    %fq = arith.fptosi %ifl : f64 to i64
    %fk = arith.fptosi %jfl : f64 to i64
    %d = arith.subi %fq, %fk : i64
    %c0 = arith.constant 0 : i64
    %c2 = arith.constant 2 : i64
    %past = arith.cmpi sge, %d, %c0 : i64
    %near = arith.cmpi slt, %d, %c2 : i64
    %h = linalg.index 0 : index
    %hz = arith.constant 0 : index
    %h0 = arith.cmpi eq, %h, %hz : index
    %both = arith.andi %past, %near : i1
    %keep = arith.ori %both, %h0 : i1
    linalg.yield %keep : i1
  } -> tensor<2x8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<2x8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{the mask depends on the batch/head index}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// A mask whose frame index divides by zero: divsi has no value there (its
// folder refuses), so nothing is proven.
// CHECK-LABEL: func.func @mask_divides_by_zero
// CHECK-NOT: swba.attention
func.func @mask_divides_by_zero(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %z = arith.constant 0 : index
    %fq = arith.divsi %i, %z : index
    %keep = arith.cmpi sle, %j, %fq : index
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{cannot evaluate 'arith.divsi' on these operands (it does not fold) (at query 0)}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// A mask computed by a reduction: not evaluated.
// CHECK-LABEL: func.func @mask_from_reduction
// CHECK-NOT: swba.attention
func.func @mask_from_reduction(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %mc = arith.constant dense<true> : tensor<8x8x2xi1>
  %mi = arith.constant dense<false> : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%mc : tensor<8x8x2xi1>) outs(%mi : tensor<8x8xi1>) {
  ^bb0(%a: i1, %acc: i1):
    %o = arith.ori %a, %acc : i1
    linalg.yield %o : i1
  } -> tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{cannot evaluate 'linalg.generic': the mask is reduced over a loop}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// k's one head repeated with repeat_interleave (a broadcast inside the head
// axis, then collapse_shape) but v has both: not grouped-query attention,
// and raised with k's repeated heads kept (two heads of k, v and q).
// CHECK-LABEL: func.func @gqa_k_only
// CHECK: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
func.func @gqa_k_only(%q: tensor<2x8x4xf32>, %k: tensor<1x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i64
    %ji = arith.index_cast %j : index to i64
    %if = arith.sitofp %ii : i64 to f64
    %jf = arith.sitofp %ji : i64 to f64
    %two = arith.constant 2.0 : f64
    %iq = arith.divf %if, %two : f64
    %jq = arith.divf %jf, %two : f64
    %ifl = math.floor %iq : f64
    %jfl = math.floor %jq : f64
    %fq = arith.fptosi %ifl : f64 to i64
    %fk = arith.fptosi %jfl : f64 to i64
    %d = arith.subi %fq, %fk : i64
    %c0 = arith.constant 0 : i64
    %c2 = arith.constant 2 : i64
    %past = arith.cmpi sge, %d, %c0 : i64
    %near = arith.cmpi slt, %d, %c2 : i64
    %keep = arith.andi %past, %near : i1
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %kbe = tensor.empty() : tensor<1x2x8x4xf32>
  %kb = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%k : tensor<1x8x4xf32>) outs(%kbe : tensor<1x2x8x4xf32>) {
  ^bb0(%kin: f32, %kout: f32):
    linalg.yield %kin : f32
  } -> tensor<1x2x8x4xf32>
  %kr = tensor.collapse_shape %kb [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %kr : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Both k and v repeated that way: grouped-query attention, 2 query heads
// per kv head.
// CHECK-LABEL: func.func @gqa_k_and_v
// CHECK: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) {{.*}} block_size = 2 window = 2
func.func @gqa_k_and_v(%q: tensor<2x8x4xf32>, %k: tensor<1x8x4xf32>, %v: tensor<1x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i64
    %ji = arith.index_cast %j : index to i64
    %if = arith.sitofp %ii : i64 to f64
    %jf = arith.sitofp %ji : i64 to f64
    %two = arith.constant 2.0 : f64
    %iq = arith.divf %if, %two : f64
    %jq = arith.divf %jf, %two : f64
    %ifl = math.floor %iq : f64
    %jfl = math.floor %jq : f64
    %fq = arith.fptosi %ifl : f64 to i64
    %fk = arith.fptosi %jfl : f64 to i64
    %d = arith.subi %fq, %fk : i64
    %c0 = arith.constant 0 : i64
    %c2 = arith.constant 2 : i64
    %past = arith.cmpi sge, %d, %c0 : i64
    %near = arith.cmpi slt, %d, %c2 : i64
    %keep = arith.andi %past, %near : i1
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %kbe = tensor.empty() : tensor<1x2x8x4xf32>
  %kb = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%k : tensor<1x8x4xf32>) outs(%kbe : tensor<1x2x8x4xf32>) {
  ^bb0(%kin: f32, %kout: f32):
    linalg.yield %kin : f32
  } -> tensor<1x2x8x4xf32>
  %kr = tensor.collapse_shape %kb [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %vbe = tensor.empty() : tensor<1x2x8x4xf32>
  %vb = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%v : tensor<1x8x4xf32>) outs(%vbe : tensor<1x2x8x4xf32>) {
  ^bb0(%vin: f32, %vout: f32):
    linalg.yield %vin : f32
  } -> tensor<1x2x8x4xf32>
  %vr = tensor.collapse_shape %vb [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %kr : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%p, %vr : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Decomposed SDPA's empty-row guard: probabilities zeroed on rows whose
// logits are all -inf. A proven SWBA mask leaves no such row, so the guard
// is dropped (causal, block_size 1).
// CHECK-LABEL: func.func @empty_row_guard
// CHECK: swba.attention {{.*}} block_size = 1 window = 8 scale = 1.000000e+00
// CHECK-NOT: linalg.generic
func.func @empty_row_guard(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %false = arith.constant false
  %zeros = arith.constant dense<0.0> : tensor<2x8x8xf32>
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %keep = arith.cmpi sle, %j, %i : index
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %re = tensor.empty() : tensor<2x8xf32>
  %rm = linalg.fill ins(%ninf : f32) outs(%re : tensor<2x8xf32>) -> tensor<2x8xf32>
  %max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x8x8xf32>) outs(%rm : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.maximumf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %max : tensor<2x8x8xf32>, tensor<2x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %e = math.exp %d : f32
    linalg.yield %e : f32
  } -> tensor<2x8x8xf32>
  %rz = linalg.fill ins(%zero : f32) outs(%re : tensor<2x8xf32>) -> tensor<2x8xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%ex : tensor<2x8x8xf32>) outs(%rz : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<2x8x8xf32>, tensor<2x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<2x8x8xf32>
  %be = tensor.empty() : tensor<2x8xi1>
  %bf = linalg.fill ins(%false : i1) outs(%be : tensor<2x8xi1>) -> tensor<2x8xi1>
  %any = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x8x8xf32>) outs(%bf : tensor<2x8xi1>) {
  ^bb0(%in: f32, %acc: i1):
    %isinf = arith.cmpf oeq, %in, %ninf : f32
    %seen = arith.cmpi eq, %isinf, %false : i1
    %a = arith.ori %seen, %acc : i1
    linalg.yield %a : i1
  } -> tensor<2x8xi1>
  %g = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%any, %p : tensor<2x8xi1>, tensor<2x8x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%a: i1, %in: f32, %out: f32):
    %none = arith.cmpi eq, %a, %false : i1
    %r = arith.select %none, %zero, %in : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%g, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// The guard tests the raw scores instead of the logits: not the guard the
// proof covers, left alone.
// CHECK-LABEL: func.func @empty_row_guard_on_scores
// CHECK-NOT: swba.attention
func.func @empty_row_guard_on_scores(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %false = arith.constant false
  %zeros = arith.constant dense<0.0> : tensor<2x8x8xf32>
  %me = tensor.empty() : tensor<8x8xi1>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xi1>) {
  ^bb0(%mo: i1):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %keep = arith.cmpi sle, %j, %i : index
    linalg.yield %keep : i1
  } -> tensor<8x8xi1>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %re = tensor.empty() : tensor<2x8xf32>
  %rm = linalg.fill ins(%ninf : f32) outs(%re : tensor<2x8xf32>) -> tensor<2x8xf32>
  %max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x8x8xf32>) outs(%rm : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.maximumf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %max : tensor<2x8x8xf32>, tensor<2x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %e = math.exp %d : f32
    linalg.yield %e : f32
  } -> tensor<2x8x8xf32>
  %rz = linalg.fill ins(%zero : f32) outs(%re : tensor<2x8xf32>) -> tensor<2x8xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%ex : tensor<2x8x8xf32>) outs(%rz : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<2x8x8xf32>, tensor<2x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<2x8x8xf32>
  %be = tensor.empty() : tensor<2x8xi1>
  %bf = linalg.fill ins(%false : i1) outs(%be : tensor<2x8xi1>) -> tensor<2x8xi1>
  %any = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%s : tensor<2x8x8xf32>) outs(%bf : tensor<2x8xi1>) {
  ^bb0(%in: f32, %acc: i1):
    %isinf = arith.cmpf oeq, %in, %ninf : f32
    %seen = arith.cmpi eq, %isinf, %false : i1
    %a = arith.ori %seen, %acc : i1
    linalg.yield %a : i1
  } -> tensor<2x8xi1>
  %g = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%any, %p : tensor<2x8xi1>, tensor<2x8x8xf32>) outs(%se : tensor<2x8x8xf32>) {
  ^bb0(%a: i1, %in: f32, %out: f32):
    %none = arith.cmpi eq, %a, %false : i1
    %r = arith.select %none, %zero, %in : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{the empty-row guard tests other values than the softmax input}}
  %o = linalg.batch_matmul ins(%g, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// An f16 model's mask as `log` of a 0/1 matrix in f16 (math.log's folder
// takes f32 and f64 only; the evaluator takes 16-bit floats itself), added
// to f16 scores: token window of 3.
// CHECK-LABEL: func.func @log_mask_f16
// CHECK: swba.attention {{.*}} block_size = 1 window = 3 scale = 1.000000e+00
// CHECK-NOT: math.log
func.func @log_mask_f16(%q: tensor<2x8x4xf16>, %k: tensor<2x8x4xf16>, %v: tensor<2x8x4xf16>) -> tensor<2x8x4xf16> {
  %zero = arith.constant 0.0 : f16
  %me = tensor.empty() : tensor<8x8xf16>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xf16>) {
  ^bb0(%mo: f16):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c3 = arith.constant 3 : index
    %causal = arith.cmpi ule, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi ult, %d, %c3 : index
    %keep = arith.andi %causal, %near : i1
    %one = arith.constant 1.0 : f16
    %kf = arith.select %keep, %one, %zero : f16
    %lg = math.log %kf : f16
    linalg.yield %lg : f16
  } -> tensor<8x8xf16>
  %se = tensor.empty() : tensor<2x8x8xf16>
  %sz = linalg.fill ins(%zero : f16) outs(%se : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf16>, tensor<2x8x4xf16>) outs(%sz : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %xe = tensor.empty() : tensor<2x8x8xf16>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf16>, tensor<8x8xf16>) outs(%xe : tensor<2x8x8xf16>) {
  ^bb0(%in: f16, %mv: f16, %out: f16):
    %r = arith.addf %in, %mv : f16
    linalg.yield %r : f16
  } -> tensor<2x8x8xf16>
  %pe = tensor.empty() : tensor<2x8x8xf16>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf16>) outs(%pe : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %oe = tensor.empty() : tensor<2x8x4xf16>
  %oz = linalg.fill ins(%zero : f16) outs(%oe : tensor<2x8x4xf16>) -> tensor<2x8x4xf16>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf16>, tensor<2x8x4xf16>) outs(%oz : tensor<2x8x4xf16>) -> tensor<2x8x4xf16>
  return %o : tensor<2x8x4xf16>
}

// -----

// The same with log of 0/0.5: the visible scores are shifted by log 0.5,
// not a mask; left alone.
// CHECK-LABEL: func.func @log_half_mask_f16
// CHECK-NOT: swba.attention
func.func @log_half_mask_f16(%q: tensor<2x8x4xf16>, %k: tensor<2x8x4xf16>, %v: tensor<2x8x4xf16>) -> tensor<2x8x4xf16> {
  %zero = arith.constant 0.0 : f16
  %me = tensor.empty() : tensor<8x8xf16>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%me : tensor<8x8xf16>) {
  ^bb0(%mo: f16):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c3 = arith.constant 3 : index
    %causal = arith.cmpi ule, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi ult, %d, %c3 : index
    %keep = arith.andi %causal, %near : i1
    %half = arith.constant 0.5 : f16
    %kf = arith.select %keep, %half, %zero : f16
    %lg = math.log %kf : f16
    linalg.yield %lg : f16
  } -> tensor<8x8xf16>
  %se = tensor.empty() : tensor<2x8x8xf16>
  %sz = linalg.fill ins(%zero : f16) outs(%se : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf16>, tensor<2x8x4xf16>) outs(%sz : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %xe = tensor.empty() : tensor<2x8x8xf16>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %m : tensor<2x8x8xf16>, tensor<8x8xf16>) outs(%xe : tensor<2x8x8xf16>) {
  ^bb0(%in: f16, %mv: f16, %out: f16):
    %r = arith.addf %in, %mv : f16
    linalg.yield %r : f16
  } -> tensor<2x8x8xf16>
  %pe = tensor.empty() : tensor<2x8x8xf16>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf16>) outs(%pe : tensor<2x8x8xf16>) -> tensor<2x8x8xf16>
  %oe = tensor.empty() : tensor<2x8x4xf16>
  %oz = linalg.fill ins(%zero : f16) outs(%oe : tensor<2x8x4xf16>) -> tensor<2x8x4xf16>
  // expected-remark @below {{is -0.69, neither 0 nor -inf}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf16>, tensor<2x8x4xf16>) outs(%oz : tensor<2x8x4xf16>) -> tensor<2x8x4xf16>
  return %o : tensor<2x8x4xf16>
}

// -----

// A token window of 1024 keys over 16384 queries and keys (2^28 pairs): a
// row's keys are decided 64 to 1024 at a time by interval bounds on the
// mask's index arithmetic, and only the blocks at the window's two edges
// key by key, well within max-mask-pairs.
// CHECK-LABEL: func.func @token_window_16k
// CHECK: swba.attention {{.*}} block_size = 1 window = 1024 scale = 1.000000e+00
func.func @token_window_16k(%q: tensor<1x2x16384x16xf32>, %k: tensor<1x2x16384x16xf32>, %v: tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x16384x16384xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x16384x16xf32>, tensor<1x2x16384x16xf32>) outs(%sz : tensor<1x2x16384x16384xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %cws = arith.constant 1024 : index
    %causal = arith.cmpi ule, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi ult, %d, %cws : index
    %keep0 = arith.andi %causal, %near : i1
    %keep = arith.andi %keep0, %keep0 : i1
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %oe = tensor.empty() : tensor<1x2x16384x16xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x16384x16384xf32>, tensor<1x2x16384x16xf32>) outs(%oz : tensor<1x2x16384x16xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16xf32>
  return %o : tensor<1x2x16384x16xf32>
}

// -----

// The same window from the distance in f32, halved by a product, halved
// again by a quotient and rounded down: floor((i - j) * 0.5 / 2) in [0,
// 256). The product, the quotient and floor of a block's distances are
// bounded by their values at the block's ends, so the blocks are decided
// whole here too (key by key, the mask takes 2^28 evaluations, past
// max-mask-pairs).
// CHECK-LABEL: func.func @token_window_16k_float_distance
// CHECK: swba.attention {{.*}} block_size = 1 window = 1024 scale = 1.000000e+00
func.func @token_window_16k_float_distance(%q: tensor<1x2x16384x16xf32>, %k: tensor<1x2x16384x16xf32>, %v: tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x16384x16384xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x16384x16xf32>, tensor<1x2x16384x16xf32>) outs(%sz : tensor<1x2x16384x16384xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %ii = arith.index_cast %i : index to i64
    %ji = arith.index_cast %j : index to i64
    %if = arith.sitofp %ii : i64 to f32
    %jf = arith.sitofp %ji : i64 to f32
    %d = arith.subf %if, %jf : f32
    %half = arith.constant 0.5 : f32
    %two = arith.constant 2.0 : f32
    %h = arith.mulf %d, %half : f32
    %quarter = arith.divf %h, %two : f32
    %fl = math.floor %quarter : f32
    %c0 = arith.constant 0.0 : f32
    %c256 = arith.constant 256.0 : f32
    %causal = arith.cmpf oge, %fl, %c0 : f32
    %near = arith.cmpf olt, %fl, %c256 : f32
    %keep0 = arith.andi %causal, %near : i1
    %keep = arith.andi %keep0, %keep0 : i1
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %oe = tensor.empty() : tensor<1x2x16384x16xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x16384x16384xf32>, tensor<1x2x16384x16xf32>) outs(%oz : tensor<1x2x16384x16xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16xf32>
  return %o : tensor<1x2x16384x16xf32>
}

// -----

// The same with one pair flipped, deep inside a decided block's
// neighbourhood: the blocks around it are undecided and evaluated key by
// key, and the gap is found.
// CHECK-LABEL: func.func @token_window_16k_one_flipped
// CHECK-NOT: swba.attention
func.func @token_window_16k_one_flipped(%q: tensor<1x2x16384x16xf32>, %k: tensor<1x2x16384x16xf32>, %v: tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x16384x16384xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x16384x16xf32>, tensor<1x2x16384x16xf32>) outs(%sz : tensor<1x2x16384x16384xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %cws = arith.constant 1024 : index
    %causal = arith.cmpi ule, %j, %i : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi ult, %d, %cws : index
    %keep0 = arith.andi %causal, %near : i1
    %fr = arith.constant 16379 : index
    %fc = arith.constant 15484 : index
    %isr = arith.cmpi eq, %i, %fr : index
    %isc = arith.cmpi eq, %j, %fc : index
    %both = arith.andi %isr, %isc : i1
    %keep = arith.xori %keep0, %both : i1
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16384xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x16384x16384xf32>) outs(%se : tensor<1x2x16384x16384xf32>) -> tensor<1x2x16384x16384xf32>
  %oe = tensor.empty() : tensor<1x2x16384x16xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x16384x16xf32>) -> tensor<1x2x16384x16xf32>
  // expected-remark @below {{query row 16379 sees keys [15356, 15484) and key 15485: not one contiguous range}}
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x16384x16384xf32>, tensor<1x2x16384x16xf32>) outs(%oz : tensor<1x2x16384x16xf32>) {
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %m = arith.mulf %a, %bb : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x16384x16xf32>
  return %o : tensor<1x2x16384x16xf32>
}
