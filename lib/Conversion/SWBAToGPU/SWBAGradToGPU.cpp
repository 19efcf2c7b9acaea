//===- SWBAGradToGPU.cpp - swba.attention_grad to GPU kernels -------------===//
//
// Lowers memref-form swba.attention_grad to a delta kernel and two
// tensor-core kernels, with no atomics (so results are deterministic):
//
// 0. delta = rowsum(dO * O) into a scratch buffer (createDeltaKernel), a
//    quad of threads per query row. The dQ and dK/dV kernels only read it
//    and nothing of each other, so a runtime may run them at once (the
//    Python one does, on two streams); gpu.launch_func runs them in order.
// 1. dQ, one workgroup per (64 query rows, query head, batch), over the key
//    tiles of the rows' block window (computeKeyWindow).
// 2. dK/dV, one workgroup per (64 key rows, kv head, batch), over the query
//    heads of its GQA group and the query tiles of the key rows' reverse
//    window (computeQueryWindow). Each key row belongs to one workgroup,
//    which sums the whole group itself.
//
// Both recompute P = exp2(S * scale * log2 e - lse * log2 e) from the
// forward's lse; all five products run on mma.sync with f32 accumulation;
// tiles that the window covers whole skip the element mask.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "GradKernels.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// Rows per workgroup of both kernels, and of the tiles they loop over.
constexpr int64_t kTile = 64;
constexpr int64_t kNTiles = kTile / 8;

/// What both kernels share: operands, sizes, block window, constants.
struct GradKernel {
  KernelBuilder &e;
  Value q, k, v, dout, lse, delta;
  Value queries, keys, posOffset, group;
  BlockWindow w;
  int64_t headDim, valueDim;
  /// scale * log2(e): scores in the log2 domain.
  Value scaleLog2;
  Value log2e;

  /// Zero-filled copies of row ranges past the end keep the products finite;
  /// `rowEnd` bounds the rows read.
  void stage(Value src, Value batch, Value head, Value row0, Value rowEnd,
             Value dst, int64_t width) {
    e.storeTile(e.loadTile(src, batch, head, row0, rowEnd, kTile, width), dst,
                kTile, width);
  }

  /// scale * log2 e * (A B^T) for 16 rows of A fragments `a` against the
  /// kNTiles * 8 rows of `smem` (B^T stored row-major), as C tiles.
  SmallVector<Value> scores(ArrayRef<Value> a, Value smem, int64_t width,
                            Value factor) {
    SmallVector<Value> s;
    for (int64_t nt = 0; nt < kNTiles; ++nt) {
      Value c = e.zeroAcc();
      for (int64_t kk = 0; kk < width / 16; ++kk)
        c = e.mma(a[kk], e.loadBFragment(smem, nt, kk), c);
      if (factor)
        c = arith::MulFOp::create(
            e.b, c, vector::BroadcastOp::create(e.b, c.getType(), factor));
      s.push_back(c);
    }
    return s;
  }

  /// acc[dt] += A B for A = the C tiles `p` (16 x kTile, paired into A
  /// fragments) and B = the kTile rows of `smem` ([k][n]).
  void accumulate(SmallVector<Value> &acc, ArrayRef<Value> p, Value smem) {
    for (int64_t kk = 0; kk < kTile / 16; ++kk) {
      Value a = e.toAFragment(p[2 * kk], p[2 * kk + 1]);
      for (int64_t dt = 0, n = acc.size(); dt < n; ++dt)
        acc[dt] = e.mma(a, e.loadBFragmentTransposed(smem, kk, dt), acc[dt]);
    }
  }

  /// Sets the elements whose (query, key) pair `visible(r, c)` rejects to
  /// `fill`, in every C tile of `s`.
  SmallVector<Value> mask(ArrayRef<Value> s,
                          function_ref<Value(int64_t, int64_t, int64_t)> visible,
                          Value fill) {
    SmallVector<Value> out;
    for (int64_t nt = 0; nt < kNTiles; ++nt) {
      Value tile = s[nt];
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t c = 0; c < 2; ++c)
          tile = e.insert(
              e.select(visible(nt, r, c), e.extract(tile, r, c), fill), tile,
              r, c);
      out.push_back(tile);
    }
    return out;
  }

  /// True iff [q0, q1) and [k0, k1) are whole tiles and every key of one is
  /// visible to every query of the other: then no element needs a mask.
  Value isInterior(Value q0, Value q1, Value k0, Value k1) {
    auto full = [&](Value lo, Value hi) {
      return arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                   e.sub(hi, lo), e.idx(kTile));
    };
    return arith::AndIOp::create(
        e.b, arith::AndIOp::create(e.b, full(q0, q1), full(k0, k1)),
        isTileFullyVisible(e.b, e.b.getLoc(), w, q0, q1, k0, k1, posOffset));
  }

  /// The scores `s` as they are on interior tiles; on the others, -inf where
  /// the (query, key) pair that `pairOf(nt, r, c)` names is past
  /// `queryEnd`/`keyEnd` or outside the window.
  SmallVector<Value>
  maskScores(ArrayRef<Value> s, Value interior, Value queryEnd, Value keyEnd,
             function_ref<std::pair<Value, Value>(int64_t, int64_t, int64_t)>
                 pairOf) {
    return ifInterior(interior, s, [&] {
      return mask(
          s,
          [&](int64_t nt, int64_t r, int64_t c) {
            auto [query, key] = pairOf(nt, r, c);
            auto below = [&](Value x, Value end) {
              return arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, x,
                                           end);
            };
            return arith::AndIOp::create(
                e.b,
                arith::AndIOp::create(e.b, below(query, queryEnd),
                                      below(key, keyEnd)),
                isVisible(e.b, e.b.getLoc(), w, query, key, posOffset));
          },
          e.negInf());
    });
  }

  /// `then` if `interior`, else `masked`; both yield kNTiles C tiles.
  SmallVector<Value> ifInterior(Value interior, ArrayRef<Value> s,
                                function_ref<SmallVector<Value>()> masked) {
    auto ifOp = scf::IfOp::create(e.b, TypeRange(ValueRange(s)), interior,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(e.b, ValueRange(s));
    e.b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(e.b, ValueRange(masked()));
    return SmallVector<Value>(ifOp.getResults());
  }

  /// Stores C tiles `acc` (16 rows from `row0` of this warp, times `factor`)
  /// into `dst[batch, head]`, rows below `rowEnd` only.
  void storeRows(ArrayRef<Value> acc, Value dst, Value batch, Value head,
                 Value row0, Value rowEnd, Value factor) {
    auto pairType = VectorType::get({2}, e.elementType);
    for (int64_t r = 0; r < 2; ++r) {
      Value row = e.add(row0, e.add(e.g, e.idx(8 * r)));
      Value inBounds =
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, rowEnd);
      auto ifOp = scf::IfOp::create(e.b, inBounds, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      for (int64_t dt = 0, n = acc.size(); dt < n; ++dt) {
        Value pair = vector::FromElementsOp::create(
            e.b, VectorType::get({2}, e.b.getF32Type()),
            ValueRange{e.mulf(e.extract(acc[dt], r, 0), factor),
                       e.mulf(e.extract(acc[dt], r, 1), factor)});
        vector::StoreOp::create(
            e.b, arith::TruncFOp::create(e.b, pairType, pair), dst,
            ValueRange{batch, head, row, e.add(e.mul(e.t, 2), e.idx(dt * 8))},
            /*nontemporal=*/false, naturalAlignment(pairType));
      }
    }
  }

  /// The value of a [B, H, N] f32 row vector at `row`, or 0 past `rowEnd`.
  Value loadRowValue(Value src, Value batch, Value head, Value row,
                     Value rowEnd) {
    Value inBounds =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, rowEnd);
    auto ifOp = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()}, inBounds,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(e.b, e.load(src, {batch, head, row}));
    e.b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(e.b, e.f32(0.0));
    return ifOp.getResult(0);
  }

  /// A loop `for iv = lb to ub step step` carrying `init`; `body` returns
  /// the next values.
  SmallVector<Value>
  loop(Value lb, Value ub, int64_t step, ValueRange init,
       function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(e.b, lb, ub, e.idx(step), init);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToEnd(forOp.getBody());
    scf::YieldOp::create(
        e.b, ValueRange(body(forOp.getInductionVar(), forOp.getRegionIterArgs())));
    return SmallVector<Value>(forOp.getResults());
  }
};

/// dQ kernel body. Arguments: q, k, v, out, dout, lse, delta (written by
/// the delta kernel), dq; shared memory: a K tile and a V tile (Q and dO pass through
/// them first).
static void buildQueryGradKernel(GradKernel &gk, Value out, Value dq, Value sK,
                                 Value sV, double scale) {
  KernelBuilder &e = gk.e;
  Value head = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  Value qTile = e.sub(
      e.sub(gpu::GridDimOp::create(e.b, gpu::Dimension::y), e.idx(1)),
      gpu::BlockIdOp::create(e.b, gpu::Dimension::y));
  Value batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  Value kvHead = e.divIdx(head, gk.group);
  Value q0 = e.mul(qTile, kTile);
  Value q1 = e.min(e.add(q0, e.idx(kTile)), gk.queries);

  // delta (rowsum(dO * O)) comes from the delta kernel, which ran first.
  gk.stage(gk.q, batch, head, q0, gk.queries, sK, gk.headDim);
  gk.stage(gk.dout, batch, head, q0, gk.queries, sV, gk.valueDim);
  gpu::BarrierOp::create(e.b);
  Value warpRow = e.add(q0, e.mul(e.warpId, 16));
  SmallVector<Value> qFrag =
      e.loadAFragments(sK, e.mul(e.warpId, 16), gk.headDim);
  SmallVector<Value> doFrag =
      e.loadAFragments(sV, e.mul(e.warpId, 16), gk.valueDim);
  Value rowLse[2], rowDelta[2];
  for (int64_t r = 0; r < 2; ++r) {
    Value row = e.add(warpRow, e.add(e.g, e.idx(8 * r)));
    rowLse[r] = e.mulf(gk.loadRowValue(gk.lse, batch, head, row, gk.queries),
                       gk.log2e);
    rowDelta[r] = gk.loadRowValue(gk.delta, batch, head, row, gk.queries);
  }

  RowRange window =
      computeKeyWindow(e.b, e.b.getLoc(), gk.w, q0, q1, gk.posOffset, gk.keys);
  // With head dims up to 64 the registers have room to load the next K/V
  // tile while this one is used (as the forward does); at 128 they do not.
  bool prefetch = gk.headDim <= 64 && gk.valueDim <= 64;
  if (prefetch) {
    gpu::BarrierOp::create(e.b);
    gk.stage(gk.k, batch, kvHead, window.begin, gk.keys, sK, gk.headDim);
    gk.stage(gk.v, batch, kvHead, window.begin, gk.keys, sV, gk.valueDim);
  }
  SmallVector<Value> init(gk.headDim / 8, e.zeroAcc());
  SmallVector<Value> acc = gk.loop(
      window.begin, window.end, kTile, init,
      [&](Value k0, ValueRange iter) {
        SmallVector<Value> acc(iter);
        SmallVector<Value> nextK, nextV;
        gpu::BarrierOp::create(e.b);
        if (prefetch) {
          Value next = e.add(k0, e.idx(kTile));
          Value nextEnd = e.select(
              arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, next,
                                    window.end),
              gk.keys, e.idx(0));
          nextK = e.loadTile(gk.k, batch, kvHead, next, nextEnd, kTile,
                             gk.headDim);
          nextV = e.loadTile(gk.v, batch, kvHead, next, nextEnd, kTile,
                             gk.valueDim);
        } else {
          gk.stage(gk.k, batch, kvHead, k0, gk.keys, sK, gk.headDim);
          gk.stage(gk.v, batch, kvHead, k0, gk.keys, sV, gk.valueDim);
          gpu::BarrierOp::create(e.b);
        }

        Value k1 = e.min(e.add(k0, e.idx(kTile)), window.end);
        SmallVector<Value> s = gk.maskScores(
            gk.scores(qFrag, sK, gk.headDim, gk.scaleLog2),
            gk.isInterior(q0, q1, k0, k1), q1, k1,
            [&](int64_t nt, int64_t r, int64_t c) {
              return std::pair{
                  e.add(warpRow, e.add(e.g, e.idx(8 * r))),
                  e.add(k0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c)))};
            });
        // P and dS = P * (dP - delta), with dP = dO V^T.
        SmallVector<Value> dp = gk.scores(doFrag, sV, gk.valueDim, Value());
        SmallVector<Value> ds;
        for (int64_t nt = 0; nt < kNTiles; ++nt) {
          Value tile = s[nt];
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t c = 0; c < 2; ++c) {
              Value p = e.ex2(e.subf(e.extract(s[nt], r, c), rowLse[r]));
              tile = e.insert(
                  e.mulf(p, e.subf(e.extract(dp[nt], r, c), rowDelta[r])),
                  tile, r, c);
            }
          ds.push_back(tile);
        }
        // dQ += dS K.
        gk.accumulate(acc, ds, sK);
        if (prefetch) {
          gpu::BarrierOp::create(e.b);
          e.storeTile(nextK, sK, kTile, gk.headDim);
          e.storeTile(nextV, sV, kTile, gk.valueDim);
        }
        return acc;
      });
  gk.storeRows(acc, dq, batch, head, warpRow, gk.queries, e.f32(scale));
}

/// The (query head, query tile) pairs a dK/dV workgroup meets, as one flat
/// loop: pair t is query head h0 + t / tiles, query rows from begin + (t %
/// tiles) * kTile, clipped to the reverse window's end.
struct QueryTilePairs {
  GradKernel &gk;
  Value batch, h0, tiles;
  RowRange queries;
  Value sQ, sO, sLse, sDelta;

  std::pair<Value, Value> pairOf(Value t) {
    KernelBuilder &e = gk.e;
    // Never divides by zero: there are no pairs when there are no tiles.
    Value safeTiles = arith::MaxUIOp::create(e.b, tiles, e.idx(1));
    Value head = e.add(h0, e.divIdx(t, safeTiles));
    Value q0 = e.add(queries.begin,
                     e.mul(arith::RemUIOp::create(e.b, t, safeTiles), kTile));
    return std::pair{head, q0};
  }

  /// A pair's inputs, in registers: Q and dO chunks, then (threads below
  /// kTile) the lse and delta of one row. `valid` false loads zeros.
  SmallVector<Value> load(Value t, Value valid) {
    KernelBuilder &e = gk.e;
    auto [head, q0] = pairOf(t);
    Value q1 = e.min(e.add(q0, e.idx(kTile)), queries.end);
    Value rowEnd = e.select(valid, gk.queries, e.idx(0));
    SmallVector<Value> regs =
        e.loadTile(gk.q, batch, head, q0, rowEnd, kTile, gk.headDim);
    regs.append(e.loadTile(gk.dout, batch, head, q0, rowEnd, kTile,
                           gk.valueDim));
    Value row = e.add(q0, e.threadId);
    Value rowValid = e.select(valid, q1, e.idx(0));
    regs.push_back(gk.loadRowValue(gk.lse, batch, head, row, rowValid));
    regs.push_back(gk.loadRowValue(gk.delta, batch, head, row, rowValid));
    return regs;
  }

  /// Puts what `load` brought into the shared Q, dO, lse and delta tiles.
  void store(ArrayRef<Value> regs) {
    KernelBuilder &e = gk.e;
    int64_t qChunks = kTile * gk.headDim / kVec / kThreads;
    e.storeTile(regs.take_front(qChunks), sQ, kTile, gk.headDim);
    e.storeTile(regs.slice(qChunks, regs.size() - qChunks - 2), sO, kTile,
                gk.valueDim);
    Value first = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                        e.threadId, e.idx(kTile));
    auto ifOp = scf::IfOp::create(e.b, first, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    e.store(e.mulf(regs[regs.size() - 2], gk.log2e), sLse, {e.threadId});
    e.store(regs.back(), sDelta, {e.threadId});
  }
};

/// One pair's products in the dK/dV kernel: with the pair's Q, dO, lse and
/// delta in shared memory, dV += P^T dO and dK += dS^T Q for the key rows
/// of this warp (K and V as A fragments `kFrag`, `vFrag`).
static void accumulatePair(GradKernel &gk, ArrayRef<Value> kFrag,
                           ArrayRef<Value> vFrag, Value sQ, Value sO,
                           Value sLse, Value sDelta, Value q0, Value q1,
                           Value k0, Value k1, Value warpRow,
                           SmallVector<Value> &dkAcc,
                           SmallVector<Value> &dvAcc) {
  KernelBuilder &e = gk.e;
  // S^T = K Q^T (key rows, query columns).
  SmallVector<Value> s = gk.maskScores(
      gk.scores(kFrag, sQ, gk.headDim, gk.scaleLog2),
      gk.isInterior(q0, q1, k0, k1), q1, k1,
      [&](int64_t nt, int64_t r, int64_t c) {
        return std::pair{
            e.add(q0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c))),
            e.add(warpRow, e.add(e.g, e.idx(8 * r)))};
      });
  // P^T, from each query column's lse.
  SmallVector<Value> p;
  SmallVector<Value> colDelta;
  for (int64_t nt = 0; nt < kNTiles; ++nt) {
    Value tile = s[nt];
    for (int64_t c = 0; c < 2; ++c) {
      Value col = e.add(e.mul(e.t, 2), e.idx(nt * 8 + c));
      Value colLse = e.load(sLse, {col});
      colDelta.push_back(e.load(sDelta, {col}));
      for (int64_t r = 0; r < 2; ++r)
        tile = e.insert(e.ex2(e.subf(e.extract(s[nt], r, c), colLse)),
                        tile, r, c);
    }
    p.push_back(tile);
  }
  // dV += P^T dO.
  gk.accumulate(dvAcc, p, sO);
  // dS^T = P^T * (dP^T - delta), dP^T = V dO^T; dK += dS^T Q.
  SmallVector<Value> dp = gk.scores(vFrag, sO, gk.valueDim, Value());
  SmallVector<Value> ds;
  for (int64_t nt = 0; nt < kNTiles; ++nt) {
    Value tile = p[nt];
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t c = 0; c < 2; ++c)
        tile = e.insert(e.mulf(e.extract(p[nt], r, c),
                               e.subf(e.extract(dp[nt], r, c),
                                      colDelta[2 * nt + c])),
                        tile, r, c);
    ds.push_back(tile);
  }
  gk.accumulate(dkAcc, ds, sQ);
}

/// dK/dV kernel body. Arguments: q, k, v, dout, lse, delta, dk, dv; shared
/// memory: a Q tile, a dO tile, the lse and delta of the Q tile's rows, and,
/// when `sK`/`sV` are given, K and V tiles.
///
/// The (query head, query tile) pairs the key tile meets are one flat loop,
/// so that the next pair's Q, dO, lse and delta can be loaded into registers
/// while this pair is used. That needs the registers K and V fragments would
/// hold: with `sK`/`sV` (head dims up to 64, where they fit in the 48 KB of
/// static shared memory) K and V stay in shared memory and their fragments
/// are read per pair; without, they pass through the Q and dO tiles into
/// registers once and each pair is loaded when it starts.
static void buildKeyValueGradKernel(GradKernel &gk, Value dk, Value dv,
                                    Value sQ, Value sO, Value sLse,
                                    Value sDelta, Value sK, Value sV,
                                    double scale) {
  KernelBuilder &e = gk.e;
  bool prefetch = sK != nullptr;
  Value kvHead = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  Value kTileIdx = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
  Value batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  Value k0 = e.mul(kTileIdx, kTile);
  Value k1 = e.min(e.add(k0, e.idx(kTile)), gk.keys);
  Value warpRow = e.add(k0, e.mul(e.warpId, 16));

  gk.stage(gk.k, batch, kvHead, k0, gk.keys, prefetch ? sK : sQ, gk.headDim);
  gk.stage(gk.v, batch, kvHead, k0, gk.keys, prefetch ? sV : sO,
           gk.valueDim);
  SmallVector<Value> kFrag, vFrag;
  auto loadKVFragments = [&] {
    kFrag = e.loadAFragments(prefetch ? sK : sQ, e.mul(e.warpId, 16),
                             gk.headDim);
    vFrag = e.loadAFragments(prefetch ? sV : sO, e.mul(e.warpId, 16),
                             gk.valueDim);
  };
  if (!prefetch) {
    gpu::BarrierOp::create(e.b);
    loadKVFragments();
  }

  RowRange queries = computeQueryWindow(e.b, e.b.getLoc(), gk.w, k0, k1,
                                        gk.posOffset, gk.queries);
  Value tiles = arith::CeilDivUIOp::create(
      e.b, e.sub(queries.end, queries.begin), e.idx(kTile));
  Value pairs = arith::MulIOp::create(e.b, tiles, gk.group);
  QueryTilePairs qt{gk,
                    batch,
                    arith::MulIOp::create(e.b, kvHead, gk.group),
                    tiles,
                    queries,
                    sQ,
                    sO,
                    sLse,
                    sDelta};
  auto lessThan = [&](Value x, Value y) {
    return arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, x, y);
  };
  if (prefetch)
    qt.store(qt.load(e.idx(0), lessThan(e.idx(0), pairs)));

  int64_t nDk = gk.headDim / 8, nDv = gk.valueDim / 8;
  SmallVector<Value> init(nDk + nDv, e.zeroAcc());
  SmallVector<Value> acc = gk.loop(
      e.idx(0), pairs, 1, init, [&](Value t, ValueRange iter) {
        SmallVector<Value> dkAcc(iter.take_front(nDk));
        SmallVector<Value> dvAcc(iter.drop_front(nDk));
        auto [head, q0] = qt.pairOf(t);
        Value q1 = e.min(e.add(q0, e.idx(kTile)), queries.end);
        gpu::BarrierOp::create(e.b);
        SmallVector<Value> next;
        if (prefetch) {
          Value tNext = e.add(t, e.idx(1));
          next = qt.load(tNext, lessThan(tNext, pairs));
          loadKVFragments();
        } else {
          qt.store(qt.load(t, lessThan(t, pairs)));
          gpu::BarrierOp::create(e.b);
        }

        accumulatePair(gk, kFrag, vFrag, sQ, sO, sLse, sDelta, q0, q1, k0, k1,
                       warpRow, dkAcc, dvAcc);
        if (prefetch) {
          gpu::BarrierOp::create(e.b);
          qt.store(next);
        }
        SmallVector<Value> nextAcc(dkAcc);
        nextAcc.append(dvAcc);
        return nextAcc;
      });
  gk.storeRows(ArrayRef<Value>(acc).take_front(nDk), dk, batch, kvHead,
               warpRow, gk.keys, e.f32(scale));
  gk.storeRows(ArrayRef<Value>(acc).drop_front(nDk), dv, batch, kvHead,
               warpRow, gk.keys, e.f32(1.0));
}

} // namespace

/// Everything both mma.sync kernels start from.
static GradKernel makeGradKernel(KernelBuilder &e, AttentionGradOp op,
                                 ValueRange a) {
  auto qType = cast<MemRefType>(op.getQuery().getType());
  double scale = op.getEffectiveScale();
  e.setLaneIds();
  GradKernel gk{e, a[0], a[1], a[2], a[3], a[4], a[5]};
  gk.queries = e.dim(gk.q, 2);
  gk.keys = e.dim(gk.k, 2);
  gk.posOffset = e.sub(gk.keys, gk.queries);
  gk.group = e.divIdx(e.dim(gk.q, 1), e.dim(gk.k, 1));
  gk.w = {static_cast<int64_t>(op.getBlockSize()),
          static_cast<int64_t>(op.getWindow())};
  gk.headDim = qType.getDimSize(3);
  gk.valueDim = cast<MemRefType>(op.getValue().getType()).getDimSize(3);
  gk.log2e = e.f32(1.0 / std::log(2.0));
  gk.scaleLog2 = e.f32(scale / std::log(2.0));
  return gk;
}

MemRefType gpu_kernels::queryGradAccumType(AttentionGradOp op) {
  int64_t d = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  return MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic,
                          ShapedType::kDynamic, d},
                         Float32Type::get(op.getContext()));
}

gpu::GPUFuncOp gpu_kernels::createQueryGradConvertKernel(
    RewriterBase &rewriter, gpu::GPUModuleOp gpuModule, AttentionGradOp op) {
  Location loc = op.getLoc();
  auto dqType = cast<MemRefType>(op.getGradQuery().getType());
  Type elementType = dqType.getElementType();
  int64_t d = dqType.getDimSize(3);
  auto kernel = createKernel(
      rewriter, gpuModule, loc,
      "swba_bwd_dqconvert",
      {queryGradAccumType(op), dqType}, {});
  KernelBuilder e(rewriter, loc, elementType);
  e.setLaneIds();
  Value accum = kernel.getArgument(0), dq = kernel.getArgument(1);
  Value head = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
  Value batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  Value rows = e.dim(dq, 2);
  int64_t chunksPerRow = d / 8, chunks = kConvertRows * chunksPerRow;
  auto wide = VectorType::get({8}, e.b.getF32Type());
  Value scale = vector::BroadcastOp::create(
      e.b, wide, e.f32(op.getEffectiveScale()));
  for (int64_t first = 0; first < chunks; first += kThreads) {
    Value chunk = e.add(e.threadId, e.idx(first));
    Value row = e.add(e.mul(tile, kConvertRows),
                      e.divIdx(chunk, e.idx(chunksPerRow)));
    Value col = e.mul(e.rem(chunk, chunksPerRow), 8);
    Value inside = arith::AndIOp::create(
        e.b,
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, chunk,
                              e.idx(chunks)),
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, rows));
    auto branch = scf::IfOp::create(e.b, inside, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(branch.thenBlock());
    SmallVector<Value> at{batch, head, row, col};
    Value sum =
        vector::LoadOp::create(e.b, wide, accum, at,
                               /*nontemporal=*/false, naturalAlignment(wide));
    Value value = arith::TruncFOp::create(
        e.b, VectorType::get({8}, elementType), e.mulf(sum, scale));
    vector::StoreOp::create(e.b, value, dq, at, /*nontemporal=*/false,
                            naturalAlignment(value.getType()));
  }
  gpu::ReturnOp::create(rewriter, loc);
  return kernel;
}

MemRefType gpu_kernels::deltaType(MLIRContext *ctx) {
  return MemRefType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
      Float32Type::get(ctx));
}

/// Both kernels start with q, k, v, dout, lse, delta.
static SmallVector<Type> gradArgTypes(AttentionGradOp op) {
  return {op.getQuery().getType(),   op.getKey().getType(),
          op.getValue().getType(),   op.getGradOut().getType(),
          op.getLse().getType(),     deltaType(op.getContext())};
}

gpu::GPUFuncOp gpu_kernels::createQueryGradKernel(RewriterBase &rewriter,
                                                  gpu::GPUModuleOp gpuModule,
                                                  AttentionGradOp op) {
  Location loc = op.getLoc();
  Type elementType =
      cast<MemRefType>(op.getQuery().getType()).getElementType();
  int64_t headDim = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  int64_t valueDim = cast<MemRefType>(op.getValue().getType()).getDimSize(3);
  SmallVector<Type> smem{sharedTileType(elementType, kTile, headDim),
                         sharedTileType(elementType, kTile, valueDim)};
  // dQ: q, k, v, dout, lse, delta (read), out, dq.
  SmallVector<Type> dqArgs = gradArgTypes(op);
  dqArgs.append({op.getOut().getType(), op.getGradQuery().getType()});
  auto dqKernel = createKernel(rewriter, gpuModule, loc,
                               "swba_bwd_dq", dqArgs, smem);
  KernelBuilder e(rewriter, loc, elementType);
  ValueRange a = dqKernel.getArguments().take_front(dqArgs.size());
  GradKernel gk = makeGradKernel(e, op, a);
  ArrayRef<BlockArgument> wg = dqKernel.getWorkgroupAttributions();
  buildQueryGradKernel(gk, a[6], a[7], wg[0], wg[1], op.getEffectiveScale());
  gpu::ReturnOp::create(rewriter, loc);
  return dqKernel;
}

gpu::GPUFuncOp
gpu_kernels::createKeyValueGradKernel(RewriterBase &rewriter,
                                      gpu::GPUModuleOp gpuModule,
                                      AttentionGradOp op) {
  Location loc = op.getLoc();
  Type elementType =
      cast<MemRefType>(op.getQuery().getType()).getElementType();
  int64_t headDim = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  int64_t valueDim = cast<MemRefType>(op.getValue().getType()).getDimSize(3);
  auto smemSpace = gpu::AddressSpaceAttr::get(
      rewriter.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  auto rowType = MemRefType::get({kTile}, rewriter.getF32Type(),
                                 MemRefLayoutAttrInterface(), smemSpace);
  SmallVector<Type> smem{sharedTileType(elementType, kTile, headDim),
                         sharedTileType(elementType, kTile, valueDim)};
  // dK/dV: q, k, v, dout, lse, delta, dk, dv.
  SmallVector<Type> kvArgs = gradArgTypes(op);
  kvArgs.append({op.getGradKey().getType(), op.getGradValue().getType()});
  SmallVector<Type> kvSmem(smem);
  kvSmem.append({rowType, rowType});
  // K and V tiles of their own (see buildKeyValueGradKernel) where they
  // fit in static shared memory.
  bool kvInShared = headDim <= 64 && valueDim <= 64;
  if (kvInShared)
    kvSmem.append(smem);
  auto kvKernel = createKernel(rewriter, gpuModule, loc,
                               "swba_bwd_dkdv", kvArgs, kvSmem);
  KernelBuilder e(rewriter, loc, elementType);
  ValueRange a = kvKernel.getArguments().take_front(kvArgs.size());
  GradKernel gk = makeGradKernel(e, op, a);
  ArrayRef<BlockArgument> wg = kvKernel.getWorkgroupAttributions();
  buildKeyValueGradKernel(gk, a[6], a[7], wg[0], wg[1], wg[2], wg[3],
                          kvInShared ? Value(wg[4]) : Value(),
                          kvInShared ? Value(wg[5]) : Value(),
                          op.getEffectiveScale());
  gpu::ReturnOp::create(rewriter, loc);
  return kvKernel;
}

/// This thread's f32 share of the dot product of a row of `a` and `b`
/// (memrefs [B][H][N][dim] of a 16-bit type; `rowIndex` = batch, head,
/// row): the 16-byte chunks t, t + 4, ... with t = lane % 4, so that a quad
/// covers the row (then combine with KernelBuilder::quadReduce).
static Value partialRowDot(KernelBuilder &e, Value a, Value b,
                           ValueRange rowIndex, int64_t dim) {
  // Thread t of the quad takes chunks t, t + 4, ... (64 contiguous bytes a
  // quad per step); the last step is guarded when the chunk count is not a
  // multiple of 4 (dims 16, 48, 80, 112).
  int64_t chunks = dim / kVec;
  Type elementType = cast<MemRefType>(a.getType()).getElementType();
  auto vecType = VectorType::get({kVec}, elementType);
  auto f32Vec = VectorType::get({kVec}, e.b.getF32Type());
  Value sum = e.f32(0.0);
  for (int64_t step = 0; step * 4 < chunks; ++step) {
    SmallVector<Value> index(rowIndex);
    index.push_back(e.add(e.mul(e.t, kVec), e.idx(step * 4 * kVec)));
    auto product = [&] {
      Value x = arith::ExtFOp::create(
          e.b, f32Vec,
          vector::LoadOp::create(e.b, vecType, a, index, /*nontemporal=*/false,
                                 naturalAlignment(vecType))
              .getResult());
      Value y = arith::ExtFOp::create(
          e.b, f32Vec,
          vector::LoadOp::create(e.b, vecType, b, index, /*nontemporal=*/false,
                                 naturalAlignment(vecType))
              .getResult());
      return vector::ReductionOp::create(e.b, vector::CombiningKind::ADD,
                                         e.mulf(x, y))
          .getResult();
    };
    if (step * 4 + 4 <= chunks) {
      sum = e.addf(sum, product());
      continue;
    }
    auto tail = scf::IfOp::create(
        e.b, TypeRange{e.b.getF32Type()},
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, e.t,
                              e.idx(chunks - step * 4)),
        /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(tail.thenBlock());
    scf::YieldOp::create(e.b, product());
    e.b.setInsertionPointToStart(tail.elseBlock());
    scf::YieldOp::create(e.b, e.f32(0.0));
    e.b.setInsertionPointAfter(tail);
    sum = e.addf(sum, tail.getResult(0));
  }
  return sum;
}

gpu::GPUFuncOp gpu_kernels::createDeltaKernel(RewriterBase &rewriter,
                                 gpu::GPUModuleOp gpuModule,
                                 AttentionGradOp op, Type elementType,
                                 int64_t valueDim) {
  Location loc = op.getLoc();
  SmallVector<Type> args{op.getGradOut().getType(), op.getOut().getType(),
                         deltaType(op.getContext())};
  auto kernel = createKernel(rewriter, gpuModule, loc,
                             "swba_bwd_delta", args, {});
  KernelBuilder e(rewriter, loc, elementType);
  e.setLaneIds();
  Value dout = kernel.getArgument(0), out = kernel.getArgument(1),
        delta = kernel.getArgument(2);
  Value head = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
  Value batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  Value row = e.add(e.mul(tile, kDeltaRows), e.div(e.threadId, 4));
  Value inRange = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row,
                                        e.dim(dout, 2));
  auto partial = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()}, inRange,
                                   /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(partial.thenBlock());
    Value sum = partialRowDot(e, dout, out, {batch, head, row}, valueDim);
    scf::YieldOp::create(e.b, sum);
    e.b.setInsertionPointToStart(partial.elseBlock());
    scf::YieldOp::create(e.b, e.f32(0.0));
  }
  // Every lane takes part in the shuffles; the quad's first stores.
  Value rowDelta = e.quadReduce(partial.getResult(0), /*isMax=*/false);
  auto write = scf::IfOp::create(
      e.b,
      arith::AndIOp::create(
          e.b, inRange,
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq, e.t, e.idx(0))),
      /*withElseRegion=*/false);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(write.thenBlock());
    e.store(rowDelta, delta, {batch, head, row});
  }
  gpu::ReturnOp::create(rewriter, loc);
  return kernel;
}

SmallVector<LaunchBuffer> gpu_kernels::gradBuffers(AttentionGradOp op,
                                                    bool fusedQueryGrad) {
  SmallVector<Size> rows{{"q", 0}, {"q", 1}, {"q", 2}};
  SmallVector<LaunchBuffer> buffers{
      {"delta", deltaType(op.getContext()), rows}};
  if (fusedQueryGrad)
    buffers.push_back(
        {"dq_accum", queryGradAccumType(op), rows, /*zero=*/true});
  return buffers;
}

LaunchContract gpu_kernels::deltaLaunch() {
  return {tileGrid("q", kDeltaRows), kThreads, 0,
          {{"dout"}, {"out"}, {"delta"}}};
}

LaunchContract gpu_kernels::convertLaunch() {
  return {tileGrid("q", kConvertRows), kThreads, 0, {{"dq_accum"}, {"dq"}}};
}

SmallVector<KernelParam> gpu_kernels::queryGradParams() {
  return {{"q"}, {"k"}, {"v"}, {"dout"}, {"lse"}, {"delta"}, {"out"}, {"dq"}};
}

SmallVector<KernelParam> gpu_kernels::keyValueGradParams(bool fusedQueryGrad) {
  SmallVector<KernelParam> params{{"q"},   {"k"},   {"v"},
                                  {"dout"}, {"lse"}, {"delta"}};
  if (fusedQueryGrad)
    params.push_back({"dq_accum"});
  params.append({{"dk"}, {"dv"}});
  return params;
}

namespace {
struct AttentionGradOpToGPU : public OpRewritePattern<AttentionGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    auto module = op->getParentOfType<ModuleOp>();
    if (!module)
      return rewriter.notifyMatchFailure(op, "expected an enclosing module");
    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, op.getLoc(),
                                        "swba_attention_grad_kernels");
    auto dqKernel = createQueryGradKernel(rewriter, gpuModule, op);
    auto kvKernel = createKeyValueGradKernel(rewriter, gpuModule, op);
    auto valueType = cast<MemRefType>(op.getValue().getType());
    auto deltaKernel =
        createDeltaKernel(rewriter, gpuModule, op, valueType.getElementType(),
                          valueType.getDimSize(3));
    // dK/dV (the heavier workgroups) goes out first, on a second stream.
    LaunchContract kvLaunch{tileGrid("k", kTile), kThreads, 0,
                            keyValueGradParams(false), /*stream=*/1};
    LaunchContract dqLaunch{tileGrid("q", kTile), kThreads, 0,
                            queryGradParams()};
    emitLaunches(rewriter, op, gradBuffers(op, false),
                 {{deltaKernel, deltaLaunch()},
                  {kvKernel, kvLaunch},
                  {dqKernel, dqLaunch}});
    return success();
  }
};
} // namespace

void mlir::swba::populateSWBAGradToGPUPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionGradOpToGPU>(patterns.getContext());
}
