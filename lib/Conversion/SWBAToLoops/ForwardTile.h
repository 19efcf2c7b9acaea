//===- ForwardTile.h - The online-softmax steps of the forward --*- C++ -*-===//
//
// Internal to the loop lowerings of the forward ops (swba.attention on
// contiguous K/V, swba.paged_attention on a paged cache): the sizes they
// share and FlashAttention's online softmax over one tile of query rows, in
// f32 scratch. Where a key row is stored is the caller's: a callback maps a
// key row (its position) to the index prefix of its K and V rows.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOLOOPS_FORWARDTILE_H
#define SWBA_LIB_CONVERSION_SWBATOLOOPS_FORWARDTILE_H

#include "../LoopEmitter.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"

namespace mlir::swba {

/// Sizes and values shared by the loop lowerings.
struct AttentionShape {
  Value batch, queryHeads, queries, keys;
  /// Query heads per key/value head.
  Value groupSize;
  /// Nk - Nq (+ keyPhase): the position of query row 0.
  Value posOffset;
  /// With a key_offset: its value modulo the block size, the position of
  /// key row 0 (WindowBounds.h), and the first key row at or after the
  /// sequence start. Null without one.
  Value keyPhase, firstKey;
  int64_t headDim, valueDim;
  BlockWindow window;
  double scale;
};

/// Index prefix (all but the last dim) of the K and V rows of key row `j`.
using KeyRowFn = function_ref<SmallVector<Value, 4>(Value j)>;

/// The running state of the online softmax of one query tile: scores or
/// probabilities of a key tile, running max and sum, output accumulator.
struct OnlineSoftmax {
  Value scores, rowMax, rowSum, acc;

  static OnlineSoftmax allocate(LoopEmitter &e, int64_t tileQ, int64_t tileK,
                                int64_t valueDim) {
    return {e.scratch({tileQ, tileK}), e.scratch({tileQ}), e.scratch({tileQ}),
            e.scratch({tileQ, valueDim})};
  }

  /// Starts `rows` query rows: max -inf, sum and output 0.
  void reset(LoopEmitter &e, const AttentionShape &s, Value rows) const {
    e.loop(rows, [&](Value r) {
      e.store(e.negInf(), rowMax, r);
      e.store(e.f32(0.0), rowSum, r);
      e.loop(s.valueDim, [&](Value c) { e.store(e.f32(0.0), acc, {r, c}); });
    });
  }

  /// One step: folds key rows [k0, k0 + cols) into query rows [q0, q0 +
  /// rows) of head `h` (kv head `hk`). An unmasked tile has no mask
  /// arithmetic at all; a masked one sets invisible scores to -inf and
  /// guards the rows that have seen no visible key yet.
  void addKeys(LoopEmitter &e, const AttentionShape &s, bool masked, Value q,
               Value k, Value v, KeyRowFn keyRow, Value bi, Value h, Value q0,
               Value rows, Value k0, Value cols) const {
    e.loop(rows, [&](Value r) {
      Value i = e.add(q0, r);
      Value oldMax = e.load(rowMax, r);
      Value newMax = e.reduce(cols, oldMax, [&](Value c, Value mx) {
        Value j = e.add(k0, c);
        Value score = e.mulf(e.f32(s.scale),
                             e.dot(s.headDim, q, {bi, h, i}, k, keyRow(j)));
        if (masked)
          score = e.select(isVisible(e.b, e.b.getLoc(), s.window, i, j,
                                     s.posOffset, s.keyPhase),
                           score, e.negInf());
        e.store(score, scores, {r, c});
        return e.maxf(mx, score);
      });
      // A row that has seen only masked keys keeps max -inf; subtracting 0
      // instead keeps its exponentials at 0 rather than NaN.
      Value ref = newMax;
      if (masked) {
        Value noneSeen = arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ,
                                               newMax, e.negInf());
        ref = e.select(noneSeen, e.f32(0.0), newMax);
      }
      Value alpha = e.exp(e.subf(oldMax, ref));
      e.loop(s.valueDim, [&](Value c) {
        e.store(e.mulf(e.load(acc, {r, c}), alpha), acc, {r, c});
      });
      Value tileSum = e.reduce(cols, e.f32(0.0), [&](Value c, Value sum) {
        Value p = e.exp(e.subf(e.load(scores, {r, c}), ref));
        e.axpy(s.valueDim, p, v, keyRow(e.add(k0, c)), acc, {r});
        return e.addf(sum, p);
      });
      e.store(e.addf(e.mulf(e.load(rowSum, r), alpha), tileSum), rowSum, r);
      e.store(newMax, rowMax, r);
    });
  }

  /// Writes out = acc / sum and lse = max + log(sum) (when `lse` is not
  /// null) of query rows [q0, q0 + rows) of head `h`.
  void finish(LoopEmitter &e, const AttentionShape &s, Value out, Value lse,
              Value bi, Value h, Value q0, Value rows) const {
    e.loop(rows, [&](Value r) {
      Value i = e.add(q0, r);
      Value sum = e.load(rowSum, r);
      Value inv = e.divf(e.f32(1.0), sum);
      e.loop(s.valueDim, [&](Value c) {
        e.storeF32(e.mulf(e.load(acc, {r, c}), inv), out, {bi, h, i, c});
      });
      if (lse)
        e.store(e.addf(e.load(rowMax, r), e.log(sum)), lse, {bi, h, i});
    });
  }
};

} // namespace mlir::swba

#endif // SWBA_LIB_CONVERSION_SWBATOLOOPS_FORWARDTILE_H
