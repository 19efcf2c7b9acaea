// --lower-swba{target=gpu} on swba.paged_attention, and on swba.attention
// with decode=true: the split-KV decode kernel and the split-KV forward's
// combine kernel. The host allocates the partials [splits, B * Hq * Nq(,
// Dv)] and launches the decode kernel over (splits, Hkv, B), then, when
// there is more than one split, the combine kernel over out (and lse)
// collapsed into rows (one split writes out itself); in the kernel the
// window bounds come from the sequence length read on the device, each
// workgroup takes its split's run of 64-key tiles, the page table is read
// only under the check that the page lies in the table, and the caches are
// read only by cp.async (--implicit-check-not: no vector load of them).
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu decode=true" --canonicalize --cse \
// RUN:   | FileCheck %s --implicit-check-not="vector.load %arg1" --implicit-check-not="vector.load %arg2"
// The manifest names the split count as a launch scalar.
// RUN: swba-opt %s --lower-swba="target=gpu" --swba-write-launch-manifest="path=%t.json" -o /dev/null
// RUN: FileCheck %s --input-file=%t.json --check-prefix=JSON
// Without decode=true, swba.attention keeps the tiled forward.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu" | FileCheck %s --check-prefix=TILED
// With split-kv as well (sm_90a), decode=true takes swba.attention.
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a decode=true split-kv=2" | FileCheck %s --check-prefix=BOTH

// GQA 4/2, head dim 16, bs 12, window 3: one split on the emitted host
// (ceil(36 / 512)); the rows per kv head (2 * Nq) asserted to fit.
// CHECK-LABEL: func @paged
// CHECK: cf.assert %{{.*}}, "swba.paged_attention: more than 64 query rows per kv head (Hq / Hkv * Nq) for the decode kernel"
// CHECK: %[[B4:.*]] = arith.muli %[[B:.*]], %c4
// CHECK: %[[ROWS:.*]] = arith.muli %[[B4]], %[[NQ:.*]] : index
// CHECK: %[[PO:.*]] = gpu.alloc (%[[S:.*]], %[[ROWS]]) : memref<?x?x16xf32>
// CHECK: %[[PL:.*]] = gpu.alloc (%[[S]], %[[ROWS]]) : memref<?x?xf32>
// CHECK: gpu.launch_func @swba_decode_kernels::@swba_decode blocks in (%[[S]], %c2, %[[B]]) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %c19200_i32 args({{.*}}, %arg5 : memref<?x4x?x16xf16>, %[[PO]] : memref<?x?x16xf32>, %[[PL]] : memref<?x?xf32>)
// CHECK-NOT: @swba_split_combine blocks
// CHECK: gpu.module @swba_decode_kernels attributes {{{.*}}swba.scalars = ["splits"]}
// CHECK: gpu.func @swba_decode(
// The sequence's length, its queries' key window [%[[KB]], %[[KE]]) (empty
// when every row precedes the sequence), and this split's tiles of it.
// CHECK: %[[LEN32:.*]] = memref.load %arg4[%block_id_z]
// CHECK: %[[LENI:.*]] = arith.index_cast %[[LEN32]]
// CHECK: %[[LEN:.*]] = arith.maxsi %[[LENI]], %c0
// CHECK: %[[NONE:.*]] = arith.cmpi sge
// CHECK: %[[KB:.*]] = arith.select %[[NONE]], %c0,
// CHECK: %[[KE:.*]] = arith.select %[[NONE]], %c0,
// CHECK: %[[SPLITS:.*]] = gpu.grid_dim x
// CHECK: %[[WIN:.*]] = arith.subi %[[KE]], %[[KB]]
// CHECK: %[[TILES:.*]] = arith.ceildivui %[[WIN]], %c64
// CHECK: %[[PER:.*]] = arith.ceildivui %[[TILES]], %[[SPLITS]]
// CHECK: %[[SPAN:.*]] = arith.muli %[[PER]], %c64
// CHECK: %[[OFF:.*]] = arith.muli %block_id_x, %[[SPAN]]
// CHECK: %[[B0:.*]] = arith.addi %[[KB]], %[[OFF]]
// CHECK: %[[BEGIN:.*]] = arith.minsi %[[B0]], %[[KE]]
// CHECK: %[[E0:.*]] = arith.addi %[[BEGIN]], %[[SPAN]]
// CHECK: %[[END:.*]] = arith.minsi %[[E0]], %[[KE]]
// CHECK: %[[N:.*]] = arith.subi %[[END]], %[[BEGIN]]
// CHECK: %[[NTILES:.*]] = arith.ceildivui %[[N]], %c64
// CHECK: %[[MAXP:.*]] = memref.dim %arg3, %c1
// The prologue's first tile: its page's table entry only when the page is
// in the table, then K and V rows by cp.async, zero-filled (0 bytes read)
// past the split or for an entry outside the cache.
// CHECK: %[[HAS:.*]] = arith.cmpi ugt, %[[NTILES]], %c0
// CHECK: scf.if %[[HAS]] {
// CHECK: %[[KEY:.*]] = arith.addi %[[BEGIN]],
// CHECK: %[[INSPLIT:.*]] = arith.cmpi ult, %[[KEY]], %[[END]]
// CHECK: %[[CLAMPED:.*]] = arith.select %[[INSPLIT]], %[[KEY]], %[[BEGIN]]
// CHECK: %[[PAGE:.*]] = arith.divui %[[CLAMPED]],
// CHECK: %[[INTABLE:.*]] = arith.cmpi ult, %[[PAGE]], %[[MAXP]]
// CHECK: %[[SLOT:.*]] = scf.if %[[INTABLE]] -> (index) {
// CHECK: memref.load %arg3[%block_id_z, %[[PAGE]]]
// CHECK: } else {
// CHECK: scf.yield %c-1
// CHECK: %[[VALID:.*]] = arith.cmpi ult, %[[SLOT]],
// CHECK: %[[OK:.*]] = arith.andi %[[INSPLIT]], %[[VALID]]
// CHECK: %[[BYTES:.*]] = arith.select %[[OK]], %c8, %c0
// CHECK: nvgpu.device_async_copy %arg1[{{.*}}, %block_id_y, {{.*}}], %{{.*}}[{{.*}}], 8, %[[BYTES]] {bypassL1}
// CHECK: nvgpu.device_async_copy %arg2[{{.*}}, %block_id_y, {{.*}}], %{{.*}}[{{.*}}], 8, %[[BYTES]] {bypassL1}
// CHECK: nvgpu.device_async_create_group
// The ring: tile t is waited for (one later group may be in flight), then
// tile t + 2 issued (its table entries read as it is), over the split's
// tiles only.
// CHECK: scf.for %[[T:.*]] = %c0 to %[[NTILES]] step %c1
// CHECK: nvgpu.device_async_wait %{{.*}} {numGroups = 1 : i32}
// CHECK-NEXT: gpu.barrier
// CHECK: %[[T2:.*]] = arith.addi %[[T]], %c2
// CHECK: %[[HAS2:.*]] = arith.cmpi ult, %[[T2]], %[[NTILES]]
// CHECK: scf.if %[[HAS2]] {
// CHECK: memref.load %arg3[%block_id_z,
// CHECK: nvgpu.device_async_copy %arg1
// CHECK: nvgpu.mma.sync
// One split writes out itself (cast to f16) at [b, head, query]; more
// write the split's partials at row (b * Hq + head) * Nq + query of
// [splits, rows].
// CHECK: %[[ONE:.*]] = arith.cmpi eq, %[[SPLITS]], %c1 : index
// CHECK: scf.if %[[ONE]] {
// CHECK: %[[O16:.*]] = arith.truncf %{{.*}} : f32 to f16
// CHECK-NEXT: memref.store %[[O16]], %arg5[%block_id_z,
// CHECK: } else {
// CHECK: memref.store %{{.*}}, %arg6[%block_id_x, %[[ROW:.*]], %{{.*}}] : memref<?x?x16xf32>
// CHECK: memref.store %{{.*}}, %arg7[%block_id_x, %[[ROW]]] : memref<?x?xf32>
// CHECK: gpu.func @swba_split_combine(
func.func @paged(%q: memref<?x4x?x16xf16>, %kc: memref<?x?x2x16xf16>, %vc: memref<?x?x2x16xf16>, %pt: memref<?x?xi32>, %sl: memref<?xi32>, %o: memref<?x4x?x16xf16>) {
  swba.paged_attention ins(%q, %kc, %vc, %pt, %sl : memref<?x4x?x16xf16>, memref<?x?x2x16xf16>, memref<?x?x2x16xf16>, memref<?x?xi32>, memref<?xi32>) outs(%o : memref<?x4x?x16xf16>) block_size = 12 window = 3
  return
}

// JSON: "buffers": [
// JSON: "name": "split_out",
// JSON-NEXT: "shape": [
// JSON-NEXT: {
// JSON-NEXT: "scalar": "splits"
// JSON: "name": "split_lse",
// JSON: "kernels": [
// JSON: "scalar": "splits"
// JSON: "name": "swba_decode"
// JSON: "name": "swba_split_combine"
// JSON-NEXT: "only_when": {
// JSON-NEXT: "above": 1,
// JSON-NEXT: "scalar": "splits"
// JSON: "name": "swba_decode_kernels",
// JSON-NEXT: "reproducible": true,
// JSON-NEXT: "scalars": [
// JSON-NEXT: "splits"

// -----

// Dense swba.attention under decode=true: the length is Nk, K and V rows are
// k[b, kv head, key]; 8 splits on the host for a window of 4096 keys.
// CHECK-LABEL: func @dense
// CHECK: gpu.launch_func @swba_decode_kernels::@swba_decode blocks in (%c8, %c2, %{{.*}})
// CHECK: gpu.launch_func @swba_decode_kernels::@swba_split_combine
// CHECK: gpu.func @swba_decode(
// CHECK: memref.dim %arg1, %c2
// CHECK: nvgpu.device_async_copy %arg1[%block_id_z, %block_id_y,
// CHECK: gpu.func @swba_split_combine(
// BOTH-LABEL: func @dense
// BOTH: gpu.launch_func @swba_decode_kernels::@swba_decode
// BOTH: memref.collapse_shape
// BOTH: %[[MORE:.*]] = arith.cmpi ugt, %c8, %{{.*}} : index
// BOTH-NEXT: scf.if %[[MORE]] {
// BOTH: gpu.launch_func @swba_decode_kernels::@swba_split_combine
// BOTH-NOT: swba_fwd_split
// TILED-LABEL: func @dense
// TILED: gpu.launch_func @swba_attention_kernels::@swba_fwd
// TILED-NOT: swba_decode
func.func @dense(%q: memref<?x8x?x64xbf16>, %k: memref<?x2x?x64xbf16>, %v: memref<?x2x?x64xbf16>, %o: memref<?x8x?x64xbf16>, %l: memref<?x8x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x8x?x64xbf16>, memref<?x2x?x64xbf16>, memref<?x2x?x64xbf16>) outs(%o, %l : memref<?x8x?x64xbf16>, memref<?x8x?xf32>) block_size = 1024 window = 4
  return
}
