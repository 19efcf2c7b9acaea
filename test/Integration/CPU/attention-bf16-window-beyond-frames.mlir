// Forward, bf16, window 100 over 5 frames: block-causal.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 40 --nk 40 --d 16 --dv 16 --bs 8 --ws 100 --dtype bf16 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 1280 mismatches 0{{$}}
// CHECK: lse checked 80 mismatches 0{{$}}
