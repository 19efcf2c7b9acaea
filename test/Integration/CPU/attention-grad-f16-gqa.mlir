// Backward, f16, GQA (dk and dv sum the 2 query heads of each group), Dv != D.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 2 --hq 4 --hkv 2 --nq 37 --nk 37 --d 16 --dv 8 --bs 7 --ws 3 --dtype f16 --grad \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: dq checked 4736 mismatches 0{{$}}
// CHECK: dk checked 2368 mismatches 0{{$}}
// CHECK: dv checked 1184 mismatches 0{{$}}
