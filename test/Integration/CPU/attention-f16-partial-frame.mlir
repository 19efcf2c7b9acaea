// Forward, f16, block_size 7 (not a multiple of the 16-row tiles), N = 45 (partial last frame).
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 45 --nk 45 --d 16 --dv 16 --bs 7 --ws 2 --dtype f16 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 1440 mismatches 0{{$}}
// CHECK: lse checked 90 mismatches 0{{$}}
