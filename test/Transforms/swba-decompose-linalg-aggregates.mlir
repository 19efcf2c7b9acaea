// linalg.softmax becomes its max / exp / sum / divide parts, which the CPU
// pipeline lowers to loops.
// RUN: swba-opt %s --swba-decompose-linalg-aggregates | FileCheck %s

// CHECK-LABEL: func @softmax
// CHECK-NOT: linalg.softmax
// CHECK: linalg.generic
// CHECK: arith.max
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK: arith.divf
func.func @softmax(%x: tensor<2x3x16xf32>) -> tensor<2x3x16xf32> {
  %e = tensor.empty() : tensor<2x3x16xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x3x16xf32>) outs(%e : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  return %p : tensor<2x3x16xf32>
}
