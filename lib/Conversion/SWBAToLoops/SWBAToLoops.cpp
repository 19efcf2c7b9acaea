//===- SWBAToLoops.cpp - SWBA ops to tiled scf loops ----------------------===//
//
// Lowers memref-form swba ops to tiled loop nests that visit only the tiles
// of the block window. The forward is FlashAttention's online softmax; the
// backward recomputes probabilities from the forward's log-sum-exp.
//
// Per-tile scratch (scores, row statistics, accumulators) lives in
// statically shaped allocas created once, before the loops.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToLoops/SWBAToLoops.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "ForwardTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::swba;

namespace {

template <typename OpTy>
static AttentionShape getShape(LoopEmitter &e, OpTy op) {
  AttentionShape s;
  s.batch = e.dim(op.getQuery(), 0);
  s.queryHeads = e.dim(op.getQuery(), 1);
  s.queries = e.dim(op.getQuery(), 2);
  s.keys = e.dim(op.getKey(), 2);
  // No key/value heads means no query heads either (the verifier's rule
  // for static sizes); dividing by at least 1 keeps that case from
  // trapping.
  Value keyHeads =
      arith::MaxUIOp::create(e.b, e.dim(op.getKey(), 1), e.idx(1));
  s.groupSize = e.divIdx(s.queryHeads, keyHeads);
  s.posOffset = e.sub(s.keys, s.queries);
  s.headDim = cast<ShapedType>(op.getQuery().getType()).getDimSize(3);
  s.valueDim = cast<ShapedType>(op.getValue().getType()).getDimSize(3);
  s.window = {static_cast<int64_t>(op.getBlockSize()),
              static_cast<int64_t>(op.getWindow())};
  s.scale = op.getEffectiveScale();
  return s;
}

/// Positions of the rows of a shard of a longer sequence (key row 0 at
/// `keyOffset`, possibly negative): only the offset modulo the block size
/// matters to the frames, and rows before the sequence start are skipped.
static void setKeyOffset(LoopEmitter &e, AttentionShape &s, Value keyOffset) {
  Value bs = e.idx(s.window.blockSize);
  // keyOffset mod bs in [0, bs); (rem + bs) % bs would wrap for block
  // sizes near 2^63.
  Value rem = arith::RemSIOp::create(e.b, keyOffset, bs);
  Value negative =
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::slt, rem, e.idx(0));
  s.keyPhase = e.select(negative, e.add(rem, bs), rem);
  s.posOffset = e.add(s.posOffset, s.keyPhase);
  s.firstKey =
      arith::MaxSIOp::create(e.b, e.sub(e.idx(0), keyOffset), e.idx(0));
}

/// Scaled score of query row `i` (head `h`) against key row `j` (head `hk`).
static Value emitScore(LoopEmitter &e, const AttentionShape &s, Value q,
                       Value k, Value batch, Value h, Value hk, Value i,
                       Value j) {
  return e.mulf(e.f32(s.scale),
                e.dot(s.headDim, q, {batch, h, i}, k, {batch, hk, j}));
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

struct AttentionOpToLoops : public OpRewritePattern<AttentionOp> {
  AttentionOpToLoops(MLIRContext *ctx, LoopTiling tiling)
      : OpRewritePattern(ctx), tiling(tiling) {}

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");

    LoopEmitter e(rewriter, op.getLoc());
    AttentionShape s = getShape(e, op);
    if (Value keyOffset = op.getKeyOffset())
      setKeyOffset(e, s, keyOffset);
    const int64_t tq = tiling.tileQ, tk = tiling.tileK;
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
          out = op.getOut(), lse = op.getLse();

    OnlineSoftmax softmax = OnlineSoftmax::allocate(e, tq, tk, s.valueDim);
    e.loop(s.batch, [&](Value bi) {
      e.loop(s.queryHeads, [&](Value h) {
        Value hk = e.divIdx(h, s.groupSize);
        auto keyRow = [&](Value j) { return SmallVector<Value, 4>{bi, hk, j}; };
        e.loop(e.idx(0), s.queries, e.idx(tq), [&](Value q0) {
          Value q1 = e.min(e.add(q0, e.idx(tq)), s.queries);
          Value rows = e.sub(q1, q0);
          softmax.reset(e, s, rows);

          RowRange keys = computeKeyWindow(e.b, e.b.getLoc(), s.window, q0, q1,
                                           s.posOffset, s.keys, s.keyPhase);
          if (s.firstKey)
            keys.begin = arith::MaxSIOp::create(e.b, keys.begin, s.firstKey);
          e.loop(keys.begin, keys.end, e.idx(tk), [&](Value k0) {
            Value k1 = e.min(e.add(k0, e.idx(tk)), keys.end);
            Value interior =
                isTileFullyVisible(e.b, e.b.getLoc(), s.window, q0, q1, k0, k1,
                                   s.posOffset, s.keyPhase);
            auto tile = [&](bool masked) {
              softmax.addKeys(e, s, masked, q, k, v, keyRow, bi, h, q0, rows,
                              k0, e.sub(k1, k0));
            };
            e.ifElse(
                interior, [&] { tile(/*masked=*/false); },
                [&] { tile(/*masked=*/true); });
          });
          softmax.finish(e, s, out, lse, bi, h, q0, rows);
        });
      });
    });

    rewriter.eraseOp(op);
    return success();
  }

private:
  LoopTiling tiling;
};

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

struct AttentionGradOpToLoops : public OpRewritePattern<AttentionGradOp> {
  AttentionGradOpToLoops(MLIRContext *ctx, LoopTiling tiling)
      : OpRewritePattern(ctx), tiling(tiling) {}

  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");

    LoopEmitter e(rewriter, op.getLoc());
    AttentionShape s = getShape(e, op);
    const int64_t tq = tiling.tileQ, tk = tiling.tileK;
    Operands x{op.getQuery(),   op.getKey(),     op.getValue(),
               op.getOut(),     op.getGradOut(), op.getLse(),
               op.getGradQuery(), op.getGradKey(), op.getGradValue(),
               Value()};

    // delta[b, h, i] = rowsum(dout * out), read by both passes below.
    x.delta = memref::AllocOp::create(
        e.b, MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic,
                              ShapedType::kDynamic},
                             e.b.getF32Type()),
        ValueRange{s.batch, s.queryHeads, s.queries});
    e.loop(s.batch, [&](Value bi) {
      e.loop(s.queryHeads, [&](Value h) {
        e.loop(s.queries, [&](Value i) {
          e.store(e.dot(s.valueDim, x.dout, {bi, h, i}, x.out, {bi, h, i}),
                  x.delta, {bi, h, i});
        });
      });
    });

    Value probs = e.scratch({tq, tk});
    Value dScores = e.scratch({tq, tk});
    emitKeyValueGrads(e, s, x, tq, tk, probs, dScores);
    emitQueryGrads(e, s, x, tq, tk, probs, dScores);

    memref::DeallocOp::create(e.b, x.delta);
    rewriter.eraseOp(op);
    return success();
  }

private:
  struct Operands {
    Value q, k, v, out, dout, lse, dq, dk, dv, delta;
  };

  /// For a (query tile, key tile) pair: probs[r][c] = P (recomputed from the
  /// forward's lse) and dScores[r][c] = P * (dP - delta), masked or not.
  static void emitTileGradients(LoopEmitter &e, const AttentionShape &s,
                                const Operands &x, bool masked, Value bi,
                                Value h, Value hk, Value q0, Value rows,
                                Value k0, Value cols, Value probs,
                                Value dScores) {
    e.loop(rows, [&](Value r) {
      Value i = e.add(q0, r);
      Value rowLse = e.load(x.lse, {bi, h, i});
      Value rowDelta = e.load(x.delta, {bi, h, i});
      e.loop(cols, [&](Value c) {
        Value j = e.add(k0, c);
        Value p = e.exp(
            e.subf(emitScore(e, s, x.q, x.k, bi, h, hk, i, j), rowLse));
        if (masked)
          p = e.select(
              isVisible(e.b, e.b.getLoc(), s.window, i, j, s.posOffset), p,
              e.f32(0.0));
        Value dp = e.dot(s.valueDim, x.dout, {bi, h, i}, x.v, {bi, hk, j});
        e.store(p, probs, {r, c});
        e.store(e.mulf(p, e.subf(dp, rowDelta)), dScores, {r, c});
      });
    });
  }

  /// Emits `if (tile is interior) body(false) else body(true)`.
  static void emitTile(LoopEmitter &e, const AttentionShape &s, Value q0,
                       Value q1, Value k0, Value k1,
                       function_ref<void(bool)> body) {
    Value interior = isTileFullyVisible(e.b, e.b.getLoc(), s.window, q0, q1,
                                        k0, k1, s.posOffset);
    e.ifElse(
        interior, [&] { body(/*masked=*/false); },
        [&] { body(/*masked=*/true); });
  }

  /// dK and dV: one key tile at a time, over the query tiles of its reverse
  /// window and over every query head of its GQA group, so each key row is
  /// written by exactly one iteration.
  void emitKeyValueGrads(LoopEmitter &e, const AttentionShape &s,
                         const Operands &x, int64_t tq, int64_t tk,
                         Value probs, Value dScores) const {
    Value dkAcc = e.scratch({tk, s.headDim});
    Value dvAcc = e.scratch({tk, s.valueDim});
    Value keyHeads = e.dim(x.k, 1);
    e.loop(s.batch, [&](Value bi) {
      e.loop(keyHeads, [&](Value hk) {
        e.loop(e.idx(0), s.keys, e.idx(tk), [&](Value k0) {
          Value k1 = e.min(e.add(k0, e.idx(tk)), s.keys);
          Value cols = e.sub(k1, k0);
          e.loop(cols, [&](Value c) {
            e.loop(s.headDim, [&](Value d) { e.store(e.f32(0.0), dkAcc, {c, d}); });
            e.loop(s.valueDim, [&](Value d) { e.store(e.f32(0.0), dvAcc, {c, d}); });
          });

          RowRange queries = computeQueryWindow(e.b, e.b.getLoc(), s.window,
                                                k0, k1, s.posOffset, s.queries);
          Value h0 = arith::MulIOp::create(e.b, hk, s.groupSize);
          e.loop(h0, e.add(h0, s.groupSize), e.idx(1), [&](Value h) {
            e.loop(queries.begin, queries.end, e.idx(tq), [&](Value q0) {
              Value q1 = e.min(e.add(q0, e.idx(tq)), queries.end);
              Value rows = e.sub(q1, q0);
              emitTile(e, s, q0, q1, k0, k1, [&](bool masked) {
                emitTileGradients(e, s, x, masked, bi, h, hk, q0, rows, k0,
                                  cols, probs, dScores);
              });
              // dV += P^T dO, dK += scale * dS^T Q.
              e.loop(cols, [&](Value c) {
                e.loop(rows, [&](Value r) {
                  Value i = e.add(q0, r);
                  Value p = e.load(probs, {r, c});
                  Value ds = e.mulf(e.f32(s.scale), e.load(dScores, {r, c}));
                  e.axpy(s.valueDim, p, x.dout, {bi, h, i}, dvAcc, {c});
                  e.axpy(s.headDim, ds, x.q, {bi, h, i}, dkAcc, {c});
                });
              });
            });
          });

          e.loop(cols, [&](Value c) {
            Value j = e.add(k0, c);
            e.loop(s.headDim, [&](Value d) {
              e.storeF32(e.load(dkAcc, {c, d}), x.dk, {bi, hk, j, d});
            });
            e.loop(s.valueDim, [&](Value d) {
              e.storeF32(e.load(dvAcc, {c, d}), x.dv, {bi, hk, j, d});
            });
          });
        });
      });
    });
  }

  /// dQ: one query tile at a time, over the key tiles of its window.
  void emitQueryGrads(LoopEmitter &e, const AttentionShape &s,
                      const Operands &x, int64_t tq, int64_t tk, Value probs,
                      Value dScores) const {
    Value dqAcc = e.scratch({tq, s.headDim});
    e.loop(s.batch, [&](Value bi) {
      e.loop(s.queryHeads, [&](Value h) {
        Value hk = e.divIdx(h, s.groupSize);
        e.loop(e.idx(0), s.queries, e.idx(tq), [&](Value q0) {
          Value q1 = e.min(e.add(q0, e.idx(tq)), s.queries);
          Value rows = e.sub(q1, q0);
          e.loop(rows, [&](Value r) {
            e.loop(s.headDim, [&](Value d) { e.store(e.f32(0.0), dqAcc, {r, d}); });
          });

          RowRange keys = computeKeyWindow(e.b, e.b.getLoc(), s.window, q0,
                                           q1, s.posOffset, s.keys);
          e.loop(keys.begin, keys.end, e.idx(tk), [&](Value k0) {
            Value k1 = e.min(e.add(k0, e.idx(tk)), keys.end);
            Value cols = e.sub(k1, k0);
            emitTile(e, s, q0, q1, k0, k1, [&](bool masked) {
              emitTileGradients(e, s, x, masked, bi, h, hk, q0, rows, k0, cols,
                                probs, dScores);
            });
            // dQ += scale * dS K.
            e.loop(rows, [&](Value r) {
              e.loop(cols, [&](Value c) {
                Value j = e.add(k0, c);
                Value ds = e.mulf(e.f32(s.scale), e.load(dScores, {r, c}));
                e.axpy(s.headDim, ds, x.k, {bi, hk, j}, dqAcc, {r});
              });
            });
          });

          e.loop(rows, [&](Value r) {
            Value i = e.add(q0, r);
            e.loop(s.headDim, [&](Value d) {
              e.storeF32(e.load(dqAcc, {r, d}), x.dq, {bi, h, i, d});
            });
          });
        });
      });
    });
  }

  LoopTiling tiling;
};

} // namespace

void mlir::swba::populateSWBAToLoopsPatterns(RewritePatternSet &patterns,
                                             LoopTiling tiling) {
  patterns.add<AttentionOpToLoops, AttentionGradOpToLoops>(
      patterns.getContext(), tiling);
  populatePagedAttentionToLoopsPatterns(patterns, tiling);
}
