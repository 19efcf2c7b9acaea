//===- Pipelines.h - SWBA pass pipelines ------------------------*- C++ -*-===//

#ifndef SWBA_PIPELINES_PIPELINES_H
#define SWBA_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;

namespace swba {

/// Options of --swba-to-llvm.
struct SWBAToLLVMOptions : public PassPipelineOptions<SWBAToLLVMOptions> {
  PassOptions::Option<int64_t> tileQ{*this, "tile-q",
                                     llvm::cl::desc("Query rows per tile."),
                                     llvm::cl::init(16)};
  PassOptions::Option<int64_t> tileK{*this, "tile-k",
                                     llvm::cl::desc("Key rows per tile."),
                                     llvm::cl::init(16)};
};

/// Tensor-level module with swba ops (and linalg/tensor/arith/math/func code
/// around them) -> LLVM dialect runnable by mlir-runner: bufferize, lower the
/// swba ops to CPU loops, lower everything to LLVM.
void buildSWBAToLLVMPipeline(OpPassManager &pm,
                             const SWBAToLLVMOptions &options);

/// Registers the pipelines above under their names (`swba-to-llvm`).
void registerSWBAPipelines();

} // namespace swba
} // namespace mlir

#endif // SWBA_PIPELINES_PIPELINES_H
