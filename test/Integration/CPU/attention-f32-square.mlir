// Forward, f32, square, with lse.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 2 --hq 2 --hkv 2 --nq 48 --nk 48 --d 16 --dv 16 --bs 8 --ws 2 --dtype f32 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 3072 mismatches 0{{$}}
// CHECK: lse checked 192 mismatches 0{{$}}
