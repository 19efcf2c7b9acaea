// Forward with key_offset: the rows are a shard of a longer sequence. Key
// rows at negative positions hold NaN (a halo before the sequence start) and
// must never be read; offsets that are not multiples of the block size move
// the frame edges off the tile edges. Every element is compared with the
// float64 reference (python/swba/reference.py) on pseudo-random inputs.
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 1 --nq 13 --nk 37 --d 8 --dv 8 --bs 5 --ws 3 --dtype f32 --lse --key-offset -19 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefixes=OUT,LSE
// RUN: %python %S/gen_attention_test.py --b 1 --hq 2 --hkv 1 --nq 13 --nk 37 --d 8 --dv 8 --bs 5 --ws 3 --dtype f32 --lse --key-offset 7 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefixes=OUT,LSE
// RUN: %python %S/gen_attention_test.py --b 2 --hq 4 --hkv 2 --nq 17 --nk 30 --d 16 --dv 16 --bs 8 --ws 3 --dtype f16 --key-offset -13 \
// RUN:   | swba-opt --swba-to-llvm \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s --check-prefix=F16
// OUT: out checked 208 mismatches 0{{$}}
// LSE: lse checked 26 mismatches 0{{$}}
// F16: out checked 2176 mismatches 0{{$}}
