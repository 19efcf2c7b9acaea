// Dynamic sizes the verifier cannot check are asserted at run time: 5
// queries over 4 keys stop the program (cf.assert, then abort) before the
// loops read keys out of bounds; 4 over 4 run. (The assert's message goes
// to stdout, which abort does not flush through a pipe.)
// RUN: swba-opt %s --swba-to-llvm | not --crash mlir-runner -e more_queries_than_keys -entry-point-result=void %mlir_runner_libs
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e same_lengths -entry-point-result=void %mlir_runner_libs | FileCheck %s
// CHECK: ran

func.func @attention(%q: tensor<1x2x?x8xf32>, %k: tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32> {
  %c2 = arith.constant 2 : index
  %n = tensor.dim %q, %c2 : tensor<1x2x?x8xf32>
  %o = tensor.empty(%n) : tensor<1x2x?x8xf32>
  %r = swba.attention ins(%q, %k, %k : tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>)
                      outs(%o : tensor<1x2x?x8xf32>) block_size = 4 window = 2 -> tensor<1x2x?x8xf32>
  return %r : tensor<1x2x?x8xf32>
}

func.func @more_queries_than_keys() {
  %q = arith.constant dense<1.0> : tensor<1x2x5x8xf32>
  %k = arith.constant dense<1.0> : tensor<1x2x4x8xf32>
  %qd = tensor.cast %q : tensor<1x2x5x8xf32> to tensor<1x2x?x8xf32>
  %kd = tensor.cast %k : tensor<1x2x4x8xf32> to tensor<1x2x?x8xf32>
  %r = func.call @attention(%qd, %kd) : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  return
}

func.func @same_lengths() {
  %q = arith.constant dense<1.0> : tensor<1x2x4x8xf32>
  %qd = tensor.cast %q : tensor<1x2x4x8xf32> to tensor<1x2x?x8xf32>
  %r = func.call @attention(%qd, %qd) : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  vector.print str "ran\n"
  return
}
