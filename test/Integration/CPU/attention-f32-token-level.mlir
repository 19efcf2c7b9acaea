// Forward, f32, block_size 1: a token-level causal sliding window of 5 tokens.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 1 --nq 40 --nk 40 --d 8 --dv 8 --bs 1 --ws 5 --dtype f32 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 640 mismatches 0{{$}}
// CHECK: lse checked 80 mismatches 0{{$}}
