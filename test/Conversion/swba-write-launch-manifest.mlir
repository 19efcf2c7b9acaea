// The launch contract --lower-swba{target=gpu} attaches to each kernel
// (swba.launch) and to its gpu.module (swba.buffers), and the JSON manifest
// --swba-write-launch-manifest writes from them: grid as ceildiv(a tensor's
// dim, rows per workgroup) or a launch scalar, block, dynamic shared memory, register cap,
// parameters with their TMA boxes, the backward's buffers, order and
// streams; on sm_90 (mma.sync kernels) and sm_90a (TMA + wgmma kernels).
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-fused-dq=false" --swba-write-launch-manifest="path=%t.sm90a.json" | FileCheck %s --check-prefix=SM90A
// RUN: FileCheck %s --input-file=%t.sm90a.json --check-prefix=JSON
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90" --swba-write-launch-manifest="path=%t.sm90.json" | FileCheck %s --check-prefix=SM90
// RUN: FileCheck %s --input-file=%t.sm90.json --check-prefix=JSON90
// The backward of frames at head dim 128 is fused by default.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a" --swba-write-launch-manifest="path=%t.fused.json" | FileCheck %s --check-prefix=FUSED
// RUN: FileCheck %s --input-file=%t.fused.json --check-prefix=JSONFUSED
// The pipeline writes the same manifest with manifest=<path>.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa manifest=%t.nvvm.json grad-fused-dq=false" -o /dev/null
// RUN: FileCheck %s --input-file=%t.nvvm.json --check-prefix=JSON

// Forward, f16, head dim 64 on sm_90a: persistent, a workgroup an SM (the
// launch scalar sm_count) of three consumers of 64 rows (192 rows a query
// tile, 512 threads) claiming tiles from a zeroed i32 buffer, its last
// memref; 114688 bytes of dynamic shared memory (two Q buffers of 24 KiB,
// two K/V stages of 32 KiB) and the tile slots (192), 128
// registers a thread; Q boxes of 192 rows, K/V boxes of 128 keys.
// SM90A: gpu.module @swba_attention_kernels attributes {swba.buffers = [{element_type = "i32", name = "tile_counter", shape = [1], zero = true}], swba.scalars = ["sm_count"]}
// SM90A: gpu.func @swba_fwd(
// SM90A-SAME: swba.launch = {block = [512, 1, 1],
// SM90A-SAME: grid = [{per = 1 : i64, size = {scalar = "sm_count"}}, {per = 1 : i64, size = {product = []}}, {per = 1 : i64, size = {product = []}}]
// SM90A-SAME: max_registers = 128 : i64, order = 0 : i64
// SM90A-SAME: params = [{element_type = "f16", kind = "memref", rank = 4 : i64, tensor = "q"}, {{.*}} {element_type = "f32", kind = "memref", rank = 3 : i64, tensor = "lse"}, {element_type = "i32", kind = "memref", rank = 1 : i64, tensor = "tile_counter"},
// SM90A-SAME: {box = [1, 192, 64], element_type = "f16", interleave = "none", kind = "tensor_map", l2_promotion = "l2promo_256b", oob_fill = "zero", swizzle = "swizzle_128b", tensor = "q", view = {{\[\[}}0, 1], [2], [3]]},
// SM90A-SAME: {box = [1, 128, 64], {{.*}} tensor = "k"
// SM90A-SAME: {box = [1, 128, 64], {{.*}} tensor = "v"
// SM90A-SAME: shared_memory = 114880 : i64, stream = 0 : i64}
// On sm_90 the mma.sync forward: 128 rows a workgroup of 128 threads, no
// dynamic shared memory, no tensor maps, no register cap.
// SM90: gpu.func @swba_fwd(
// SM90-SAME: swba.launch = {block = [128, 1, 1], grid = [{per = 1 : i64, size = {dim = 1 : i64, tensor = "q"}}, {per = 128 : i64, size = {dim = 2 : i64, tensor = "q"}}, {per = 1 : i64, size = {dim = 0 : i64, tensor = "q"}}], order = 0 : i64,
// SM90-NOT: tensor_map
// SM90-SAME: shared_memory = 0 : i64, stream = 0 : i64}
func.func @forward(%q: memref<?x4x?x64xf16>, %k: memref<?x2x?x64xf16>, %v: memref<?x2x?x64xf16>,
                   %o: memref<?x4x?x64xf16>, %l: memref<?x4x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x4x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>)
      outs(%o, %l : memref<?x4x?x64xf16>, memref<?x4x?xf32>) block_size = 100 window = 6
  return
}

// Backward, bf16, head dim 128, with grad-fused-dq=false: a delta buffer [B][Hq][Nq] of f32; the
// delta kernel (32 query rows) first, then dK/dV over the key tiles (grid
// from k, 128 keys, Q/dO boxes of 64 rows) on stream 1, then dQ (128 query
// rows, all boxes of 128 rows) on stream 0.
// SM90A: gpu.module @swba_attention_grad_kernels attributes {swba.buffers = [{element_type = "f32", name = "delta", shape = [{dim = 0 : i64, tensor = "q"}, {dim = 1 : i64, tensor = "q"}, {dim = 2 : i64, tensor = "q"}], zero = false}]}
// SM90A: gpu.func @swba_bwd_dq(
// SM90A-SAME: swba.launch = {block = [384, 1, 1], grid = [{per = 1 : i64, size = {dim = 1 : i64, tensor = "q"}}, {per = 128 : i64, size = {dim = 2 : i64, tensor = "q"}}, {per = 1 : i64, size = {dim = 0 : i64, tensor = "q"}}], max_registers = 168 : i64, order = 2 : i64
// SM90A-SAME: tensor = "delta"}, {{.*}} tensor = "out"}, {{.*}} tensor = "dq"}, {box = [1, 128, 64], {{.*}} tensor = "q", {{.*}} {box = [1, 128, 64], {{.*}} tensor = "dout", {{.*}}]
// SM90A-SAME: shared_memory = 196608 : i64, stream = 0 : i64}
// SM90A: gpu.func @swba_bwd_dkdv(
// SM90A-SAME: swba.launch = {block = [384, 1, 1], grid = [{per = 1 : i64, size = {dim = 1 : i64, tensor = "k"}}, {per = 128 : i64, size = {dim = 2 : i64, tensor = "k"}}, {per = 1 : i64, size = {dim = 0 : i64, tensor = "k"}}], max_registers = 168 : i64, order = 1 : i64
// SM90A-SAME: tensor = "dk"}, {{.*}} tensor = "dv"}, {box = [1, 64, 64], {{.*}} tensor = "q", {{.*}} {box = [1, 128, 64], {{.*}} tensor = "k", {{.*}} {box = [1, 128, 64], {{.*}} tensor = "v", {{.*}} {box = [1, 64, 64], {{.*}} tensor = "dout", {{.*}}]
// SM90A-SAME: shared_memory = 133120 : i64, stream = 1 : i64}
// SM90A: gpu.func @swba_bwd_delta(
// SM90A-SAME: swba.launch = {block = [128, 1, 1], grid = [{per = 1 : i64, size = {dim = 1 : i64, tensor = "q"}}, {per = 32 : i64, size = {dim = 2 : i64, tensor = "q"}}, {per = 1 : i64, size = {dim = 0 : i64, tensor = "q"}}], order = 0 : i64, params = [{element_type = "bf16", kind = "memref", rank = 4 : i64, tensor = "dout"}, {element_type = "bf16", kind = "memref", rank = 4 : i64, tensor = "out"}, {element_type = "f32", kind = "memref", rank = 3 : i64, tensor = "delta"}], shared_memory = 0 : i64, stream = 0 : i64}
// The mma.sync backward: the same order and streams, 64 rows a workgroup.
// SM90: gpu.func @swba_bwd_dq(
// SM90-SAME: {per = 64 : i64, size = {dim = 2 : i64, tensor = "q"}}
// SM90-SAME: order = 2 : i64
// SM90-SAME: stream = 0 : i64}
// SM90: gpu.func @swba_bwd_dkdv(
// SM90-SAME: {per = 64 : i64, size = {dim = 2 : i64, tensor = "k"}}
// SM90-SAME: order = 1 : i64
// SM90-SAME: stream = 1 : i64}
// With grad-fused-dq (the default here: frames of 256 at head dim 128): a
// zeroed f32 dq_accum [B][Hq][Nq][128] too, the dK/dV kernel adding into it
// through a fifth map (boxes of 64 rows of 32 f32) on stream 0, then the
// conversion kernel; the module is marked not reproducible (the order of
// the additions varies), and so is the manifest's entry.
// FUSED: gpu.module @swba_attention_grad_kernels attributes {swba.buffers = [{{.*}} name = "delta", {{.*}}, {element_type = "f32", name = "dq_accum", shape = [{dim = 0 : i64, tensor = "q"}, {dim = 1 : i64, tensor = "q"}, {dim = 2 : i64, tensor = "q"}, 128], zero = true}]
// FUSED-SAME: swba.reproducible = false}
// FUSED: gpu.func @swba_bwd_dkdvdq(
// FUSED-SAME: order = 1 : i64
// FUSED-SAME: {element_type = "f32", kind = "memref", rank = 4 : i64, tensor = "dq_accum"}
// FUSED-SAME: {box = [1, 64, 32], element_type = "f32", {{.*}} tensor = "dq_accum"
// FUSED-SAME: shared_memory = 215040 : i64, stream = 0 : i64}
// FUSED: gpu.func @swba_bwd_dqconvert(
// FUSED-SAME: order = 2 : i64, params = [{element_type = "f32", kind = "memref", rank = 4 : i64, tensor = "dq_accum"}, {element_type = "bf16", kind = "memref", rank = 4 : i64, tensor = "dq"}]
func.func @backward(%q: memref<?x4x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x128xbf16>,
                    %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %l: memref<?x4x?xf32>,
                    %dq: memref<?x4x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>) block_size = 256 window = 2
  return
}

// The manifest: one entry per gpu.module, its kernels in launch order.
// JSON: "format": 1,
// JSON: "buffers": [
// JSON-NEXT: {
// JSON-NEXT: "element_type": "i32",
// JSON-NEXT: "name": "tile_counter",
// JSON: "zero": true
// JSON: "block": [
// JSON-NEXT: 512,
// JSON: "scalar": "sm_count"
// JSON: "name": "swba_fwd",
// JSON: "box": [
// JSON-NEXT: 1,
// JSON-NEXT: 192,
// JSON-NEXT: 64
// JSON: "shared_memory": 114880,
// JSON: "name": "swba_attention_kernels",
// JSON-NEXT: "reproducible": true,
// JSON-NEXT: "scalars": [
// JSON-NEXT: "sm_count"
// JSON: "name": "delta",
// JSON: "name": "swba_bwd_delta",
// JSON: "name": "swba_bwd_dkdv",
// JSON: "stream": 1
// JSON: "name": "swba_bwd_dq",
// JSON: "stream": 0
// JSON: "name": "swba_attention_grad_kernels"
// JSON-NEXT: "reproducible": true,
// JSONFUSED: "name": "swba_attention_kernels",
// JSONFUSED-NEXT: "reproducible": true,
// JSONFUSED: "name": "dq_accum",
// JSONFUSED: "name": "swba_bwd_dkdvdq",
// JSONFUSED: "name": "swba_bwd_dqconvert",
// JSONFUSED: "name": "swba_attention_grad_kernels",
// JSONFUSED-NEXT: "reproducible": false,
// JSON90: "name": "swba_fwd",
// JSON90-NOT: tensor_map
// JSON90: "name": "swba_bwd_delta",
