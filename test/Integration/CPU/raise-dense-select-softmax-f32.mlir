// End to end: a dense boolean mask (frames of 2, window 2) selected
// against -inf, the scale on the scores, linalg.softmax, batch and heads
// collapsed (the first case of test/Transforms/raise-swba.mlir).
// The module runs through --swba-to-llvm with and without --raise-swba on
// pseudo-random non-zero inputs (sin of the flat index); every output element
// of the two runs must agree.
// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: swba-opt %s --raise-swba --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python -c "import re,sys; v=[[float(x) for x in re.findall(r'-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?', open(f).read().split('data =')[1])] for f in sys.argv[1:3]]; a,b=v; t=float(sys.argv[3]); bad=sum(abs(x-y)>t for x,y in zip(a,b)) if len(a)==len(b) else -1; print('compared', len(a), 'elements,', bad, 'mismatches,', 'nonzero' if max(map(abs,a))>0.01 else 'zero')" %t.raised %t.plain 1e-4 | FileCheck %s
// IR: swba.attention {{.*}} block_size = 2 window = 2 scale = 5.000000e-01
// IR-NOT: linalg.batch_matmul
// IR-NOT: linalg.softmax
// CHECK: compared 64 elements, 0 mismatches, nonzero

func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}

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

func.func @main() {
  %q_e = tensor.empty() : tensor<2x8x4xf32>
  %q = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%q_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %i2 = linalg.index 2 : index
    %n1 = arith.constant 8 : index
    %n2 = arith.constant 4 : index
    %a0 = arith.muli %i0, %n1 : index
    %a1 = arith.addi %a0, %i1 : index
    %a2 = arith.muli %a1, %n2 : index
    %flat = arith.addi %a2, %i2 : index
    %fi = arith.index_cast %flat : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.731 : f32
    %x = arith.mulf %ff, %sd : f32
    %y = arith.addf %x, %sd : f32
    %s = math.sin %y : f32
    linalg.yield %s : f32
  } -> tensor<2x8x4xf32>
  %k_e = tensor.empty() : tensor<2x8x4xf32>
  %k = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%k_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %i2 = linalg.index 2 : index
    %n1 = arith.constant 8 : index
    %n2 = arith.constant 4 : index
    %a0 = arith.muli %i0, %n1 : index
    %a1 = arith.addi %a0, %i1 : index
    %a2 = arith.muli %a1, %n2 : index
    %flat = arith.addi %a2, %i2 : index
    %fi = arith.index_cast %flat : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.377 : f32
    %x = arith.mulf %ff, %sd : f32
    %y = arith.addf %x, %sd : f32
    %s = math.sin %y : f32
    linalg.yield %s : f32
  } -> tensor<2x8x4xf32>
  %v_e = tensor.empty() : tensor<2x8x4xf32>
  %v = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%v_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %i0 = linalg.index 0 : index
    %i1 = linalg.index 1 : index
    %i2 = linalg.index 2 : index
    %n1 = arith.constant 8 : index
    %n2 = arith.constant 4 : index
    %a0 = arith.muli %i0, %n1 : index
    %a1 = arith.addi %a0, %i1 : index
    %a2 = arith.muli %a1, %n2 : index
    %flat = arith.addi %a2, %i2 : index
    %fi = arith.index_cast %flat : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 1.113 : f32
    %x = arith.mulf %ff, %sd : f32
    %y = arith.addf %x, %sd : f32
    %s = math.sin %y : f32
    linalg.yield %s : f32
  } -> tensor<2x8x4xf32>
  %o = func.call @dense_select_softmax(%q, %k, %v) : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %printed = bufferization.to_buffer %o : tensor<2x8x4xf32> to memref<2x8x4xf32>
  %unranked = memref.cast %printed : memref<2x8x4xf32> to memref<*xf32>
  func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
