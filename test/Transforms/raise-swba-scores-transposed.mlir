// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: %python %S/../Frontend/run_model.py %s > %t.mlir
// RUN: swba-opt %t.mlir --raise-swba --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %t.mlir --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python %S/../Frontend/run_model.py --compare %t.raised %t.plain --tolerance 1e-4 | FileCheck %s --check-prefix=CMP
//
// The scores computed as K Q^T ([B, H, S, T], as XLA may order an einsum's
// operands), transposed to [B, H, T, S] for a frame mask (frames of 2,
// window 2) and the softmax; q scaled by a generic, v transposed by a
// linalg.generic copy. Raised to one swba.attention; the module run with
// and without --raise-swba agrees on every element.
// IR: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%{{.*}} : tensor<1x2x8x4xf32>) block_size = 2 window = 2 scale = 5.000000e-01
// IR-NOT: swba.attention
// IR-NOT: linalg.softmax
// CMP: compared {{[1-9][0-9]*}} elements, 0 mismatches, nonzero

#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
module {
func.func @main(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %half = arith.constant 0.5 : f32
  %c2 = arith.constant 2 : index
  %qs0 = tensor.empty() : tensor<1x2x8x4xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<1x2x8x4xf32>) outs(%qs0 : tensor<1x2x8x4xf32>) {
  ^bb0(%x: f32, %out: f32):
    %r = arith.mulf %x, %half : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x4xf32>
  // S^T[b, h, s, t] = sum_d k[b, h, s, d] q[b, h, t, d]
  %st0 = tensor.empty() : tensor<1x2x8x8xf32>
  %stz = linalg.fill ins(%zero : f32) outs(%st0 : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %st = linalg.generic {indexing_maps = [affine_map<(b, h, s, t, d) -> (b, h, s, d)>, affine_map<(b, h, s, t, d) -> (b, h, t, d)>, affine_map<(b, h, s, t, d) -> (b, h, s, t)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%k, %qs : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%stz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %acc2 = arith.addf %acc, %p : f32
    linalg.yield %acc2 : f32
  } -> tensor<1x2x8x8xf32>
  %s0 = tensor.empty() : tensor<1x2x8x8xf32>
  %s = linalg.transpose ins(%st : tensor<1x2x8x8xf32>) outs(%s0 : tensor<1x2x8x8xf32>) permutation = [0, 1, 3, 2]
  %m0 = tensor.empty() : tensor<1x2x8x8xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x8x8xf32>) outs(%m0 : tensor<1x2x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %fi = arith.divui %i, %c2 : index
    %fj = arith.divui %j, %c2 : index
    %causal = arith.cmpi ule, %fj, %fi : index
    %fj2 = arith.addi %fj, %c2 : index
    %near = arith.cmpi ugt, %fj2, %fi : index
    %visible = arith.andi %causal, %near : i1
    %r = arith.select %visible, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %p0 = tensor.empty() : tensor<1x2x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%masked : tensor<1x2x8x8xf32>) outs(%p0 : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  // v is given as [B, H, D, S]: a generic copy makes it [B, H, S, D].
  %vt0 = tensor.empty() : tensor<1x2x8x4xf32>
  %vt = linalg.generic {indexing_maps = [affine_map<(b, h, s, d) -> (b, h, d, s)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%v : tensor<1x2x4x8xf32>) outs(%vt0 : tensor<1x2x8x4xf32>) {
  ^bb0(%x: f32, %out: f32):
    linalg.yield %x : f32
  } -> tensor<1x2x8x4xf32>
  %o0 = tensor.empty() : tensor<1x2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, e, j) -> (b, h, i, j)>, affine_map<(b, h, i, e, j) -> (b, h, j, e)>, affine_map<(b, h, i, e, j) -> (b, h, i, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vt : tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) outs(%oz : tensor<1x2x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %sum = arith.addf %acc, %m : f32
    linalg.yield %sum : f32
  } -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}
}
