//===- SWBAToGPU.h - SWBA ops to GPU kernels --------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
#define SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H

#include "mlir/Support/LLVM.h"

#include "mlir/IR/Operation.h"

namespace mlir {
class RewritePatternSet;

namespace swba {

/// Patterns that rewrite memref-form `swba.attention` into a gpu.launch_func
/// of a tensor-core kernel (nvgpu ldmatrix + mma.sync, sm_80 and later) in a
/// new gpu.module of the enclosing module.
void populateSWBAToGPUPatterns(RewritePatternSet &patterns);

/// Patterns that rewrite memref-form `swba.attention_grad` into two
/// tensor-core kernels (dQ with delta, then dK/dV) launched in order.
void populateSWBAGradToGPUPatterns(RewritePatternSet &patterns);

/// Emits an error at `op` (swba.attention or swba.attention_grad) and fails
/// when the GPU kernels do not support it (element type, head dims, memref
/// layouts).
LogicalResult checkGPULowerable(Operation *op);

} // namespace swba
} // namespace mlir

#endif // SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
