//===- Tiling.cpp - Tile sizes of the sm_90a kernels ----------------------===//
//
// The tiling decisions of the sm_90a kernels and the measurements behind
// them (Tiling.h).
//
//===----------------------------------------------------------------------===//

#include "Tiling.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

FailureOr<HopperTiling> gpu_kernels::getTiling(int64_t d, int64_t dv,
                                               const HopperOptions &options) {
  if (!coversHeadDim(d) || !coversHeadDim(dv))
    return failure();
  // Consumer warpgroups of 64 query rows: while one runs its softmax, the
  // others' MMAs keep the tensor cores busy, and a K/V tile read from
  // shared memory feeds all their rows. Three at head dim 64 (192 rows):
  // there a tile's softmax (64 exponentials a thread) takes longer than
  // one other consumer's products (S and P V of m64n128k64 and
  // m64n64k128), and two others cover it; 160 registers a consumer hold
  // S, O and the P fragments without spills. 326 -> 358 and 385-389 ->
  // 405-408 TFLOP/s at design configurations 1 and 2 (variants.py,
  // 2026-11-25). Two at head dim 128, where O doubles and 160 registers
  // spill 384 bytes (294 against 480-491 TFLOP/s at configuration 3).
  // 128 keys per tile: S = 64 x 128 f32 is 64 registers a thread, O
  // another Dv / 2, and 240 registers hold them with the P fragments at
  // Dv = 128 (with three consumers, block-n=192 makes S 96 of the 160
  // registers, and the head-dim-64 kernel twice as slow).
  // Two stages: the next tile's TMA load runs during this tile's math;
  // at D = 128 a third stage would leave ~2 KB of shared memory spare.
  // The softmax of one tile overlaps the P V product of the previous one
  // (software pipelining within a warpgroup) unless asked otherwise.
  // The two consumers take turns at the tensor cores (ping-pong), so that
  // one's softmax runs while the other's products do.
  // Past head dim 128 (192, 256): two consumers and 64-key tiles. Shared
  // memory at 256: Q of 128 rows 64 KiB, a stage of K and V 2 x 32 KiB,
  // two stages 128 KiB: 192 KiB of the 227 (128-key tiles would need 256
  // with two stages, and one stage leaves no load under the math).
  // Registers of a consumer: O 128, S 32, P's fragments 16 (the previous
  // tile's, while S is computed), the row statistics: about 190 of the 240.
  const bool narrow = d <= 64 && dv <= 64;
  const bool wide = isWide(d, dv);
  HopperTiling t{narrow ? 3 : 2,
                 wide ? 64 : 128,
                 2,
                 /*headsFastest=*/narrow,
                 options.overlapSoftmax,
                 options.pingPong != "false"};
  if (options.consumers)
    t.consumers = options.consumers;
  if (options.blockN)
    t.blockN = options.blockN;
  if (options.stages)
    t.stages = options.stages;
  if (options.workgroupsPerSM)
    t.perSM = options.workgroupsPerSM;
  // A persistent workgroup an SM at head dim 64, where a query tile's
  // mainloop is short (three consumers of 64 rows, a few key tiles of
  // narrow bands and small frames) and its prologue and epilogue weigh
  // most: its producer loads the next tile's Q and first K/V tiles under
  // this tile's last products and epilogue. Measured on an H200 (bf16,
  // forward replayed from a CUDA graph, alternating, 2026-12-02): small
  // frames 0.1668 -> 0.1553 ms, 128-token windows 0.2375 -> 0.2329 (the
  // grid's two workgroups an SM of two consumers before), frames of 256 at
  // 16k 0.4157 -> 0.4103. At head dim 128 the grid stays: token windows
  // within 0.3%, frames of 2048 at 32k 5.17 -> 5.32 ms. The split-KV
  // forward keeps its grid (batch x splits in z); two workgroups an SM
  // asked for take the grid.
  const bool persistentByDefault = narrow && options.tileScheduler.empty();
  t.persistent = options.splitKv == 0 && t.perSM == 1 &&
                 (options.tileScheduler == "persistent" || persistentByDefault);
  // Two Q buffers where they fit: the producer claims the next query tile
  // and loads its Q and first K/V tiles while this one's products run,
  // not only under its epilogue.
  if (t.persistent) {
    t.queryBuffers = 2;
    if (!sharedMemoryFits(t, SharedLayout(t, d, dv)))
      t.queryBuffers = 1;
  }
  return t;
}

// A query tile of M rows visits the key tiles of N keys that cover
// [lo, hi), its rows' union of windows: ceil(hi / N) - floor(lo / N) tiles,
// each costing N keys of products plus a fixed part (barriers, the
// softmax's row reductions, the pipeline's hand-offs), and masked where it
// straddles an edge of the band. Frames of a multiple of the tiles align
// the band's edges with tile edges: only the diagonal tile is masked, and
// 128-key tiles waste nothing. Frames shorter than a tile (token windows:
// block_size 1) put both edges inside tiles in every query tile, so every
// tile size wastes about one tile per edge; larger key tiles pay the
// fixed part less often, smaller ones mask fewer columns. Narrow bands (a
// span of at most 512 keys) visit a handful of tiles, most of them masked:
// smaller tiles waste less. Measured on an H200 (bf16,
// python/bench/bench_frontier.py with swba.autotune, 2026-12-01): token
// windows of 4096 keys at head dim 128, forward+backward 355 -> 427 with
// 64-key dQ tiles; their forward took 192-key tiles (462 -> 501-505)
// until the edge tiles' masks became column bounds, after which 128-key
// tiles are faster again and spill nothing (192 spilled 124 bytes):
// 2.062 -> 1.905 ms at 16k, 4.331 -> 4.092 at 32k (compare_step.py,
// 2026-12-02); frame windows (1024- and 2048-token
// frames) keep 128; 128-token windows at head dim 64, forward 50 -> 55
// with 64-key tiles, forward+backward 46 -> 52 with 64-row dK/dV query
// tiles (small frames, 512 keys: 149 -> 165), and 64-key dQ tiles.
HopperOptions gpu_kernels::withWindowTiling(HopperOptions options, int64_t d,
                                            int64_t dv, int64_t blockSize,
                                            int64_t window) {
  const bool wide = d == 128 && dv == 128, narrow = d == 64 && dv == 64;
  // The fused dK/dV/dQ backward on frames at head dim 128, whose band's
  // edges fall on the 128-key tiles' (block_size >= 128): its five products
  // against the split backward's seven pay for the f32 buffer's zeroing,
  // the reduce-adds and the conversion. Whole steps on an H200 (bf16,
  // compare_backward.py, CUDA graphs, 2026-12-03), default -> fused: frames
  // of 128 x 16 at 16k 2.053 -> 2.010 ms, 256 x 16 5.342 -> 5.159, 512 x 8
  // 3.192 -> 3.103, 1024 x 4 5.361 -> 5.252, 2048 x 4 at 32k 20.59 ->
  // 20.30; it loses on frames of 64 x 8 (0.801 -> 0.941: a few tiles a
  // key tile, each masked), on token windows (6.955 -> 6.986 at 4096 keys,
  // 2.445 -> 2.512 at 1024) and at head dim 64 (docs/BENCHMARKS.md). An
  // option only the separate kernels have (grad-kv-tiles past one and
  // grad-dq-delta=true among them) keeps them, and so do tiles asked for that
  // the fused kernel's shared memory does not fit.
  if (options.gradFusedDQ.empty()) {
    options.gradFusedDQ = "false";
    if (wide && blockSize >= 128 && !options.gradKeyTile &&
        !options.gradQConsumers && !options.gradPingPong &&
        options.gradKvTiles <= 1 && options.gradDqDelta != "true") {
      HopperOptions fused = options;
      fused.gradFusedDQ = "true";
      if (gradFits(d, dv, fused))
        options.gradFusedDQ = "true";
    }
  }
  // delta in the dQ kernel (grad-dq-delta) on bands of at most 512 keys at
  // head dim 64: O's rows come in with Q's and dO's and the consumers sum
  // them from shared memory, where the delta kernel made a pass over O and
  // dO of its own; the dK/dV kernel then runs after the dQ kernel rather
  // than at once with it. Kernel times on an H200 (bf16, kernel_times.py,
  // 2026-12-04), delta + dQ + dK/dV: 128-token windows 35 + 124 + 169 ->
  // 0 + 137 + 164 us, small frames 19 + 105 + 163 -> 0 + 113 + 159; the
  // narrow window's step 136 -> 144 TFLOP/s (bench_frontier.py, graph
  // timing). On wider bands the two kernels at once were worth more than
  // the delta kernel (frames of 256 x 16 and token windows of 4096 keys at
  // head dim 128 1-2% slower steps with delta read from global memory in
  // the dQ kernel, docs/BENCHMARKS.md).
  const int64_t span = keySpan(blockSize, window);
  if (options.gradDqDelta.empty())
    options.gradDqDelta =
        narrow && span <= 512 && !fusesQueryGrad(options) ? "true" : "false";
  if (!wide && !narrow)
    return options;
  const bool edgesCutTiles = blockSize < 128;
  if (wide && edgesCutTiles && span >= 1024 && !options.gradKeyTile)
    options.gradKeyTile = 64;
  if (narrow && span <= 512) {
    // Whether the forward lowers with `o`: its tiling, in shared memory.
    auto forwardFits = [&](const HopperOptions &o) {
      FailureOr<HopperTiling> t = getTiling(d, dv, o);
      return succeeded(t) && fits(*t, SharedLayout(*t, d, dv));
    };
    if (!options.blockN)
      options.blockN = 64;
    // With the grid asked for (tile-scheduler=grid; by default a
    // persistent workgroup an SM, getTiling, is faster still): two
    // workgroups of two consumers an SM (104 registers a consumer
    // thread), unless the consumers or the workgroups were asked for: a
    // workgroup runs 3 key tiles a consumer between its prologue and its
    // epilogue, and one workgroup an SM left it latency-bound (warps
    // waiting on loads, mbarriers and turns; the integer pipe at 40%).
    // Measured on an H200 (bf16, compare_step.py --frontier, 2026-12-01):
    // 128-token windows forward 0.260 -> 0.240 ms, forward+backward 1.007
    // -> 0.985; small frames 0.172 -> 0.169 and 0.658 -> 0.651 (ptxas
    // spills 144-188 bytes at 104 registers). Not for the split-KV
    // forward, which long windows take, nor where two workgroups' shared
    // memory or a consumer's accumulators in 80 registers do not fit
    // (larger tiles or more stages asked for).
    if (!options.workgroupsPerSM && !options.consumers && !options.splitKv &&
        options.tileScheduler == "grid") {
      HopperOptions two = options;
      two.consumers = 2;
      two.workgroupsPerSM = 2;
      if (forwardFits(two))
        options = two;
    }
    // One consumer a workgroup and three workgroups an SM on bands of 256
    // to 512 keys (the grid; 136 registers a consumer thread, two stages):
    // three workgroups' prologues, masked edge tiles and epilogues
    // interleave, where a persistent workgroup's three consumers start
    // their tiles together. Measured on an H200 (bf16, forward kernel
    // times, alternating, 2026-12-04): small frames (64 x 8) 102 -> 96 us,
    // 256-token windows 155 -> 149, frames of 128 x 2 66 -> 66; the
    // 128-token window, where a consumer runs three key tiles, 114 -> 116
    // (it keeps the persistent workgroup). Not where the consumers,
    // workgroups, stages, scheduler or the split-KV forward were asked for.
    if (span >= 256 && !options.consumers && !options.workgroupsPerSM &&
        !options.stages && !options.splitKv && options.tileScheduler.empty() &&
        options.blockN == 64) {
      HopperOptions one = options;
      one.consumers = 1;
      one.workgroupsPerSM = 3;
      one.tileScheduler = "grid";
      if (forwardFits(one))
        options = one;
    }
    // Four K/V stages for the persistent forward (the default here): the
    // producer runs further ahead of consumers that each take a few of the
    // workgroup's tiles. Measured on an H200 (bf16, forward kernel times,
    // kernel_times.py, 2026-12-04), two stages -> four: 128-token windows
    // 126 -> 120 us, 256-token windows 166 -> 160, small frames 109 ->
    // 103, frames of 128 x 2 74 -> 67; three and six stages were slower
    // than four (130 and 126 us on the 128-token window). Not for the grid
    // (two workgroups an SM), the split-KV forward or other key tiles
    // asked for.
    const bool stagesAsked = options.stages != 0;
    if (!options.stages && options.blockN == 64 &&
        options.tileScheduler != "grid" && !options.splitKv) {
      HopperOptions four = options;
      four.stages = 4;
      if (forwardFits(four))
        options = four;
    }
    // No turns where the consumers run only their own rows' key tiles: a
    // consumer still takes its turn on each tile it skips, which holds it
    // to the others' pace over the workgroup's tiles. Measured on an H200
    // (bf16, forward kernel times, alternating, 2026-12-02): 128-token
    // windows 154 -> 146 us, small frames 120 -> 120; frames of 256 at
    // 16k, whose consumers share their tiles, 363 -> 381 without turns
    // (they keep them).
    if (options.pingPong.empty()) {
      FailureOr<HopperTiling> t = getTiling(d, dv, options);
      if (succeeded(t) && consumersTakeOwnTiles(BlockWindow{blockSize, window},
                                                t->blockM(), t->blockN))
        options.pingPong = "false";
    }
    // Eight stages where a consumer runs its whole band in one pass
    // (wholeBandTiles: token windows of at most 129 keys), which holds its
    // three tiles until its products are done: four stages held the third
    // consumer back (its last tile waits for the first's to be released)
    // and the next query tile's loads. Forward kernel times on an H200
    // (bf16, kernel_times.py, 2026-12-04), the 128-token window: the tile
    // by tile softmax with four stages 111 us; in one pass with four, six
    // and eight stages 125, 112 and 104.
    // (After the turns are chosen: the one pass runs without them.)
    if (!stagesAsked && !options.splitKv && options.tileScheduler != "grid") {
      HopperOptions eight = options;
      eight.stages = 8;
      FailureOr<HopperTiling> t = getTiling(d, dv, eight);
      if (succeeded(t) &&
          wholeBandTiles(BlockWindow{blockSize, window}, *t, d, dv) &&
          forwardFits(eight))
        options = eight;
    }
    if (!options.gradQueryTile)
      options.gradQueryTile = 64;
    // 64-key dQ tiles: a band's rows see a few key tiles, most of them
    // masked, and smaller ones mask fewer columns (on wider frame windows
    // they lose 5%). dQ kernel 239 -> 221 us on 128-token windows, 169 ->
    // 154 on small frames (H200, bf16, kernel_times.py --frontier,
    // 2026-12-02).
    if (!options.gradKeyTile)
      options.gradKeyTile = 64;
    // Four stages in the dQ kernel where its consumers were asked for
    // (above, one consumer takes two): three consumers each take a few
    // of the workgroup's 64-key tiles, as the forward's (the dK/dV kernel
    // keeps two: 1-2% slower with four). dQ kernel times on an H200 (bf16,
    // kernel_times.py, 2026-12-04), grad-stages 2 -> 4: 128-token windows
    // 171 -> 158 us, 256-token windows 208 -> 195, small frames 127 ->
    // 123, frames of 128 x 2 92 -> 90; three stages were slower than four
    // on small frames (133).
    // One dQ consumer a workgroup, three workgroups an SM, with two stages
    // (QueryGradTiling::onePerSM; four stages fit two workgroups an SM
    // only), unless the dQ kernel's consumers, stages or turns were asked
    // for.
    if (!options.gradQConsumers && !options.gradKeyStages &&
        !options.gradStages && !options.gradPingPong &&
        options.gradKeyTile == 64) {
      HopperOptions one = options;
      one.gradQConsumers = 1;
      one.gradKeyStages = 2;
      if (gradFits(d, dv, one) &&
          queryGradLayout(d, dv, one).tiling.perSM() == 3)
        options = one;
    }
    if (!options.gradKeyStages && !options.gradStages &&
        options.gradKeyTile == 64) {
      HopperOptions four = options;
      four.gradKeyStages = 4;
      if (gradFits(d, dv, four))
        options = four;
    }
    // One consumer a dK/dV workgroup of 64 keys, two workgroups an SM:
    // a workgroup runs 3 query tiles a consumer between its prologue (K and
    // V, the first Q and dO tiles) and its epilogue (dK and dV), and the
    // two consumers of one workgroup start and end together; two
    // workgroups of one interleave them. dK/dV kernel times on an H200
    // (bf16, kernel_times.py, 2026-12-04), two consumers -> one:
    // 128-token windows 233 -> 203 us, 256-token windows 290 -> 250,
    // small frames 181 -> 169, frames of 128 x 2 134 -> 118; on frames of
    // 256 (a wider band) 684 -> 858, at head dim 128 slower too. Not with
    // grad-ping-pong=true (turns need two consumers), other query tiles
    // asked for, or where the backward does not fit (the fused dQ needs
    // two).
    if (!options.gradKvConsumers && !options.gradPingPong &&
        options.gradQueryTile == 64) {
      HopperOptions one = options;
      one.gradKvConsumers = 1;
      if (gradFits(d, dv, one))
        options = one;
    }
    // Up to 16 key tiles a dK/dV workgroup of one consumer, as many as
    // the launcher finds best for the grid's waves (GridDim): the next
    // tile's K and V load into a second buffer, and its first Q/dO tiles
    // into the ring, under this tile's products and epilogue, where a
    // workgroup of one tile waited for its K and V at the start (a
    // consumer runs 2-5 query tiles between that wait and its epilogue).
    // dK/dV kernel times on an H200 (bf16, 2026-12-04), one key tile a
    // workgroup -> two -> eight: 128-token windows (64 heads of 8k) 195 ->
    // 167 -> 156 us, 256-token windows 247 -> 224 -> 217, frames of 128 x
    // 2 114 -> 104 -> 95; small frames 168 -> 161 -> 157 (160 in the
    // kernel of one tile); but eight heads of 4k on the 128-token window
    // 14 -> 13 -> 27 (64 workgroups): there the launcher picks two. Wider
    // bands are slower (frames of 256 x 16 682 -> 727 with two, token
    // windows of 4096 keys 17%). Up to 16 rather than eight: the
    // 128-token window 157 -> 155 us, frames of 128 x 2 97 -> 94 (the
    // rule picks 16 there, and eight or fewer where the grid's waves say
    // so).
    if (!options.gradKvTiles && options.gradKvConsumers == 1 &&
        options.gradFusedDQ != "true") {
      HopperOptions most = options;
      most.gradKvTiles = 16;
      if (gradFits(d, dv, most))
        options = most;
    }
  }
  return options;
}

int64_t gpu_kernels::wholeBandTiles(BlockWindow w, const HopperTiling &t,
                                    int64_t d, int64_t dv) {
  if (d > 64 || dv > 64 || w.blockSize != 1 || t.blockN != kRowsPerConsumer ||
      (t.overlapSoftmax && t.pingPong) ||
      !consumersTakeOwnTiles(w, t.blockM(), t.blockN) ||
      w.window > kWholeBandMaxTiles * t.blockN)
    return 0;
  int64_t tiles = llvm::divideCeil(kRowsPerConsumer - 1 + w.window, t.blockN);
  return tiles <= kWholeBandMaxTiles && t.stages >= tiles ? tiles : 0;
}

// Whether the consumers of workgroups of `rows` rows (64 a consumer) skip
// at least a tenth of the workgroup's products when each runs only the
// tiles of `tile` that its own rows see, over 64 workgroups from `first`;
// `seen(r0, r1)` is what rows [r0, r1) see, on the tiles' side.
static bool skipATenth(
    int64_t rows, int64_t tile, int64_t first,
    llvm::function_ref<std::pair<int64_t, int64_t>(int64_t, int64_t)> seen) {
  int64_t workgroupTiles = 0, consumerTiles = 0;
  const int64_t consumers = rows / kRowsPerConsumer;
  for (int64_t t = first; t < first + 64; ++t) {
    auto [begin, end] = seen(t * rows, (t + 1) * rows);
    workgroupTiles += consumers * llvm::divideCeil(end - begin, tile);
    for (int64_t c = 0; c < consumers; ++c) {
      int64_t r0 = t * rows + c * kRowsPerConsumer;
      auto [b, e] = seen(r0, r0 + kRowsPerConsumer);
      consumerTiles += llvm::divideCeil(e - begin, tile) - (b - begin) / tile;
    }
  }
  return 10 * (workgroupTiles - consumerTiles) >= workgroupTiles;
}

// A consumer's 64 rows see fewer keys than the workgroup's blockM rows
// where frames are shorter than blockM rows (frames of a multiple of blockM
// rows put a workgroup's rows in one frame: the ranges agree), and fewer
// key tiles where the difference is a large share of the band. A consumer
// that runs only its own tiles still waits for and releases the others and
// takes their turns, and its loop bounds cost registers (ptxas spills them
// in kernels that had no spills): where few tiles are saved that does not
// pay. Measured on an H200 (bf16, compare_step.py --frontier, 2026-12-01):
// own tiles everywhere made 128-token windows at head dim 64 (192-row
// workgroups, 5 tiles of 64 keys, each consumer's 3: 40% skipped) forward
// 0.312 -> 0.282 ms, small frames (64-token frames, window 8: 20% skipped)
// 0.177 -> 0.168 ms, their steps 0.688 -> 0.661 ms (the dQ kernel's
// 128-row workgroups skip 10%); and the 128-token windows' dQ kernel (no
// tile skipped) 1%, token windows of 4096 keys (2-3% skipped) 4-8%, the
// design configurations' frame windows (under 5%) 3-10% slower.
//
// The share skipped, counted over 64 workgroups of rows far from the
// sequence's start (no window clipped at key 0).
bool gpu_kernels::consumersTakeOwnTiles(BlockWindow w, int64_t blockM,
                                        int64_t blockN) {
  const int64_t bs = w.blockSize, maxSpan = int64_t{1} << 20;
  if (bs >= blockM || w.window > maxSpan / bs)
    return false;
  const int64_t span = bs * w.window;
  auto keys = [&](int64_t r0, int64_t r1) {
    int64_t low = std::max<int64_t>(r0 / bs - (w.window - 1), 0);
    return std::make_pair(low * bs, ((r1 - 1) / bs + 1) * bs);
  };
  return skipATenth(blockM, blockN, span / blockM + 2, keys);
}

// The dK/dV kernel's mirror image: a consumer's 64 keys are seen by fewer
// query rows than the workgroup's blockN keys where frames are shorter
// than blockN keys, and it skips the query tiles none of its keys' rows
// reach (the band's first and last tiles). Narrow bands skip the most:
// 128-token windows at head dim 64 (64-row query tiles) run 3 of the
// workgroup's 4 tiles a consumer, small frames (64-token frames, window
// 8) 8 of 9; token windows of 4096 keys about 1 in 66 (not taken).
//
// The share skipped, counted over 64 workgroups of keys (the window's
// rows of the last keys are not clipped here).
bool gpu_kernels::keyConsumersTakeOwnTiles(BlockWindow w, int64_t blockM,
                                           int64_t blockN) {
  const int64_t bs = w.blockSize, maxSpan = int64_t{1} << 20;
  if (bs >= blockN || w.window > maxSpan / bs)
    return false;
  // The query rows [begin, end) that see keys [k0, k1).
  auto queries = [&](int64_t k0, int64_t k1) {
    return std::make_pair(k0 / bs * bs, ((k1 - 1) / bs + w.window) * bs);
  };
  return skipATenth(blockN, blockM, 4, queries);
}

// An accumulator of 64 x N f32 is N / 2 registers a thread; addresses,
// descriptors and the loop's state take about 24 more. ptxas refuses
// (C7602: insufficient registers) a wgmma it cannot hold: at two
// workgroups an SM (80 registers at launch) 128-key tiles, or head dim
// 128 with 64-key tiles; 64-key tiles at head dim 64 compile (spilling).
// At one workgroup an SM (128 or 168 registers) every tiling that fits in
// shared memory compiles.
bool gpu_kernels::accumulatorsFit(const HopperTiling &t, int64_t valueDim) {
  return t.perSM == 1 || std::max(t.blockN, valueDim) / 2 + 24 <=
                             launchRegisters(t.consumers + 1, t.perSM);
}

bool gpu_kernels::sharedMemoryFits(const HopperTiling &t,
                                   const SharedLayout &layout) {
  return sharedBytesFit(layout.total(), t.perSM);
}

bool gpu_kernels::fits(const HopperTiling &t, const SharedLayout &layout) {
  return t.consumers >= 1 && t.consumers <= 3 && t.blockN % 64 == 0 &&
         t.blockN <= 256 && t.stages >= 1 && t.perSM >= 1 && t.perSM <= 3 &&
         sharedMemoryFits(t, layout) && accumulatorsFit(t, layout.valueDim);
}

QueryGradLayout gpu_kernels::queryGradLayout(int64_t d, int64_t dv,
                                             const HopperOptions &options) {
  int64_t stages = options.gradKeyStages ? options.gradKeyStages
                   : options.gradStages  ? options.gradStages
                                         : 2;
  const bool withOut = queryGradComputesDelta(options);
  QueryGradLayout layout(d, dv,
                         QueryGradTiling::defaultKeyTile(options.gradKeyTile),
                         stages, options.gradQConsumers, withOut);
  // The default key tile gives way to 64 keys where 128 would not fit
  // (head dim 128 with 3 stages or more), and past head dim 128 to 32 (head
  // dim 256); a tile asked for stays as asked, and the op gets an error if
  // it does not fit.
  for (int64_t blockN : {64, 32}) {
    if (options.gradKeyTile ||
        sharedBytesFit(layout.total(), layout.tiling.perSM()) ||
        (blockN < 64 && !isWide(d, dv)))
      break;
    layout =
        QueryGradLayout(d, dv, blockN, stages, options.gradQConsumers, withOut);
  }
  return layout;
}

KeyValueGradLayout gpu_kernels::keyValueGradLayout(int64_t d, int64_t dv,
                                                   const HopperOptions &options,
                                                   KeyValueGradPart part) {
  int64_t stages = options.gradStages ? options.gradStages : 2;
  int64_t consumers = options.gradKvConsumers ? options.gradKvConsumers : 2;
  int64_t keyTiles = std::max<int64_t>(options.gradKvTiles, 1);
  KeyValueGradLayout layout(
      d, dv, KeyValueGradTiling::get(d, dv, options.gradQueryTile).blockM,
      stages, fusesQueryGrad(options), part, consumers, keyTiles);
  // As the dQ kernel's key tile: 32-row query tiles where the default's do
  // not fit past head dim 128 (the dK part at head dim 256).
  if (!options.gradQueryTile && isWide(d, dv) &&
      !sharedBytesFit(layout.total(), layout.perSM()))
    return KeyValueGradLayout(d, dv, 32, stages, fusesQueryGrad(options), part,
                              consumers, keyTiles);
  return layout;
}

bool gpu_kernels::fitsGrad(const QueryGradLayout &dq,
                           const KeyValueGradLayout &kv) {
  // The fused dQ's dS^T slots and shares are laid out for one kernel of
  // both parts, two consumers and query tiles of 64 or 128 rows.
  if (kv.dsSlots && (kv.part != KeyValueGradPart::Both || kv.blockM < 64 ||
                     kv.keyTiles > 1 || kv.consumers != 2))
    return false;
  return (kv.dsSlots || sharedBytesFit(dq.total(), dq.tiling.perSM())) &&
         sharedBytesFit(kv.total(), kv.perSM());
}

bool gpu_kernels::gradFits(int64_t d, int64_t dv,
                           const HopperOptions &options) {
  QueryGradLayout dq = queryGradLayout(d, dv, options);
  return llvm::all_of(keyValueGradParts(d, dv), [&](KeyValueGradPart part) {
    return fitsGrad(dq, keyValueGradLayout(d, dv, options, part));
  });
}

bool gpu_kernels::coversHeadDims(int64_t d, int64_t dv) {
  return coversHeadDim(d) && coversHeadDim(dv);
}
