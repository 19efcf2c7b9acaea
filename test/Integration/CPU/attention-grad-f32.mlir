// Backward, f32: dq, dk, dv against the analytic float64 gradients.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 40 --nk 40 --d 16 --dv 16 --bs 6 --ws 2 --dtype f32 --grad \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: dq checked 1280 mismatches 0{{$}}
// CHECK: dk checked 1280 mismatches 0{{$}}
// CHECK: dv checked 1280 mismatches 0{{$}}
