// Backward, f32, Nq < Nk, partial last frame, explicit scale, odd tiles.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 1 --nq 23 --nk 50 --d 8 --dv 8 --bs 6 --ws 3 --dtype f32 --scale 0.5 --grad \
// RUN:   | swba-opt --swba-to-llvm="tile-q=7 tile-k=5" \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: dq checked 368 mismatches 0{{$}}
// CHECK: dk checked 400 mismatches 0{{$}}
// CHECK: dv checked 400 mismatches 0{{$}}
