// swba.paged_attention, one frame of queries per sequence (Nq = block_size):
// ragged lengths, one shorter than Nq (its first rows precede the sequence:
// out 0, lse -inf), pages of 5 tokens that straddle frames of 8, pages in
// random order with NaN wherever the op must not read; GQA 1 (f16, explicit
// scale, Dv != D) and two frames of queries with GQA 4 (f32, tiles of 16
// queries over frame edges). Every element of out and lse is compared with
// the float64 reference (swba.reference.paged_attention_forward).
// RUN: %python %S/gen_paged_attention_test.py --b 4 --hq 2 --hkv 2 --nq 8 --d 16 --dv 8 --bs 8 --ws 2 --page-size 5 --lens 8,29,50,3 --dtype f16 --lse --scale 0.3 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefix=F16
// RUN: %python %S/gen_paged_attention_test.py --b 2 --hq 4 --hkv 1 --nq 12 --d 8 --dv 8 --bs 6 --ws 3 --page-size 4 --lens 12,41 --dtype f32 --lse --seed 3 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefix=F32
// F16: out checked 512 mismatches 0{{$}}
// F16: lse checked 64 mismatches 0{{$}}
// F32: out checked 768 mismatches 0{{$}}
// F32: lse checked 96 mismatches 0{{$}}
