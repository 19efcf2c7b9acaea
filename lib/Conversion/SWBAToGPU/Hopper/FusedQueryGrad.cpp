//===- FusedQueryGrad.cpp - dQ in the sm_90a dK/dV kernel -----------------===//
//
// What grad-fused-dq adds to the dK/dV kernel (KeyValueGradMainloop.cpp):
// with `dqAccumMap` (the tensor map of dqAccum, f32 [B][Hq][Nq][D],
// zeroed) the kernel also adds dQ up (five products instead of the
// separate dQ kernel's recomputed S and dP): each consumer writes its dS^T
// of query tile j into shared slot j % 3 and issues dV; then the consumers
// meet at a barrier (named barrier 7: both halves of the slot are
// written), and each multiplies the tile's dS (both consumers' keys) by K,
// issues dK, and adds the dQ product to dqAccum while dK's runs
// (accumulate): through a staging buffer, by a TMA reduce-add that one
// thread of the consumer issues (`dqAccumMap`: boxes
// of [64 rows][32 f32]; rows past the queries fall outside the map, and
// rows past the tile add the zeros of their masked dS). A reduce's TMA
// reads its staging while the consumer computes the next tile; the
// consumer waits for that read just before the next tile's barrier, not
// at the top of the next tile, right after the issue (8-12% of the
// kernel's time). The consumers take no turns (FlashAttention-3's order;
// with turns and tile j - 1's dQ in tile j the kernel was slower:
// docs/BENCHMARKS.md).
// dqAccum holds unscaled sums; a conversion kernel scales them into dq.
// (At design configuration 3 the reduce-adds cost 8% of the kernel's
// time; per-thread red.global.add.v2.f32 reductions cost 23%:
// docs/BENCHMARKS.md.)
//
//===----------------------------------------------------------------------===//

#include "KeyValueGradKernel.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

void KeyValueGradKernel::setUpQueryGrad() {
  share = QueryGradShare::get(e, rows.consumer, blockM, headDim);
  auto smemSpace = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  auto wordsType =
      MemRefType::get({(layout.total() - layout.dsOffset()) / 4},
                      e.b.getI32Type(), MemRefLayoutAttrInterface(), smemSpace);
  dsWords = memref::ViewOp::create(e.b, wordsType, e.buffer,
                                   e.idx(layout.dsOffset()), ValueRange{});
  auto floatsType =
      MemRefType::get({(layout.total() - layout.dsOffset()) / 4},
                      e.b.getF32Type(), MemRefLayoutAttrInterface(), smemSpace);
  stagingF32 = memref::ViewOp::create(e.b, floatsType, e.buffer,
                                      e.idx(layout.dsOffset()), ValueRange{});
  isLeader = e.isWarpgroupLeader();
}

Value KeyValueGradKernel::dsSlot(Value j) {
  return arith::RemUIOp::create(e.b, j, e.idx(layout.dsSlots));
}

/// The leader waits until the TMA reduces it issued have read their
/// staging boxes.
void KeyValueGradKernel::waitStagingRead() {
  e.when(isLeader, [&] {
    NVVM::CpAsyncBulkWaitGroupOp::create(e.b, 0, e.b.getUnitAttr());
  });
}

/// dS^T of tile j into slot j % 3 for dQ: the thread's pair (key row,
/// queries 8 jn + 2t, + 1) goes to 16-byte chunk jn % 8 of the row in box
/// jn / 8, XOR the row's index in its 8-row atom (g): the 128B swizzle.
void KeyValueGradKernel::writeScoreGrad(Value j, ArrayRef<Value> dsFrags) {
  Value row = e.add(e.mul(rows.consumer, kRowsPerConsumer), e.accumulatorRow());
  Value rowWord = e.add(e.mul(dsSlot(j), layout.dsSlotBytes() / 4),
                        e.add(e.mul(row, kBoxRowBytes / 4), e.t));
  for (int64_t jn = 0; jn < blockM / 8; ++jn) {
    Value chunk = arith::XOrIOp::create(e.b, e.g, e.idx(jn % 8));
    Value word =
        e.add(rowWord, e.add(e.mul(chunk, 4),
                             e.idx(jn / 8 * blockN * kBoxRowBytes / 4)));
    for (int64_t h = 0; h < 2; ++h)
      e.store(dsFrags[2 * jn + h], dsWords,
              {e.add(word, e.idx(8 * h * kBoxRowBytes / 4))});
  }
  // The stores are generic-proxy writes that a wgmma (async proxy) reads.
  e.fenceAsyncShared();
}

/// dQ (unscaled) of this consumer's share of the tile in dS^T slot `slot`:
/// A = dS, MN-major (the slot holds dS^T [keys][queries]); B = K [keys][D],
/// MN-major as in the dQ kernel. Issued inside a wgmma group.
Value KeyValueGradKernel::issueQueryGrad(Value slot) {
  auto high = [&](int64_t lbo) { return e.i64(descriptorHigh(lbo)); };
  SmallVector<Value> zeros = e.zeroRegisters(share.n / 2);
  Value acc = e.accumulatorOf(zeros);
  int64_t boxBytes = blockN * kBoxRowBytes;
  Value aStart = e.add(
      e.idx(layout.dsOffset()),
      e.add(e.mul(slot, layout.dsSlotBytes()),
            e.add(e.mul(e.divIdx(share.rowOffset, e.idx(kBoxCols)), boxBytes),
                  e.mul(share.keyOffset, kBoxRowBytes))));
  Value bStart =
      e.add(e.mul(e.divIdx(share.columnOffset, e.idx(kBoxCols)), boxBytes),
            e.mul(share.keyOffset, kBoxRowBytes));
  Value aDesc = arith::OrIOp::create(
      e.b, e.add(base, e.toI64(e.divIdx(aStart, e.idx(16)))), high(boxBytes));
  Value bDesc = arith::OrIOp::create(
      e.b, e.add(base, e.toI64(e.divIdx(bStart, e.idx(16)))), high(boxBytes));
  for (int64_t kk = 0; kk < share.steps; ++kk) {
    Value step = e.i64(kk * 16 * kBoxRowBytes / 16);
    acc = e.ssMma(acc, e.add(aDesc, step), e.add(bDesc, step), share.n, kk == 0,
                  /*mnMajorA=*/true, /*mnMajorB=*/true);
  }
  return acc;
}

/// Byte offset (from the dS^T slots) of staging box `box` of tile `j`'s
/// share: this consumer's rows of slot (j + 2) % 3, or its own area. Slot
/// (j + 2) % 3 held tile j - 1's dS^T, whose dQ products both consumers
/// completed before they met at tile j's barrier; the consumer writes its
/// own rows of it again with tile j + 2's dS^T, after it waited for this
/// reduce's read before tile j + 1's barrier (accumulate).
Value KeyValueGradKernel::stagingBox(Value j, int64_t box) {
  if (layout.stagesInSlots())
    return e.add(
        e.mul(dsSlot(e.add(j, e.idx(2))), layout.dsSlotBytes()),
        e.add(e.idx(box * blockN * kBoxRowBytes),
              e.mul(rows.consumer, KeyValueGradLayout::stagingBoxBytes)));
  return e.add(e.idx(layout.stagingOffset() - layout.dsOffset() +
                     box * KeyValueGradLayout::stagingBoxBytes),
               e.mul(rows.consumer, layout.stagingPerConsumer()));
}

/// Adds the share `acc` (after its wait) of tile `j` to dqAccum: the
/// warpgroup writes it into staging boxes (element (r, c) of a box at row
/// r, 16-byte chunk (c / 4) XOR (r % 8)), fences it for the async proxy,
/// syncs (named barrier 5 + consumer), and its first thread issues one TMA
/// reduce-add per box and commits them as a bulk group.
///
/// A warp's 8-byte stores run as two half-warps (g < 4, g >= 4). Were
/// every lane to store its column group jn in store jn, lanes g and g ^ 1
/// would fill the same two 16-byte chunks (the swizzle's low bit only
/// swaps them) and each half-warp would meet itself twice in every bank:
/// a 2-way conflict on each store. So store k takes column group
/// k ^ 2 (g & 1): the four rows of a half-warp then fill all eight chunks.
void KeyValueGradKernel::reduceQueryGrad(Value acc, Value j) {
  MLIRContext *ctx = e.b.getContext();
  SmallVector<Value> values;
  for (int64_t i = 0; i < share.n / 2; ++i)
    values.push_back(LLVM::ExtractValueOp::create(e.b, acc, i));
  values = e.fenceRegisters(values);
  auto pairType = VectorType::get({2}, e.b.getF32Type());
  Value rowBytes = e.mul(e.accumulatorRow(), kBoxRowBytes);
  Value parity = e.rem(e.g, 2);
  Value oddRow = e.eq(parity, 1);
  // g ^ 4 (g & 1): the swizzle row, with the odd rows' groups k ^ 2
  // (chunk bit 2) folded in.
  Value rowSwizzle = arith::XOrIOp::create(e.b, e.g, e.mul(parity, 4));
  for (int64_t k = 0; k < share.n / 8; ++k) {
    Value boxStart = stagingBox(j, k / 4);
    Value chunk = arith::XOrIOp::create(
        e.b, rowSwizzle, e.add(e.idx(2 * (k % 4)), e.divIdx(e.t, e.idx(2))));
    Value within = e.add(e.mul(chunk, 16), e.mul(e.rem(e.t, 2), 8));
    for (int64_t h = 0; h < 2; ++h) {
      Value byte = e.add(boxStart, e.add(e.add(rowBytes, within),
                                         e.idx(8 * h * kBoxRowBytes)));
      auto column = [&](int64_t i) {
        return arith::SelectOp::create(e.b, oddRow,
                                       values[4 * (k ^ 2) + 2 * h + i],
                                       values[4 * k + 2 * h + i]);
      };
      Value pair = vector::FromElementsOp::create(
          e.b, pairType, ValueRange{column(0), column(1)});
      vector::StoreOp::create(e.b, pair, stagingF32,
                              ValueRange{e.divIdx(byte, e.idx(4))});
    }
  }
  e.fenceAsyncShared();
  syncWarpgroup(5);
  e.when(isLeader, [&] {
    Value row = e.add(tile.queryRow(e, j, blockM), share.rowOffset);
    Value plane = e.add(arith::MulIOp::create(e.b, tile.batch, tile.heads),
                        tile.queryHead(e, j));
    auto i32 = [&](Value v) {
      return arith::IndexCastOp::create(e.b, e.b.getI32Type(), v);
    };
    Value bufferAddress =
        memref::ExtractAlignedPointerAsIndexOp::create(e.b, e.buffer);
    for (int64_t box = 0; box < share.n / 32; ++box) {
      Value column = e.add(share.columnOffset, e.idx(32 * box));
      auto reduce = [&] {
        Value src = LLVM::IntToPtrOp::create(
            e.b, LLVM::LLVMPointerType::get(ctx, 3),
            e.toI64(e.add(bufferAddress, e.add(e.idx(layout.dsOffset()),
                                               stagingBox(j, box)))));
        NVVM::CpAsyncBulkTensorReduceOp::create(
            e.b, dqAccumMap, src, NVVM::TMAReduxKind::ADD,
            NVVM::TMAStoreMode::TILE,
            ValueRange{i32(column), i32(row), i32(plane)}, Value());
      };
      // Boxes past Q's columns (a head dim rounded up to whole TMA boxes)
      // hold zeros and add nothing.
      if (tensorHeadDim < headDim)
        e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, column,
                                     e.idx(tensorHeadDim)),
               reduce);
      else
        reduce();
    }
    NVVM::CpAsyncBulkCommitGroupOp::create(e.b);
  });
}
