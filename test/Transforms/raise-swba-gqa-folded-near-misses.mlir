// RUN: swba-opt %s --raise-swba --remarks-filter-missed=raise-swba --split-input-file --verify-diagnostics | FileCheck %s
//
// Near misses of grouped-query attention with each kv head's query heads
// folded into the rows of the products (raise-swba-gqa-folded.mlir has the
// raised form): nothing is raised, and the remark says why.

// The window is one key longer for the second query head of each group.
// CHECK-LABEL: func.func @window_per_query_head
// CHECK-NOT: swba.attention
#id5 = affine_map<(b, h, t, g, s) -> (b, h, t, g, s)>
func.func @window_per_query_head(%q: tensor<1x8x4x4xf32>, %k: tensor<1x8x2x4xf32>, %v: tensor<1x8x2x4xf32>) -> tensor<2x16x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %half = arith.constant 0.5 : f32
  %c3 = arith.constant 3 : index
  // q: [1, T, (Hkv, G), D] -> [1, Hkv, T, G, D] -> [(1, Hkv), (T, G), D].
  %qe = tensor.expand_shape %q [[0], [1], [2, 3], [4]] output_shape [1, 8, 2, 2, 4]
      : tensor<1x8x4x4xf32> into tensor<1x8x2x2x4xf32>
  %qt0 = tensor.empty() : tensor<1x2x8x2x4xf32>
  %qt = linalg.transpose ins(%qe : tensor<1x8x2x2x4xf32>) outs(%qt0 : tensor<1x2x8x2x4xf32>) permutation = [0, 2, 1, 3, 4]
  %qc = tensor.collapse_shape %qt [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x4xf32> into tensor<2x16x4xf32>
  // k^T: [1, Hkv, D, S] -> [(1, Hkv), D, S].
  %kt0 = tensor.empty() : tensor<1x2x4x8xf32>
  %kt = linalg.transpose ins(%k : tensor<1x8x2x4xf32>) outs(%kt0 : tensor<1x2x4x8xf32>) permutation = [0, 2, 3, 1]
  %kc = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x8xf32> into tensor<2x4x8xf32>
  %s0 = tensor.empty() : tensor<2x16x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  %s = linalg.batch_matmul ins(%qc, %kc : tensor<2x16x4xf32>, tensor<2x4x8xf32>) outs(%sz : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  // The scores as [1, Hkv, T, G, S], masked to the keys t - 2 .. t.
  %se = tensor.expand_shape %s [[0, 1], [2, 3], [4]] output_shape [1, 2, 8, 2, 8]
      : tensor<2x16x8xf32> into tensor<1x2x8x2x8xf32>
  %m0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %masked = linalg.generic {indexing_maps = [#id5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%se : tensor<1x2x8x2x8xf32>) outs(%m0 : tensor<1x2x8x2x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %t = linalg.index 2 : index
    %j = linalg.index 4 : index
    %causal = arith.cmpi ule, %j, %t : index
    %g = linalg.index 3 : index
    %j2 = arith.addi %j, %c3 : index
    %j3 = arith.addi %j2, %g : index
    %near = arith.cmpi ugt, %j3, %t : index
    %visible = arith.andi %causal, %near : i1
    %scaled = arith.mulf %x, %half : f32
    %r = arith.select %visible, %scaled, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x2x8xf32>
  %p0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %p = linalg.softmax dimension(4) ins(%masked : tensor<1x2x8x2x8xf32>) outs(%p0 : tensor<1x2x8x2x8xf32>) -> tensor<1x2x8x2x8xf32>
  %pc = tensor.collapse_shape %p [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x8xf32> into tensor<2x16x8xf32>
  // v: [1, Hkv, S, D] -> [(1, Hkv), S, D].
  %vt0 = tensor.empty() : tensor<1x2x8x4xf32>
  %vt = linalg.transpose ins(%v : tensor<1x8x2x4xf32>) outs(%vt0 : tensor<1x2x8x4xf32>) permutation = [0, 2, 1, 3]
  %vc = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %o0 = tensor.empty() : tensor<2x16x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  // expected-remark @below {{with query heads folded into the rows: the mask depends on the batch/head index}}
  %o = linalg.batch_matmul ins(%pc, %vc : tensor<2x16x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  return %o : tensor<2x16x4xf32>
}

// -----

// The mask is written on the merged rows (row r = t * 2 + g, keys up to
// r / 2): the evaluator does not see that it reads t only.
// CHECK-LABEL: func.func @mask_on_merged_rows
// CHECK-NOT: swba.attention
#id5 = affine_map<(b, h, t, g, s) -> (b, h, t, g, s)>
func.func @mask_on_merged_rows(%q: tensor<1x8x4x4xf32>, %k: tensor<1x8x2x4xf32>, %v: tensor<1x8x2x4xf32>) -> tensor<2x16x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %half = arith.constant 0.5 : f32
  %c3 = arith.constant 3 : index
  // q: [1, T, (Hkv, G), D] -> [1, Hkv, T, G, D] -> [(1, Hkv), (T, G), D].
  %qe = tensor.expand_shape %q [[0], [1], [2, 3], [4]] output_shape [1, 8, 2, 2, 4]
      : tensor<1x8x4x4xf32> into tensor<1x8x2x2x4xf32>
  %qt0 = tensor.empty() : tensor<1x2x8x2x4xf32>
  %qt = linalg.transpose ins(%qe : tensor<1x8x2x2x4xf32>) outs(%qt0 : tensor<1x2x8x2x4xf32>) permutation = [0, 2, 1, 3, 4]
  %qc = tensor.collapse_shape %qt [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x4xf32> into tensor<2x16x4xf32>
  // k^T: [1, Hkv, D, S] -> [(1, Hkv), D, S].
  %kt0 = tensor.empty() : tensor<1x2x4x8xf32>
  %kt = linalg.transpose ins(%k : tensor<1x8x2x4xf32>) outs(%kt0 : tensor<1x2x4x8xf32>) permutation = [0, 2, 3, 1]
  %kc = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x8xf32> into tensor<2x4x8xf32>
  %s0 = tensor.empty() : tensor<2x16x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  %s = linalg.batch_matmul ins(%qc, %kc : tensor<2x16x4xf32>, tensor<2x4x8xf32>) outs(%sz : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  // The scores as [1, Hkv, T, G, S], masked to the keys t - 2 .. t.
  %se = tensor.expand_shape %s [[0, 1], [2, 3], [4]] output_shape [1, 2, 8, 2, 8]
      : tensor<2x16x8xf32> into tensor<1x2x8x2x8xf32>
  %v0 = tensor.empty() : tensor<16x8xi1>
  %vis = linalg.generic {indexing_maps = [affine_map<(r, s) -> (r, s)>], iterator_types = ["parallel", "parallel"]} outs(%v0 : tensor<16x8xi1>) {
  ^bb0(%out: i1):
    %r = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c2 = arith.constant 2 : index
    %t = arith.divui %r, %c2 : index
    %ok = arith.cmpi ule, %j, %t : index
    linalg.yield %ok : i1
  } -> tensor<16x8xi1>
  %vise = tensor.expand_shape %vis [[0, 1], [2]] output_shape [8, 2, 8] : tensor<16x8xi1> into tensor<8x2x8xi1>
  %m0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %masked = linalg.generic {indexing_maps = [#id5, affine_map<(b, h, t, g, s) -> (t, g, s)>, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%se, %vise : tensor<1x2x8x2x8xf32>, tensor<8x2x8xi1>) outs(%m0 : tensor<1x2x8x2x8xf32>) {
  ^bb0(%x: f32, %visible: i1, %out: f32):
    %scaled = arith.mulf %x, %half : f32
    %r = arith.select %visible, %scaled, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x2x8xf32>
  %p0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %p = linalg.softmax dimension(4) ins(%masked : tensor<1x2x8x2x8xf32>) outs(%p0 : tensor<1x2x8x2x8xf32>) -> tensor<1x2x8x2x8xf32>
  %pc = tensor.collapse_shape %p [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x8xf32> into tensor<2x16x8xf32>
  // v: [1, Hkv, S, D] -> [(1, Hkv), S, D].
  %vt0 = tensor.empty() : tensor<1x2x8x4xf32>
  %vt = linalg.transpose ins(%v : tensor<1x8x2x4xf32>) outs(%vt0 : tensor<1x2x8x4xf32>) permutation = [0, 2, 1, 3]
  %vc = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %o0 = tensor.empty() : tensor<2x16x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  // expected-remark @below {{with query heads folded into the rows: the mask depends on the batch/head index}}
  %o = linalg.batch_matmul ins(%pc, %vc : tensor<2x16x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  return %o : tensor<2x16x4xf32>
}

// -----

// P.V's rows are split into 4 x 4 where Q.K^T's rows are 8 queries of 2
// heads.
// CHECK-LABEL: func.func @fold_counts_differ
// CHECK-NOT: swba.attention
#id5 = affine_map<(b, h, t, g, s) -> (b, h, t, g, s)>
func.func @fold_counts_differ(%q: tensor<1x8x4x4xf32>, %k: tensor<1x8x2x4xf32>, %v: tensor<1x8x2x4xf32>) -> tensor<2x16x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %half = arith.constant 0.5 : f32
  %c3 = arith.constant 3 : index
  // q: [1, T, (Hkv, G), D] -> [1, Hkv, T, G, D] -> [(1, Hkv), (T, G), D].
  %qe = tensor.expand_shape %q [[0], [1], [2, 3], [4]] output_shape [1, 8, 2, 2, 4]
      : tensor<1x8x4x4xf32> into tensor<1x8x2x2x4xf32>
  %qt0 = tensor.empty() : tensor<1x2x8x2x4xf32>
  %qt = linalg.transpose ins(%qe : tensor<1x8x2x2x4xf32>) outs(%qt0 : tensor<1x2x8x2x4xf32>) permutation = [0, 2, 1, 3, 4]
  %qc = tensor.collapse_shape %qt [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x4xf32> into tensor<2x16x4xf32>
  // k^T: [1, Hkv, D, S] -> [(1, Hkv), D, S].
  %kt0 = tensor.empty() : tensor<1x2x4x8xf32>
  %kt = linalg.transpose ins(%k : tensor<1x8x2x4xf32>) outs(%kt0 : tensor<1x2x4x8xf32>) permutation = [0, 2, 3, 1]
  %kc = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x8xf32> into tensor<2x4x8xf32>
  %s0 = tensor.empty() : tensor<2x16x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  %s = linalg.batch_matmul ins(%qc, %kc : tensor<2x16x4xf32>, tensor<2x4x8xf32>) outs(%sz : tensor<2x16x8xf32>) -> tensor<2x16x8xf32>
  // The scores as [1, Hkv, T, G, S], masked to the keys t - 2 .. t.
  %se = tensor.expand_shape %s [[0, 1], [2, 3], [4]] output_shape [1, 2, 8, 2, 8]
      : tensor<2x16x8xf32> into tensor<1x2x8x2x8xf32>
  %m0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %masked = linalg.generic {indexing_maps = [#id5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%se : tensor<1x2x8x2x8xf32>) outs(%m0 : tensor<1x2x8x2x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %t = linalg.index 2 : index
    %j = linalg.index 4 : index
    %causal = arith.cmpi ule, %j, %t : index
    %j3 = arith.addi %j, %c3 : index
    %near = arith.cmpi ugt, %j3, %t : index
    %visible = arith.andi %causal, %near : i1
    %scaled = arith.mulf %x, %half : f32
    %r = arith.select %visible, %scaled, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x2x8xf32>
  %p0 = tensor.empty() : tensor<1x2x8x2x8xf32>
  %p = linalg.softmax dimension(4) ins(%masked : tensor<1x2x8x2x8xf32>) outs(%p0 : tensor<1x2x8x2x8xf32>) -> tensor<1x2x8x2x8xf32>
  %pf = tensor.collapse_shape %p [[0], [1], [2, 3], [4]] : tensor<1x2x8x2x8xf32> into tensor<1x2x16x8xf32>
  %pe = tensor.expand_shape %pf [[0], [1], [2, 3], [4]] output_shape [1, 2, 4, 4, 8] : tensor<1x2x16x8xf32> into tensor<1x2x4x4x8xf32>
  %pc = tensor.collapse_shape %pe [[0, 1], [2, 3], [4]] : tensor<1x2x4x4x8xf32> into tensor<2x16x8xf32>
  // v: [1, Hkv, S, D] -> [(1, Hkv), S, D].
  %vt0 = tensor.empty() : tensor<1x2x8x4xf32>
  %vt = linalg.transpose ins(%v : tensor<1x8x2x4xf32>) outs(%vt0 : tensor<1x2x8x4xf32>) permutation = [0, 2, 1, 3]
  %vc = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %o0 = tensor.empty() : tensor<2x16x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  // expected-remark @below {{with query heads folded into the rows: reshapes merge queries and query heads of different counts}}
  %o = linalg.batch_matmul ins(%pc, %vc : tensor<2x16x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  return %o : tensor<2x16x4xf32>
}
