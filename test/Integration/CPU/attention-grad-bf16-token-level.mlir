// Backward, bf16, block_size 1.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 2 --nq 40 --nk 40 --d 16 --dv 16 --bs 1 --ws 5 --dtype bf16 --grad \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: dq checked 1280 mismatches 0{{$}}
// CHECK: dk checked 1280 mismatches 0{{$}}
// CHECK: dv checked 1280 mismatches 0{{$}}
