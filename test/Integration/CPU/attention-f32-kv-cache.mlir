// Forward, f32, Nq < Nk (queries bottom-right aligned against a cache), partial last frame (50 = 8 * 6 + 2).
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 20 --nk 50 --d 16 --dv 16 --bs 6 --ws 3 --dtype f32 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 640 mismatches 0{{$}}
// CHECK: lse checked 40 mismatches 0{{$}}
