//===- Epilogue.cpp - Epilogues of the sm_90a kernels ---------------------===//
//
// The stores after the consumers' mainloops (Epilogue.h).
//
//===----------------------------------------------------------------------===//

#include "Epilogue.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::swba::gpu_kernels;

/// The columns of `width` (the kernel's head dim) that `dst` has: fewer
/// where the kernel rounded the tensor's head dim up to whole TMA boxes
/// (kernelHeadDim), whose last columns are zeros and stay unstored.
static int64_t storedColumns(Value dst, int64_t width) {
  auto type = cast<MemRefType>(dst.getType());
  int64_t columns = type.getDimSize(type.getRank() - 1);
  return ShapedType::isDynamic(columns) ? width : std::min(width, columns);
}

void mlir::swba::gpu_kernels::storeAccumulatorRow(HopperKernelBuilder &e,
                                                  ValueRange acc, int64_t h,
                                                  int64_t width,
                                                  function_ref<Value()> factor,
                                                  Value dst, Value batch,
                                                  Value head, Value row) {
  auto pairType = VectorType::get({2}, e.elementType);
  for (int64_t jn = 0; jn < storedColumns(dst, width) / 8; ++jn) {
    Value pair = vector::FromElementsOp::create(
        e.b, VectorType::get({2}, e.b.getF32Type()),
        ValueRange{e.mulf(acc[4 * jn + 2 * h], factor()),
                   e.mulf(acc[4 * jn + 2 * h + 1], factor())});
    pair = arith::TruncFOp::create(e.b, pairType, pair);
    Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
    vector::StoreOp::create(e.b, pair, dst, ValueRange{batch, head, row, col},
                            /*nontemporal=*/false, naturalAlignment(pairType));
  }
}

void mlir::swba::gpu_kernels::storeForwardRows(
    HopperKernelBuilder &e, ValueRange results, int64_t valueDim, Value rowBase,
    Value queries, Value out, Value lse, Value batch, Value head) {
  int64_t nO = valueDim / 2;
  for (int64_t h = 0; h < 2; ++h) {
    Value sum = e.quadReduce(results[nO + 2 + h], /*isMax=*/false);
    Value inv = e.divf(e.f32(1.0), sum);
    Value row = e.add(rowBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] {
             storeAccumulatorRow(
                 e, results, h, valueDim, [&] { return inv; }, out, batch, head,
                 row);
             if (!lse)
               return;
             e.when(e.eq(e.t, 0), [&] {
               // Back from the log2 domain: lse = (max + log2(sum)) ln 2.
               Value value = e.mulf(e.addf(results[nO + h], e.lg2(sum)),
                                    e.f32(std::log(2.0)));
               e.store(value, lse, {batch, head, row});
             });
           });
  }
}

void mlir::swba::gpu_kernels::storeSplitRows(
    HopperKernelBuilder &e, ValueRange results, int64_t valueDim, Value rowBase,
    Value queries, Value splitOut, Value splitLse, Value firstRow,
    Value split) {
  int64_t nO = valueDim / 2;
  auto pairType = VectorType::get({2}, e.b.getF32Type());
  for (int64_t h = 0; h < 2; ++h) {
    Value sum = e.quadReduce(results[nO + 2 + h], /*isMax=*/false);
    Value seen = arith::CmpFOp::create(e.b, arith::CmpFPredicate::OGT, sum,
                                       e.f32(0.0));
    Value inv = e.select(seen, e.divf(e.f32(1.0), sum), e.f32(0.0));
    Value row = e.add(rowBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] {
             Value r = e.add(firstRow, row);
             for (int64_t jn = 0; jn < storedColumns(splitOut, valueDim) / 8;
                  ++jn) {
               Value pair = vector::FromElementsOp::create(
                   e.b, pairType,
                   ValueRange{e.mulf(results[4 * jn + 2 * h], inv),
                              e.mulf(results[4 * jn + 2 * h + 1], inv)});
               Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
               vector::StoreOp::create(
                   e.b, pair, splitOut, ValueRange{split, r, col},
                   /*nontemporal=*/false, naturalAlignment(pairType));
             }
             e.when(e.eq(e.t, 0), [&] {
               // max -inf and sum 0 give -inf: the combine skips the split.
               Value value = e.mulf(e.addf(results[nO + h], e.lg2(sum)),
                                    e.f32(std::log(2.0)));
               e.store(value, splitLse, {split, r});
             });
           });
  }
}

void mlir::swba::gpu_kernels::storeQueryGradRows(
    HopperKernelBuilder &e, ValueRange results, int64_t headDim, double scale,
    Value rowBase, Value queries, Value dq, Value batch, Value head) {
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rowBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] {
             storeAccumulatorRow(
                 e, results, h, headDim, [&] { return e.f32(scale); }, dq,
                 batch, head, row);
           });
  }
}

void mlir::swba::gpu_kernels::storeKeyValueGradRows(
    HopperKernelBuilder &e, ValueRange results, int64_t headDim,
    int64_t valueDim, double scale, Value keyBase, Value keys, Value dk,
    Value dv, Value batch, Value kvHead) {
  int64_t nK = headDim / 2, nV = valueDim / 2;
  for (int64_t h = 0; h < 2; ++h) {
    Value key = e.add(keyBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, key, keys),
           [&] {
             if (headDim)
               storeAccumulatorRow(
                   e, results.take_front(nK), h, headDim,
                   [&] { return e.f32(scale); }, dk, batch, kvHead, key);
             if (valueDim)
               storeAccumulatorRow(
                   e, results.slice(nK, nV), h, valueDim,
                   [&] { return e.f32(1.0); }, dv, batch, kvHead, key);
           });
  }
}
