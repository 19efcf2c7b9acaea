// Forward, f16, GQA: 4 query heads over 2 kv heads.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 2 --hq 4 --hkv 2 --nq 33 --nk 33 --d 16 --dv 16 --bs 8 --ws 2 --dtype f16 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 4224 mismatches 0{{$}}
