// Forward, f32, explicit scale and Dv != D.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 30 --nk 30 --d 16 --dv 8 --bs 6 --ws 2 --dtype f32 --scale 0.3 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 480 mismatches 0{{$}}
// CHECK: lse checked 60 mismatches 0{{$}}
