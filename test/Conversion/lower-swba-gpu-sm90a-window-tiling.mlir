// The sm_90a tiles chosen from the window (withWindowTiling): token windows
// at head dim 128 keep 128-key forward tiles and take 64-key dQ tiles; frames
// aligned with the tiles keep 128-key tiles; narrow bands at head dim 64
// take 64-key forward tiles (and with the grid asked for, two workgroups of
// two consumers an SM), 64-row dK/dV query tiles and one dK/dV consumer
// (two workgroups an SM); an option given wins
// over the window's choice.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a" --canonicalize --cse --split-input-file | FileCheck %s
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=128 grad-key-tile=128 grad-query-tile=128" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=ASKED
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a workgroups-per-sm=1" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=ONE
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a tile-scheduler=grid" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=GRID
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a ping-pong=true" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=TURNS
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a stages=2 grad-stages=2" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=TWO
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-kv-consumers=2" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=KV2
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-q-consumers=1" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=Q1
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-kv-tiles=1" --canonicalize --cse --split-input-file | FileCheck %s --check-prefix=KT1

// Q in 128-row boxes; K and V in 128-key boxes, two stages of them:
// 32 KiB + 2 x (32 + 32) KiB.
// CHECK-LABEL: func @token_window_d128
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// CHECK-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} dynamic_shared_memory_size %c163840_i32
// A consumer's rows see nearly all of the workgroup's 34 key tiles: the
// consumers run the workgroup's (the pipelined loop from its second tile).
// CHECK: nvvm.setmaxregister  increase 240
// CHECK-NOT: scf.for
// CHECK: scf.for %{{.*}} = %c1 to
// ASKED-LABEL: func @token_window_d128
// ASKED: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} dynamic_shared_memory_size %c163840_i32
func.func @token_window_d128(%q: memref<?x32x?x128xbf16>, %k: memref<?x8x?x128xbf16>,
                             %v: memref<?x8x?x128xbf16>, %o: memref<?x32x?x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x32x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>)
      outs(%o : memref<?x32x?x128xbf16>) block_size = 1 window = 4096
  return
}

// -----

// CHECK-LABEL: func @frame_window_d128
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// CHECK-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} dynamic_shared_memory_size %c163840_i32
func.func @frame_window_d128(%q: memref<?x24x?x128xbf16>, %k: memref<?x24x?x128xbf16>,
                             %v: memref<?x24x?x128xbf16>, %o: memref<?x24x?x128xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x24x?x128xbf16>, memref<?x24x?x128xbf16>, memref<?x24x?x128xbf16>)
      outs(%o : memref<?x24x?x128xbf16>) block_size = 1024 window = 4
  return
}

// -----

// A 128-token band at head dim 64: a persistent workgroup an SM (the
// default at head dim 64) of three consumers: Q in 192-row boxes, K and V
// in 64-key boxes, 176 KiB of shared memory (two Q buffers, eight K/V
// stages, which a consumer's whole band in one pass needs, and 2 KiB of
// ones for its rows' sums; 80 KiB with two stages asked for, TWO, where
// the one pass does not run) and the tile slots; the producer
// keeps 32 registers, the consumers take 160. With the grid asked for, two
// workgroups an SM, each of two consumers: Q in 128-row boxes, 48 KiB of
// shared memory, 80 registers a thread at launch; the producer gives 56
// back and the consumers take them (104).
// CHECK-LABEL: func @narrow_band_d64
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c192, %c64]
// The maps of K, V and out (the one pass stores O through TMA, 64-row
// boxes), and 24 KiB more for O's staging, a box of 64 rows a consumer.
// CHECK-COUNT-3: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%{{.*}}, %c1, %c1) threads in (%c512, %c1, %c1) dynamic_shared_memory_size %c207040_i32
// TWO-LABEL: func @narrow_band_d64
// TWO: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%{{.*}}, %c1, %c1) threads in (%c512, %c1, %c1) dynamic_shared_memory_size %c82112_i32
// CHECK: gpu.func @swba_fwd({{.*}}) kernel attributes {{{.*}}nvvm.maxnreg = 128 : i32
// The ones of the rows' sums (bf16 pairs, 0x3F803F80) after the eight
// stages: the producer warpgroup's 128 threads write 16 bytes each and
// fence them for the wgmmas, before the workgroup's barrier.
// CHECK: %[[PAIRS:.*]] = arith.constant dense<1065369472> : vector<4xi32>
// CHECK: %[[ONESVIEW:.*]] = memref.view %{{.*}}[%c180224][] : memref<207040xi8, #gpu.address_space<workgroup>> to memref<512xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[WG0:.*]] = arith.cmpi ult, %thread_id_x, %c128 : index
// CHECK-NEXT: scf.if %[[WG0]] {
// CHECK-NEXT: %[[AT:.*]] = arith.muli %thread_id_x, %c4 : index
// CHECK-NEXT: vector.store %[[PAIRS]], %[[ONESVIEW]][%[[AT]]] {alignment = 16 : i64}
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: gpu.barrier
// CHECK: nvvm.setmaxregister  decrease 32
// The producer plans each claimed tile for its three consumers, in i32
// (its key tiles stored at word 8), then their own key tiles and interior
// keys, four words each from word 12 of the slot.
// CHECK: %[[PLANNED:.*]] = arith.ceildivui %{{.*}}, %c64_i32 : i32
// CHECK-NEXT: memref.store %{{.*}}[%c4] : memref<24xi32
// CHECK: memref.store %[[PLANNED]], %{{.*}}[%c8] : memref<24xi32
// CHECK: memref.store %{{.*}}[%c12] : memref<24xi32
// CHECK: memref.store %{{.*}}[%c16] : memref<24xi32
// CHECK: memref.store %{{.*}}[%c20] : memref<24xi32
// CHECK: memref.store %{{.*}}[%c23] : memref<24xi32
// A consumer's 64 rows see 3 tiles of 64 keys, fewer than the
// workgroup's: each runs its own, and before and after them releases the
// workgroup's others once they have landed. The consumers take no turns
// there (ping-pong chosen off: a turn on each skipped tile would hold a
// consumer to the others' pace); asked for (TURNS), a turn for each.
// CHECK: nvvm.setmaxregister  increase 160
// GRID-LABEL: func @narrow_band_d64
// GRID: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// GRID-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// GRID: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c49152_i32
// GRID: gpu.func @swba_fwd({{.*}}) kernel attributes {{{.*}}nvvm.maxnreg = 80 : i32
// GRID: nvvm.setmaxregister  decrease 24
// GRID: nvvm.setmaxregister  increase 104
// A consumer's tiles from the tile's plan (four words at 12 + 4 c), which
// the producer worked out; each word as the warp's minimum (every lane
// read the same), which ptxas holds in a uniform register.
// CHECK: %[[OWN:.*]] = arith.addi %{{.*}}, %c12 : index
// CHECK-NEXT: %[[OWNWORDS:.*]] = vector.load %{{.*}}[%[[OWN]]] {alignment = 16 : i64} : memref<24xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// CHECK-NEXT: %[[FIRSTWORD:.*]] = vector.extract %[[OWNWORDS]][0]
// CHECK-NEXT: nvvm.redux.sync  umin %[[FIRSTWORD]], %c-1_i32 : i32 -> i32
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c1 {
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive
// CHECK-NOT: nvvm.barrier
// Where a consumer has the three tiles its rows see (not near the
// sequence's ends) and its first tile starts at its first row's first key
// (the workgroup's window not cut off at key 0), it runs them in one pass:
// the three S products (four k16 slices each) in one group, one wait, the
// softmax of all 96 scores (edge tiles masked), then the three P V
// products in one group, O never rescaled, each with its P times a B of
// ones (m64n8: the rows' sums); elsewhere the tile-by-tile loop.
// CHECK: %[[FROMFIRST:.*]] = arith.cmpi sge, %{{.*}}, %c127 : index
// CHECK: %[[THREE:.*]] = arith.cmpi eq, %{{.*}}, %c3 : index
// CHECK-NEXT: %[[WHOLE:.*]] = arith.andi %[[THREE]], %[[FROMFIRST]] : i1
// CHECK-NEXT: scf.if %[[WHOLE]] -> (
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-12: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 64, k = 16>, D[<f32>, <{{zero|one}}>], A[<bf16>, <one>, <row>]
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// The edge tiles' mask bits from the thread's rows alone (row i of the
// consumer sees columns [i - 64 t, i + 128 - 64 t) of tile t), not from
// the tiles' keys: the same in every query tile, so LLVM makes them once,
// before the tiles. The middle tile, seen whole, is neither masked nor
// tested.
// CHECK-NOT: nvvm.wgmma.wait.group.sync.aligned
// CHECK: %[[COLUMN:.*]] = arith.subi %{{.*}}, %{{.*}} : i32
// CHECK-NEXT: arith.addi %[[COLUMN]], %c128_i32 : i32
// CHECK-NOT: nvvm.wgmma.wait.group.sync.aligned
// CHECK: arith.addi %[[COLUMN]], %c-128_i32 : i32
// CHECK-NOT: llvm.inline_asm has_side_effects asm_dialect = att "", "=r,=r,0,1"
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NOT: -> (f32
// CHECK-COUNT-64: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// CHECK-NOT: arith.select
// CHECK: arith.maximumf
// CHECK-NOT: scf.if
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// CHECK-COUNT-4: llvm.inline_asm has_side_effects {{.*}}wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: } else {
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[END:.*]] step %c1 iter_args
// TURNS-LABEL: func @narrow_band_d64
// TURNS: nvvm.setmaxregister  increase 160
// TURNS: scf.for %{{.*}} = %c0 to %{{.*}} step %c1 {
// TURNS: nvgpu.mbarrier.try_wait.parity
// TURNS: nvgpu.mbarrier.arrive
// TURNS: nvgpu.mbarrier.try_wait.parity
// TURNS: nvgpu.mbarrier.arrive
// TURNS: nvvm.barrier id
// TURNS-NEXT: nvvm.barrier.arrive id
// TURNS: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1 iter_args
// Whether the tile is interior: two compares of its first key with the
// keys every row of the consumer sees (interiorKeys of its 64 rows, made
// before the loop), not the frame arithmetic of each key tile.
// CHECK: %[[IN_END:.*]] = arith.cmpi ule, %{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[IN_BEGIN:.*]] = arith.cmpi uge, %{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[IN:.*]] = arith.andi %[[IN_BEGIN]], %[[IN_END]] : i1
// CHECK-NEXT: scf.if %[[IN]] -> (f32
// An edge tile's mask: each of a thread's two rows has its keys' bounds
// (the row's window, in i32) taken relative to its first column once, in
// [0, 64], then made a bit an element (rowBits: the count of the thread's
// offsets below each bound), made opaque; an element tests its bit.
// CHECK: arith.maxsi %{{.*}}, %c127_i32 : i32
// CHECK-NEXT: arith.subi %{{.*}}, %c127_i32 : i32
// CHECK: arith.minsi %{{.*}}, %c64_i32 : i32
// CHECK-NEXT: arith.maxsi %{{.*}}, %c0_i32 : i32
// CHECK: arith.shrui %{{.*}}, %c3_i32 : i32
// CHECK-NEXT: arith.shli %{{.*}}, %c1_i32 : i32
// CHECK-NEXT: arith.andi %{{.*}}, %c7_i32 : i32
// CHECK-NEXT: arith.minsi %{{.*}}, %c2_i32 : i32
// CHECK: %[[B:.*]] = llvm.inline_asm has_side_effects asm_dialect = att "", "=r,=r,0,1"
// CHECK-NEXT: %[[BITS:.*]] = llvm.extractvalue %[[B]][0]
// CHECK-NEXT: llvm.extractvalue %[[B]][1]
// CHECK-NEXT: %[[BIT:.*]] = arith.andi %[[BITS]], %c1_i32 : i32
// CHECK-NEXT: %[[SEEN:.*]] = arith.cmpi ne, %[[BIT]], %c0_i32 : i32
// CHECK-NEXT: arith.select %[[SEEN]]
// CHECK-NEXT: arith.andi %[[BITS]], %c2_i32 : i32
// CHECK: scf.for %{{.*}} = %[[END]] to %{{.*}} step %c1 {
// The epilogue through the consumer's staging (8 KiB a consumer after the
// ones, from 182272): its first thread waits until the last tile's TMA
// store has read it, the warpgroup meets (named barrier 4 + consumer),
// writes O / sum, fences it for the async proxy and meets again; then
// the first thread stores the 64 rows (rows past the queries fall outside
// the map) and commits the bulk group. Before the kernel ends it waits
// for the stores.
// CHECK: %[[STAGED:.*]] = arith.addi %{{.*}}, %c182272 : index
// CHECK-NEXT: scf.if %[[LEADER:.*]] {
// CHECK-NEXT: nvvm.cp.async.bulk.wait_group 0 {read}
// CHECK-NEXT: }
// CHECK-NEXT: nvvm.barrier id = %[[OUTBAR:.*]] number_of_threads = %c128_i32
// CHECK-NEXT: memref.view %{{.*}}[%[[STAGED]]][] : memref<207040xi8, #gpu.address_space<workgroup>> to memref<2048xi32, #gpu.address_space<workgroup>>
// CHECK-COUNT-16: memref.store %{{.*}} : memref<2048xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: nvvm.barrier id = %[[OUTBAR]] number_of_threads = %c128_i32
// CHECK-NEXT: scf.if %[[LEADER]] {
// CHECK: nvvm.cp.async.bulk.tensor.global.shared.cta %{{.*}}, %{{.*}}, box[%c0_i32, %{{.*}}, %{{.*}}] : !llvm.ptr, <3>
// CHECK-NEXT: nvvm.cp.async.bulk.commit.group
// CHECK: scf.yield
// CHECK: nvvm.cp.async.bulk.wait_group 0
// CHECK-NOT: {read}
// 128-key tiles asked for: one workgroup of three consumers (two would
// need more than 80 registers a thread for the 64 x 128 accumulator).
// ASKED-LABEL: func @narrow_band_d64
// ASKED: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c192, %c64]
// ASKED-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ONE-LABEL: func @narrow_band_d64
// ONE: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c192, %c64]
// ONE: nvvm.maxnreg = 128 : i32
// ONE: nvvm.setmaxregister  increase 160
func.func @narrow_band_d64(%q: memref<?x64x?x64xbf16>, %k: memref<?x64x?x64xbf16>,
                           %v: memref<?x64x?x64xbf16>, %o: memref<?x64x?x64xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x64x?x64xbf16>, memref<?x64x?x64xbf16>, memref<?x64x?x64xbf16>)
      outs(%o : memref<?x64x?x64xbf16>) block_size = 1 window = 128
  return
}

// -----

// Small frames at head dim 64 (a band of 512 keys): one consumer a
// workgroup of 64 rows, three workgroups an SM on the grid: 256 threads, 80
// registers a thread at launch, the consumer rising to 136; Q in 64-row
// boxes and two stages of 64-key K/V tiles, 40 KiB. Asked for one
// workgroup an SM (ONE), the persistent workgroup of three consumers;
// the grid asked for (GRID), two workgroups of two consumers.
// CHECK-LABEL: func @small_frames_d64
// CHECK-COUNT-3: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd blocks in (%c16, %{{.*}}, %{{.*}}) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c40960_i32
// CHECK: gpu.func @swba_fwd({{.*}}) kernel attributes {{{.*}}nvvm.maxnreg = 80 : i32
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: nvvm.setmaxregister  increase 136
// ONE-LABEL: func @small_frames_d64
// ONE: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c512, %c1, %c1)
// ONE: nvvm.maxnreg = 128 : i32
// ONE: nvvm.setmaxregister  increase 160
// GRID-LABEL: func @small_frames_d64
// GRID: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c384, %c1, %c1)
// GRID: nvvm.maxnreg = 80 : i32
// GRID: nvvm.setmaxregister  increase 104
func.func @small_frames_d64(%q: memref<?x16x?x64xbf16>, %k: memref<?x16x?x64xbf16>,
                            %v: memref<?x16x?x64xbf16>, %o: memref<?x16x?x64xbf16>) {
  swba.attention ins(%q, %k, %v : memref<?x16x?x64xbf16>, memref<?x16x?x64xbf16>, memref<?x16x?x64xbf16>)
      outs(%o : memref<?x16x?x64xbf16>) block_size = 64 window = 8
  return
}

// -----

// The backward of a token window at head dim 128: the dQ kernel's K/V
// boxes hold 64 keys (maps of q, k, v, dout in that order).
// CHECK-LABEL: func @token_window_grad_d128
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_delta
// CHECK-COUNT-4: nvgpu.tma.create.descriptor
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// CHECK-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq
// With 64-key tiles the dQ kernel keeps its loop-invariant descriptors
// out of the loop; with 128-key tiles (ASKED) each tile makes them from
// opaque copies of their bases (the descriptors' base, Q's and dO's).
// With 64-key tiles the dQ kernel waits for S alone before P (dP's
// group still in flight); with 128-key tiles at head dim 128 (ASKED) for
// both. The dK/dV kernel at head dim 128 waits for both.
// CHECK: gpu.func @swba_bwd_dq(
// CHECK-NOT: "=l,=l,=l,0,1,2"
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK-NOT: "=l,=l,=l,0,1,2"
// CHECK: gpu.func @swba_bwd_dkdv(
// CHECK-NOT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: gpu.func @swba_bwd_delta(
// ASKED-LABEL: func @token_window_grad_d128
// ASKED: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// ASKED: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq
// ASKED: gpu.func @swba_bwd_dq(
// ASKED: scf.for
// ASKED: scf.for
// ASKED-NEXT: llvm.inline_asm has_side_effects asm_dialect = att "", "=l,=l,=l,0,1,2"
// ASKED-NOT: nvvm.wgmma.wait.group.sync.aligned 1
// ASKED: gpu.func @swba_bwd_dkdv(
func.func @token_window_grad_d128(%q: memref<?x8x?x128xbf16>, %k: memref<?x8x?x128xbf16>, %v: memref<?x8x?x128xbf16>,
                                  %o: memref<?x8x?x128xbf16>, %do: memref<?x8x?x128xbf16>, %l: memref<?x8x?xf32>,
                                  %dq: memref<?x8x?x128xbf16>, %dk: memref<?x8x?x128xbf16>, %dv: memref<?x8x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?xf32>)
      outs(%dq, %dk, %dv : memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>) block_size = 1 window = 4096
  return
}

// -----

// The backward of a narrow band at head dim 64: the dK/dV kernel has one
// consumer (grad-kv-consumers left empty): a workgroup of 256 threads holds
// 64 keys (K and V boxes of 64) at a time and runs up to 16 key tiles
// one after the other (grad-kv-tiles left empty: the host picks the count),
// K and V in two buffers, in 65 KiB of shared memory and half of the SM's
// registers (128 a thread at launch, the consumer rising to 232), two
// workgroups an SM; its Q and dO boxes hold 64 query rows. With one key
// tile a workgroup (KT1): 64 keys a workgroup, one K/V buffer, 49 KiB. The
// dQ kernel's K and V boxes hold 64 keys, and with 64-key tiles it has one
// consumer, three workgroups an SM: Q, dO and O boxes of 64 rows, 256
// threads, 80 registers at launch and 136 a consumer, two stages (56
// KiB). With 128-key tiles (ASKED) it keeps two consumers (128 rows, 384
// threads); with grad-stages asked for (TWO) three consumers (192 rows,
// 512 threads) and those stages (104 KiB), as the dK/dV kernel. The dQ
// kernel computes delta (grad-dq-delta left empty: O's rows loaded with
// Q's and dO's, a fifth tensor map) and runs first, the dK/dV kernel
// after it; no delta kernel.
// CHECK-LABEL: func @narrow_band_grad_d64
// CHECK-NOT: swba_bwd_delta
// CHECK-COUNT-5: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c57344_i32
// CHECK-COUNT-4: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// The dK/dV grid: up to 16 key tiles a workgroup, the count whose waves
// of workgroups (264 at once: two an SM of 132) times a workgroup's time
// (100 a tile, 30 to start and end) are fewest, the last of equals.
// CHECK: %[[KEY_TILES:.*]] = arith.ceildivui %{{.*}}, %c64 : index
// CHECK-NEXT: %[[HEADS:.*]] = arith.muli %{{.*}}, %c4 : index
// CHECK-NEXT: %[[AT_ONE:.*]] = arith.muli %[[HEADS]], %[[KEY_TILES]] : index
// CHECK-NEXT: %[[WAVES_ONE:.*]] = arith.ceildivui %[[AT_ONE]], %c264 : index
// CHECK-NEXT: %[[COST_ONE:.*]] = arith.muli %[[WAVES_ONE]], %c130 : index
// CHECK-NEXT: %[[EXTENT_TWO:.*]] = arith.ceildivui %[[KEY_TILES]], %c2 : index
// CHECK-NEXT: %[[AT_TWO:.*]] = arith.muli %[[HEADS]], %[[EXTENT_TWO]] : index
// CHECK-NEXT: %[[WAVES_TWO:.*]] = arith.ceildivui %[[AT_TWO]], %c264 : index
// CHECK-NEXT: %[[COST_TWO:.*]] = arith.muli %[[WAVES_TWO]], %c230 : index
// CHECK-NEXT: %[[TWO_BETTER:.*]] = arith.cmpi ule, %[[COST_TWO]], %[[COST_ONE]] : index
// CHECK-NEXT: arith.select %[[TWO_BETTER]], %[[EXTENT_TWO]], %[[KEY_TILES]] : index
// CHECK-NEXT: arith.minui %[[COST_TWO]], %[[COST_ONE]] : index
// CHECK: %[[EXTENT_EIGHT:.*]] = arith.ceildivui %[[KEY_TILES]], %c8 : index
// CHECK-NEXT: %[[AT_EIGHT:.*]] = arith.muli %[[HEADS]], %[[EXTENT_EIGHT]] : index
// CHECK-NEXT: %[[WAVES_EIGHT:.*]] = arith.ceildivui %[[AT_EIGHT]], %c264 : index
// CHECK-NEXT: %[[COST_EIGHT:.*]] = arith.muli %[[WAVES_EIGHT]], %c830 : index
// CHECK-NEXT: %[[EIGHT_BETTER:.*]] = arith.cmpi ule, %[[COST_EIGHT]], %{{.*}} : index
// CHECK: %[[EXTENT_SIXTEEN:.*]] = arith.ceildivui %[[KEY_TILES]], %c16 : index
// CHECK-NEXT: %[[AT_SIXTEEN:.*]] = arith.muli %[[HEADS]], %[[EXTENT_SIXTEEN]] : index
// CHECK-NEXT: %[[WAVES_SIXTEEN:.*]] = arith.ceildivui %[[AT_SIXTEEN]], %c264 : index
// CHECK-NEXT: %[[COST_SIXTEEN:.*]] = arith.muli %[[WAVES_SIXTEEN]], %c1630 : index
// CHECK-NEXT: %[[SIXTEEN_BETTER:.*]] = arith.cmpi ule, %[[COST_SIXTEEN]], %{{.*}} : index
// CHECK-NEXT: %[[PICKED:.*]] = arith.select %[[SIXTEEN_BETTER]], %[[EXTENT_SIXTEEN]], %{{.*}} : index
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv blocks in (%c4, %[[PICKED]], %{{.*}}) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c66560_i32
// TWO-LABEL: func @narrow_band_grad_d64
// TWO: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} threads in (%c512, %c1, %c1) dynamic_shared_memory_size %c106496_i32
// TWO: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv {{.*}} threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c66560_i32
// The dQ kernel lets the dK/dV kernel after it start once all of its
// workgroups have; the dK/dV kernel's launch says it may (early_start), and
// its consumers wait for the dQ kernel before they read anything (delta);
// its producer, which loads only the op's inputs, does not.
// CHECK: gpu.func @swba_bwd_dq({{.*}}nvvm.maxnreg = 80 : i32
// CHECK: nvvm.griddepcontrol  launch_dependents
// CHECK-NEXT: nvgpu.mbarrier.create
// CHECK: nvvm.setmaxregister  increase 136
// The dK/dV kernel's interior test: a query tile that sees the
// workgroup's 64 keys whole (are they 64 whole, then the last first row).
// Barriers: Q's and dO's two stages, full and empty (8), and the two K/V
// buffers' full (0 and 11) and empty ones (9 and 10: each consumer thread
// arrives). The producer and the consumer each run the workgroup's key
// tiles, ceildiv(key tiles, grid y) of them (the launch manifest's grid
// dim with "most"), the ring's position carried from one to the next; the
// producer waits for a K/V buffer to be empty before it loads it.
// CHECK: gpu.func @swba_bwd_dkdv({{.*}}nvvm.maxnreg = 128 : i32{{.*}}early_start = true, grid = [{{.*}}{most = 16 : i64, overhead = 30 : i64, per = 64 : i64, per_sm = 2 : i64, size = {dim = 2 : i64, tensor = "k"}}
// CHECK: nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 12>
// CHECK: nvgpu.mbarrier.init %{{.*}}[%c9], %c128
// CHECK: nvgpu.mbarrier.init %{{.*}}[%c10], %c128
// CHECK: nvgpu.mbarrier.init %{{.*}}[%c11], %c1
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: %[[PTILES:.*]] = arith.ceildivui %{{.*}}, %c64 : index
// CHECK-NEXT: %[[P_Y:.*]] = gpu.grid_dim  y
// CHECK-NEXT: %[[PSHARE:.*]] = arith.ceildivui %[[PTILES]], %[[P_Y]] : index
// CHECK-NEXT: scf.for %[[PROUND:.*]] = %c0 to %[[PSHARE]] step %c1 iter_args(%{{.*}} = %c0) -> (index) {
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.*}}, %c16384
// CHECK-NOT: griddepcontrol
// CHECK: nvvm.setmaxregister  increase 232
// CHECK-NEXT: nvvm.griddepcontrol  wait
// CHECK: %[[TILES:.*]] = arith.ceildivui %{{.*}}, %c64 : index
// CHECK-NEXT: %[[Y:.*]] = gpu.grid_dim  y
// CHECK-NEXT: %[[SHARE:.*]] = arith.ceildivui %[[TILES]], %[[Y]] : index
// CHECK-NEXT: scf.for %[[ROUND:.*]] = %c0 to %[[SHARE]] step %c1 iter_args(%[[BASE:.*]] = %c0) -> (index) {
// CHECK: arith.cmpi eq, %{{.*}}, %c64 : index
// CHECK-NEXT: arith.subi %{{.*}}, %c64 : index
// The first query tile's lse and delta are loaded before the consumer
// waits for this round's K and V (buffer round % 2: barrier 0 or 11), then
// the loop over query tiles, whose row statistics' slots alternate along
// the ring (base + j), written while the tile's S^T and dP^T run.
// CHECK: memref.load %arg4
// CHECK: memref.load %arg5
// CHECK: arith.divui %[[ROUND]], %c2 : index
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK-NEXT: scf.for %[[J:.*]] = %c0 to
// CHECK: %[[AT:.*]] = arith.addi %[[BASE]], %[[J]] : index
// CHECK: %[[SLOT:.*]] = arith.remui %[[AT]], %c2 : index
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: arith.muli
// CHECK-NEXT: arith.addi %{{.*}}, %[[SLOT]] : index
// CHECK-NEXT: arith.muli %{{.*}}, %c512 : index
// CHECK-NEXT: arith.addi %{{.*}}, %c65536 : index
// CHECK-NEXT: memref.view %{{.*}} to memref<128xf32
// After the last query tile every consumer thread releases the buffer.
// CHECK: nvgpu.mbarrier.arrive
// CHECK-NOT: gpu.func @swba_bwd_delta(
// KT1-LABEL: func @narrow_band_grad_d64
// KT1: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv blocks in (%c4, %{{.*}}, %{{.*}}) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c50176_i32
// KT1: gpu.func @swba_bwd_dkdv(
// KT1: num_barriers = 9
// KT1-NOT: iter_args(%{{.*}} = %c0) -> (index)
// KT1: memref.load %arg4
// KT1: memref.load %arg5
// KT1: nvgpu.mbarrier.try_wait.parity %{{.*}}[%c0], %false
// KT1-NEXT: scf.for
// With two dK/dV consumers asked for (KV2): 128 keys a workgroup, 384
// threads, 66 KiB. A consumer's 64 keys are seen by 3 of the workgroup's
// 4 query tiles: it runs the products of those alone (the others keep dK
// and dV as they were), and its interior test takes the query tiles that
// see its own 64 keys whole (the middle one of its three), not the
// workgroup's 128 keys, which no 64-row tile of a 128-token window sees
// whole. With 128-row query tiles (ASKED) both consumers' keys are seen
// by both tiles: nothing to skip.
// KV2-LABEL: func @narrow_band_grad_d64
// KV2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// KV2-COUNT-2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// KV2: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// KV2: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv {{.*}} threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c67584_i32
// KV2: gpu.func @swba_bwd_dkdv(
// KV2: nvvm.setmaxregister  increase 240
// KV2: arith.cmpi eq, %{{.*}}, %c64 : index
// KV2-NEXT: arith.subi %{{.*}}, %c64 : index
// KV2: scf.for
// KV2: scf.if %{{.*}} -> (f32,
// KV2: nvvm.wgmma.fence.aligned
// KV2: scf.yield %arg{{[0-9]+}}, %arg
// With one dQ consumer (Q1): 64 query rows a workgroup, 256 threads, Q,
// dO and O boxes of 64 rows, 88 KiB (four K/V stages), two workgroups an
// SM.
// Q1-LABEL: func @narrow_band_grad_d64
// Q1-COUNT-5: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c64, %c64]
// Q1: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c90112_i32
// Q1: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv
// Q1: gpu.func @swba_bwd_dq({{.*}}nvvm.maxnreg = 128 : i32
// Q1: nvvm.setmaxregister  increase 232
// ASKED-LABEL: func @narrow_band_grad_d64
// ASKED-COUNT-5: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq {{.*}} threads in (%c384, %c1, %c1)
// ASKED-COUNT-4: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c128, %c64]
// ASKED: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv {{.*}} threads in (%c384, %c1, %c1)
// ASKED: gpu.func @swba_bwd_dq(
// ASKED: nvvm.setmaxregister  increase 240
// ASKED: gpu.func @swba_bwd_dkdv(
// ASKED-NOT: scf.yield %arg{{[0-9]+}}, %arg
func.func @narrow_band_grad_d64(%q: memref<?x4x?x64xbf16>, %k: memref<?x4x?x64xbf16>, %v: memref<?x4x?x64xbf16>,
                                %o: memref<?x4x?x64xbf16>, %do: memref<?x4x?x64xbf16>, %l: memref<?x4x?xf32>,
                                %dq: memref<?x4x?x64xbf16>, %dk: memref<?x4x?x64xbf16>, %dv: memref<?x4x?x64xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>) block_size = 1 window = 128
  return
}
