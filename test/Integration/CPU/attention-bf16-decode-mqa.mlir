// Forward, bf16, decode against a KV cache: 3 queries over 61 keys (Nq << Nk,
// partial last frame: 61 = 9 * 6 + 7), MQA (4 query heads over 1 kv head).
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 2 --hq 4 --hkv 1 --nq 3 --nk 61 --d 32 --dv 32 --bs 9 --ws 3 --dtype bf16 --lse \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 768 mismatches 0{{$}}
// CHECK: lse checked 24 mismatches 0{{$}}
