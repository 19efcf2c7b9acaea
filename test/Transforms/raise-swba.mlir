// RUN: swba-opt %s --raise-swba --remarks-filter-missed=raise-swba --split-input-file --verify-diagnostics | FileCheck %s
//
// --raise-swba: each recognized form of masked attention becomes one
// swba.attention with the inferred block_size/window and the proven scale;
// beside each, near misses that must stay as they are, with a remark.

// A dense boolean mask (frames of 2, window 2) selected against -inf, the
// scale on the scores, linalg.softmax, batch and heads collapsed.
// CHECK-LABEL: func.func @dense_select_softmax
// CHECK-SAME: (%[[Q:.*]]: tensor<2x8x4xf32>, %[[K:.*]]: tensor<2x8x4xf32>, %[[V:.*]]: tensor<2x8x4xf32>)
// CHECK-DAG: %[[QE:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0, 1], [2], [3]] output_shape [1, 2, 8, 4]
// CHECK-DAG: %[[KE:.*]] = tensor.expand_shape %[[K]]
// CHECK-DAG: %[[VE:.*]] = tensor.expand_shape %[[V]]
// CHECK: %[[A:.*]] = swba.attention ins(%[[QE]], %[[KE]], %[[VE]] : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%{{.*}} : tensor<1x2x8x4xf32>) block_size = 2 window = 2 scale = 5.000000e-01
// CHECK: %[[R:.*]] = tensor.collapse_shape %[[A]] {{\[\[}}0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
// CHECK: return %[[R]]
// CHECK-NOT: linalg.
func.func @dense_select_softmax(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %mask = arith.constant dense<[[true, true, false, false, false, false, false, false], [true, true, false, false, false, false, false, false], [true, true, true, true, false, false, false, false], [true, true, true, true, false, false, false, false], [false, false, true, true, true, true, false, false], [false, false, true, true, true, true, false, false], [false, false, false, false, true, true, true, true], [false, false, false, false, true, true, true, true]]> : tensor<8x8xi1>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
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

// One mask element differs from the SWBA mask: left alone.
// CHECK-LABEL: func.func @dense_select_one_off
// CHECK-NOT: swba.attention
// CHECK: linalg.softmax
func.func @dense_select_one_off(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %mask = arith.constant dense<[[true, true, false, false, false, false, false, false], [true, true, false, false, false, false, false, false], [true, true, true, true, false, false, false, false], [true, true, true, true, false, false, false, false], [false, false, true, true, true, true, false, false], [false, true, true, true, true, true, false, false], [false, false, false, false, true, true, true, true], [false, false, false, false, true, true, true, true]]> : tensor<8x8xi1>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{not a sliding window block mask for any block size; the closest: query row 5 sees keys [1, 6) but block_size=2 window=2 would give [2, 6)}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Softmax over the query axis: left alone.
// CHECK-LABEL: func.func @softmax_wrong_axis
// CHECK-NOT: swba.attention
func.func @softmax_wrong_axis(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %mask = arith.constant dense<[[true, true, false, false, false, false, false, false], [true, true, false, false, false, false, false, false], [true, true, true, true, false, false, false, false], [true, true, true, true, false, false, false, false], [false, false, true, true, true, true, false, false], [false, false, true, true, true, true, false, false], [false, false, false, false, true, true, true, true], [false, false, false, false, true, true, true, true]]> : tensor<8x8xi1>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(1) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{linalg.softmax normalizes over dimension 1, not the key axis}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// The mask applied to the probabilities instead of the scores: left alone.
// CHECK-LABEL: func.func @mask_after_softmax
// CHECK-NOT: swba.attention
func.func @mask_after_softmax(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %sm = linalg.softmax dimension(2) ins(%s : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %mask = arith.constant dense<[[true, true, false, false, false, false, false, false], [true, true, false, false, false, false, false, false], [true, true, true, true, false, false, false, false], [true, true, true, true, false, false, false, false], [false, false, true, true, true, true, false, false], [false, false, true, true, true, true, false, false], [false, false, false, false, true, true, true, true], [false, false, false, false, true, true, true, true]]> : tensor<8x8xi1>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%sm, %mask : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %scale : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{the probabilities are not a softmax: found 'arith.select'}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// The scale is a function argument, not a constant: left alone.
// CHECK-LABEL: func.func @scale_not_constant
// CHECK-NOT: swba.attention
func.func @scale_not_constant(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>, %factor: f32) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %mask = arith.constant dense<[[true, true, false, false, false, false, false, false], [true, true, false, false, false, false, false, false], [true, true, true, true, false, false, false, false], [true, true, true, true, false, false, false, false], [false, false, true, true, true, true, false, false], [false, false, true, true, true, true, false, false], [false, false, false, false, true, true, true, true], [false, false, false, false, true, true, true, true]]> : tensor<8x8xi1>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<2x8x8xf32>, tensor<8x8xi1>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %keep: i1, %out: f32):
    %sc = arith.mulf %in, %factor : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{the scores are scaled by a value that is not a constant}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// The mask is a function argument: nothing to prove it with.
// CHECK-LABEL: func.func @mask_argument
// CHECK-NOT: swba.attention
func.func @mask_argument(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>, %m: tensor<8x8xi1>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
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
  // expected-remark @below {{the mask is not a compile-time constant: it reads %arg3}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// A token-level sliding window (block_size 1) computed from linalg.index,
// added as 0/-inf; the scale is applied to q.
// CHECK-LABEL: func.func @token_window_index_mask
// CHECK: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%{{.*}} : tensor<1x2x8x4xf32>) block_size = 1 window = 3 scale = 2.500000e-01
// CHECK-NOT: linalg.generic
func.func @token_window_index_mask(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %qe = tensor.empty() : tensor<2x8x4xf32>
  %qs = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%q : tensor<2x8x4xf32>) outs(%qe : tensor<2x8x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %c = arith.constant 0.25 : f32
    %m = arith.mulf %in, %c : f32
    linalg.yield %m : f32
  } -> tensor<2x8x4xf32>
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%qs, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<2x8x8xf32>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c3 = arith.constant 3 : index
    %causal = arith.cmpi ule, %j, %i : index
    %dist = arith.subi %i, %j : index
    %near = arith.cmpi ult, %dist, %c3 : index
    %keep = arith.andi %causal, %near : i1
    %neg = arith.select %keep, %zero, %ninf : f32
    %r = arith.addf %in, %neg : f32
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

// A bidirectional window |i - j| < 3: not causal, left alone.
// CHECK-LABEL: func.func @bidirectional_window
// CHECK-NOT: swba.attention
func.func @bidirectional_window(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<2x8x8xf32>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c3 = arith.constant 3 : index
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %dist = arith.subi %ii, %jj : i64
    %c3i = arith.constant 3 : i64
    %cm3i = arith.constant -3 : i64
    %lo = arith.cmpi sgt, %dist, %cm3i : i64
    %hi = arith.cmpi slt, %dist, %c3i : i64
    %keep = arith.andi %lo, %hi : i1
    %neg = arith.select %keep, %zero, %ninf : f32
    %r = arith.addf %in, %neg : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{not a sliding window block mask for any block size; the closest: query row 0 sees keys [0, 3)}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Masked scores get -10000, which does not provably vanish: left alone.
// CHECK-LABEL: func.func @mask_not_infinite
// CHECK-NOT: swba.attention
func.func @mask_not_infinite(%q: tensor<2x8x4xf32>, %k: tensor<2x8x4xf32>, %v: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %big = arith.constant -1.0e+04 : f32
  %se = tensor.empty() : tensor<2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x8x4xf32>, tensor<2x8x4xf32>) outs(%sz : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %xe = tensor.empty() : tensor<2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<2x8x8xf32>) outs(%xe : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c3 = arith.constant 3 : index
    %causal = arith.cmpi ule, %j, %i : index
    %dist = arith.subi %i, %j : index
    %near = arith.cmpi ult, %dist, %c3 : index
    %keep = arith.andi %causal, %near : i1
    %neg = arith.select %keep, %zero, %big : f32
    %r = arith.addf %in, %neg : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  %pe = tensor.empty() : tensor<2x8x8xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x8x8xf32>) outs(%pe : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  // expected-remark @below {{the mask value at (query 0, key 1) is -10000.00, neither 0 nor -inf (or at most half the lowest finite value)}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %o : tensor<2x8x4xf32>
}

// -----

// Three new queries against a cache of 16 keys, frames of 4, window 2,
// positions bottom-right aligned (query row i sits at i + 13). The lowest
// finite f32 masks like -inf. Frames of 8 with window 1 select the same
// pairs (keys 8..15), and the pass picks the largest block size that fits.
// CHECK-LABEL: func.func @decode_bottom_right
// CHECK: swba.attention {{.*}} tensor<1x2x3x4xf32>, tensor<1x2x16x4xf32>, tensor<1x2x16x4xf32>) outs(%{{.*}} : tensor<1x2x3x4xf32>) block_size = 8 window = 1 scale = 5.000000e-01
func.func @decode_bottom_right(%q: tensor<2x3x4xf32>, %k: tensor<2x16x4xf32>, %v: tensor<2x16x4xf32>) -> tensor<2x3x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %lowest = arith.constant -3.40282347E+38 : f32
  %se = tensor.empty() : tensor<2x3x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x3x4xf32>, tensor<2x16x4xf32>) outs(%sz : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %xe = tensor.empty() : tensor<2x3x16xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<2x3x16xf32>) outs(%xe : tensor<2x3x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c13 = arith.constant 13 : index
    %c4 = arith.constant 4 : index
    %c2 = arith.constant 2 : index
    %pos = arith.addi %i, %c13 : index
    %fq = arith.divui %pos, %c4 : index
    %fk = arith.divui %j, %c4 : index
    %notfuture = arith.cmpi ule, %fk, %fq : index
    %back = arith.subi %fq, %fk : index
    %inwin = arith.cmpi ult, %back, %c2 : index
    %keep = arith.andi %notfuture, %inwin : i1
    %neg = arith.select %keep, %zero, %lowest : f32
    %sc = arith.mulf %in, %scale : f32
    %r = arith.addf %sc, %neg : f32
    linalg.yield %r : f32
  } -> tensor<2x3x16xf32>
  %pe = tensor.empty() : tensor<2x3x16xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x3x16xf32>) outs(%pe : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %oe = tensor.empty() : tensor<2x3x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x3x16xf32>, tensor<2x16x4xf32>) outs(%oz : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %o : tensor<2x3x4xf32>
}

// -----

// The same frames with query row i at position i (top-left aligned):
// not what the op computes for Nq < Nk, left alone.
// CHECK-LABEL: func.func @decode_top_left
// CHECK-NOT: swba.attention
func.func @decode_top_left(%q: tensor<2x3x4xf32>, %k: tensor<2x16x4xf32>, %v: tensor<2x16x4xf32>) -> tensor<2x3x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.5 : f32
  %se = tensor.empty() : tensor<2x3x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>] ins(%q, %k : tensor<2x3x4xf32>, tensor<2x16x4xf32>) outs(%sz : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %xe = tensor.empty() : tensor<2x3x16xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<2x3x16xf32>) outs(%xe : tensor<2x3x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %c13 = arith.constant 0 : index
    %c4 = arith.constant 4 : index
    %c2 = arith.constant 2 : index
    %pos = arith.addi %i, %c13 : index
    %fq = arith.divui %pos, %c4 : index
    %fk = arith.divui %j, %c4 : index
    %notfuture = arith.cmpi ule, %fk, %fq : index
    %back = arith.subi %fq, %fk : index
    %inwin = arith.cmpi ult, %back, %c2 : index
    %keep = arith.andi %notfuture, %inwin : i1
    %neg = arith.select %keep, %zero, %ninf : f32
    %r = arith.addf %in, %neg : f32
    linalg.yield %r : f32
  } -> tensor<2x3x16xf32>
  %pe = tensor.empty() : tensor<2x3x16xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x3x16xf32>) outs(%pe : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %oe = tensor.empty() : tensor<2x3x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  // expected-remark @below {{not a sliding window block mask for any block size}}
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x3x16xf32>, tensor<2x16x4xf32>) outs(%oz : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %o : tensor<2x3x4xf32>
}

// -----

// The seed's SBA as torch-mlir emits it: 4-D q/k/v, k transposed with
// linalg.transpose, batch and heads collapsed around linalg.batch_matmul, the
// frame mask computed from linalg.index, softmax decomposed into max, sub,
// exp, sum and div. The whole chain goes; q, k, v feed the op directly.
// CHECK-LABEL: func.func @sba_decomposed
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x64x16xf32>, %[[K:.*]]: tensor<1x2x64x16xf32>, %[[V:.*]]: tensor<1x2x64x16xf32>)
// CHECK: swba.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) outs(%{{.*}} : tensor<1x2x64x16xf32>) block_size = 16 window = 2 scale = 2.500000e-01
// CHECK-NOT: linalg.
// CHECK-NOT: math.exp
func.func @sba_decomposed(%q: tensor<1x2x64x16xf32>, %k: tensor<1x2x64x16xf32>, %v: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %cst0 = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.25 : f32
  %e2 = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%e2 : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c16 = arith.constant 16 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divsi %i, %c16 : index
    %fj = arith.divsi %j, %c16 : index
    %future = arith.cmpi sgt, %fj, %fi : index
    %d = arith.subi %fi, %fj : index
    %old = arith.cmpi sge, %d, %c2 : index
    %hide = arith.ori %future, %old : i1
    %val = arith.select %hide, %ninf, %cst0 : f32
    linalg.yield %val : f32
  } -> tensor<64x64xf32>
  %kte = tensor.empty() : tensor<1x2x16x64xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x64x16xf32>) outs(%kte : tensor<1x2x16x64xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x16x64xf32> into tensor<2x16x64xf32>
  %se = tensor.empty() : tensor<2x64x64xf32>
  %sz = linalg.fill ins(%cst0 : f32) outs(%se : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x64x16xf32>, tensor<2x16x64xf32>) outs(%sz : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 64] : tensor<2x64x64xf32> into tensor<1x2x64x64xf32>
  %e4 = tensor.empty() : tensor<1x2x64x64xf32>
  %scaled = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %scale : f32
    linalg.yield %m : f32
  } -> tensor<1x2x64x64xf32>
  %masked = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%scaled, %mask : tensor<1x2x64x64xf32>, tensor<64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mk: f32, %out: f32):
    %a = arith.addf %in, %mk : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x64xf32>
  %re = tensor.empty() : tensor<1x2x64x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<1x2x64x64xf32>) outs(%mi : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %mx = arith.maximumf %in, %acc : f32
    linalg.yield %mx : f32
  } -> tensor<1x2x64x1xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%masked, %max : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %x = math.exp %d : f32
    linalg.yield %x : f32
  } -> tensor<1x2x64x64xf32>
  %si = linalg.fill ins(%cst0 : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x64x64xf32>) outs(%si : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x1xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<1x2x64x64xf32>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x2x64x64xf32> into tensor<2x64x64xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %oe = tensor.empty() : tensor<2x64x16xf32>
  %oz = linalg.fill ins(%cst0 : f32) outs(%oe : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<2x64x64xf32>, tensor<2x64x16xf32>) outs(%oz : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 16] : tensor<2x64x16xf32> into tensor<1x2x64x16xf32>
  return %o : tensor<1x2x64x16xf32>
}

// -----

// The same chain whose softmax divides by the sum of something else: left
// alone.
// CHECK-LABEL: func.func @sba_wrong_divisor
// CHECK-NOT: swba.attention
func.func @sba_wrong_divisor(%q: tensor<1x2x64x16xf32>, %k: tensor<1x2x64x16xf32>, %v: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %cst0 = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant 0.25 : f32
  %e2 = tensor.empty() : tensor<64x64xf32>
  %mask = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%e2 : tensor<64x64xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c16 = arith.constant 16 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divsi %i, %c16 : index
    %fj = arith.divsi %j, %c16 : index
    %future = arith.cmpi sgt, %fj, %fi : index
    %d = arith.subi %fi, %fj : index
    %old = arith.cmpi sge, %d, %c2 : index
    %hide = arith.ori %future, %old : i1
    %val = arith.select %hide, %ninf, %cst0 : f32
    linalg.yield %val : f32
  } -> tensor<64x64xf32>
  %kte = tensor.empty() : tensor<1x2x16x64xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x64x16xf32>) outs(%kte : tensor<1x2x16x64xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x16x64xf32> into tensor<2x16x64xf32>
  %se = tensor.empty() : tensor<2x64x64xf32>
  %sz = linalg.fill ins(%cst0 : f32) outs(%se : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s3 = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x64x16xf32>, tensor<2x16x64xf32>) outs(%sz : tensor<2x64x64xf32>) -> tensor<2x64x64xf32>
  %s = tensor.expand_shape %s3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 64] : tensor<2x64x64xf32> into tensor<1x2x64x64xf32>
  %e4 = tensor.empty() : tensor<1x2x64x64xf32>
  %scaled = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %scale : f32
    linalg.yield %m : f32
  } -> tensor<1x2x64x64xf32>
  %masked = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%scaled, %mask : tensor<1x2x64x64xf32>, tensor<64x64xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mk: f32, %out: f32):
    %a = arith.addf %in, %mk : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x64xf32>
  %re = tensor.empty() : tensor<1x2x64x1xf32>
  %mi = linalg.fill ins(%ninf : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<1x2x64x64xf32>) outs(%mi : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %mx = arith.maximumf %in, %acc : f32
    linalg.yield %mx : f32
  } -> tensor<1x2x64x1xf32>
  %ex = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%masked, %max : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %x = math.exp %d : f32
    linalg.yield %x : f32
  } -> tensor<1x2x64x64xf32>
  %si = linalg.fill ins(%cst0 : f32) outs(%re : tensor<1x2x64x1xf32>) -> tensor<1x2x64x1xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%masked : tensor<1x2x64x64xf32>) outs(%si : tensor<1x2x64x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<1x2x64x1xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x64x64xf32>, tensor<1x2x64x1xf32>) outs(%e4 : tensor<1x2x64x64xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<1x2x64x64xf32>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x2x64x64xf32> into tensor<2x64x64xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x64x16xf32> into tensor<2x64x16xf32>
  %oe = tensor.empty() : tensor<2x64x16xf32>
  %oz = linalg.fill ins(%cst0 : f32) outs(%oe : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  // expected-remark @below {{the softmax divisor is not the key-axis sum of its numerator}}
  %o3 = linalg.batch_matmul ins(%p3, %v3 : tensor<2x64x64xf32>, tensor<2x64x16xf32>) outs(%oz : tensor<2x64x16xf32>) -> tensor<2x64x16xf32>
  %o = tensor.expand_shape %o3 [[0, 1], [2], [3]] output_shape [1, 2, 64, 16] : tensor<2x64x16xf32> into tensor<1x2x64x16xf32>
  return %o : tensor<1x2x64x16xf32>
}

// -----

// f16 q/k/v, scores accumulated in f32, softmax in f32, the probabilities
// truncated to f16 for the second product; block-causal (the window covers
// every frame); one head, 2-D linalg.matmul, k transposed with
// linalg.transpose, the scale a division.
// CHECK-LABEL: func.func @f16_block_causal_matmul
// CHECK-SAME: (%[[Q:.*]]: tensor<12x8xf16>, %[[K:.*]]: tensor<12x8xf16>, %[[V:.*]]: tensor<12x8xf16>)
// CHECK-DAG: %[[QE:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0, 1, 2], [3]] output_shape [1, 1, 12, 8]
// CHECK-DAG: %[[KE:.*]] = tensor.expand_shape %[[K]]
// CHECK: %[[A:.*]] = swba.attention ins(%[[QE]], %[[KE]], %{{.*}} : tensor<1x1x12x8xf16>, tensor<1x1x12x8xf16>, tensor<1x1x12x8xf16>) outs(%{{.*}} : tensor<1x1x12x8xf16>) block_size = 4 window = 3 scale = 0.353553{{[0-9]*}}
// CHECK: tensor.collapse_shape %[[A]] {{\[\[}}0, 1, 2], [3]] : tensor<1x1x12x8xf16> into tensor<12x8xf16>
func.func @f16_block_causal_matmul(%q: tensor<12x8xf16>, %k: tensor<12x8xf16>, %v: tensor<12x8xf16>) -> tensor<12x8xf16> {
  %zero = arith.constant 0.0 : f32
  %zero16 = arith.constant 0.0 : f16
  %ninf = arith.constant 0xFF800000 : f32
  %sqrt8 = arith.constant 2.82842712 : f32
  %kte = tensor.empty() : tensor<8x12xf16>
  %kt = linalg.transpose ins(%k : tensor<12x8xf16>) outs(%kte : tensor<8x12xf16>) permutation = [1, 0]
  %se = tensor.empty() : tensor<12x12xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<12x12xf32>) -> tensor<12x12xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<12x8xf16>, tensor<8x12xf16>) outs(%sz : tensor<12x12xf32>) -> tensor<12x12xf32>
  %xe = tensor.empty() : tensor<12x12xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<12x12xf32>) outs(%xe : tensor<12x12xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c4 = arith.constant 4 : index
    %fi = arith.floordivsi %i, %c4 : index
    %fj = arith.floordivsi %j, %c4 : index
    %keep = arith.cmpi sle, %fj, %fi : index
    %sc = arith.divf %in, %sqrt8 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<12x12xf32>
  %pe = tensor.empty() : tensor<12x12xf32>
  %p = linalg.softmax dimension(1) ins(%x : tensor<12x12xf32>) outs(%pe : tensor<12x12xf32>) -> tensor<12x12xf32>
  %p16e = tensor.empty() : tensor<12x12xf16>
  %p16 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%p : tensor<12x12xf32>) outs(%p16e : tensor<12x12xf16>) {
  ^bb0(%in: f32, %out: f16):
    %t = arith.truncf %in : f32 to f16
    linalg.yield %t : f16
  } -> tensor<12x12xf16>
  %oe = tensor.empty() : tensor<12x8xf16>
  %oz = linalg.fill ins(%zero16 : f16) outs(%oe : tensor<12x8xf16>) -> tensor<12x8xf16>
  %o = linalg.matmul ins(%p16, %v : tensor<12x12xf16>, tensor<12x8xf16>) outs(%oz : tensor<12x8xf16>) -> tensor<12x8xf16>
  return %o : tensor<12x8xf16>
}

// -----

// 4-D linalg.generic contractions on [B, H, N, D] (k read transposed by the
// indexing map), block-causal frames of 2, no scale (so scale = 1).
// CHECK-LABEL: func.func @generic_4d_block_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x8x4xf32>, %[[K:.*]]: tensor<1x2x8x4xf32>, %[[V:.*]]: tensor<1x2x8x4xf32>)
// CHECK: %[[A:.*]] = swba.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) outs(%{{.*}} : tensor<1x2x8x4xf32>) block_size = 2 window = 4 scale = 1.000000e+00
// CHECK-NEXT: return %[[A]]
func.func @generic_4d_block_causal(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%sz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divui %i, %c2 : index
    %fj = arith.divui %j, %c2 : index
    %keep = arith.cmpi ule, %fj, %fi : index
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %oe = tensor.empty() : tensor<1x2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) outs(%oz : tensor<1x2x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// 4-D linalg.generic contractions on [B, H, N, D] (k read transposed by the
// indexing map), the causal condition with the key axis compared the wrong
// way round (a query sees the frames after its own): left alone.
// CHECK-LABEL: func.func @generic_4d_anticausal
// CHECK-NOT: swba.attention
func.func @generic_4d_anticausal(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%sz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divui %i, %c2 : index
    %fj = arith.divui %j, %c2 : index
    %keep = arith.cmpi uge, %fj, %fi : index
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %oe = tensor.empty() : tensor<1x2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  // expected-remark @below {{query row 0 sees keys [0, 8)}}
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) outs(%oz : tensor<1x2x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}

// -----

// The P.V product computed transposed, O^T = V^T P^T, as
// jax.nn.dot_product_attention does; the scores reshaped through a flat
// vector that moves a unit dimension ([1, 2, 8, 8] -> [128] -> [2, 1, 8, 8]),
// masked with JAX's -0.7 times the largest f32 value; block-causal frames of
// 2. The op's result is transposed back.
// CHECK-LABEL: func.func @pv_transposed
// CHECK: %[[A:.*]] = swba.attention {{.*}} block_size = 2 window = 4 scale = 1.000000e+00
// CHECK: %[[T:.*]] = linalg.transpose ins(%{{.*}} : tensor<2x1x8x4xf32>) outs(%{{.*}} : tensor<2x1x4x8xf32>) permutation = [0, 1, 3, 2]
// CHECK-NEXT: return %[[T]]
func.func @pv_transposed(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<2x1x4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %big = arith.constant -2.38197633E+38 : f32
  %se = tensor.empty() : tensor<1x2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%sz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %flat = tensor.collapse_shape %s [[0, 1, 2, 3]] : tensor<1x2x8x8xf32> into tensor<128xf32>
  %s2 = tensor.expand_shape %flat [[0, 1, 2, 3]] output_shape [2, 1, 8, 8] : tensor<128xf32> into tensor<2x1x8x8xf32>
  %xe = tensor.empty() : tensor<2x1x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s2 : tensor<2x1x8x8xf32>) outs(%xe : tensor<2x1x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divui %i, %c2 : index
    %fj = arith.divui %j, %c2 : index
    %keep = arith.cmpi ule, %fj, %fi : index
    %r = arith.select %keep, %in, %big : f32
    linalg.yield %r : f32
  } -> tensor<2x1x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<2x1x8x8xf32>) outs(%xe : tensor<2x1x8x8xf32>) -> tensor<2x1x8x8xf32>
  %v2 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %v3 = tensor.expand_shape %v2 [[0, 1], [2], [3]] output_shape [2, 1, 8, 4] : tensor<2x8x4xf32> into tensor<2x1x8x4xf32>
  %oe = tensor.empty() : tensor<2x1x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x1x4x8xf32>) -> tensor<2x1x4x8xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, e, i, j) -> (b, h, j, e)>, affine_map<(b, h, e, i, j) -> (b, h, i, j)>, affine_map<(b, h, e, i, j) -> (b, h, e, i)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%v3, %p : tensor<2x1x8x4xf32>, tensor<2x1x8x8xf32>) outs(%oz : tensor<2x1x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x1x4x8xf32>
  return %o : tensor<2x1x4x8xf32>
}

// -----

// The transposed P.V product reading the probabilities with query and key
// swapped (O^T = V^T P): left alone, the softmax then normalizes over what
// the product reads as the queries.
// CHECK-LABEL: func.func @pv_transposed_reads_p_swapped
// CHECK-NOT: swba.attention
func.func @pv_transposed_reads_p_swapped(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>) -> tensor<1x2x4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %se = tensor.empty() : tensor<1x2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%sz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(b, h, i, j) -> (b, h, i, j)>, affine_map<(b, h, i, j) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %fi = arith.divui %i, %c2 : index
    %fj = arith.divui %j, %c2 : index
    %keep = arith.cmpi ule, %fj, %fi : index
    %r = arith.select %keep, %in, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x8x8xf32>) outs(%se : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %oe = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  // expected-remark @below {{linalg.softmax normalizes over dimension 3, not the key axis}}
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, e, i, j) -> (b, h, j, e)>, affine_map<(b, h, e, i, j) -> (b, h, j, i)>, affine_map<(b, h, e, i, j) -> (b, h, e, i)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%v, %p : tensor<1x2x8x4xf32>, tensor<1x2x8x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// -----

// A gated MLP (SwiGLU: silu(x Wg) * (x Wu), then Wd) has an exp before its
// down projection but no softmax: not an attention candidate, and no
// remark (one at each layer's MLP would bury those at its attention).
// CHECK-LABEL: func.func @gated_mlp_no_remark
// CHECK-NOT: swba.attention
func.func @gated_mlp_no_remark(%x: tensor<8x16xf32>, %wg: tensor<16x32xf32>, %wu: tensor<16x32xf32>, %wd: tensor<32x16xf32>) -> tensor<8x16xf32> {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %he = tensor.empty() : tensor<8x32xf32>
  %hz = linalg.fill ins(%zero : f32) outs(%he : tensor<8x32xf32>) -> tensor<8x32xf32>
  %g = linalg.matmul ins(%x, %wg : tensor<8x16xf32>, tensor<16x32xf32>) outs(%hz : tensor<8x32xf32>) -> tensor<8x32xf32>
  %u = linalg.matmul ins(%x, %wu : tensor<8x16xf32>, tensor<16x32xf32>) outs(%hz : tensor<8x32xf32>) -> tensor<8x32xf32>
  %h = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<8x32xf32>, tensor<8x32xf32>) outs(%he : tensor<8x32xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %n = arith.negf %a : f32
    %e = math.exp %n : f32
    %d = arith.addf %e, %one : f32
    %s = arith.divf %a, %d : f32
    %r = arith.mulf %s, %b : f32
    linalg.yield %r : f32
  } -> tensor<8x32xf32>
  %oe = tensor.empty() : tensor<8x16xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<8x16xf32>) -> tensor<8x16xf32>
  %o = linalg.matmul ins(%h, %wd : tensor<8x32xf32>, tensor<32x16xf32>) outs(%oz : tensor<8x16xf32>) -> tensor<8x16xf32>
  return %o : tensor<8x16xf32>
}
