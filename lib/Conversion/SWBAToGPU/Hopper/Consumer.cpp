//===- Consumer.cpp - The consumer warpgroups of the sm_90a kernels -------===//
//
// The consumer pieces that the forward, dQ and dK/dV kernels share
// (Consumer.h).
//
//===----------------------------------------------------------------------===//

#include "Consumer.h"

using namespace mlir;
using namespace mlir::swba::gpu_kernels;

ConsumerRows ConsumerRows::get(HopperKernelBuilder &e, Value warpgroup,
                               Value first) {
  ConsumerRows rows;
  rows.consumer = e.sub(warpgroup, e.idx(1));
  rows.rowBase = e.add(e.add(first, e.mul(rows.consumer, kRowsPerConsumer)),
                       e.accumulatorRow());
  rows.isLane0 = e.eq(e.laneId, 0);
  return rows;
}

SmallVector<Value> mlir::swba::gpu_kernels::overConsumerTiles(
    HopperKernelBuilder &e, StageRing &ring, TurnTaking &turns,
    const QueryTile &tile, const ConsumerRows &rows, BlockWindow w,
    int64_t blockM, int64_t blockN, int64_t turnsPerTile,
    function_ref<SmallVector<Value>(Value, Value)> loop) {
  if (!consumersTakeOwnTiles(w, blockM, blockN))
    return loop(e.idx(0), tile.numTiles);
  auto skip = [&](Value from, Value to) {
    e.loop(from, to, e.idx(1), [&](Value j) {
      for (int64_t operand : {0, 1}) {
        ring.waitFull(operand, j);
        ring.release(operand, j, rows.isLane0);
      }
      for (int64_t i = 0; i < turnsPerTile; ++i) {
        turns.take();
        turns.pass();
      }
    });
  };
  auto [first, end] = tile.consumerTiles(e, w, rows.consumer, blockN);
  skip(e.idx(0), first);
  SmallVector<Value> results = loop(first, end);
  skip(end, tile.numTiles);
  return results;
}

std::pair<Value, Value>
mlir::swba::gpu_kernels::onceDescriptors(HopperKernelBuilder &e, Value base,
                                         Value consumer, int64_t secondOffset) {
  auto high = [&](int64_t lbo) { return e.i64(descriptorHigh(lbo)); };
  Value rowsOffset =
      e.toI64(e.mul(consumer, kRowsPerConsumer * kBoxRowBytes / 16));
  Value first = arith::OrIOp::create(e.b, e.add(base, rowsOffset), high(16));
  Value second = arith::OrIOp::create(
      e.b, e.add(e.add(base, rowsOffset), e.i64(secondOffset / 16)), high(16));
  return {first, second};
}

std::pair<Value, Value> mlir::swba::gpu_kernels::issueScoreProducts(
    HopperKernelBuilder &e, TurnTaking &turns, Value aS, Value bS, Value aP,
    Value bP, int64_t rowsA, int64_t rowsB, int64_t headDim, int64_t valueDim,
    int64_t n, bool scoresFirst, function_ref<void()> underProducts) {
  auto kMajor = [&](int64_t rows, int64_t kk) {
    return e.i64(HopperKernelBuilder::kMajorSlice(rows, kk));
  };
  SmallVector<Value> ops;
  for (int64_t kk = 0; kk < headDim / 16; ++kk) {
    ops.push_back(e.add(aS, kMajor(rowsA, kk)));
    ops.push_back(e.add(bS, kMajor(rowsB, kk)));
  }
  for (int64_t kk = 0; kk < valueDim / 16; ++kk) {
    ops.push_back(e.add(aP, kMajor(rowsA, kk)));
    ops.push_back(e.add(bP, kMajor(rowsB, kk)));
  }
  // (Descriptors made between the wgmmas of one group are fine for ptxas;
  // fencing all of them first would keep 2 (D + Dv) / 16 more registers
  // live.)
  int64_t nS = n / 2;
  SmallVector<Value> zeros = e.zeroRegisters(valueDim ? 2 * nS : nS);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  Value sAcc = e.accumulatorOf(ArrayRef<Value>(zeros).take_front(nS));
  Value dpAcc;
  if (valueDim)
    dpAcc = e.accumulatorOf(ArrayRef<Value>(zeros).drop_front(nS));
  int64_t dk = headDim / 16;
  for (int64_t kk = 0; kk < dk; ++kk)
    sAcc = e.ssMma(sAcc, ops[2 * kk], ops[2 * kk + 1], n, kk == 0);
  bool split = scoresFirst && valueDim;
  if (split)
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  for (int64_t kk = 0; kk < valueDim / 16; ++kk)
    dpAcc =
        e.ssMma(dpAcc, ops[2 * (dk + kk)], ops[2 * (dk + kk) + 1], n, kk == 0);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  if (underProducts)
    underProducts();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, split ? 1 : 0);
  return {sAcc, dpAcc};
}

std::pair<SmallVector<Value>, SmallVector<Value>>
mlir::swba::gpu_kernels::unpackScores(HopperKernelBuilder &e, Value sAcc,
                                      Value dpAcc, int64_t n,
                                      bool positiveScale, Value scaleLog2) {
  SmallVector<Value> s, dp;
  for (int64_t i = 0; i < n / 2; ++i) {
    s.push_back(LLVM::ExtractValueOp::create(e.b, sAcc, i));
    if (dpAcc)
      dp.push_back(LLVM::ExtractValueOp::create(e.b, dpAcc, i));
  }
  s = e.fenceRegisters(s);
  if (dpAcc)
    dp = e.fenceRegisters(dp);
  if (!positiveScale)
    for (Value &x : s)
      x = e.mulf(x, scaleLog2);
  return {s, dp};
}

SmallVector<Value>
mlir::swba::gpu_kernels::scoreGradRegisters(HopperKernelBuilder &e, Value dpAcc,
                                            int64_t n, int64_t pending) {
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, pending);
  SmallVector<Value> dp;
  for (int64_t i = 0; i < n / 2; ++i)
    dp.push_back(LLVM::ExtractValueOp::create(e.b, dpAcc, i));
  return e.fenceRegisters(dp);
}
