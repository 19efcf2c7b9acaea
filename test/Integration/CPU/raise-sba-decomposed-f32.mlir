// End to end: The seed's naive SBA as an importer emits it (4-D, linalg.transpose,
// collapsed batch_matmul, mask from linalg.index, decomposed softmax).
// The module runs through --swba-to-llvm with and without --raise-swba on
// pseudo-random non-zero inputs (sin of the flat index); every output element
// of the two runs must agree.
// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: swba-opt %s --raise-swba --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python -c "import re,sys; v=[[float(x) for x in re.findall(r'-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?', open(f).read().split('data =')[1])] for f in sys.argv[1:3]]; a,b=v; t=float(sys.argv[3]); bad=sum(abs(x-y)>t for x,y in zip(a,b)) if len(a)==len(b) else -1; print('compared', len(a), 'elements,', bad, 'mismatches,', 'nonzero' if max(map(abs,a))>0.01 else 'zero')" %t.raised %t.plain 1e-4 | FileCheck %s
// IR: swba.attention {{.*}} block_size = 16 window = 2 scale = 2.500000e-01
// IR-NOT: linalg.batch_matmul
// IR-NOT: linalg.matmul
// IR-NOT: math.exp
// CHECK: compared 2048 elements, 0 mismatches, nonzero

func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}

func.func @main() {
  %q_e = tensor.empty() : tensor<1x2x64x16xf32>
  %q = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%q_e : tensor<1x2x64x16xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 2 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 64 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %x3 = linalg.index 3 : index
    %c3 = arith.constant 16 : index
    %m3 = arith.muli %flat2, %c3 : index
    %flat3 = arith.addi %m3, %x3 : index
    %fi = arith.index_cast %flat3 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.731 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<1x2x64x16xf32>
  %k_e = tensor.empty() : tensor<1x2x64x16xf32>
  %k = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%k_e : tensor<1x2x64x16xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 2 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 64 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %x3 = linalg.index 3 : index
    %c3 = arith.constant 16 : index
    %m3 = arith.muli %flat2, %c3 : index
    %flat3 = arith.addi %m3, %x3 : index
    %fi = arith.index_cast %flat3 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 1.377 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<1x2x64x16xf32>
  %v_e = tensor.empty() : tensor<1x2x64x16xf32>
  %v = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%v_e : tensor<1x2x64x16xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 2 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %x2 = linalg.index 2 : index
    %c2 = arith.constant 64 : index
    %m2 = arith.muli %flat1, %c2 : index
    %flat2 = arith.addi %m2, %x2 : index
    %x3 = linalg.index 3 : index
    %c3 = arith.constant 16 : index
    %m3 = arith.muli %flat2, %c3 : index
    %flat3 = arith.addi %m3, %x3 : index
    %fi = arith.index_cast %flat3 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.529 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    linalg.yield %s : f32
  } -> tensor<1x2x64x16xf32>
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
  %printed = bufferization.to_buffer %o : tensor<1x2x64x16xf32> to memref<1x2x64x16xf32>
  %unranked = memref.cast %printed : memref<1x2x64x16xf32> to memref<*xf32>
  func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
