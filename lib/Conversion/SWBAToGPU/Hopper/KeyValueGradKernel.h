//===- KeyValueGradKernel.h - The sm_90a dK/dV kernel -----------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: the state and parts of the
// dK/dV kernel's body, defined in KeyValueGradMainloop.cpp (the mainloop)
// and FusedQueryGrad.cpp (what grad-fused-dq adds: dQ from the dS^T the
// mainloop makes, reduce-added into an f32 buffer).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KEYVALUEGRADKERNEL_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KEYVALUEGRADKERNEL_H

#include "Consumer.h"
#include "Producer.h"
#include "Tiling.h"
#include "Workgroup.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include <optional>

namespace mlir::swba::gpu_kernels {

/// What one consumer of the dK/dV kernel computes of dQ = dS K for a query
/// tile when the kernel adds dQ up: 64 query rows from `rowOffset`, `n`
/// columns from `columnOffset`, over `steps` k16 slices of the workgroup's
/// keys from `keyOffset`. With 128-row query tiles the consumers split the
/// rows, with 64 rows and head dim 128 the columns (32 accumulator
/// registers either way); with 64 rows at head dim 64 each takes its own
/// 64 keys, and both add into the same rows.
struct QueryGradShare {
  Value rowOffset, columnOffset, keyOffset;
  int64_t n, steps;
  static QueryGradShare get(HopperKernelBuilder &e, Value consumer,
                            int64_t blockM, int64_t headDim) {
    Value zero = e.idx(0), half = e.mul(consumer, kRowsPerConsumer);
    int64_t allKeys = 2 * kRowsPerConsumer / 16; // two consumers' keys
    int64_t n = KeyValueGradLayout::queryGradColumns(blockM, headDim);
    switch (KeyValueGradLayout::queryGradSplit(blockM, headDim)) {
    case KeyValueGradLayout::QueryGradSplit::Rows:
      return {half, zero, zero, n, allKeys};
    case KeyValueGradLayout::QueryGradSplit::Columns:
      return {zero, half, zero, n, allKeys};
    case KeyValueGradLayout::QueryGradSplit::Keys:
      break;
    }
    return {zero, zero, half, n, kRowsPerConsumer / 16};
  }
};

/// What the parts of the dK/dV kernel read. Tile j is a query tile of one
/// query head of the GQA group (KeyTile).
struct KeyValueGradKernel : BackwardKernel {
  const KeyValueGradLayout &layout;
  int64_t headDim, valueDim, blockM, blockN;
  /// Q's head dim in the tensors (headDim rounds it up to whole TMA boxes).
  int64_t tensorHeadDim;
  KeyTile tile;
  ConsumerRows rows;
  Value warpgroup, base, kDesc, vDesc;
  std::optional<TurnTaking> turns;
  /// Each thread's entries of a query tile's row statistics.
  int64_t statsPerThread;
  SmallVector<Value> statsFactor;
  /// Tile 0's query head, and the row past the last query tile of a head.
  Value firstHead, rowLimit;
  /// Where the consumers skip the query tiles their own keys are not seen
  /// by (keyConsumersTakeOwnTiles): the query rows that see this
  /// consumer's keys (empty where it has none).
  std::optional<RowRange> ownRows;
  /// Where the interior test compares a tile's first row with a range:
  /// [begin, end] holds the first rows of the query tiles that see the
  /// workgroup's keys whole (interiorQueries; empty where its keys are
  /// not a whole tile).
  std::optional<RowRange> interiorStarts;
  /// Whether a tile's products run value first (valueFirstProducts):
  /// head dims up to 64, both gradients, no turns, no dQ.
  bool valueFirst = false;
  /// Bands of at most 512 keys, whose workgroups run a few query tiles:
  /// the first tile's row statistics are loaded before the wait for K and
  /// V (mainloop), not after it.
  bool statsBeforeKeys;

  // grad-fused-dq: the map of dqAccum, this consumer's share, the dS^T
  // slots as 32-bit words and the staging area as f32, and the thread
  // that issues the consumer's reduce-adds.
  Value dqAccumMap;
  QueryGradShare share;
  Value dsWords, stagingF32, isLeader;

  KeyValueGradKernel(HopperKernelBuilder &e, AttentionGradOp op,
                     const KeyValueGradLayout &layout, int64_t headDim,
                     int64_t valueDim, Value dqAccumMap);

  void setUp(ValueRange args, ArrayRef<Value> maps);
  void setUpTile(bool pingPong);
  /// With grad-kv-tiles past one: `body` for each of the workgroup's key
  /// tiles in turn, ceildiv(key tiles, grid y) of them (StageRing's round;
  /// its `base`, the ring position of the tile's first query tile),
  /// skipping those past the keys; `body` returns the tile's query tiles.
  void forEachKeyTile(ValueRange args,
                      function_ref<Value(const KeyTile &)> body);
  /// Whether this kernel accumulates dK (dV); the accumulators' registers
  /// a thread (none for a gradient it does not make).
  bool wantsKey() const { return layout.part != KeyValueGradPart::Value; }
  bool wantsValue() const { return layout.part != KeyValueGradPart::Key; }
  int64_t keyRegisters() const { return wantsKey() ? headDim / 2 : 0; }
  int64_t valueRegisters() const { return wantsValue() ? valueDim / 2 : 0; }
  /// dK then dV (unscaled) after every query tile.
  SmallVector<Value> mainloop(Value lse, Value delta);

  // KeyValueGradMainloop.cpp.
  Value statsEntry(int64_t i);
  Value isLseEntry(int64_t i);
  SmallVector<Value> loadStats(Value lse, Value delta, Value cond, Value qHead,
                               Value r0);
  Value storeStats(Value j, ValueRange tileStats);
  std::pair<Value, Value> nextTile(Value qHead, Value r0);
  SmallVector<Value> maskScores(ArrayRef<Value> s, Value r0, Value r1,
                                HopperKernelBuilder::Finish finish = nullptr);
  std::array<Value, 2> statsPair(Value stats, Value at);
  std::pair<SmallVector<Value>, SmallVector<Value>>
  probabilityFragments(ArrayRef<Value> s, ArrayRef<Value> dp, Value stats);
  SmallVector<Value> step(Value lse, Value delta, Value j, ValueRange iter);
  SmallVector<Value> tileStep(Value lse, Value delta, Value j, ValueRange iter);
  void accumulate(Value j, Value qBase, Value doBase, ArrayRef<Value> ptFrags,
                  ArrayRef<Value> dsFrags, SmallVector<Value> &dkAcc,
                  SmallVector<Value> &dvAcc);
  void valueFirstProducts(Value qBase, Value doBase, Value qDescK,
                          Value doDescK, Value r0, Value r1,
                          function_ref<Value()> publishStats,
                          SmallVector<Value> &dkAcc, SmallVector<Value> &dvAcc);
  void namedBarrier(Value id, int64_t threads);
  void syncWarpgroup(int64_t barrier);
  void syncConsumers();

  // FusedQueryGrad.cpp.
  void setUpQueryGrad();
  Value dsSlot(Value j);
  void waitStagingRead();
  void writeScoreGrad(Value j, ArrayRef<Value> dsFrags);
  Value issueQueryGrad(Value slot);
  Value stagingBox(Value j, int64_t box);
  void reduceQueryGrad(Value acc, Value j);
};

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KEYVALUEGRADKERNEL_H
