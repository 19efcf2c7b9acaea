//===- PagedAttentionToLoops.cpp - swba.paged_attention to scf loops ------===//
//
// The forward of SWBAToLoops.cpp against a paged KV cache: per sequence, the
// positions come from its length, and each query tile's key window is
// walked page by page through the page table, so that only the pages (and
// page table entries) holding keys of the window are read.
//
//===----------------------------------------------------------------------===//

#include "ForwardTile.h"
#include "swba/Conversion/SWBAToLoops/SWBAToLoops.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/IR/PatternMatch.h"

#include <limits>

using namespace mlir;
using namespace mlir::swba;

namespace {

struct PagedAttentionOpToLoops : public OpRewritePattern<PagedAttentionOp> {
  PagedAttentionOpToLoops(MLIRContext *ctx, LoopTiling tiling)
      : OpRewritePattern(ctx), tiling(tiling) {}

  LogicalResult matchAndRewrite(PagedAttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");

    LoopEmitter e(rewriter, op.getLoc());
    const int64_t tq = tiling.tileQ, tk = tiling.tileK;
    Value q = op.getQuery(), kc = op.getKeyCache(), vc = op.getValueCache(),
          pageTable = op.getPageTable(), seqLens = op.getSeqLens(),
          out = op.getOut(), lse = op.getLse();

    AttentionShape s;
    s.batch = e.dim(q, 0);
    s.queryHeads = e.dim(q, 1);
    s.queries = e.dim(q, 2);
    // Dividing by at least 1 keeps a dynamic Hkv of 0 (then Hq is 0 too, as
    // --lower-swba asserts) from trapping.
    s.groupSize = e.divIdx(s.queryHeads,
                           arith::MaxUIOp::create(e.b, e.dim(kc, 2), e.idx(1)));
    s.headDim = cast<ShapedType>(q.getType()).getDimSize(3);
    s.valueDim = cast<ShapedType>(vc.getType()).getDimSize(3);
    s.window = {static_cast<int64_t>(op.getBlockSize()),
                static_cast<int64_t>(op.getWindow())};
    s.scale = op.getEffectiveScale();

    // A dynamic page size of 0 holds no key: every page is then invalid,
    // and dividing by max(size, 1) keeps the page arithmetic defined.
    Value pageSize = e.dim(kc, 1);
    Value emptyPages = arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                             pageSize, e.idx(0));
    Value numPages = e.select(emptyPages, e.idx(0), e.dim(kc, 0));
    pageSize = arith::MaxSIOp::create(e.b, pageSize, e.idx(1));
    Value maxPages = e.dim(pageTable, 1);

    OnlineSoftmax softmax = OnlineSoftmax::allocate(e, tq, tk, s.valueDim);
    e.loop(s.batch, [&](Value bi) {
      // Tokens in the cache (a negative length counts as 0); query row i at
      // position len - Nq + i, so rows below Nq - len precede the sequence.
      Value len = arith::MaxSIOp::create(e.b, toIndex(e, e.load(seqLens, bi)),
                                         e.idx(0));
      s.keys = len;
      s.posOffset = e.sub(len, s.queries);
      Value firstQuery =
          arith::MaxSIOp::create(e.b, e.sub(s.queries, len), e.idx(0));
      e.loop(s.queryHeads, [&](Value h) {
        Value hk = e.divIdx(h, s.groupSize);
        emitRowsBeforeStart(e, s, out, lse, bi, h, firstQuery);
        e.loop(firstQuery, s.queries, e.idx(tq), [&](Value q0) {
          Value q1 = e.min(e.add(q0, e.idx(tq)), s.queries);
          Value rows = e.sub(q1, q0);
          softmax.reset(e, s, rows);
          // Rows at positions >= 0, each seeing at least its own key: the
          // window is a non-empty run of keys within [0, len).
          RowRange keys = computeKeyWindow(e.b, e.b.getLoc(), s.window, q0, q1,
                                           s.posOffset, s.keys);
          Value firstPage = e.divIdx(keys.begin, pageSize);
          Value endPage =
              e.divIdx(e.add(keys.end, e.sub(pageSize, e.idx(1))), pageSize);
          e.loop(firstPage, endPage, e.idx(1), [&](Value page) {
            Value pageStart = arith::MulIOp::create(e.b, page, pageSize);
            RowRange inPage = {
                arith::MaxSIOp::create(e.b, keys.begin, pageStart),
                e.min(keys.end, e.add(pageStart, pageSize))};
            Value slot = loadPageSlot(e, pageTable, bi, page, maxPages);
            Value valid = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                                slot, numPages);
            e.ifElse(
                valid,
                [&] {
                  auto keyRow = [&](Value j) {
                    return SmallVector<Value, 4>{slot, e.sub(j, pageStart), hk};
                  };
                  emitPageTiles(e, s, softmax, q, kc, vc, keyRow, bi, h, q0, q1,
                                inPage, tk);
                },
                [&] { poisonRowsSeeing(e, s, softmax, q0, rows, inPage); });
          });
          softmax.finish(e, s, out, lse, bi, h, q0, rows);
        });
      });
    });

    rewriter.eraseOp(op);
    return success();
  }

private:
  static Value toIndex(LoopEmitter &e, Value i32) {
    return arith::IndexCastOp::create(e.b, e.b.getIndexType(), i32);
  }

  /// The cache page of the sequence's page `page`, or -1 when `page` lies
  /// past the page table: the table itself is not read out of bounds either.
  static Value loadPageSlot(LoopEmitter &e, Value pageTable, Value bi,
                            Value page, Value maxPages) {
    Value inTable =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, page, maxPages);
    auto ifOp = scf::IfOp::create(e.b, TypeRange{e.b.getIndexType()}, inTable,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(e.b, toIndex(e, e.load(pageTable, {bi, page})));
    e.b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(e.b, e.idx(-1));
    return ifOp.getResult(0);
  }

  /// The keys `inPage` of one valid page, in tiles of `tk` keys: the
  /// interior ones without mask arithmetic.
  static void emitPageTiles(LoopEmitter &e, const AttentionShape &s,
                            const OnlineSoftmax &softmax, Value q, Value kc,
                            Value vc, KeyRowFn keyRow, Value bi, Value h,
                            Value q0, Value q1, RowRange inPage, int64_t tk) {
    Value rows = e.sub(q1, q0);
    e.loop(inPage.begin, inPage.end, e.idx(tk), [&](Value k0) {
      Value k1 = e.min(e.add(k0, e.idx(tk)), inPage.end);
      Value interior = isTileFullyVisible(e.b, e.b.getLoc(), s.window, q0, q1,
                                          k0, k1, s.posOffset);
      auto tile = [&](bool masked) {
        softmax.addKeys(e, s, masked, q, kc, vc, keyRow, bi, h, q0, rows, k0,
                        e.sub(k1, k0));
      };
      e.ifElse(
          interior, [&] { tile(/*masked=*/false); },
          [&] { tile(/*masked=*/true); });
    });
  }

  /// A page whose table entry lies outside the cache is not read: the rows
  /// whose window holds one of its keys get a NaN running max and sum, which
  /// later steps of the online softmax keep and finish() turns into NaN out
  /// and lse, whether the page comes before or after the valid ones.
  static void poisonRowsSeeing(LoopEmitter &e, const AttentionShape &s,
                               const OnlineSoftmax &softmax, Value q0,
                               Value rows, RowRange inPage) {
    e.loop(rows, [&](Value r) {
      Value i = e.add(q0, r);
      RowRange seen = computeKeyWindow(e.b, e.b.getLoc(), s.window, i,
                                       e.add(i, e.idx(1)), s.posOffset, s.keys);
      Value overlaps = arith::AndIOp::create(
          e.b,
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, seen.begin,
                                inPage.end),
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, inPage.begin,
                                seen.end));
      Value nan = e.f32(std::numeric_limits<float>::quiet_NaN());
      for (Value stat : {softmax.rowMax, softmax.rowSum})
        e.store(e.select(overlaps, nan, e.load(stat, r)), stat, r);
    });
  }

  /// Query rows [0, firstQuery) sit before the sequence start and see no
  /// key: out 0 and lse -inf, as for a softmax over nothing.
  static void emitRowsBeforeStart(LoopEmitter &e, const AttentionShape &s,
                                  Value out, Value lse, Value bi, Value h,
                                  Value firstQuery) {
    e.loop(firstQuery, [&](Value i) {
      e.loop(s.valueDim, [&](Value c) {
        e.storeF32(e.f32(0.0), out, {bi, h, i, c});
      });
      if (lse)
        e.store(e.negInf(), lse, {bi, h, i});
    });
  }

  LoopTiling tiling;
};

} // namespace

void mlir::swba::populatePagedAttentionToLoopsPatterns(
    RewritePatternSet &patterns, LoopTiling tiling) {
  patterns.add<PagedAttentionOpToLoops>(patterns.getContext(), tiling);
}
