//===- Consumer.h - Consumer warpgroups of the sm_90a kernels ---*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: what the consumer warpgroups
// of the forward, dQ and dK/dV kernels share: their rows, the turns they
// take at the tensor cores (TurnTaking), and for the backward kernels what
// they take from the op (BackwardKernel) and their two score products (S
// and dP, recomputed by both).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_CONSUMER_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_CONSUMER_H

#include "HopperKernelBuilder.h"
#include "Producer.h"
#include "Tiling.h"
#include "Workgroup.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include <cmath>

namespace mlir::swba::gpu_kernels {

/// Ping-pong among `consumers` consumer warpgroups, round robin: consumer c
/// waits on named barrier c + 1 and passes the turn to barrier
/// (c + 1) % consumers + 1 (256 threads each: the waiting warpgroup and the
/// one passing). A warpgroup issues its products (`take` ... `pass`) only
/// after the one before it has issued its own, so one warpgroup's
/// element-wise work runs while the others' products keep the tensor cores
/// busy. Consumer 0 goes first; all must take the same number of turns.
/// Disabled, `take` and `pass` emit nothing.
struct TurnTaking {
  HopperKernelBuilder &e;
  bool enabled;
  Value mine, other, pair;

  /// (A single consumer has no one to take turns with: disabled.)
  TurnTaking(HopperKernelBuilder &e, Value consumer, int64_t consumers,
             bool enabled)
      : e(e), enabled(enabled && consumers > 1) {
    if (!enabled)
      return;
    Type i32 = e.b.getI32Type();
    mine = arith::IndexCastOp::create(e.b, i32, e.add(consumer, e.idx(1)));
    other = arith::IndexCastOp::create(
        e.b, i32, e.add(e.rem(e.add(consumer, e.idx(1)), consumers), e.idx(1)));
    pair = e.constI32(2 * kWarpgroupThreads);
    e.when(e.eq(consumer, consumers - 1), [&] { pass(); });
  }
  void take() {
    if (!enabled)
      return;
    NVVM::BarrierOp::create(e.b, e.b.getLoc(), Type(), mine, pair,
                            NVVM::BarrierReductionAttr(), Value());
  }
  void pass() {
    if (!enabled)
      return;
    NVVM::BarrierArriveOp::create(e.b, e.b.getLoc(), other, pair);
  }
};

/// This thread's place among the consumers: `consumer` (warpgroup - 1), the
/// first of its two accumulator rows (`rowBase` and rowBase + 8: 64 rows
/// from `first` + 64 consumer, 16 a warp), and whether it is lane 0 of its
/// warp (which arrives on the ring's empty barriers for the warp).
struct ConsumerRows {
  Value consumer, rowBase, isLane0;
  static ConsumerRows get(HopperKernelBuilder &e, Value warpgroup, Value first);
};

/// Builds `loop` over the key tiles [first, end) this consumer computes and
/// returns what it returns: the workgroup's [0, numTiles), or where
/// consumersTakeOwnTiles the tiles its own rows see
/// (QueryTile::consumerTiles). Then the workgroup's other tiles, before and
/// after, are skipped: the consumer releases both operands of each once it
/// has landed (the ring's empty barriers count every consumer's warps, and
/// an arrival before the tile has landed would count towards the stage's
/// previous tile) and takes the `turnsPerTile` turns it would have taken
/// (every consumer takes as many).
SmallVector<Value>
overConsumerTiles(HopperKernelBuilder &e, StageRing &ring, TurnTaking &turns,
                  const QueryTile &tile, const ConsumerRows &rows,
                  BlockWindow w, int64_t blockM, int64_t blockN,
                  int64_t turnsPerTile,
                  function_ref<SmallVector<Value>(Value, Value)> loop);

/// What both backward kernels take from the op (the window, the scale and
/// its log2-domain forms) and the ring of their streamed operands.
struct BackwardKernel {
  HopperKernelBuilder &e;
  BlockWindow w;
  double scale;
  bool positiveScale;
  Value scaleLog2, log2e;
  StageRing ring;

  BackwardKernel(HopperKernelBuilder &e, AttentionGradOp op, int64_t stages)
      : e(e), w{static_cast<int64_t>(op.getBlockSize()),
                static_cast<int64_t>(op.getWindow())},
        scale(op.getEffectiveScale()), positiveScale(scale > 0),
        scaleLog2(e.f32(scale / std::log(2.0))),
        log2e(e.f32(1.0 / std::log(2.0))), ring{e, stages} {}
};

/// The backward's K-major A descriptors of this consumer's 64 rows of the
/// two operands loaded once (Q and dO for dQ, K and V for dK/dV: at the
/// buffer's start `base` and `secondOffset` bytes into it).
std::pair<Value, Value> onceDescriptors(HopperKernelBuilder &e, Value base,
                                        Value consumer, int64_t secondOffset);

/// The backward's score products S = A_S B_S^T and dP = A_P B_P^T in one
/// turn: n columns, both operands K-major in shared memory, A_S/B_S over
/// `headDim` (their boxes `rowsA`/`rowsB` rows), A_P/B_P over `valueDim`
/// (0: no dP, a null accumulator). Returns the accumulators once the
/// products have completed (their registers: unpackScores), or with
/// `scoresFirst` as two groups, once S's has: dP's registers are then
/// scoreGradRegisters'. `underProducts` (if any) is emitted between the
/// issue and the wait, so that its latencies run under the products.
std::pair<Value, Value>
issueScoreProducts(HopperKernelBuilder &e, TurnTaking &turns, Value aS,
                   Value bS, Value aP, Value bP, int64_t rowsA, int64_t rowsB,
                   int64_t headDim, int64_t valueDim, int64_t n,
                   bool scoresFirst = false,
                   function_ref<void()> underProducts = nullptr);

/// dP's registers (`n` columns), fenced, once no more than `pending` wgmma
/// groups issued after it are in flight.
SmallVector<Value> scoreGradRegisters(HopperKernelBuilder &e, Value dpAcc,
                                      int64_t n, int64_t pending = 0);

/// The registers of the S and dP accumulators (`n` columns; none of a null
/// dP), fenced; S in
/// the log2 domain unless `positiveScale` (then the scale folds into the
/// exponent: recomputeProbability).
std::pair<SmallVector<Value>, SmallVector<Value>>
unpackScores(HopperKernelBuilder &e, Value sAcc, Value dpAcc, int64_t n,
             bool positiveScale, Value scaleLog2);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_CONSUMER_H
