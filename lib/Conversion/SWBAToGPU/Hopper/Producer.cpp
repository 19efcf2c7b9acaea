//===- Producer.cpp - The TMA producer of the sm_90a kernels --------------===//
//
// The producer loop that the forward, dQ and dK/dV kernels share
// (Producer.h).
//
//===----------------------------------------------------------------------===//

#include "Producer.h"

using namespace mlir;
using namespace mlir::swba::gpu_kernels;

void mlir::swba::gpu_kernels::produceTiles(
    HopperKernelBuilder &e, StageRing &ring, ArrayRef<TmaOperand> once,
    int64_t onceRows, Value onceRow, Value oncePlane, Value numTiles,
    std::array<TmaOperand, 2> streamed, int64_t tileRows,
    function_ref<std::pair<Value, Value>(Value)> tileAt) {
  Value onceSlot = ring.onceFullSlot();
  int64_t onceBytes = 0;
  for (const TmaOperand &operand : once)
    onceBytes += onceRows * operand.width * 2;
  nvgpu::MBarrierArriveExpectTxOp::create(e.b, e.bars, e.idx(onceBytes),
                                          onceSlot, Value());
  for (const TmaOperand &operand : once)
    e.loadBoxes(operand.map, onceSlot, ring.onceOffset(operand.offset),
                onceRows, operand.width, onceRow, oncePlane);
  e.loop(e.idx(0), numTiles, e.idx(1), [&](Value j) {
    auto [row, plane] = tileAt(j);
    for (int64_t i = 0; i < 2; ++i)
      ring.produce(i, j, streamed[i].map, streamed[i].stageBytes,
                   streamed[i].offset, tileRows, streamed[i].width, row, plane);
  });
}
