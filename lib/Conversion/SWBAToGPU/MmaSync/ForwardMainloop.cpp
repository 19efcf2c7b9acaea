//===- ForwardMainloop.cpp - The mma.sync forward kernel ------------------===//
//
// The body of the mma.sync forward kernel (SWBAToGPU.cpp has the kernel,
// its launch and the overview): Q staged once into A fragments, then over
// the K/V tiles of the rows' block window, with the next tile loaded into
// registers while this one is used:
//   S = Q K^T                 ldmatrix + mma.sync, K read without transpose
//   mask                      edge tiles only
//   P = online softmax        in the accumulator registers
//   O += P V                  P's C tiles paired into A fragments
// and the epilogue stores O / rowsum and lse.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// What the parts of the forward kernel read: sizes, the workgroup's
/// tile, its key window and Q's fragments.
struct MmaForwardKernel {
  KernelBuilder &e;
  int64_t mTiles, blockM, headDim, valueDim, dk, nAcc, nTiles;
  BlockWindow w;
  Value scale;
  Value q, k, v, sK, sV, sQ;
  Value batch, head, queries, keys, posOffset, kvHead, q0, q1, warpRow;
  RowRange window;
  /// qFrag[m * dk + kk]: m16 tile m of this warp, k slice kk.
  SmallVector<Value> qFrag;

  void setUp(bool headsFastest);
  void loadQuery();
  SmallVector<Value> mainloop();
  void storeRows(ValueRange results, Value out, Value lse);

private:
  SmallVector<Value> step(Value k0, ValueRange iter);
  SmallVector<Value> scores();
  SmallVector<Value> maskScores(SmallVector<Value> s, Value k0, Value next);
  SmallVector<Value> softmax(ArrayRef<Value> s, MutableArrayRef<Value> rowMax,
                             MutableArrayRef<Value> rowSum,
                             MutableArrayRef<Value> acc);
  void accumulate(ArrayRef<Value> p, MutableArrayRef<Value> acc);
};

} // namespace

/// The workgroup's query rows and the key window they see.
void MmaForwardKernel::setUp(bool headsFastest) {
  e.setLaneIds();
  auto tile = mapWorkgroup(e, headsFastest);
  batch = tile.batch;
  head = tile.head;
  queries = e.dim(q, 2);
  keys = e.dim(k, 2);
  posOffset = e.sub(keys, queries);
  Value group = e.divIdx(e.dim(q, 1), e.dim(k, 1));
  kvHead = e.divIdx(head, group);
  q0 = e.mul(tile.qTile, blockM);
  q1 = e.min(e.add(q0, e.idx(blockM)), queries);
  window = computeKeyWindow(e.b, e.b.getLoc(), w, q0, q1, posOffset, keys);
}

/// Q: staged through shared memory, then held as A fragments for the whole
/// loop; the first K/V tile is loaded meanwhile.
void MmaForwardKernel::loadQuery() {
  e.storeTile(e.loadTile(q, batch, head, q0, queries, blockM, headDim), sQ,
              blockM, headDim);
  SmallVector<Value> firstK =
      e.loadTile(k, batch, kvHead, window.begin, keys, kBlockN, headDim);
  SmallVector<Value> firstV =
      e.loadTile(v, batch, kvHead, window.begin, keys, kBlockN, valueDim);
  gpu::BarrierOp::create(e.b);
  warpRow = e.mul(e.warpId, 16 * mTiles);
  for (int64_t m = 0; m < mTiles; ++m)
    qFrag.append(e.loadAFragments(sQ, e.add(warpRow, e.idx(16 * m)), headDim));
  gpu::BarrierOp::create(e.b);
  e.storeTile(firstK, sK, kBlockN, headDim);
  e.storeTile(firstV, sV, kBlockN, valueDim);
}

/// Loop-carried, per m tile: output accumulators, then the max and sum of
/// rows g and g + 8.
SmallVector<Value> MmaForwardKernel::mainloop() {
  SmallVector<Value> init;
  for (int64_t i = 0; i < mTiles * nAcc; ++i)
    init.push_back(e.zeroAcc());
  for (int64_t i = 0; i < 2 * mTiles; ++i)
    init.push_back(e.negInf());
  for (int64_t i = 0; i < 2 * mTiles; ++i)
    init.push_back(e.f32(0.0));
  auto loop =
      scf::ForOp::create(e.b, window.begin, window.end, e.idx(kBlockN), init);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToEnd(loop.getBody());
  scf::YieldOp::create(e.b,
                       step(loop.getInductionVar(), loop.getRegionIterArgs()));
  return SmallVector<Value>(loop.getResults());
}

/// The key tile from k0.
SmallVector<Value> MmaForwardKernel::step(Value k0, ValueRange iter) {
  SmallVector<Value> acc(iter.take_front(mTiles * nAcc));
  SmallVector<Value> rowMax(iter.slice(mTiles * nAcc, 2 * mTiles));
  SmallVector<Value> rowSum(iter.slice(mTiles * nAcc + 2 * mTiles, 2 * mTiles));

  // This tile's stores are visible; start loading the next tile into
  // registers, so that its latency hides behind this tile's math.
  gpu::BarrierOp::create(e.b);
  Value next = e.add(k0, e.idx(kBlockN));
  Value hasNext =
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, next, window.end);
  Value nextEnd = e.select(hasNext, keys, e.idx(0));
  SmallVector<Value> nextK =
      e.loadTile(k, batch, kvHead, next, nextEnd, kBlockN, headDim);
  SmallVector<Value> nextV =
      e.loadTile(v, batch, kvHead, next, nextEnd, kBlockN, valueDim);

  SmallVector<Value> s = maskScores(scores(), k0, next);
  SmallVector<Value> p = softmax(s, rowMax, rowSum, acc);
  accumulate(p, acc);

  // Everyone is done reading this tile: publish the next one.
  gpu::BarrierOp::create(e.b);
  e.storeTile(nextK, sK, kBlockN, headDim);
  e.storeTile(nextV, sV, kBlockN, valueDim);

  SmallVector<Value> yielded(acc);
  yielded.append(rowMax);
  yielded.append(rowSum);
  return yielded;
}

/// S = Q K^T, scaled: B fragments are K rows read without transpose, each
/// read once and used by every m tile. s[m * nTiles + nt].
SmallVector<Value> MmaForwardKernel::scores() {
  SmallVector<Value> s(mTiles * nTiles);
  for (int64_t nt = 0; nt < nTiles; ++nt) {
    SmallVector<Value> c(mTiles, Value());
    for (int64_t m = 0; m < mTiles; ++m)
      c[m] = e.zeroAcc();
    for (int64_t kk = 0; kk < dk; ++kk) {
      Value bFrag = e.loadBFragment(sK, nt, kk);
      for (int64_t m = 0; m < mTiles; ++m)
        c[m] = e.mma(qFrag[m * dk + kk], bFrag, c[m]);
    }
    for (int64_t m = 0; m < mTiles; ++m)
      s[m * nTiles + nt] = arith::MulFOp::create(
          e.b, c[m], vector::BroadcastOp::create(e.b, c[m].getType(), scale));
  }
  return s;
}

/// Edge tiles mask element-wise; interior tiles pass through untouched.
SmallVector<Value> MmaForwardKernel::maskScores(SmallVector<Value> s, Value k0,
                                                Value next) {
  Location loc = e.b.getLoc();
  Value k1 = e.min(next, window.end);
  Value fullTile = arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                         e.sub(k1, k0), e.idx(kBlockN));
  Value interior = arith::AndIOp::create(
      e.b, fullTile,
      isTileFullyVisible(e.b, loc, w, q0, q1, k0, k1, posOffset));
  auto maskIf = scf::IfOp::create(e.b, TypeRange(ValueRange(s)), interior,
                                  /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(maskIf.thenBlock());
  scf::YieldOp::create(e.b, s);
  e.b.setInsertionPointToStart(maskIf.elseBlock());
  SmallVector<Value> masked;
  for (int64_t m = 0; m < mTiles; ++m) {
    for (int64_t nt = 0; nt < nTiles; ++nt) {
      Value tile = s[m * nTiles + nt];
      for (int64_t r = 0; r < 2; ++r) {
        Value row =
            e.add(e.add(q0, warpRow), e.add(e.g, e.idx(16 * m + 8 * r)));
        for (int64_t c = 0; c < 2; ++c) {
          Value col = e.add(k0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c)));
          Value inRange =
              arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, col, k1);
          Value visible = arith::AndIOp::create(
              e.b, inRange, isVisible(e.b, loc, w, row, col, posOffset));
          tile = e.insert(e.select(visible, e.extract(tile, r, c), e.negInf()),
                          tile, r, c);
        }
      }
      masked.push_back(tile);
    }
  }
  scf::YieldOp::create(e.b, masked);
  return SmallVector<Value>(maskIf.getResults());
}

/// Online softmax on rows g (r = 0) and g + 8 (r = 1) of each m tile:
/// updates the row statistics, rescales O and returns P.
SmallVector<Value> MmaForwardKernel::softmax(ArrayRef<Value> s,
                                             MutableArrayRef<Value> rowMax,
                                             MutableArrayRef<Value> rowSum,
                                             MutableArrayRef<Value> acc) {
  SmallVector<Value> p(s.size());
  for (int64_t m = 0; m < mTiles; ++m) {
    ArrayRef<Value> sm = s.slice(m * nTiles, nTiles);
    Value ref[2], alpha[2], partial[2];
    for (int64_t r = 0; r < 2; ++r) {
      Value &mx = rowMax[2 * m + r];
      Value old = mx;
      for (Value tile : sm)
        mx = e.maxf(mx, e.maxf(e.extract(tile, r, 0), e.extract(tile, r, 1)));
      mx = e.quadReduce(mx, /*isMax=*/true);
      // A row that has seen only masked keys keeps max -inf; subtracting 0
      // keeps its exponentials at 0 instead of NaN.
      Value noneSeen =
          arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, mx, e.negInf());
      ref[r] = e.select(noneSeen, e.f32(0.0), mx);
      alpha[r] = e.ex2(e.subf(old, ref[r]));
      partial[r] = e.f32(0.0);
    }
    for (int64_t nt = 0; nt < nTiles; ++nt) {
      Value prob = sm[nt];
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t c = 0; c < 2; ++c) {
          Value x = e.ex2(e.subf(e.extract(sm[nt], r, c), ref[r]));
          partial[r] = e.addf(partial[r], x);
          prob = e.insert(x, prob, r, c);
        }
      p[m * nTiles + nt] = prob;
    }
    for (int64_t r = 0; r < 2; ++r)
      rowSum[2 * m + r] =
          e.addf(e.mulf(rowSum[2 * m + r], alpha[r]), partial[r]);
    for (int64_t dt = 0; dt < nAcc; ++dt) {
      Value &tile = acc[m * nAcc + dt];
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t c = 0; c < 2; ++c)
          tile = e.insert(e.mulf(e.extract(tile, r, c), alpha[r]), tile, r, c);
    }
  }
  return p;
}

/// O += P V: P's C tiles pair up into A fragments; V is read with transpose
/// so that its key rows become the k dimension, each V fragment once for
/// every m tile.
void MmaForwardKernel::accumulate(ArrayRef<Value> p,
                                  MutableArrayRef<Value> acc) {
  for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
    SmallVector<Value> aFrag;
    for (int64_t m = 0; m < mTiles; ++m)
      aFrag.push_back(
          e.toAFragment(p[m * nTiles + 2 * kk], p[m * nTiles + 2 * kk + 1]));
    for (int64_t dt = 0; dt < nAcc; ++dt) {
      Value bFrag = e.loadBFragmentTransposed(sV, kk, dt);
      for (int64_t m = 0; m < mTiles; ++m)
        acc[m * nAcc + dt] = e.mma(aFrag[m], bFrag, acc[m * nAcc + dt]);
    }
  }
}

/// Epilogue: complete the row sums over the quad, normalize, store.
void MmaForwardKernel::storeRows(ValueRange results, Value out, Value lse) {
  auto pairType = VectorType::get({2}, e.elementType);
  for (int64_t m = 0; m < mTiles; ++m) {
    for (int64_t r = 0; r < 2; ++r) {
      Value sum = e.quadReduce(results[mTiles * nAcc + 2 * mTiles + 2 * m + r],
                               /*isMax=*/false);
      Value inv = e.divf(e.f32(1.0), sum);
      Value row = e.add(e.add(q0, warpRow), e.add(e.g, e.idx(16 * m + 8 * r)));
      Value inBounds =
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries);
      auto ifOp = scf::IfOp::create(e.b, inBounds, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      for (int64_t dt = 0; dt < nAcc; ++dt) {
        Value tile = results[m * nAcc + dt];
        Value x0 = e.mulf(e.extract(tile, r, 0), inv);
        Value x1 = e.mulf(e.extract(tile, r, 1), inv);
        Value pair = vector::FromElementsOp::create(
            e.b, VectorType::get({2}, e.b.getF32Type()), ValueRange{x0, x1});
        pair = arith::TruncFOp::create(e.b, pairType, pair);
        Value col = e.add(e.mul(e.t, 2), e.idx(dt * 8));
        vector::StoreOp::create(
            e.b, pair, out, ValueRange{batch, head, row, col},
            /*nontemporal=*/false, naturalAlignment(pairType));
      }
      if (!lse)
        continue;
      Value first =
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq, e.t, e.idx(0));
      auto lseIf = scf::IfOp::create(e.b, first, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard g2(e.b);
      e.b.setInsertionPoint(lseIf.thenBlock()->getTerminator());
      // Back from the log2 domain: lse = (max + log2(sum)) * ln 2.
      Value value =
          e.mulf(e.addf(results[mTiles * nAcc + 2 * m + r], e.lg2(sum)),
                 e.f32(std::log(2.0)));
      e.store(value, lse, {batch, head, row});
    }
  }
}

void mlir::swba::gpu_kernels::buildMmaForwardBody(
    OpBuilder &builder, Location loc, AttentionOp op, KernelTiling tiling,
    ValueRange args, Value sK, Value sV, Value sQ, Type elementType,
    int64_t headDim, int64_t valueDim) {
  KernelBuilder e(builder, loc, elementType);
  double log2e = 1.0 / std::log(2.0);
  MmaForwardKernel kernel{e,
                          tiling.mTiles,
                          tiling.blockM(),
                          headDim,
                          valueDim,
                          headDim / 16,
                          valueDim / 8,
                          kBlockN / 8,
                          {static_cast<int64_t>(op.getBlockSize()),
                           static_cast<int64_t>(op.getWindow())},
                          // Scores are kept in the log2 domain: exp2 is one
                          // instruction.
                          e.f32(op.getEffectiveScale() * log2e),
                          args[0],
                          args[1],
                          args[2],
                          sK,
                          sV,
                          sQ};
  kernel.setUp(tiling.headsFastest);
  kernel.loadQuery();
  SmallVector<Value> results = kernel.mainloop();
  kernel.storeRows(results, args[3], args.size() > 4 ? args[4] : Value());
}
