//===- Producer.h - The TMA producer of the sm_90a kernels ------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: the producer side of the
// warp-specialized kernels. One thread of warpgroup 0 loads what a
// workgroup reads once (Q for the forward and dQ, K and V for dK/dV) and
// then streams two operands tile by tile (K and V, or Q and dO) through a
// ring of shared-memory stages; StageRing is the mbarrier protocol both
// sides of that ring follow.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_PRODUCER_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_PRODUCER_H

#include "HopperKernelBuilder.h"

#include <array>

namespace mlir::swba::gpu_kernels {

/// The mbarriers of a warp-specialized kernel: slot 0 for what is loaded
/// once, then for each of two streamed operands (0 and 1) a ring of
/// `stages` "full" slots (one arrival, the producer's, plus the TMA bytes)
/// and `stages` "empty" slots (one arrival per consumer warp). Tile j uses
/// stage j % stages; its phase parity is (j / stages) % 2. The producer
/// waits on an empty slot with the opposite parity, which a fresh barrier
/// passes at once.
///
/// A persistent kernel (`reusesOnce`) runs several tiles of what it loads
/// once (query tiles) in turn: the ring's tiles continue across them (tile
/// j of the current one is ring position `base` + j). Round r (`round`,
/// the query tile's index among the workgroup's) loads its once operands
/// into buffer r % `onceBuffers` (`onceStride` bytes apart), so that with
/// two the producer loads the next tile's under this one's products. Each
/// buffer has a "full" slot (buffer 0's is `once`, the others' follow the
/// "empty" ones), which completes once per round of that buffer, and an
/// "empty" slot (`onceEmpty`) that takes an arrival from every consumer
/// thread once it has read the buffer for the last time in the round,
/// before the producer loads it again.
struct StageRing {
  HopperKernelBuilder &e;
  int64_t stages;
  bool reusesOnce = false;
  int64_t onceBuffers = 1, onceStride = 0;
  Value base = {}, round = {};

  static constexpr int64_t once = 0;
  static int64_t countFor(int64_t stages, bool reusesOnce = false,
                          int64_t onceBuffers = 1) {
    return 1 + 4 * stages + (reusesOnce ? 2 * onceBuffers - 1 : 0);
  }
  int64_t count() const { return countFor(stages, reusesOnce, onceBuffers); }
  /// The mbarrier group of a ring of `stages` (made before the kernel's
  /// HopperKernelBuilder, which takes it).
  static Value createBarriers(OpBuilder &builder, Location loc, int64_t stages,
                              bool reusesOnce = false,
                              int64_t onceBuffers = 1) {
    MLIRContext *ctx = builder.getContext();
    auto smemSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    return nvgpu::MBarrierCreateOp::create(
        builder, loc,
        nvgpu::MBarrierGroupType::get(
            ctx, smemSpace, countFor(stages, reusesOnce, onceBuffers)));
  }
  int64_t full(int64_t operand) const { return 1 + operand * stages; }
  int64_t empty(int64_t operand) const { return 1 + (2 + operand) * stages; }
  int64_t onceEmpty(int64_t buffer = 0) const {
    return 1 + 4 * stages + buffer;
  }

  /// This round's buffer of the once-loaded operands.
  Value onceBuffer() {
    return round && onceBuffers > 1
               ? arith::RemUIOp::create(e.b, round, e.idx(onceBuffers))
               : e.idx(0);
  }
  /// `offset` (bytes, in the first buffer) in this round's buffer.
  Value onceOffset(int64_t offset) {
    if (onceBuffers == 1)
      return e.idx(offset);
    return e.add(e.mul(onceBuffer(), onceStride), e.idx(offset));
  }
  /// Its "full" slot (buffer 0's is `once`, the others' follow the
  /// "empty" ones) and its "empty" slot.
  Value onceFullSlot() {
    if (onceBuffers == 1)
      return e.idx(once);
    Value buffer = onceBuffer();
    return arith::SelectOp::create(
        e.b, e.eq(buffer, 0), e.idx(once),
        e.add(buffer, e.idx(onceEmpty(onceBuffers) - 1)));
  }
  Value onceEmptySlot() { return e.add(onceBuffer(), e.idx(onceEmpty())); }
  /// This round's buffer's offset from the first in a wgmma descriptor's
  /// 16-byte units (i64): to add to a descriptor of the first buffer.
  Value onceDescriptorOffset() {
    return e.toI64(e.mul(onceBuffer(), onceStride / 16));
  }
  /// The phase parity of this round's buffer: the buffer's own round count.
  Value onceParity() {
    if (!round)
      return e.i1(false);
    return parityOf(onceBuffers > 1 ? e.divIdx(round, e.idx(onceBuffers))
                                    : round);
  }

  /// The ring position of tile j.
  Value at(Value j) { return base ? e.add(base, j) : j; }
  Value stage(Value j) {
    return arith::RemUIOp::create(e.b, at(j), e.idx(stages));
  }
  Value parityOf(Value n) {
    return arith::TruncIOp::create(
        e.b, e.b.getI1Type(),
        e.toI64(arith::RemUIOp::create(e.b, n, e.idx(2))));
  }
  /// Consumer: waits until the once-loaded operands (of this round) have
  /// landed.
  void waitOnce() { e.waitParity(onceFullSlot(), onceParity()); }
  /// Producer (reusesOnce): waits until every consumer is done with the
  /// previous round's once-loaded operands (a fresh barrier passes the
  /// first round at once).
  void waitOnceFree() {
    if (reusesOnce)
      e.waitParity(onceEmptySlot(),
                   arith::XOrIOp::create(e.b, onceParity(), e.i1(true)));
  }
  /// Consumer (reusesOnce): this thread has read the once-loaded operands
  /// for the last time this round. Every consumer thread arrives (its
  /// release orders its own reads, the tile slot's too, before the
  /// producer's overwrite), not one lane a warp: a lane's arrival does not
  /// release what the warp's other lanes read.
  void releaseOnce() {
    if (reusesOnce)
      e.arrive(onceEmptySlot());
  }
  Value phase(Value j) { return parityOf(e.divIdx(at(j), e.idx(stages))); }
  Value slot(int64_t first, Value j) { return e.add(stage(j), e.idx(first)); }
  /// The descriptor start address (16-byte units, from `base`, the
  /// buffer's) of stage(j) of an operand whose first stage is `firstOffset`
  /// bytes into the buffer.
  Value stageAddress(Value base, Value j, int64_t firstOffset,
                     int64_t stageBytes) {
    return e.add(base, e.toI64(e.add(e.idx(firstOffset / 16),
                                     e.mul(stage(j), stageBytes / 16))));
  }

  void init(int64_t consumerWarps, Value isThread0) {
    SmallVector<int64_t> counts;
    for (int64_t i = 0; i < count(); ++i) {
      if (i < empty(0) || i >= onceEmpty(onceBuffers))
        counts.push_back(1); // "full": the producer's arrival
      else if (i >= onceEmpty())
        counts.push_back(consumerWarps * 32); // a buffer's "empty"
      else
        counts.push_back(consumerWarps);
    }
    e.initBarriers(counts, isThread0);
  }
  /// Producer: once stage(j) of `operand` is free, loads rows [row, row +
  /// rows) x [0, width) of `plane` into it (`firstOffset` + stage(j) *
  /// `stageBytes` bytes into the buffer).
  void produce(int64_t operand, Value j, Value map, int64_t stageBytes,
               int64_t firstOffset, int64_t rows, int64_t width, Value row,
               Value plane) {
    e.waitParity(slot(empty(operand), j),
                 arith::XOrIOp::create(e.b, phase(j), e.i1(true)));
    Value s = slot(full(operand), j);
    nvgpu::MBarrierArriveExpectTxOp::create(e.b, e.bars, e.idx(stageBytes), s,
                                            Value());
    e.loadBoxes(map, s, e.add(e.idx(firstOffset), e.mul(stage(j), stageBytes)),
                rows, width, row, plane);
  }
  /// Consumer: waits until tile j of `operand` has landed.
  void waitFull(int64_t operand, Value j) {
    e.waitParity(slot(full(operand), j), phase(j));
  }
  /// Consumer: stage(j) of `operand` may be refilled (one arrival a warp).
  void release(int64_t operand, Value j, Value isLane0) {
    e.when(isLane0, [&] { e.arrive(slot(empty(operand), j)); });
  }
};

/// An operand the producer loads by TMA: `width` columns of rows of
/// `map`'s planes into the buffer at `offset` bytes (for a streamed operand
/// the first stage's; each stage is `stageBytes`).
struct TmaOperand {
  Value map;
  int64_t offset, width, stageBytes = 0;
};

/// The producer's thread: loads the `once` operands (rows [onceRow,
/// onceRow + onceRows) of plane `oncePlane`) on StageRing::once, then for
/// each tile j < numTiles both `streamed` operands (operands 0 and 1 of the
/// ring: `tileRows` rows at tileAt(j) = (row, plane)).
void produceTiles(HopperKernelBuilder &e, StageRing &ring,
                  ArrayRef<TmaOperand> once, int64_t onceRows, Value onceRow,
                  Value oncePlane, Value numTiles,
                  std::array<TmaOperand, 2> streamed, int64_t tileRows,
                  function_ref<std::pair<Value, Value>(Value)> tileAt);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_PRODUCER_H
