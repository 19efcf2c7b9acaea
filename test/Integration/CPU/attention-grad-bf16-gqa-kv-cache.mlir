// Backward, bf16, GQA (2 query heads per kv head), Nq < Nk with a partial last
// frame (45 = 8 * 5 + 5), Dv != D.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 4 --hkv 2 --nq 29 --nk 45 --d 32 --dv 16 --bs 8 --ws 2 --dtype bf16 --grad \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: dq checked 3712 mismatches 0{{$}}
// CHECK: dk checked 2880 mismatches 0{{$}}
// CHECK: dv checked 1440 mismatches 0{{$}}
