// Head dim 256 on sm_90a (Hopper/Tiling.h): the tiles, TMA boxes, shared
// memory and kernel order that --lower-swba{target=gpu chip=sm_90a} puts in
// the launch contracts, and the manifest written from them.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a" --swba-write-launch-manifest="path=%t.json" | FileCheck %s
// RUN: FileCheck %s --input-file=%t.json --check-prefix=JSON
// Head dim 192 takes the same kernels with 64-key forward tiles, and the
// dK kernel of the split keeps 64-row query tiles (they fit).
// RUN: sed 's/256/192/g' %s | swba-opt --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s --check-prefix=D192

// Forward: two consumers of 64 rows (128 a workgroup, 384 threads), 64-key
// K/V tiles in two stages: Q 128 x 256 x 2 B = 64 KiB, a stage of K and V
// 2 x 64 x 256 x 2 B = 64 KiB: 196608 bytes.
// CHECK-LABEL: gpu.module @swba_attention_kernels
// CHECK: gpu.func @swba_fwd(
// CHECK-SAME: swba.launch = {block = [384, 1, 1],
// CHECK-SAME: {per = 128 : i64, size = {dim = 2 : i64, tensor = "q"}}
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "q"
// CHECK-SAME: {box = [1, 64, 64], {{.*}} tensor = "k"
// CHECK-SAME: {box = [1, 64, 64], {{.*}} tensor = "v"
// CHECK-SAME: shared_memory = 196608 : i64
// D192-LABEL: gpu.func @swba_fwd(
// D192-SAME: {box = [1, 64, 64], {{.*}} tensor = "k"
// D192-SAME: shared_memory = 147456 : i64
func.func @forward(%q: memref<?x4x?x256xbf16>, %k: memref<?x2x?x256xbf16>, %v: memref<?x2x?x256xbf16>,
                   %o: memref<?x4x?x256xbf16>, %l: memref<?x4x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x256xbf16>, memref<?x2x?x256xbf16>, memref<?x2x?x256xbf16>)
      outs(%o, %l : memref<?x4x?x256xbf16>, memref<?x4x?xf32>) block_size = 1 window = 1024
  return
}

// -----

// Backward: dK and dV (128 + 128 registers a thread) do not fit in one
// consumer together, so a dV kernel (S^T, P^T dO; no V loaded) and a dK
// kernel (S^T, dP^T, dS^T Q) follow the delta kernel on stream 1, and dQ
// runs on stream 0.
//   dV: K 64 KiB, two stages of Q and dO of 64 rows 2 x 64 KiB, row
//       statistics 2 KiB: 198656.
//   dK: K and V 128 KiB, two stages of Q and dO of 32 rows 2 x 32 KiB, row
//       statistics 1 KiB: 197632.
//   dQ: Q and dO of 128 rows 128 KiB, two stages of 32-key K and V tiles
//       2 x 32 KiB: 196608.
// CHECK-LABEL: gpu.module @swba_attention_grad_kernels
// CHECK: gpu.func @swba_bwd_dq(
// CHECK-SAME: swba.launch = {block = [384, 1, 1],
// CHECK-SAME: order = 3 : i64
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "q"
// CHECK-SAME: {box = [1, 32, 64], {{.*}} tensor = "k"
// CHECK-SAME: {box = [1, 32, 64], {{.*}} tensor = "v"
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "dout"
// CHECK-SAME: shared_memory = 196608 : i64, stream = 0 : i64}
// S, dP and the dQ accumulator take 160 registers a thread: each tile
// makes its descriptors from opaque copies of their bases (the producer's
// loop, then the consumers').
// CHECK: scf.for
// CHECK: scf.for
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "", "=l,=l,=l,0,1,2"
// CHECK: gpu.func @swba_bwd_dv(
// CHECK-SAME: {per = 128 : i64, size = {dim = 2 : i64, tensor = "k"}}
// CHECK-SAME: order = 1 : i64
// CHECK-SAME: {box = [1, 64, 64], {{.*}} tensor = "q"
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "k"
// CHECK-SAME: {box = [1, 64, 64], {{.*}} tensor = "dout"
// CHECK-SAME: shared_memory = 198656 : i64, stream = 1 : i64}
// CHECK: gpu.func @swba_bwd_dk(
// CHECK-SAME: order = 2 : i64
// CHECK-SAME: {box = [1, 32, 64], {{.*}} tensor = "q"
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "k"
// CHECK-SAME: {box = [1, 128, 64], {{.*}} tensor = "v"
// CHECK-SAME: {box = [1, 32, 64], {{.*}} tensor = "dout"
// CHECK-SAME: shared_memory = 197632 : i64, stream = 1 : i64}
// CHECK-NOT: @swba_bwd_dkdv
// D192-LABEL: gpu.func @swba_bwd_dq(
// D192-SAME: {box = [1, 64, 64], {{.*}} tensor = "k"
// D192: llvm.inline_asm has_side_effects asm_dialect = att "", "=l,=l,=l,0,1,2"
// D192: gpu.func @swba_bwd_dk(
// D192-SAME: {box = [1, 64, 64], {{.*}} tensor = "q"
// The manifest (each split writes it; this one is the last) holds the
// same, in launch order.
// JSON: "name": "swba_bwd_delta",
// JSON: "name": "swba_bwd_dv",
// JSON-NEXT: "order": 1,
// JSON: "shared_memory": 198656,
// JSON-NEXT: "stream": 1
// JSON: "name": "swba_bwd_dk",
// JSON-NEXT: "order": 2,
// JSON: "shared_memory": 197632,
// JSON-NEXT: "stream": 1
// JSON: "name": "swba_bwd_dq",
// JSON-NEXT: "order": 3,
// JSON: "shared_memory": 196608,
// JSON-NEXT: "stream": 0
func.func @backward(%q: memref<?x4x?x256xbf16>, %k: memref<?x2x?x256xbf16>, %v: memref<?x2x?x256xbf16>,
                    %o: memref<?x4x?x256xbf16>, %l: memref<?x4x?xf32>, %dq: memref<?x4x?x256xbf16>,
                    %dk: memref<?x2x?x256xbf16>, %dv: memref<?x2x?x256xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %o, %l : memref<?x4x?x256xbf16>, memref<?x2x?x256xbf16>, memref<?x2x?x256xbf16>, memref<?x4x?x256xbf16>, memref<?x4x?x256xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x256xbf16>, memref<?x2x?x256xbf16>, memref<?x2x?x256xbf16>) block_size = 256 window = 4
  return
}
