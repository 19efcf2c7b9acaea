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

/// Columns 8 jn + 2t, + 1 of row h of `acc`, times factor(), as a pair of
/// the element type.
static Value rowPair(HopperKernelBuilder &e, ValueRange acc, int64_t jn,
                     int64_t h, function_ref<Value()> factor) {
  Value pair = vector::FromElementsOp::create(
      e.b, VectorType::get({2}, e.b.getF32Type()),
      ValueRange{e.mulf(acc[4 * jn + 2 * h], factor()),
                 e.mulf(acc[4 * jn + 2 * h + 1], factor())});
  return arith::TruncFOp::create(e.b, VectorType::get({2}, e.elementType),
                                 pair);
}

RowStores mlir::swba::gpu_kernels::packAccumulatorRow(
    HopperKernelBuilder &e, ValueRange acc, int64_t h, int64_t width,
    function_ref<Value()> factor, Value dst) {
  auto pairType = VectorType::get({2}, e.elementType);
  auto wordType = VectorType::get({1}, e.b.getI32Type());
  int64_t blocks = storedColumns(dst, width) / 8;
  SmallVector<Value> words;
  for (int64_t jn = 0; jn < blocks; ++jn)
    words.push_back(vector::ExtractOp::create(
        e.b,
        vector::BitCastOp::create(e.b, wordType,
                                  rowPair(e, acc, jn, h, factor)),
        0));
  RowStores stores;
  // Blocks 2q and 2q + 1 (16 columns, 32 bytes): lanes t and t ^ 1 trade
  // one word, so that an even lane holds columns 16q + 2t .. + 3 of block
  // 2q and an odd one columns 16q + 2t + 6 .. + 3 of block 2q + 1.
  Value odd = e.eq(e.rem(e.t, 2), 1);
  for (int64_t q = 0; q < blocks / 2; ++q) {
    Value sent = e.select(odd, words[2 * q], words[2 * q + 1]);
    Value got = gpu::ShuffleOp::create(e.b, sent, 1, 32, gpu::ShuffleMode::XOR)
                    .getShuffleResult();
    Value quad = vector::FromElementsOp::create(
        e.b, VectorType::get({2}, e.b.getI32Type()),
        ValueRange{e.select(odd, got, words[2 * q]),
                   e.select(odd, words[2 * q + 1], got)});
    stores.values.push_back(vector::BitCastOp::create(
        e.b, VectorType::get({4}, e.elementType), quad));
    stores.columns.push_back(e.add(e.add(e.mul(e.t, 2), e.idx(16 * q)),
                                   e.select(odd, e.idx(6), e.idx(0))));
  }
  if (blocks % 2) {
    stores.values.push_back(vector::BitCastOp::create(
        e.b, pairType,
        vector::FromElementsOp::create(e.b, wordType, words.back())));
    stores.columns.push_back(e.add(e.mul(e.t, 2), e.idx(8 * (blocks - 1))));
  }
  return stores;
}

void mlir::swba::gpu_kernels::storeAccumulatorRow(HopperKernelBuilder &e,
                                                  ValueRange acc, int64_t h,
                                                  int64_t width,
                                                  function_ref<Value()> factor,
                                                  Value dst, Value batch,
                                                  Value head, Value row) {
  auto pairType = VectorType::get({2}, e.elementType);
  for (int64_t jn = 0; jn < storedColumns(dst, width) / 8; ++jn) {
    Value pair = rowPair(e, acc, jn, h, factor);
    Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
    vector::StoreOp::create(e.b, pair, dst, ValueRange{batch, head, row, col},
                            /*nontemporal=*/false, naturalAlignment(pairType));
  }
}

void mlir::swba::gpu_kernels::storeRow(HopperKernelBuilder &e,
                                       const RowStores &stores, Value dst,
                                       Value batch, Value head, Value row) {
  for (auto [value, column] : llvm::zip(stores.values, stores.columns))
    vector::StoreOp::create(
        e.b, value, dst, ValueRange{batch, head, row, column},
        /*nontemporal=*/false, naturalAlignment(value.getType()));
}

/// The (batch, head) plane of `m` (rank 3 or 4, batch and head first) as
/// a view.
static Value outputPlane(HopperKernelBuilder &e, Value m, Value batch,
                         Value head) {
  int64_t rank = cast<MemRefType>(m.getType()).getRank();
  SmallVector<OpFoldResult> offsets(rank, e.b.getIndexAttr(0)),
      strides(rank, e.b.getIndexAttr(1));
  offsets[0] = batch;
  offsets[1] = head;
  // (Static sizes kept static: storedColumns reads the columns from the
  // view's type.)
  SmallVector<OpFoldResult> sizes = memref::getMixedSizes(e.b, e.b.getLoc(), m);
  sizes[0] = sizes[1] = e.b.getIndexAttr(1);
  return memref::SubViewOp::create(e.b, m, offsets, sizes, strides);
}

/// 1 / sum, approximate: one instruction and within an ulp, where the
/// division's was a dozen with a branch to a slow path, for outputs
/// rounded to 16 bits.
static Value reciprocal(HopperKernelBuilder &e, Value sum) {
  return e.approx("rcp.approx.ftz.f32 $0, $1;", sum);
}

/// lse[0, 0, row] (a plane's) from lane t = 0 of the quad: the row's
/// maximum and sum back from the log2 domain, (max + log2(sum)) ln 2.
static void storeRowLse(HopperKernelBuilder &e, Value max, Value sum, Value lse,
                        Value row) {
  e.when(e.eq(e.t, 0), [&] {
    Value value = e.mulf(e.addf(max, e.lg2(sum)), e.f32(std::log(2.0)));
    Value zero = e.idx(0);
    e.store(value, lse, {zero, zero, row});
  });
}

void mlir::swba::gpu_kernels::storeForwardRows(HopperKernelBuilder &e,
                                               ValueRange results,
                                               int64_t valueDim, Value rowBase,
                                               Value queries, Value out,
                                               Value lse, Value batch,
                                               Value head, bool sumsComplete) {
  int64_t nO = valueDim / 2;
  // The (batch, head) planes of out and lse as views made once, before the
  // rows' branches: each row's stores computed the plane's offset again.
  out = outputPlane(e, out, batch, head);
  if (lse)
    lse = outputPlane(e, lse, batch, head);
  Value zero = e.idx(0);
  for (int64_t h = 0; h < 2; ++h) {
    Value sum = sumsComplete
                    ? results[nO + 2 + h]
                    : e.quadReduce(results[nO + 2 + h], /*isMax=*/false);
    Value inv = reciprocal(e, sum);
    Value row = e.add(rowBase, e.idx(8 * h));
    RowStores stores = packAccumulatorRow(
        e, results, h, valueDim, [&] { return inv; }, out);
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] {
             storeRow(e, stores, out, zero, zero, row);
             if (lse)
               storeRowLse(e, results[nO + h], sum, lse, row);
           });
  }
}

void mlir::swba::gpu_kernels::storeForwardTile(
    HopperKernelBuilder &e, ValueRange results, int64_t valueDim, Value rowBase,
    Value queries, const OutStaging &staging, Value lse, Value batch,
    Value head) {
  int64_t nO = valueDim / 2, boxes = valueDim / kBoxCols;
  constexpr int64_t kBoxBytes = kRowsPerConsumer * kBoxRowBytes;
  Location loc = e.b.getLoc();
  Value isLeader = e.isWarpgroupLeader();
  Value barrier = arith::IndexCastOp::create(
      e.b, e.b.getI32Type(),
      e.add(staging.consumer, e.idx(kOutStagingBarrier)));
  auto sync = [&] {
    NVVM::BarrierOp::create(e.b, loc, Type(), barrier,
                            e.constI32(kWarpgroupThreads),
                            NVVM::BarrierReductionAttr(), Value());
  };
  Value mine =
      e.add(e.idx(staging.offset), e.mul(staging.consumer, boxes * kBoxBytes));
  // The last tile's store has read the staging.
  e.when(isLeader, [&] {
    NVVM::CpAsyncBulkWaitGroupOp::create(e.b, 0, e.b.getUnitAttr());
  });
  sync();
  auto smemSpace = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  Value words = memref::ViewOp::create(
      e.b,
      MemRefType::get({boxes * kBoxBytes / 4}, e.b.getI32Type(),
                      MemRefLayoutAttrInterface(), smemSpace),
      e.buffer, mine, ValueRange{});
  // Row r of a box in 128-byte rows, its 16-byte chunk c at c ^ (r % 8)
  // (the swizzle; a warp's rows are 16 w + g and 16 w + g + 8, so r % 8 is
  // g): a warp's 32 stores of a column block fill 32 banks.
  Value rowWord = e.add(e.mul(e.accumulatorRow(), kBoxRowBytes / 4), e.t);
  auto wordType = VectorType::get({1}, e.b.getI32Type());
  SmallVector<Value> sums;
  for (int64_t h = 0; h < 2; ++h) {
    Value sum = results[nO + 2 + h];
    sums.push_back(sum);
    Value inv = reciprocal(e, sum);
    for (int64_t jn = 0; jn < valueDim / 8; ++jn) {
      Value word = vector::ExtractOp::create(
          e.b,
          vector::BitCastOp::create(
              e.b, wordType, rowPair(e, results, jn, h, [&] { return inv; })),
          0);
      Value chunk = arith::XOrIOp::create(e.b, e.g, e.idx(jn % 8));
      Value at = e.add(rowWord,
                       e.add(e.mul(chunk, 4), e.idx((jn / 8) * kBoxBytes / 4 +
                                                    8 * h * kBoxRowBytes / 4)));
      e.store(word, words, {at});
    }
  }
  // Generic-proxy writes that the TMA (async proxy) reads.
  e.fenceAsyncShared();
  sync();
  e.when(isLeader, [&] {
    auto i32 = [&](Value v) {
      return arith::IndexCastOp::create(e.b, e.b.getI32Type(), v);
    };
    Value address = e.add(
        memref::ExtractAlignedPointerAsIndexOp::create(e.b, e.buffer), mine);
    for (int64_t box = 0; box < boxes; ++box) {
      Value src = LLVM::IntToPtrOp::create(
          e.b, LLVM::LLVMPointerType::get(e.b.getContext(), 3),
          e.toI64(e.add(address, e.idx(box * kBoxBytes))));
      NVVM::CpAsyncBulkTensorSharedCTAToGlobalOp::create(
          e.b, staging.map, src,
          ValueRange{e.constI32(box * kBoxCols), i32(staging.firstRow),
                     i32(staging.plane)},
          /*l2CacheHint=*/Value(), NVVM::TMAStoreMode::TILE,
          /*predicate=*/Value());
    }
    NVVM::CpAsyncBulkCommitGroupOp::create(e.b);
  });
  if (!lse)
    return;
  lse = outputPlane(e, lse, batch, head);
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rowBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] { storeRowLse(e, results[nO + h], sums[h], lse, row); });
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
    RowStores stores = packAccumulatorRow(
        e, results, h, headDim, [&] { return e.f32(scale); }, dq);
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] { storeRow(e, stores, dq, batch, head, row); });
  }
}

void mlir::swba::gpu_kernels::storeKeyValueGradRows(
    HopperKernelBuilder &e, ValueRange results, int64_t headDim,
    int64_t valueDim, double scale, Value keyBase, Value keys, Value dk,
    Value dv, Value batch, Value kvHead, bool paired) {
  int64_t nK = headDim / 2, nV = valueDim / 2;
  for (int64_t h = 0; h < 2; ++h) {
    Value key = e.add(keyBase, e.idx(8 * h));
    Value seen =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, key, keys);
    if (!paired) {
      e.when(seen, [&] {
        if (headDim)
          storeAccumulatorRow(
              e, results.take_front(nK), h, headDim,
              [&] { return e.f32(scale); }, dk, batch, kvHead, key);
        if (valueDim)
          storeAccumulatorRow(
              e, results.slice(nK, nV), h, valueDim, [&] { return e.f32(1.0); },
              dv, batch, kvHead, key);
      });
      continue;
    }
    // dK's row stored before dV's is made: fewer values alive at once.
    if (headDim) {
      RowStores stores = packAccumulatorRow(
          e, results.take_front(nK), h, headDim, [&] { return e.f32(scale); },
          dk);
      e.when(seen, [&] { storeRow(e, stores, dk, batch, kvHead, key); });
    }
    if (valueDim) {
      RowStores stores = packAccumulatorRow(
          e, results.slice(nK, nV), h, valueDim, [&] { return e.f32(1.0); },
          dv);
      e.when(seen, [&] { storeRow(e, stores, dv, batch, kvHead, key); });
    }
  }
}
