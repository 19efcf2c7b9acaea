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

/// Tile choices of the sm_90a kernels; 0 picks the per-head-dim default
/// (lib/Conversion/SWBAToGPU/Hopper/Tiling.h gives the reasons).
struct HopperOptions {
  /// Consumer warpgroups of 64 query rows (2 or 3; 0: per head dim).
  int64_t consumers = 0;
  int64_t blockN = 0;
  int64_t stages = 0;
  /// Run the softmax of S_j while P_{j-1} V_{j-1} is on the tensor cores.
  bool overlapSoftmax = true;
  /// With overlapSoftmax: the consumer warpgroups take turns issuing
  /// their products (named barriers), each one's softmax under the others'
  /// products.
  bool pingPong = true;
  /// Backward: keys per K/V tile of the dQ kernel and query rows per Q/dO
  /// tile of the dK/dV kernel (64 or 128; 0: per head dim).
  int64_t gradKeyTile = 0;
  int64_t gradQueryTile = 0;
  /// Backward: tiles in flight in both kernels (0: 2).
  int64_t gradStages = 0;
  /// Backward: the dK/dV kernel also adds dQ up, with TMA reduce-adds into
  /// an f32 buffer (five products instead of seven; not bitwise
  /// reproducible), instead of the separate dQ kernel that recomputes S
  /// and dP.
  bool gradFusedDQ = false;
  /// Backward: the two consumers of the dQ and dK/dV kernels take turns
  /// issuing their products (the grad-fused-dq kernel always does: its dQ
  /// product reads the other consumer's dS).
  bool gradPingPong = false;
};

/// Patterns that rewrite memref-form `swba.attention` with head dims 64 or
/// 128 into a gpu.launch_func of an sm_90a kernel: warp-specialized, K/V
/// brought in by TMA on mbarriers, both products on warpgroup MMA. They
/// take precedence over populateSWBAToGPUPatterns, which covers the rest.
void populateSWBAToGPUHopperPatterns(RewritePatternSet &patterns,
                                     HopperOptions options);

/// Like checkHopperLowerable below, for `swba.attention_grad` and the
/// backward's options (grad-stages, shared memory).
LogicalResult checkHopperGradLowerable(Operation *op, HopperOptions options);

/// Patterns that rewrite memref-form `swba.attention_grad` with head dims
/// 64 or 128 into the sm_90a backward: a delta kernel, then warp-specialized
/// dK/dV and dQ kernels on TMA and warpgroup MMA that read only delta (or,
/// with gradFusedDQ, a dK/dV kernel that also adds dQ up and a conversion
/// kernel). They take precedence over populateSWBAGradToGPUPatterns.
void populateSWBAGradToGPUHopperPatterns(RewritePatternSet &patterns,
                                         HopperOptions options);

/// Emits an error at `op` and fails when the sm_90a kernel would take it
/// (swba.attention, head dims 64/128) but `options` give it a tiling that
/// does not fit (block-n, stages, shared memory).
LogicalResult checkHopperLowerable(Operation *op, HopperOptions options);

/// Patterns that rewrite memref-form `swba.attention_grad` into a delta
/// kernel and two tensor-core kernels, dK/dV and dQ, that read only delta.
/// Every kernel the GPU patterns make carries its launch contract
/// (`swba.launch`, see --swba-write-launch-manifest).
void populateSWBAGradToGPUPatterns(RewritePatternSet &patterns);

/// Emits an error at `op` (swba.attention or swba.attention_grad) and fails
/// when the GPU kernels do not support it (element type, head dims, memref
/// layouts).
LogicalResult checkGPULowerable(Operation *op);

} // namespace swba
} // namespace mlir

#endif // SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
