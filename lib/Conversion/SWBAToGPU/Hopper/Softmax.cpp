//===- Softmax.cpp - Softmax of the sm_90a kernels ------------------------===//
//
// The forward's online softmax and the backward's probabilities
// (Softmax.h).
//
//===----------------------------------------------------------------------===//

#include "Softmax.h"

using namespace mlir;
using namespace mlir::swba::gpu_kernels;

/// The maximum or sum of `values` as a tree, not a chain: a thread's 32
/// values of a row in 5 dependent steps instead of 32.
static Value reduceTree(HopperKernelBuilder &e, ArrayRef<Value> values,
                        bool isMax) {
  if (values.size() == 1)
    return values[0];
  size_t half = values.size() / 2;
  Value lo = reduceTree(e, values.take_front(half), isMax);
  Value hi = reduceTree(e, values.drop_front(half), isMax);
  return isMax ? Value(arith::MaxNumFOp::create(e.b, lo, hi)) : e.addf(lo, hi);
}

void OnlineSoftmax::updateMaxima(ArrayRef<Value> s,
                                 MutableArrayRef<Value> rowMax) {
  int64_t n = s.size();
  for (int64_t h = 0; h < 2; ++h) {
    SmallVector<Value> row;
    for (int64_t i = 0; i < n; ++i)
      if ((i / 2) % 2 == h)
        row.push_back(s[i]);
    // With a positive scale, the row max of the raw scores, scaled once,
    // is the max of the scaled ones.
    Value mx = reduceTree(e, row, /*isMax=*/true);
    if (positiveScale)
      mx = e.mulf(mx, scale);
    rowMax[h] = e.quadReduce(arith::MaxNumFOp::create(e.b, rowMax[h], mx),
                             /*isMax=*/true);
  }
}

OnlineSoftmax::Tile OnlineSoftmax::exponentiate(SmallVector<Value> s,
                                                ArrayRef<Value> oldMax,
                                                ArrayRef<Value> rowMax,
                                                MutableArrayRef<Value> rowSum,
                                                bool sums) {
  int64_t n = s.size();
  Tile result;
  Value ref[2];
  for (int64_t h = 0; h < 2; ++h) {
    // A row that has seen only masked keys keeps max -inf; subtracting 0
    // keeps its exponentials at 0 instead of NaN.
    Value noneSeen = arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ,
                                           rowMax[h], e.negInf());
    ref[h] = e.select(noneSeen, e.f32(0.0), rowMax[h]);
    result.alpha[h] = e.ex2(e.subf(oldMax[h], ref[h]));
  }
  SmallVector<Value> rows[2];
  for (int64_t i = 0; i < n; ++i) {
    int64_t h = (i / 2) % 2;
    s[i] =
        e.ex2(positiveScale
                  ? Value(LLVM::FMAOp::create(
                        e.b, s[i], scale, arith::NegFOp::create(e.b, ref[h])))
                  : e.subf(s[i], ref[h]));
    rows[h].push_back(s[i]);
  }
  for (int64_t h = 0; sums && h < 2; ++h)
    rowSum[h] = e.addf(e.mulf(rowSum[h], result.alpha[h]),
                       reduceTree(e, rows[h], /*isMax=*/false));
  result.probs = s;
  return result;
}

OnlineSoftmax::Tile OnlineSoftmax::update(SmallVector<Value> s,
                                          MutableArrayRef<Value> rowMax,
                                          MutableArrayRef<Value> rowSum) {
  SmallVector<Value> oldMax(rowMax);
  updateMaxima(s, rowMax);
  return exponentiate(std::move(s), oldMax, rowMax, rowSum);
}

SmallVector<Value> OnlineSoftmax::rescale(SmallVector<Value> acc,
                                          Value alpha[2]) {
  for (int64_t i = 0, n = acc.size(); i < n; ++i)
    acc[i] = e.mulf(acc[i], alpha[(i / 2) % 2]);
  return acc;
}

Value mlir::swba::gpu_kernels::recomputeProbability(HopperKernelBuilder &e,
                                                    Value s, Value scaleLog2,
                                                    Value negLseLog2,
                                                    bool positiveScale) {
  return e.ex2(positiveScale
                   ? Value(LLVM::FMAOp::create(e.b, s, scaleLog2, negLseLog2))
                   : e.addf(s, negLseLog2));
}
