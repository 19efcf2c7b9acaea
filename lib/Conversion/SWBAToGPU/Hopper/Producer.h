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
/// j of the current one is ring position `base` + j), its `once` slot
/// completes once per query tile (`round`, the query tile's index among
/// the workgroup's, gives the parity), and a last slot, `onceEmpty`, takes
/// an arrival from every consumer warp once it has read the once-loaded
/// operands for the last time, before the producer loads the next tile's.
struct StageRing {
  HopperKernelBuilder &e;
  int64_t stages;
  bool reusesOnce = false;
  Value base = {}, round = {};

  static constexpr int64_t once = 0;
  static int64_t countFor(int64_t stages, bool reusesOnce = false) {
    return 1 + 4 * stages + (reusesOnce ? 1 : 0);
  }
  int64_t count() const { return countFor(stages, reusesOnce); }
  /// The mbarrier group of a ring of `stages` (made before the kernel's
  /// HopperKernelBuilder, which takes it).
  static Value createBarriers(OpBuilder &builder, Location loc, int64_t stages,
                              bool reusesOnce = false) {
    MLIRContext *ctx = builder.getContext();
    auto smemSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    return nvgpu::MBarrierCreateOp::create(
        builder, loc,
        nvgpu::MBarrierGroupType::get(ctx, smemSpace,
                                      countFor(stages, reusesOnce)));
  }
  int64_t full(int64_t operand) const { return 1 + operand * stages; }
  int64_t empty(int64_t operand) const { return 1 + (2 + operand) * stages; }
  int64_t onceEmpty() const { return 1 + 4 * stages; }

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
  void waitOnce() {
    e.waitParity(e.idx(once), round ? parityOf(round) : e.i1(false));
  }
  /// Producer (reusesOnce): waits until every consumer is done with the
  /// previous round's once-loaded operands (a fresh barrier passes the
  /// first round at once).
  void waitOnceFree() {
    if (reusesOnce)
      e.waitParity(e.idx(onceEmpty()),
                   arith::XOrIOp::create(e.b, parityOf(round), e.i1(true)));
  }
  /// Consumer (reusesOnce): this warp has read the once-loaded operands
  /// for the last time this round. Every lane calls it: a warp barrier
  /// orders all lanes' reads (the tile slot's too) before lane 0's arrival
  /// releases them to the producer, which then overwrites them.
  void releaseOnce(Value isLane0) {
    if (!reusesOnce)
      return;
    NVVM::SyncWarpOp::create(
        e.b, arith::ConstantIntOp::create(e.b, e.b.getI32Type(), -1));
    e.when(isLane0, [&] { e.arrive(e.idx(onceEmpty())); });
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
    for (int64_t i = 0; i < count(); ++i)
      counts.push_back(i < empty(0) ? 1 : consumerWarps);
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
