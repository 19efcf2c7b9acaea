//===- LowerSWBA.cpp - The --lower-swba pass ------------------------------===//

#include "swba/Conversion/Passes.h"
#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
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

  HopperOptions hopperOptions() {
    return HopperOptions{consumers, blockN, stages, overlapSoftmax, pingPong,
                         gradKeyTile, gradQueryTile, gradStages,
                         gradFusedDQ, gradPingPong};
  }

  void runOnOperation() override {
    Operation *root = getOperation();
    if (target != "cpu" && target != "gpu") {
      root->emitError() << "--lower-swba: unsupported target '" << target
                        << "' (supported: 'cpu', 'gpu')";
      return signalPassFailure();
    }
    if (blockN < 0 || stages < 0 || gradStages < 0) {
      root->emitError()
          << "--lower-swba: block-n, stages and grad-stages must be >= 0";
      return signalPassFailure();
    }
    for (int64_t tile : {gradKeyTile.getValue(), gradQueryTile.getValue()})
      if (tile != 0 && tile != 64 && tile != 128) {
        root->emitError() << "--lower-swba: grad-key-tile and "
                             "grad-query-tile must be 0, 64 or 128, got "
                          << tile;
        return signalPassFailure();
      }
    if (tileQ < 1 || tileK < 1) {
      root->emitError() << "--lower-swba: tile sizes must be >= 1, got tile-q="
                        << tileQ.getValue() << " tile-k=" << tileK.getValue();
      return signalPassFailure();
    }

    // Every op must be lowerable before anything is rewritten.
    bool gpu = target == "gpu";
    WalkResult unsupported = root->walk([&](Operation *op) {
      if (!isa<AttentionOp, AttentionGradOp, PagedAttentionOp>(op))
        return WalkResult::advance();
      if (!cast<DestinationStyleOpInterface>(op).hasPureBufferSemantics()) {
        op->emitOpError() << "must be bufferized before --lower-swba (run "
                             "--one-shot-bufferize first)";
        return WalkResult::interrupt();
      }
      if (gpu && isa<PagedAttentionOp>(op)) {
        op->emitOpError() << "is not supported by --lower-swba target=gpu "
                             "yet (target=cpu lowers it)";
        return WalkResult::interrupt();
      }
      auto forward = dyn_cast<AttentionOp>(op);
      if (gpu && forward && forward.getKeyOffset()) {
        op->emitOpError() << "'key_offset' is supported by --lower-swba "
                             "target=cpu only";
        return WalkResult::interrupt();
      }
      if (gpu && failed(checkGPULowerable(op)))
        return WalkResult::interrupt();
      if (gpu && chip == "sm_90a" &&
          (failed(checkHopperLowerable(op, hopperOptions())) ||
           failed(checkHopperGradLowerable(op, hopperOptions()))))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (unsupported.wasInterrupted())
      return signalPassFailure();

    RewritePatternSet patterns(&getContext());
    if (gpu) {
      if (chip == "sm_90a") {
        populateSWBAToGPUHopperPatterns(patterns, hopperOptions());
        populateSWBAGradToGPUHopperPatterns(patterns, hopperOptions());
      }
      populateSWBAToGPUPatterns(patterns);
      populateSWBAGradToGPUPatterns(patterns);
    }
    else
      populateSWBAToLoopsPatterns(patterns, LoopTiling{tileQ, tileK});
    walkAndApplyPatterns(root, std::move(patterns));
  }
};
} // namespace
