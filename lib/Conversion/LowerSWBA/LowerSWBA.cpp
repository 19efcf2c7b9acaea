//===- LowerSWBA.cpp - The --lower-swba pass ------------------------------===//

#include "swba/Conversion/Passes.h"
#include "swba/Conversion/SWBAToLoops/SWBAToLoops.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::swba {
#define GEN_PASS_DEF_LOWERSWBA
#include "swba/Conversion/Passes.h.inc"
} // namespace mlir::swba

using namespace mlir;
using namespace mlir::swba;

namespace {
struct LowerSWBAPass : public swba::impl::LowerSWBABase<LowerSWBAPass> {
  using LowerSWBABase::LowerSWBABase;

  void runOnOperation() override {
    Operation *root = getOperation();
    if (target != "cpu") {
      root->emitError() << "--lower-swba: unsupported target '" << target
                        << "' (supported: 'cpu')";
      return signalPassFailure();
    }
    if (tileQ < 1 || tileK < 1) {
      root->emitError() << "--lower-swba: tile sizes must be >= 1, got tile-q="
                        << tileQ.getValue() << " tile-k=" << tileK.getValue();
      return signalPassFailure();
    }

    // The loops index memrefs; tensor-form ops must be bufferized first.
    WalkResult unbufferized = root->walk([](Operation *op) {
      auto dpsOp = dyn_cast<DestinationStyleOpInterface>(op);
      if (!dpsOp || !isa<AttentionOp, AttentionGradOp>(op) ||
          dpsOp.hasPureBufferSemantics())
        return WalkResult::advance();
      op->emitOpError() << "must be bufferized before --lower-swba (run "
                           "--one-shot-bufferize first)";
      return WalkResult::interrupt();
    });
    if (unbufferized.wasInterrupted())
      return signalPassFailure();

    RewritePatternSet patterns(&getContext());
    populateSWBAToLoopsPatterns(patterns, LoopTiling{tileQ, tileK});
    walkAndApplyPatterns(root, std::move(patterns));
  }
};
} // namespace
