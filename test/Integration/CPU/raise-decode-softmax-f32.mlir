// End to end: three queries against 16 keys, bottom-right aligned, the lowest finite
// f32 as the mask value, softmax as linalg.softmax (which --swba-to-llvm
// decomposes when it is not raised).
// The module runs through --swba-to-llvm with and without --raise-swba on
// pseudo-random non-zero inputs (sin of the flat index); every output element
// of the two runs must agree.
// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: swba-opt %s --raise-swba --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python -c "import re,sys; v=[[float(x) for x in re.findall(r'-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?', open(f).read().split('data =')[1])] for f in sys.argv[1:3]]; a,b=v; t=float(sys.argv[3]); bad=sum(abs(x-y)>t for x,y in zip(a,b)) if len(a)==len(b) else -1; print('compared', len(a), 'elements,', bad, 'mismatches,', 'nonzero' if max(map(abs,a))>0.01 else 'zero')" %t.raised %t.plain 1e-4 | FileCheck %s
// IR: swba.attention {{.*}} block_size = 8 window = 1 scale = 5.000000e-01
// IR-NOT: linalg.batch_matmul
// IR-NOT: linalg.matmul
// IR-NOT: math.exp
// IR-NOT: linalg.softmax
// CHECK: compared 24 elements, 0 mismatches, nonzero

func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}

func.func @main() {
  %q_e = tensor.empty() : tensor<2x3x4xf32>
  %q = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%q_e : tensor<2x3x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 3 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 4 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %fi = arith.index_cast %flat2 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.731 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<2x3x4xf32>
  %k_e = tensor.empty() : tensor<2x16x4xf32>
  %k = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%k_e : tensor<2x16x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 16 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 4 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %fi = arith.index_cast %flat2 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 1.377 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<2x16x4xf32>
  %v_e = tensor.empty() : tensor<2x16x4xf32>
  %v = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%v_e : tensor<2x16x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 16 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 4 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %fi = arith.index_cast %flat2 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.529 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<2x16x4xf32>
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
  %sme = tensor.empty() : tensor<2x3x16xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x3x16xf32>) outs(%sme : tensor<2x3x16xf32>) -> tensor<2x3x16xf32>
  %oe = tensor.empty() : tensor<2x3x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x3x16xf32>, tensor<2x16x4xf32>) outs(%oz : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  %printed = bufferization.to_buffer %o : tensor<2x3x4xf32> to memref<2x3x4xf32>
  %unranked = memref.cast %printed : memref<2x3x4xf32> to memref<*xf32>
  func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
