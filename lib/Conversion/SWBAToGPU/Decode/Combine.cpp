//===- Combine.cpp - Combination of the decode kernel's splits ------------===//
//
// out = sum_s exp(lse_s - lse) out_s with lse = log sum_s exp(lse_s), per
// row and column: a workgroup per (query, head, batch), a thread per column.
// Empty splits (lse -inf) weigh 0; a row no split saw a key of gets out 0
// and lse -inf; a NaN partial (a key of an invalid page) stays NaN.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

void mlir::swba::gpu_kernels::buildDecodeCombineBody(OpBuilder &builder,
                                                     Location loc,
                                                     Value partialOut,
                                                     Value partialLse,
                                                     Value out, Value lse) {
  KernelBuilder e(builder, loc,
                  cast<MemRefType>(out.getType()).getElementType());
  e.setLaneIds();
  Value i = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  Value d = e.threadId;
  Value active = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, d,
                                       e.dim(partialOut, 4));
  auto ifOp = scf::IfOp::create(e.b, active, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  Value splits = e.dim(partialOut, 0);
  auto lseOf = [&](Value s) { return e.load(partialLse, {s, bi, h, i}); };
  Value mx = e.reduce(splits, e.negInf(),
                      [&](Value s, Value m) { return e.maxf(m, lseOf(s)); });
  Value ref = e.select(
      arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, mx, e.negInf()),
      e.f32(0.0), mx);
  double log2e = 1.0 / std::log(2.0);
  auto sums = scf::ForOp::create(e.b, e.idx(0), splits, e.idx(1),
                                 ValueRange{e.f32(0.0), e.f32(0.0)});
  {
    OpBuilder::InsertionGuard g2(e.b);
    e.b.setInsertionPointToEnd(sums.getBody());
    Value s = sums.getInductionVar();
    Value weight = e.ex2(e.mulf(e.subf(lseOf(s), ref), e.f32(log2e)));
    ValueRange acc = sums.getRegionIterArgs();
    Value part = e.load(partialOut, {s, bi, h, i, d});
    scf::YieldOp::create(e.b, ValueRange{e.addf(acc[0], weight),
                                         e.addf(acc[1], e.mulf(weight, part))});
  }
  Value l = sums.getResult(0), o = sums.getResult(1);
  Value noKeys =
      arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, l, e.f32(0.0));
  e.storeF32(e.select(noKeys, e.f32(0.0), e.divf(o, l)), out, {bi, h, i, d});
  if (!lse)
    return;
  Value first =
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq, d, e.idx(0));
  auto lseIf = scf::IfOp::create(e.b, first, /*withElseRegion=*/false);
  e.b.setInsertionPoint(lseIf.thenBlock()->getTerminator());
  Value value = e.addf(ref, e.mulf(e.lg2(l), e.f32(std::log(2.0))));
  e.store(e.select(noKeys, e.negInf(), value), lse, {bi, h, i});
}
