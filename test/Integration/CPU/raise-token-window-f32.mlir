// End to end: A token-level sliding window (block_size 1) added as 0/-inf, the scale
// on q, batch and heads collapsed.
// The module runs through --swba-to-llvm with and without --raise-swba on
// pseudo-random non-zero inputs (sin of the flat index); every output element
// of the two runs must agree.
// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: swba-opt %s --raise-swba --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python -c "import re,sys; v=[[float(x) for x in re.findall(r'-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?', open(f).read().split('data =')[1])] for f in sys.argv[1:3]]; a,b=v; t=float(sys.argv[3]); bad=sum(abs(x-y)>t for x,y in zip(a,b)) if len(a)==len(b) else -1; print('compared', len(a), 'elements,', bad, 'mismatches,', 'nonzero' if max(map(abs,a))>0.01 else 'zero')" %t.raised %t.plain 1e-4 | FileCheck %s
// IR: swba.attention {{.*}} block_size = 1 window = 3 scale = 2.500000e-01
// IR-NOT: linalg.batch_matmul
// IR-NOT: linalg.matmul
// IR-NOT: math.exp
// CHECK: compared 64 elements, 0 mismatches, nonzero

func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}

func.func @main() {
  %q_e = tensor.empty() : tensor<2x8x4xf32>
  %q = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%q_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
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
  } -> tensor<2x8x4xf32>
  %k_e = tensor.empty() : tensor<2x8x4xf32>
  %k = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%k_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
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
  } -> tensor<2x8x4xf32>
  %v_e = tensor.empty() : tensor<2x8x4xf32>
  %v = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} outs(%v_e : tensor<2x8x4xf32>) {
  ^bb0(%out: f32):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
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
  } -> tensor<2x8x4xf32>
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
  %sm_ninf = arith.constant 0xFF800000 : f32
  %sm_zero = arith.constant 0.0 : f32
  %sm_re = tensor.empty() : tensor<2x8x1xf32>
  %sm_e = tensor.empty() : tensor<2x8x8xf32>
  %sm_mi = linalg.fill ins(%sm_ninf : f32) outs(%sm_re : tensor<2x8x1xf32>) -> tensor<2x8x1xf32>
  %sm_max = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, 0)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x8x8xf32>) outs(%sm_mi : tensor<2x8x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %mx = arith.maximumf %in, %acc : f32
    linalg.yield %mx : f32
  } -> tensor<2x8x1xf32>
  %sm_ex = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, 0)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %sm_max : tensor<2x8x8xf32>, tensor<2x8x1xf32>) outs(%sm_e : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %ex = math.exp %d : f32
    linalg.yield %ex : f32
  } -> tensor<2x8x8xf32>
  %sm_si = linalg.fill ins(%sm_zero : f32) outs(%sm_re : tensor<2x8x1xf32>) -> tensor<2x8x1xf32>
  %sm_sum = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, 0)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%sm_ex : tensor<2x8x8xf32>) outs(%sm_si : tensor<2x8x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8x1xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, 0)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%sm_ex, %sm_sum : tensor<2x8x8xf32>, tensor<2x8x1xf32>) outs(%sm_e : tensor<2x8x8xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %dv = arith.divf %in, %sm : f32
    linalg.yield %dv : f32
  } -> tensor<2x8x8xf32>
  %oe = tensor.empty() : tensor<2x8x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<2x8x8xf32>, tensor<2x8x4xf32>) outs(%oz : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  %printed = bufferization.to_buffer %o : tensor<2x8x4xf32> to memref<2x8x4xf32>
  %unranked = memref.cast %printed : memref<2x8x4xf32> to memref<*xf32>
  func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
