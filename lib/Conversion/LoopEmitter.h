//===- LoopEmitter.h - Builder helpers for the swba lowerings ---*- C++ -*-===//
//
// Internal to lib/Conversion: the scalar/loop building helpers the CPU and
// GPU lowerings share.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_LOOPEMITTER_H
#define SWBA_LIB_CONVERSION_LOOPEMITTER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <limits>

namespace mlir::swba {

/// Builds scalar loop code at one location: index and f32 arithmetic, loops
/// whose bodies are written with the same builder, and memref accesses.
class LoopEmitter {
public:
  LoopEmitter(OpBuilder &builder, Location loc) : b(loc, builder) {}

  ImplicitLocOpBuilder b;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  /// `v` of `like`'s type (index or an integer type).
  Value constLike(Value like, int64_t v) {
    Type type = like.getType();
    return type.isIndex()
               ? idx(v)
               : Value(arith::ConstantOp::create(b, b.getIntegerAttr(type, v)));
  }
  /// x * y, y of x's type.
  Value mulBy(Value x, int64_t y) {
    return arith::MulIOp::create(b, x, constLike(x, y));
  }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, b.getF32Type(),
                                          APFloat(static_cast<float>(v)));
  }
  Value negInf() { return f32(-std::numeric_limits<float>::infinity()); }

  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
  Value divIdx(Value x, Value y) { return arith::DivUIOp::create(b, x, y); }

  Value addf(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value subf(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
  Value mulf(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value divf(Value x, Value y) { return arith::DivFOp::create(b, x, y); }
  Value maxf(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  Value log(Value x) { return math::LogOp::create(b, x); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }

  Value dim(Value memref, int64_t i) {
    return memref::DimOp::create(b, memref, i);
  }
  Value load(Value memref, ValueRange indices) {
    return memref::LoadOp::create(b, memref, indices);
  }
  /// Loads an element and widens it to f32.
  Value loadF32(Value memref, ValueRange indices) {
    Value v = load(memref, indices);
    if (v.getType().isF32())
      return v;
    return arith::ExtFOp::create(b, b.getF32Type(), v);
  }
  void store(Value v, Value memref, ValueRange indices) {
    memref::StoreOp::create(b, v, memref, indices);
  }
  /// Narrows an f32 to the element type of `memref` and stores it.
  void storeF32(Value v, Value memref, ValueRange indices) {
    Type elementType = cast<MemRefType>(memref.getType()).getElementType();
    if (elementType != v.getType())
      v = arith::TruncFOp::create(b, elementType, v);
    store(v, memref, indices);
  }
  Value scratch(ArrayRef<int64_t> shape) {
    return memref::AllocaOp::create(
        b, MemRefType::get(shape, b.getF32Type()));
  }

  /// `for iv = lb to ub step step { body(iv) }`.
  void loop(Value lb, Value ub, Value step, function_ref<void(Value)> body) {
    auto forOp = scf::ForOp::create(b, lb, ub, step);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forOp.getBody()->getTerminator());
    body(forOp.getInductionVar());
  }
  void loop(Value ub, function_ref<void(Value)> body) {
    loop(idx(0), ub, idx(1), body);
  }
  void loop(int64_t ub, function_ref<void(Value)> body) {
    loop(idx(0), idx(ub), idx(1), body);
  }

  /// A loop carrying one value: `body(iv, acc)` returns the next acc.
  Value reduce(Value ub, Value init, function_ref<Value(Value, Value)> body) {
    auto forOp = scf::ForOp::create(b, idx(0), ub, idx(1), ValueRange{init});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToEnd(forOp.getBody());
    Value next = body(forOp.getInductionVar(), forOp.getRegionIterArgs()[0]);
    scf::YieldOp::create(b, next);
    return forOp.getResult(0);
  }
  Value reduce(int64_t ub, Value init, function_ref<Value(Value, Value)> body) {
    return reduce(idx(ub), init, body);
  }

  /// `if cond { thenBody() } else { elseBody() }`.
  void ifElse(Value cond, function_ref<void()> thenBody,
              function_ref<void()> elseBody) {
    auto ifOp = scf::IfOp::create(b, cond, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    thenBody();
    b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
    elseBody();
  }

  /// acc[accRow..., d] += a * src[srcRow..., d] for d < n (src widened to
  /// f32).
  void axpy(int64_t n, Value a, Value src, ValueRange srcRow, Value acc,
            ValueRange accRow) {
    loop(n, [&](Value d) {
      SmallVector<Value, 4> si(srcRow), ai(accRow);
      si.push_back(d);
      ai.push_back(d);
      store(addf(load(acc, ai), mulf(a, loadF32(src, si))), acc, ai);
    });
  }

  /// Dot product over the last dimension of two [B, H, N, D] rows, in f32.
  Value dot(int64_t d, Value x, ValueRange xRow, Value y, ValueRange yRow) {
    return reduce(d, f32(0.0), [&](Value i, Value acc) {
      SmallVector<Value, 4> xi(xRow), yi(yRow);
      xi.push_back(i);
      yi.push_back(i);
      return addf(acc, mulf(loadF32(x, xi), loadF32(y, yi)));
    });
  }
};

} // namespace mlir::swba

#endif // SWBA_LIB_CONVERSION_LOOPEMITTER_H
