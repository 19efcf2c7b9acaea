//===- WindowBounds.cpp - Block-window loop bounds ------------------------===//

#include "swba/Dialect/SWBA/Utils/WindowBounds.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::swba;

namespace {
/// Integer arithmetic on non-negative values of one type (index, or i32
/// where the caller knows every value fits), at one location.
struct IndexMath {
  OpBuilder &b;
  Location loc;
  Type type;

  Value c(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getIntegerAttr(type, v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, int64_t y) {
    return arith::MulIOp::create(b, loc, x, c(y));
  }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value frame(Value pos, int64_t blockSize) {
    return arith::DivUIOp::create(b, loc, pos, c(blockSize));
  }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  /// The position of key row `k`; no arithmetic without a phase.
  Value keyPos(Value k, Value keyPhase) {
    return keyPhase ? add(k, keyPhase) : k;
  }
};
} // namespace

RowRange mlir::swba::computeKeyWindow(OpBuilder &b, Location loc, BlockWindow w,
                                      Value q0, Value q1, Value posOffset,
                                      Value nk, Value keyPhase) {
  IndexMath m{b, loc, q0.getType()};
  Value firstFrame = m.frame(m.add(q0, posOffset), w.blockSize);
  Value lastFrame = m.frame(m.sub(m.add(q1, posOffset), m.c(1)), w.blockSize);
  // max(0, firstFrame - window + 1) without going below zero in index math.
  Value lowFrame =
      m.sub(m.max(firstFrame, m.c(w.window - 1)), m.c(w.window - 1));
  Value begin = m.mul(lowFrame, w.blockSize);
  // min((lastFrame + 1) * bs, end of the keys) as lastFrameStart +
  // min(bs, keysEnd - lastFrameStart): the product would wrap for block
  // sizes near 2^63.
  Value keysEnd = m.keyPos(nk, keyPhase);
  Value lastFrameStart = m.mul(lastFrame, w.blockSize);
  Value end = m.add(lastFrameStart,
                    m.min(m.c(w.blockSize), m.sub(keysEnd, lastFrameStart)));
  if (keyPhase) {
    // Positions to rows; key row 0 sits at position keyPhase.
    begin = m.sub(m.max(begin, keyPhase), keyPhase);
    end = m.sub(end, keyPhase);
  }
  return {begin, end};
}

RowRange mlir::swba::computeQueryWindow(OpBuilder &b, Location loc,
                                        BlockWindow w, Value k0, Value k1,
                                        Value posOffset, Value nq,
                                        Value keyPhase) {
  IndexMath m{b, loc, k0.getType()};
  Value firstFrame = m.frame(m.keyPos(k0, keyPhase), w.blockSize);
  Value lastFrame = m.frame(m.sub(m.keyPos(k1, keyPhase), m.c(1)), w.blockSize);
  // Query positions [firstFrame * bs, (lastFrame + window) * bs), as rows.
  // (lastFrame + window) * bs wraps around 2^64 for large windows or block
  // sizes: the window is first clipped to the frames that hold query
  // positions (below nq + posOffset), so that every term stays below twice
  // that.
  Value posBegin = m.mul(firstFrame, w.blockSize);
  Value lastFrameStart = m.mul(lastFrame, w.blockSize);
  Value positionsLeft = m.sub(m.add(nq, posOffset), lastFrameStart);
  Value framesLeft =
      m.add(m.frame(m.sub(positionsLeft, m.c(1)), w.blockSize), m.c(1));
  Value frames = m.min(framesLeft, m.c(w.window));
  Value posEnd = m.add(lastFrameStart,
                       m.min(m.mul(frames, w.blockSize), positionsLeft));
  Value begin = m.sub(m.max(posBegin, posOffset), posOffset);
  Value end = m.sub(m.max(posEnd, posOffset), posOffset);
  return {m.min(begin, nq), m.min(end, nq)};
}

Value mlir::swba::isTileFullyVisible(OpBuilder &b, Location loc, BlockWindow w,
                                     Value q0, Value q1, Value k0, Value k1,
                                     Value posOffset, Value keyPhase) {
  IndexMath m{b, loc, q0.getType()};
  Value firstQueryFrame = m.frame(m.add(q0, posOffset), w.blockSize);
  Value lastQueryFrame =
      m.frame(m.sub(m.add(q1, posOffset), m.c(1)), w.blockSize);
  Value firstKeyFrame = m.frame(m.keyPos(k0, keyPhase), w.blockSize);
  Value lastKeyFrame =
      m.frame(m.sub(m.keyPos(k1, keyPhase), m.c(1)), w.blockSize);
  // The latest key is not in the future of the earliest query, and the
  // earliest key is not too far in the past of the latest query.
  Value notFuture =
      m.cmp(arith::CmpIPredicate::ule, lastKeyFrame, firstQueryFrame);
  Value inWindow = m.cmp(arith::CmpIPredicate::ult,
                         m.sub(lastQueryFrame, firstKeyFrame), m.c(w.window));
  return arith::AndIOp::create(b, loc, notFuture, inWindow);
}

Value mlir::swba::isVisible(OpBuilder &b, Location loc, BlockWindow w, Value q,
                            Value k, Value posOffset, Value keyPhase) {
  IndexMath m{b, loc, q.getType()};
  Value queryFrame = m.frame(m.add(q, posOffset), w.blockSize);
  Value keyFrame = m.frame(m.keyPos(k, keyPhase), w.blockSize);
  Value notFuture = m.cmp(arith::CmpIPredicate::ule, keyFrame, queryFrame);
  // Only evaluated as a whole with notFuture, so the wrap-around of the
  // subtraction when keyFrame > queryFrame does not matter.
  Value inWindow = m.cmp(arith::CmpIPredicate::ult,
                         m.sub(queryFrame, keyFrame), m.c(w.window));
  return arith::AndIOp::create(b, loc, notFuture, inWindow);
}
