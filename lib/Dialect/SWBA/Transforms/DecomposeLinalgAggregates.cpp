//===- DecomposeLinalgAggregates.cpp - linalg.softmax into its parts ------===//

#include "swba/Dialect/SWBA/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::swba {
#define GEN_PASS_DEF_DECOMPOSELINALGAGGREGATES
#include "swba/Dialect/SWBA/Transforms/Passes.h.inc"
} // namespace mlir::swba

using namespace mlir;

namespace {
struct DecomposeLinalgAggregatesPass
    : public swba::impl::DecomposeLinalgAggregatesBase<
          DecomposeLinalgAggregatesPass> {
  void runOnOperation() override {
    SmallVector<linalg::AggregatedOpInterface> aggregates;
    getOperation()->walk(
        [&](linalg::AggregatedOpInterface op) { aggregates.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (linalg::AggregatedOpInterface op : aggregates) {
      rewriter.setInsertionPoint(op);
      FailureOr<SmallVector<Value>> parts = op.decomposeOperation(rewriter);
      if (failed(parts)) {
        op->emitOpError("could not be decomposed into simpler ops");
        return signalPassFailure();
      }
      rewriter.replaceOp(op, *parts);
    }
  }
};
} // namespace
