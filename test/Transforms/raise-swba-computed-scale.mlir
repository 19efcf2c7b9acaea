// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: %python %S/../Frontend/run_model.py %s > %t.mlir
// RUN: swba-opt %t.mlir --raise-swba --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %t.mlir --swba-to-llvm | mlir-runner -e entry -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python %S/../Frontend/run_model.py --compare %t.raised %t.plain --tolerance 1e-4 | FileCheck %s --check-prefix=CMP
//
// Scales given as one-element tensors read at every element, as ONNX's
// export of SDPA writes them: q times sqrt(0.25) computed in the graph
// (evaluated into the op's scale, q read as it comes), k times a
// one-element tensor that is an input (no constant: k is read scaled, as
// the op's k). A token window of 3. The module run with and without
// --raise-swba agrees on every element.
// IR: %[[KS:.*]] = linalg.generic
// IR-SAME: ins(%arg1, %arg3
// IR: swba.attention ins(%arg0, %[[KS]], %arg2 : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%{{.*}} : tensor<1x2x8x4xf32>) block_size = 1 window = 3 scale = 5.000000e-01
// IR-NOT: swba.attention
// IR-NOT: linalg.softmax
// CMP: compared {{[1-9][0-9]*}} elements, 0 mismatches, nonzero

#id1 = affine_map<(d) -> (d)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#one4 = affine_map<(b, h, i, j) -> (0)>
module {
func.func @main(%q: tensor<1x2x8x4xf32>, %k: tensor<1x2x8x4xf32>, %v: tensor<1x2x8x4xf32>, %kscale: tensor<1xf32>) -> tensor<1x2x8x4xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c3 = arith.constant 3 : index
  %quarter = arith.constant dense<0.25> : tensor<1xf32>
  %r0 = tensor.empty() : tensor<1xf32>
  %root = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%quarter : tensor<1xf32>) outs(%r0 : tensor<1xf32>) {
  ^bb0(%x: f32, %out: f32):
    %r = math.sqrt %x : f32
    linalg.yield %r : f32
  } -> tensor<1xf32>
  %qs0 = tensor.empty() : tensor<1x2x8x4xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #one4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q, %root : tensor<1x2x8x4xf32>, tensor<1xf32>) outs(%qs0 : tensor<1x2x8x4xf32>) {
  ^bb0(%x: f32, %c: f32, %out: f32):
    %r = arith.mulf %x, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x4xf32>
  %ks = linalg.generic {indexing_maps = [#id4, #one4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%k, %kscale : tensor<1x2x8x4xf32>, tensor<1xf32>) outs(%qs0 : tensor<1x2x8x4xf32>) {
  ^bb0(%x: f32, %c: f32, %out: f32):
    %r = arith.mulf %c, %x : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x4xf32>
  %s0 = tensor.empty() : tensor<1x2x8x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, h, i, d)>, affine_map<(b, h, i, j, d) -> (b, h, j, d)>, affine_map<(b, h, i, j, d) -> (b, h, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%qs, %ks : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>) outs(%sz : tensor<1x2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %acc2 = arith.addf %acc, %p : f32
    linalg.yield %acc2 : f32
  } -> tensor<1x2x8x8xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x8x8xf32>) outs(%s0 : tensor<1x2x8x8xf32>) {
  ^bb0(%x: f32, %out: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %causal = arith.cmpi ule, %j, %i : index
    %j3 = arith.addi %j, %c3 : index
    %near = arith.cmpi ugt, %j3, %i : index
    %visible = arith.andi %causal, %near : i1
    %r = arith.select %visible, %x, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x8x8xf32>
  %p = linalg.softmax dimension(3) ins(%masked : tensor<1x2x8x8xf32>) outs(%s0 : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %o0 = tensor.empty() : tensor<1x2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, i, d, j) -> (b, h, i, j)>, affine_map<(b, h, i, d, j) -> (b, h, j, d)>, affine_map<(b, h, i, d, j) -> (b, h, i, d)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %v : tensor<1x2x8x8xf32>, tensor<1x2x8x4xf32>) outs(%oz : tensor<1x2x8x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %acc2 = arith.addf %acc, %m : f32
    linalg.yield %acc2 : f32
  } -> tensor<1x2x8x4xf32>
  return %o : tensor<1x2x8x4xf32>
}
}
