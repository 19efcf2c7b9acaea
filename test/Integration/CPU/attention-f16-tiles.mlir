// Forward, f16, odd tile sizes (tile-q=5, tile-k=3) against the same reference.
// Every output element is compared with the float64 reference
// (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 1 --nq 31 --nk 37 --d 8 --dv 8 --bs 4 --ws 3 --dtype f16 --lse \
// RUN:   | swba-opt --swba-to-llvm="tile-q=5 tile-k=3" \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// CHECK: out checked 496 mismatches 0{{$}}
// CHECK: lse checked 62 mismatches 0{{$}}
