// End to end: f16 q/k/v, f32 scores and softmax, f16 probabilities; block-causal,
// one head, 2-D linalg.matmul. The unraised chain accumulates P.V in f16,
// hence the looser tolerance.
// The module runs through --swba-to-llvm with and without --raise-swba on
// pseudo-random non-zero inputs (sin of the flat index); every output element
// of the two runs must agree.
// RUN: swba-opt %s --raise-swba | FileCheck %s --check-prefix=IR
// RUN: swba-opt %s --raise-swba --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.raised
// RUN: swba-opt %s --swba-to-llvm | mlir-runner -e main -entry-point-result=void %mlir_runner_libs > %t.plain
// RUN: %python -c "import re,sys; v=[[float(x) for x in re.findall(r'-?[0-9][0-9.]*(?:e[-+]?[0-9]+)?', open(f).read().split('data =')[1])] for f in sys.argv[1:3]]; a,b=v; t=float(sys.argv[3]); bad=sum(abs(x-y)>t for x,y in zip(a,b)) if len(a)==len(b) else -1; print('compared', len(a), 'elements,', bad, 'mismatches,', 'nonzero' if max(map(abs,a))>0.01 else 'zero')" %t.raised %t.plain 1e-2 | FileCheck %s
// IR: swba.attention {{.*}} block_size = 4 window = 3
// IR-NOT: linalg.batch_matmul
// IR-NOT: linalg.matmul
// IR-NOT: math.exp
// CHECK: compared 96 elements, 0 mismatches, nonzero

func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}

func.func @main() {
  %q_e = tensor.empty() : tensor<12x8xf16>
  %q = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%q_e : tensor<12x8xf16>) {
  ^bb0(%out: f16):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %fi = arith.index_cast %flat1 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.731 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    %st = arith.truncf %s : f32 to f16
    linalg.yield %st : f16
  } -> tensor<12x8xf16>
  %k_e = tensor.empty() : tensor<12x8xf16>
  %k = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%k_e : tensor<12x8xf16>) {
  ^bb0(%out: f16):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %fi = arith.index_cast %flat1 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 1.377 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    %st = arith.truncf %s : f32 to f16
    linalg.yield %st : f16
  } -> tensor<12x8xf16>
  %v_e = tensor.empty() : tensor<12x8xf16>
  %v = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%v_e : tensor<12x8xf16>) {
  ^bb0(%out: f16):
    %flat0 = linalg.index 0 : index
    %x1 = linalg.index 1 : index
    %c1 = arith.constant 8 : index
    %m1 = arith.muli %flat0, %c1 : index
    %flat1 = arith.addi %m1, %x1 : index
    %fi = arith.index_cast %flat1 : index to i64
    %ff = arith.sitofp %fi : i64 to f32
    %sd = arith.constant 0.529 : f32
    %a = arith.mulf %ff, %sd : f32
    %b = arith.addf %a, %sd : f32
    %s = math.sin %b : f32
    %st = arith.truncf %s : f32 to f16
    linalg.yield %st : f16
  } -> tensor<12x8xf16>
  %zero = arith.constant 0.0 : f32
  %zero16 = arith.constant 0.0 : f16
  %ninf = arith.constant 0xFF800000 : f32
  %sqrt8 = arith.constant 2.82842712 : f32
  %kte = tensor.empty() : tensor<8x12xf16>
  %kt = linalg.transpose ins(%k : tensor<12x8xf16>) outs(%kte : tensor<8x12xf16>) permutation = [1, 0]
  %se = tensor.empty() : tensor<12x12xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<12x12xf32>) -> tensor<12x12xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<12x8xf16>, tensor<8x12xf16>) outs(%sz : tensor<12x12xf32>) -> tensor<12x12xf32>
  %xe = tensor.empty() : tensor<12x12xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<12x12xf32>) outs(%xe : tensor<12x12xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c4 = arith.constant 4 : index
    %fi = arith.floordivsi %i, %c4 : index
    %fj = arith.floordivsi %j, %c4 : index
    %keep = arith.cmpi sle, %fj, %fi : index
    %sc = arith.divf %in, %sqrt8 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<12x12xf32>
  %pe = tensor.empty() : tensor<12x12xf32>
  %sm_ninf = arith.constant 0xFF800000 : f32
  %sm_zero = arith.constant 0.0 : f32
  %sm_re = tensor.empty() : tensor<12x1xf32>
  %sm_e = tensor.empty() : tensor<12x12xf32>
  %sm_mi = linalg.fill ins(%sm_ninf : f32) outs(%sm_re : tensor<12x1xf32>) -> tensor<12x1xf32>
  %sm_max = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, 0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<12x12xf32>) outs(%sm_mi : tensor<12x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %mx = arith.maximumf %in, %acc : f32
    linalg.yield %mx : f32
  } -> tensor<12x1xf32>
  %sm_ex = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, 0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x, %sm_max : tensor<12x12xf32>, tensor<12x1xf32>) outs(%sm_e : tensor<12x12xf32>) {
  ^bb0(%in: f32, %mx: f32, %out: f32):
    %d = arith.subf %in, %mx : f32
    %ex = math.exp %d : f32
    linalg.yield %ex : f32
  } -> tensor<12x12xf32>
  %sm_si = linalg.fill ins(%sm_zero : f32) outs(%sm_re : tensor<12x1xf32>) -> tensor<12x1xf32>
  %sm_sum = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, 0)>], iterator_types = ["parallel", "reduction"]} ins(%sm_ex : tensor<12x12xf32>) outs(%sm_si : tensor<12x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<12x1xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, 0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%sm_ex, %sm_sum : tensor<12x12xf32>, tensor<12x1xf32>) outs(%sm_e : tensor<12x12xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %dv = arith.divf %in, %sm : f32
    linalg.yield %dv : f32
  } -> tensor<12x12xf32>
  %p16e = tensor.empty() : tensor<12x12xf16>
  %p16 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%p : tensor<12x12xf32>) outs(%p16e : tensor<12x12xf16>) {
  ^bb0(%in: f32, %out: f16):
    %t = arith.truncf %in : f32 to f16
    linalg.yield %t : f16
  } -> tensor<12x12xf16>
  %oe = tensor.empty() : tensor<12x8xf16>
  %oz = linalg.fill ins(%zero16 : f16) outs(%oe : tensor<12x8xf16>) -> tensor<12x8xf16>
  %o = linalg.matmul ins(%p16, %v : tensor<12x12xf16>, tensor<12x8xf16>) outs(%oz : tensor<12x8xf16>) -> tensor<12x8xf16>
  %ext_e = tensor.empty() : tensor<12x8xf32>
  %ext = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%o : tensor<12x8xf16>) outs(%ext_e : tensor<12x8xf32>) {
  ^bb0(%in: f16, %out: f32):
    %xx = arith.extf %in : f16 to f32
    linalg.yield %xx : f32
  } -> tensor<12x8xf32>
  %printed = bufferization.to_buffer %ext : tensor<12x8xf32> to memref<12x8xf32>
  %unranked = memref.cast %printed : memref<12x8xf32> to memref<*xf32>
  func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
