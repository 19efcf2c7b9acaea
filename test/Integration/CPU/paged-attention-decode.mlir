// swba.paged_attention, decode (one query per sequence): ragged lengths
// (1 token, partial last frames, whole frames), pages in random order, every
// page and slot the op must not read holding NaN; GQA 4 (f32, static sizes)
// and GQA 8 (bf16, every size dynamic, pages as large as frames). Every
// element of out and lse is compared with the float64 reference
// (swba.reference.paged_attention_forward).
// RUN: %python %S/gen_paged_attention_test.py --b 4 --hq 8 --hkv 2 --nq 1 --d 16 --dv 16 --bs 8 --ws 3 --page-size 4 --lens 1,37,64,100 --dtype f32 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefix=F32
// RUN: %python %S/gen_paged_attention_test.py --b 3 --hq 8 --hkv 1 --nq 1 --d 32 --dv 32 --bs 16 --ws 2 --page-size 16 --lens 5,70,33 --dtype bf16 --lse --dynamic \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefix=BF16
// F32: out checked 512 mismatches 0{{$}}
// F32: lse checked 32 mismatches 0{{$}}
// BF16: out checked 768 mismatches 0{{$}}
// BF16: lse checked 24 mismatches 0{{$}}
