//===- SWBAToGPU.h - SWBA ops to GPU kernels --------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
#define SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H

#include "mlir/Support/LLVM.h"

namespace mlir {
class RewritePatternSet;

namespace swba {
class AttentionOp;

/// Patterns that rewrite memref-form `swba.attention` into a gpu.launch_func
/// of a tensor-core kernel (nvgpu ldmatrix + mma.sync, sm_80 and later) in a
/// new gpu.module of the enclosing module.
void populateSWBAToGPUPatterns(RewritePatternSet &patterns);

/// Emits an error at `op` and fails when the GPU kernel does not support it
/// (element type, head dims, memref layouts).
LogicalResult checkGPULowerable(AttentionOp op);

} // namespace swba
} // namespace mlir

#endif // SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
