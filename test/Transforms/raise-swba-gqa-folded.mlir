// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: %python %S/../Frontend/run_model.py %s > %t.mlir
// RUN: swba-opt %t.mlir --raise-swba --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %t.mlir --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python %S/../Frontend/run_model.py --compare %t.raised %t.plain --tolerance 1e-4 | FileCheck %s --check-prefix=CMP
//
// Grouped-query attention with each kv head's query heads folded into the
// rows of both products, query-major (row = query * 2 + head): q [B, T, H, D]
// with H = 2 kv heads x 2 query heads, the scores [B * Hkv, T * 2, S], a
// token window of 3 keys written on linalg.index, linalg.softmax, and
// O = P V in the same rows. Raised to one swba.attention whose query head
// 2h + g is query head g of kv head h; the module run with and without
// --raise-swba agrees on every element.
// IR: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%{{.*}} : tensor<1x4x8x4xf32>) block_size = 1 window = 3 scale = 5.000000e-01
// IR-NOT: swba.attention
// IR-NOT: linalg.softmax
// CMP: compared {{[1-9][0-9]*}} elements, 0 mismatches, nonzero

#id5 = affine_map<(b, h, t, g, s) -> (b, h, t, g, s)>
module {
func.func @main(%q: tensor<1x8x4x4xf32>, %k: tensor<1x8x2x4xf32>, %v: tensor<1x8x2x4xf32>) -> tensor<2x16x4xf32> {
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
  %pc = tensor.collapse_shape %p [[0, 1], [2, 3], [4]] : tensor<1x2x8x2x8xf32> into tensor<2x16x8xf32>
  // v: [1, Hkv, S, D] -> [(1, Hkv), S, D].
  %vt0 = tensor.empty() : tensor<1x2x8x4xf32>
  %vt = linalg.transpose ins(%v : tensor<1x8x2x4xf32>) outs(%vt0 : tensor<1x2x8x4xf32>) permutation = [0, 2, 1, 3]
  %vc = tensor.collapse_shape %vt [[0, 1], [2], [3]] : tensor<1x2x8x4xf32> into tensor<2x8x4xf32>
  %o0 = tensor.empty() : tensor<2x16x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  %o = linalg.batch_matmul ins(%pc, %vc : tensor<2x16x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x16x4xf32>) -> tensor<2x16x4xf32>
  return %o : tensor<2x16x4xf32>
}
}
