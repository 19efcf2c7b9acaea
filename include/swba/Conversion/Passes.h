//===- Passes.h - SWBA conversion passes ------------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_PASSES_H
#define SWBA_CONVERSION_PASSES_H

#include "swba/Conversion/SWBAToGPU/Chips.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::swba {

#define GEN_PASS_DECL
#include "swba/Conversion/Passes.h.inc"

/// The members of LowerSWBAOptions that choose the GPU kernels' tiles and
/// schedule, each an option of --lower-swba and of --swba-to-nvvm of the
/// same name: X(member) for each, so that the pipeline and the pass forward
/// every one of them (SWBAToNVVMOptions declares an option for each).
#define SWBA_GPU_KERNEL_OPTIONS(X)                                             \
  X(consumers)                                                                 \
  X(blockN)                                                                    \
  X(stages)                                                                    \
  X(overlapSoftmax)                                                            \
  X(pingPong)                                                                  \
  X(workgroupsPerSM)                                                           \
  X(tileScheduler)                                                             \
  X(splitKv)                                                                   \
  X(decode)                                                                    \
  X(gradKeyTile)                                                               \
  X(gradQueryTile)                                                             \
  X(gradStages)                                                                \
  X(gradKeyStages)                                                             \
  X(gradKvConsumers)                                                           \
  X(gradKvTiles)                                                               \
  X(gradQConsumers)                                                            \
  X(gradFusedDQ)                                                               \
  X(gradDqDelta)                                                               \
  X(gradPingPong)

/// Reports through `emitError` the first option of --lower-swba that is out
/// of range (an unknown target or chip, a tile size, a kernel option), as a
/// sentence naming the option, and fails; succeeds when all are valid. The
/// pass and the pipelines that run it call this before building anything.
LogicalResult verifyLowerSWBAOptions(const LowerSWBAOptions &options,
                                     function_ref<void(const Twine &)> emitError);

#define GEN_PASS_REGISTRATION
#include "swba/Conversion/Passes.h.inc"

} // namespace mlir::swba

// The lowerings' headers use LowerSWBAOptions, declared above.
#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Conversion/SWBAToLoops/SWBAToLoops.h"

#endif // SWBA_CONVERSION_PASSES_H
