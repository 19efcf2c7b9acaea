//===- Tiling.h - Tile sizes of the sm_90a kernels --------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: the tiling decisions of the
// forward, dQ and dK/dV kernels (consumers, tile sizes, stages, and why
// they are what they are, in Tiling.cpp and below) and the shared-memory
// layouts that follow from them, with the checks that they fit.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_TILING_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_TILING_H

#include "HopperKernelBuilder.h"
#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"

#include <algorithm>

namespace mlir::swba::gpu_kernels {

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

/// How the kernel is tiled; see HopperTiling::get for the reasons.
struct HopperTiling {
  int64_t consumers; // warpgroups of 64 query rows
  int64_t blockN;    // keys per K/V tile
  int64_t stages;    // K/V tiles in flight
  bool headsFastest;
  bool overlapSoftmax; // softmax of S_j during P_{j-1} V_{j-1}
  bool pingPong;       // consumers take turns issuing their products
  int64_t perSM = 1;   // workgroups resident on an SM
  /// One workgroup an SM looping over query tiles (tile-scheduler).
  bool persistent = false;
  /// Q's buffers: two in a persistent kernel where they fit, so that the
  /// producer loads the next query tile's under this one's products.
  int64_t queryBuffers = 1;

  int64_t blockM() const { return consumers * kRowsPerConsumer; }
  int64_t threads() const { return (consumers + 1) * kWarpgroupThreads; }
};

/// The shared-memory layout of a tiling, in bytes from @swba_smem.
struct SharedLayout {
  int64_t qBytes, kStageBytes, vStageBytes, stages, valueDim, queryBuffers;
  bool persistent;
  SharedLayout(const HopperTiling &t, int64_t headDim, int64_t valueDim)
      : qBytes(t.blockM() * headDim * 2), kStageBytes(t.blockN * headDim * 2),
        vStageBytes(t.blockN * valueDim * 2), stages(t.stages),
        valueDim(valueDim), queryBuffers(t.queryBuffers),
        persistent(t.persistent) {}
  /// Q's buffers (qBytes each), then the K stages, then the V stages.
  int64_t kOffset(int64_t stage) const {
    return queryBuffers * qBytes + stage * kStageBytes;
  }
  int64_t vOffset(int64_t stage) const {
    return kOffset(stages) + stage * vStageBytes;
  }
  /// Where the forward runs a whole band in one pass (wholeBandTiles), a
  /// region of ones after the V stages: the B of P times ones, whose
  /// accumulator holds the rows' sums (kOnesBytes: the 16 rows of 128
  /// bytes that an MN-major k16 slice reads).
  bool rowSumOnes = false;
  static constexpr int64_t kOnesBytes = 2048;
  int64_t onesOffset() const { return vOffset(stages); }
  /// Where the persistent one pass stores O through TMA, each consumer's
  /// 64 rows of O in 16-bit as [Dv / 64] boxes of [64 rows][128 bytes]
  /// (128B swizzle, the `out` tensor map's), after the ones: 0 elsewhere.
  int64_t outStagingBytes = 0;
  int64_t outStagingOffset() const {
    return onesOffset() + (rowSumOnes ? kOnesBytes : 0);
  }
  /// A persistent kernel's claimed query tiles (kTileSlotWords i32s for
  /// each of Q's buffers) after the stages (and the ones): the tile's
  /// index, batch, head and query tile, its plan (kTilePlanWord: rows,
  /// keys and key tiles) and each consumer's (kConsumerPlanWord + 4 c:
  /// its key tiles and interior keys), ForwardMainloop.cpp.
  static constexpr int64_t kTilePlanWord = 4;
  static constexpr int64_t kConsumerPlanWord = 12;
  static constexpr int64_t kPlannedConsumers = 3;
  static constexpr int64_t kTileSlotWords =
      kConsumerPlanWord + 4 * kPlannedConsumers;
  int64_t tileSlotOffset() const {
    return outStagingOffset() + outStagingBytes;
  }
  int64_t total() const {
    return tileSlotOffset() + (persistent ? 2 * kTileSlotWords * 4 : 0);
  }
};

/// The widest head dim the sm_90a kernels take: a wgmma's N is at most 256.
constexpr int64_t kMaxHopperHeadDim = 256;

/// Whether the sm_90a kernels cover head dim `d`: whole 64-column TMA boxes
/// (64, 128, 192, 256).
inline bool coversHeadDim(int64_t d) {
  return d >= kBoxCols && d <= kMaxHopperHeadDim && d % kBoxCols == 0;
}

/// The head dim the sm_90a kernels compute with for a tensor's head dim
/// `d`: a multiple of 16 past 64 and up to 256 is rounded up to whole TMA
/// boxes (96 -> 128, 160 -> 192). The loads' boxes reach past the tensor's
/// last column, and TMA fills those columns with zeros: they add nothing
/// to Q K^T, and the columns of O, dQ, dK and dV they make are zero and
/// not stored (the epilogues store the tensor's columns). Any other head
/// dim is its own (coversHeadDim decides). Head dims up to 64 stay on the
/// mma.sync kernels, where padding would waste a quarter or more of the
/// products.
inline int64_t kernelHeadDim(int64_t d) {
  if (d > kBoxCols && d < kMaxHopperHeadDim && d % 16 == 0)
    return llvm::alignTo(d, kBoxCols);
  return d;
}

/// kernelHeadDim of the head dims of an attention or attention_grad op's
/// Q and V (both ops start with q, k, v).
inline std::pair<int64_t, int64_t> kernelHeadDims(Operation *op) {
  auto headDimOf = [&](unsigned operand) {
    return kernelHeadDim(
        cast<ShapedType>(op->getOperand(operand).getType()).getDimSize(3));
  };
  return {headDimOf(0), headDimOf(2)};
}

/// The keys one query sees, block_size * window, saturating at 2^40 (both
/// are unbounded attributes).
inline int64_t keySpan(int64_t blockSize, int64_t window) {
  const int64_t limit = int64_t{1} << 40;
  return window > limit / std::max<int64_t>(blockSize, 1) ? limit
                                                          : blockSize * window;
}

/// Head dims past 128, whose tiles shrink to fit in shared memory.
inline bool isWide(int64_t d, int64_t dv) { return d > 128 || dv > 128; }

/// `options` with the tiles chosen from the window where they are left to
/// the lowering (0): what the window's shape makes worth it, measured
/// (Tiling.cpp). The kernels' defaults stand where no rule applies, and an
/// option given stays as given.
HopperOptions withWindowTiling(HopperOptions options, int64_t d, int64_t dv,
                               int64_t blockSize, int64_t window);

/// Whether the backward of `options` (after withWindowTiling, which
/// resolves an empty grad-fused-dq) is the fused dK/dV/dQ kernel.
inline bool fusesQueryGrad(const HopperOptions &options) {
  return options.gradFusedDQ == "true";
}

/// Whether the dQ kernel of `options` (after withWindowTiling) computes
/// delta for the dK/dV kernel after it, in place of the delta kernel.
inline bool queryGradComputesDelta(const HopperOptions &options) {
  return !fusesQueryGrad(options) && options.gradDqDelta == "true";
}

/// Whether the consumers of a forward or dQ workgroup of `blockM` query
/// rows each run only the key tiles of `blockN` keys their own 64 rows see
/// (QueryTile::consumerTiles) rather than the workgroup's: where that
/// skips at least a tenth of the workgroup's tile products (Tiling.cpp).
bool consumersTakeOwnTiles(BlockWindow w, int64_t blockM, int64_t blockN);

/// The key tiles a consumer of the forward of tiling `t` (head dims `d`,
/// `dv`) runs in one pass, all of them in its registers at once
/// (ForwardMainloop.cpp, wholeBandPass), or 0 for the online softmax
/// tile by tile: token windows of at most 129 keys at head dims up to 64
/// with 64-key tiles and consumers that take their own tiles, whose 64
/// rows see 63 + window keys from a tile's edge (at most three tiles, 96
/// scores a thread), where the ring holds that many tiles (the consumer
/// holds them all until its products are done) and the consumers take no
/// turns.
int64_t wholeBandTiles(BlockWindow w, const HopperTiling &t, int64_t d,
                       int64_t dv);
/// The most tiles wholeBandTiles takes.
constexpr int64_t kWholeBandMaxTiles = 3;

/// The forward's shared memory for tiling `t` of window `w` (the ones of
/// the rows' sums where the whole band runs in one pass; not in the split
/// forward).
inline SharedLayout forwardLayout(const HopperTiling &t, int64_t d, int64_t dv,
                                  BlockWindow w, bool split) {
  SharedLayout layout(t, d, dv);
  layout.rowSumOnes = !split && wholeBandTiles(w, t, d, dv) > 0;
  if (layout.rowSumOnes && t.persistent)
    layout.outStagingBytes = t.consumers * kRowsPerConsumer * dv * 2;
  return layout;
}

/// Whether each consumer of a dK/dV workgroup of `blockN` keys skips the
/// query tiles of `blockM` rows that none of its own 64 keys is seen by:
/// where that skips at least a tenth of the workgroup's tile products.
bool keyConsumersTakeOwnTiles(BlockWindow w, int64_t blockM, int64_t blockN);

/// The forward's tiling for head dims `d`, `dv` (the defaults, then what
/// `options` ask for); failure when the kernel does not cover them (the
/// mma.sync kernel then does).
FailureOr<HopperTiling> getTiling(int64_t d, int64_t dv,
                                  const HopperOptions &options);

/// Whether a consumer's widest wgmma accumulator (S: 64 x blockN, or O: 64
/// x Dv, f32) fits in the registers a thread is launched with, which
/// ptxas compiles the whole kernel for: always at one workgroup an SM;
/// at two (80 registers), 64-key tiles at head dim 64 only.
bool accumulatorsFit(const HopperTiling &t, int64_t valueDim);

/// Whether `perSM` workgroups' shared memory (Q, the K/V stages and the
/// static part) fits on an SM.
bool sharedMemoryFits(const HopperTiling &t, const SharedLayout &layout);

/// Whether the tiling is one the kernel takes and fits in shared memory
/// and registers.
bool fits(const HopperTiling &t, const SharedLayout &layout);

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

/// Workgroups of the dK/dV kernel an SM: two of one consumer each
/// (grad-kv-consumers=1), else one (the dQ kernel's: QueryGradTiling).
constexpr int64_t backwardWorkgroupsPerSM(int64_t consumers) {
  return consumers == 1 ? 2 : 1;
}

/// Whether `perSM` workgroups of `bytes` of dynamic shared memory each (and
/// the static part) fit on an SM.
constexpr bool sharedBytesFit(int64_t bytes, int64_t perSM) {
  return perSM * (bytes + kStaticSharedBytes) <= kMaxSharedBytes;
}

/// The dQ kernel's tiling: consumers of 64 query rows, two stages (the
/// `grad-stages` option), and key tiles of `blockN` = 128 at head dims up
/// to 128 (the `grad-key-tile` option; 64 or 32 where 128 does not fit in
/// shared memory, see `queryGradLayout`: at head dim 256, Q and dO of 128
/// rows take 64 KiB each, and two stages of 32-key K and V tiles 16 KiB
/// each: 192 KiB; 64-key tiles would need 256). At head dim 64 the S, dP and dQ
/// accumulators take 64 + 64 + 32 registers a thread; wider wgmmas and half
/// the tiles made the kernel 15% faster than 64-key tiles. At head dim 128
/// they take 64 + 64 + 64 and ptxas spills 188 bytes, yet the kernel still
/// runs 3-4% faster than with 64-key tiles (32 + 32 + 64, no spills): GPU
/// time 2068 -> 2015 us and 7874 -> 7533 us at the two head-dim-128
/// design configurations (`kernel_times.py --options`, 4 alternating
/// rounds, 2026-11-25), since the spilled values are not on the
/// per-tile path and the K/V loads and barrier waits per query row halve.
///
/// Two consumers (128 rows), or three (192 rows) where their accumulators
/// fit in the 160 registers three leave a consumer thread: head dim 64
/// with 64-key tiles (S, dP and dQ 32 + 32 + 32; the narrow bands' and
/// small frames' default). A band's query tile runs a few key tiles
/// between its prologue and epilogue, and a third consumer's work hides
/// more of the others' waits: dQ kernel 200 -> 182 us on 128-token
/// windows and 154 -> 143 on small frames (H200, bf16, kernel times,
/// alternating, 2026-12-03). With 128-key tiles at head dim 64, or at
/// head dim 128, three consumers spill 170-340 bytes.
struct QueryGradTiling {
  int64_t consumers;
  /// Workgroups an SM where there is one consumer: two, or three
  /// (QueryGradLayout) at head dim 64 with 64-key tiles where three fit in
  /// shared memory, 80 registers a thread at launch and 136 a consumer (S,
  /// dP and dQ 32 + 32 + 32): dQ kernel 151 -> 122 us on the 128-token
  /// window, 124 -> 106 on small frames, 187 -> 155 on 256-token windows
  /// and 91 -> 72 on frames of 128 x 2 against three consumers in one
  /// workgroup (two an SM were within 4% of those; H200, bf16,
  /// kernel_times.py, 2026-12-04).
  int64_t onePerSM = 2;
  int64_t blockM() const { return consumers * kRowsPerConsumer; }
  int64_t threads() const { return (consumers + 1) * kWarpgroupThreads; }
  /// Workgroups an SM: two or three of one consumer (grad-q-consumers=1).
  int64_t perSM() const { return consumers == 1 ? onePerSM : 1; }
  /// The consumers that go with key tiles of `blockN` at head dims `d`,
  /// `dv`.
  static QueryGradTiling get(int64_t d, int64_t dv, int64_t blockN) {
    return {d <= 64 && dv <= 64 && blockN == 64 ? 3 : 2};
  }
  /// The default key tile where the `grad-key-tile` option is 0.
  static int64_t defaultKeyTile(int64_t option) {
    return option ? option : 128;
  }
};

/// Shared memory of the dQ kernel: Q and dO of the workgroup's rows, then
/// the K and V stages.
struct QueryGradLayout {
  QueryGradTiling tiling;
  int64_t blockN, stages, qBytes, doBytes, kStageBytes, vStageBytes;
  /// O's rows, loaded once with Q and dO where the kernel computes delta
  /// (grad-dq-delta), after the K/V stages; else 0.
  int64_t oBytes;
  /// `consumers` 0: those that go with the key tile.
  QueryGradLayout(int64_t d, int64_t dv, int64_t blockN, int64_t stages,
                  int64_t consumers = 0, bool withOut = false)
      : tiling(consumers ? QueryGradTiling{consumers}
                         : QueryGradTiling::get(d, dv, blockN)),
        blockN(blockN), stages(stages), qBytes(tiling.blockM() * d * 2),
        doBytes(tiling.blockM() * dv * 2), kStageBytes(blockN * d * 2),
        vStageBytes(blockN * dv * 2),
        oBytes(withOut ? tiling.blockM() * dv * 2 : 0) {
    if (tiling.consumers == 1 && d <= 64 && dv <= 64 && blockN == 64 &&
        sharedBytesFit(total(), 3))
      tiling.onePerSM = 3;
  }
  int64_t doOffset() const { return qBytes; }
  int64_t kOffset() const { return qBytes + doBytes; }
  int64_t vOffset() const { return kOffset() + stages * kStageBytes; }
  int64_t oOffset() const { return vOffset() + stages * vStageBytes; }
  int64_t total() const { return oOffset() + oBytes; }
};

/// Which gradients a dK/dV kernel accumulates. Where dK and dV together
/// would not fit in a consumer's registers (d + dv > 256: at head dim 256
/// they are 128 + 128 f32 a thread, next to S^T and dP^T), the work is
/// split into a dV kernel (S^T, P^T, dV += P^T dO: two products, no V, dP
/// or delta) and a dK kernel (S^T, dP^T, dS^T, dK += dS^T Q: three), which
/// recompute S^T once more: eight products in all with the dQ kernel's
/// three, instead of seven.
enum class KeyValueGradPart { Both, Key, Value };

/// The dK/dV kernel parts for head dims `d`, `dv`.
inline SmallVector<KeyValueGradPart> keyValueGradParts(int64_t d, int64_t dv) {
  if (d + dv <= 2 * 128)
    return {KeyValueGradPart::Both};
  return {KeyValueGradPart::Value, KeyValueGradPart::Key};
}

/// The dK/dV kernel's tiling: two consumers of 64 keys (128 keys a
/// workgroup; one with grad-kv-consumers=1, two workgroups an SM: see
/// KeyValueGradLayout), two stages (`grad-stages`), query tiles of
/// `blockM` rows:
/// 128 at head dims
/// 64 (S^T and dP^T accumulators of 64 registers each next to dK and dV of
/// 32), 64 at 128 (32 each next to 64 + 64; that already spills 100 bytes)
/// and in the dV kernel of the split parts (dV 128 and S^T 32 registers at
/// head dim 256), 32 in the dK kernel of the split parts where 64 does not
/// fit in shared memory (keyValueGradLayout; K and V of 128 keys take
/// 64 KiB each at head dim 256, two stages of 32-row Q and dO tiles 16 KiB
/// each: 192 KiB).
struct KeyValueGradTiling {
  int64_t blockM;
  static KeyValueGradTiling get(int64_t d, int64_t dv, int64_t option) {
    if (option)
      return {option};
    return {d <= 64 && dv <= 64 ? 128 : 64};
  }
};

/// Shared memory of the dK/dV kernel: K and V of the workgroup's keys, then
/// the Q and dO stages, the row statistics and, when the kernel also adds
/// up dQ, `dsSlots` slots of the query tile's dS^T ([128 keys][blockM
/// queries] in 64-query boxes, 128B-swizzled: the MN-major A operand of
/// dQ = dS K). Tile j's dS^T goes into slot j % 3: each consumer has
/// completed its dQ products of tile j - 1 when it meets the other at tile
/// j's barrier, so two slots would do; the third holds the staging of
/// tile j's dQ where it goes in the slots (below).
//
// Each consumer's share of dQ (f32, 64 rows x `dqColumns`) goes out through
// a staging buffer that a TMA reduce-add reads: [64 rows][32 f32] boxes,
// 128B-swizzled. Where the consumer's own rows of a dS^T slot hold it
// (128-row query tiles, 64 dQ columns) it is staged there, in the slot
// that no product reads until the consumer's next dS^T is written;
// otherwise in `stagingBytes` of its own.
//
// With one consumer (grad-kv-consumers=1) a workgroup holds 64 keys and two
// run on an SM, each in half of its registers and shared memory: their
// prologues, a few query tiles' products and epilogues interleave, where
// the two consumers of one workgroup start and end together.
struct KeyValueGradLayout {
  static constexpr int64_t fusedSlots = 3;
  KeyValueGradPart part;
  int64_t consumers, blockM, stages, kBytes, vBytes, qStageBytes, doStageBytes,
      dsSlots, dqColumns, stagingBytes;
  /// The most key tiles a workgroup runs one after another (grad-kv-tiles;
  /// the launcher picks how many, GridDim::most): past one, K and V have
  /// two buffers, the next tile's loaded under this one.
  int64_t keyTiles;
  /// (The dV part reads no V: its kernel loads none.)
  KeyValueGradLayout(int64_t d, int64_t dv, int64_t blockM, int64_t stages,
                     bool fusedQueryGrad,
                     KeyValueGradPart part = KeyValueGradPart::Both,
                     int64_t consumers = 2, int64_t keyTiles = 1)
      : part(part), consumers(consumers), blockM(blockM), stages(stages),
        kBytes(blockN() * d * 2),
        vBytes(part == KeyValueGradPart::Value ? 0 : blockN() * dv * 2),
        qStageBytes(blockM * d * 2), doStageBytes(blockM * dv * 2),
        dsSlots(fusedQueryGrad ? fusedSlots : 0),
        dqColumns(fusedQueryGrad ? queryGradColumns(blockM, d) : 0),
        stagingBytes(fusedQueryGrad && !stagesInSlots()
                         ? consumers * stagingPerConsumer()
                         : 0),
        keyTiles(keyTiles) {}
  /// Keys a workgroup, threads (a producer and the consumers) and
  /// workgroups an SM.
  int64_t blockN() const { return consumers * kRowsPerConsumer; }
  int64_t threads() const { return (consumers + 1) * kWarpgroupThreads; }
  int64_t perSM() const { return backwardWorkgroupsPerSM(consumers); }
  /// How the two consumers split a query tile's dQ (see QueryGradShare).
  enum class QueryGradSplit { Rows, Columns, Keys };
  static QueryGradSplit queryGradSplit(int64_t blockM, int64_t d) {
    if (blockM >= 2 * kRowsPerConsumer)
      return QueryGradSplit::Rows;
    return d >= 2 * kBoxCols ? QueryGradSplit::Columns : QueryGradSplit::Keys;
  }
  /// dQ columns of a consumer's share.
  static int64_t queryGradColumns(int64_t blockM, int64_t d) {
    return queryGradSplit(blockM, d) == QueryGradSplit::Columns ? d / 2 : d;
  }
  static constexpr int64_t stagingBoxBytes = kRowsPerConsumer * kBoxRowBytes;
  int64_t stagingPerConsumer() const {
    return kRowsPerConsumer * dqColumns * 4;
  }
  /// A consumer's rows of a dS^T slot: blockM / 64 pieces of 64 rows x
  /// 128 bytes, one per 64-query box.
  bool stagesInSlots() const { return blockM >= 2 * dqColumns; }
  /// K then V of a key tile, in each of onceBuffers() buffers.
  int64_t onceBuffers() const { return keyTiles > 1 ? 2 : 1; }
  int64_t onceBytes() const { return kBytes + vBytes; }
  int64_t vOffset() const { return kBytes; }
  int64_t qOffset() const { return onceBuffers() * onceBytes(); }
  int64_t doOffset() const { return qOffset() + stages * qStageBytes; }
  /// Per consumer, two slots of the query tile's -lse log2(e) and delta
  /// (blockM f32 each).
  int64_t rowStatsOffset() const { return doOffset() + stages * doStageBytes; }
  int64_t rowStatsSlotBytes() const { return 2 * blockM * 4; }
  /// The dS^T slots, 1024-aligned (the swizzle atom).
  int64_t dsOffset() const {
    return llvm::alignTo(rowStatsOffset() + consumers * 2 * rowStatsSlotBytes(),
                         kAtomBytes);
  }
  int64_t dsSlotBytes() const { return blockN() * blockM * 2; }
  int64_t stagingOffset() const { return dsOffset() + dsSlots * dsSlotBytes(); }
  int64_t total() const { return stagingOffset() + stagingBytes; }
};

/// The dQ kernel's layout for `options` (grad-key-tile, grad-stages).
QueryGradLayout queryGradLayout(int64_t d, int64_t dv,
                                const HopperOptions &options);

/// The layout of the dK/dV kernel `part` for `options` (grad-query-tile,
/// grad-stages, grad-fused-dq).
KeyValueGradLayout keyValueGradLayout(
    int64_t d, int64_t dv, const HopperOptions &options,
    KeyValueGradPart part = KeyValueGradPart::Both);

/// Whether the kernels fit in shared memory (the dQ kernel only where there
/// is one: without grad-fused-dq), and the dK/dV kernel takes its tiling
/// (grad-fused-dq: one kernel for dK and dV, query tiles of 64 or 128).
bool fitsGrad(const QueryGradLayout &dq, const KeyValueGradLayout &kv);

/// fitsGrad over every dK/dV part of head dims `d`, `dv` with `options`:
/// whether the backward lowers (checkHopperGradLowerable says why not).
bool gradFits(int64_t d, int64_t dv, const HopperOptions &options);

/// Whether the sm_90a backward covers head dims `d`, `dv` (multiples of 64
/// up to 256).
bool coversHeadDims(int64_t d, int64_t dv);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_TILING_H
