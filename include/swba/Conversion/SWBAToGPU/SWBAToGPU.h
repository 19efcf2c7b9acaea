//===- SWBAToGPU.h - SWBA ops to GPU kernels --------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
#define SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H

#include "swba/Conversion/Passes.h"

#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"

namespace mlir {
class RewritePatternSet;

namespace swba {

/// Patterns that rewrite memref-form `swba.attention` into a gpu.launch_func
/// of a tensor-core kernel (nvgpu ldmatrix + mma.sync, sm_80 and later) in a
/// new gpu.module of the enclosing module.
void populateSWBAToGPUPatterns(RewritePatternSet &patterns);

/// The sm_90a kernels' tile choices are --lower-swba's options (consumers,
/// block-n, stages, overlap-softmax, ping-pong and the grad-* ones, declared
/// in Passes.td); 0 picks the per-head-dim default
/// (lib/Conversion/SWBAToGPU/Hopper/Tiling.h gives the reasons).
using HopperOptions = LowerSWBAOptions;

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

/// Emits an error at `op` and fails when `options` ask for the split-KV
/// forward (split-kv) of a swba.attention that the sm_90a forward does not
/// take (another chip, head dims other than 64/128).
LogicalResult checkSplitKvLowerable(Operation *op, HopperOptions options);

/// Patterns that rewrite memref-form `swba.attention_grad` into a delta
/// kernel and two tensor-core kernels, dK/dV and dQ, that read only delta.
/// Every kernel the GPU patterns make carries its launch contract
/// (`swba.launch`, see --swba-write-launch-manifest).
void populateSWBAGradToGPUPatterns(RewritePatternSet &patterns);

/// Patterns that rewrite memref-form `swba.paged_attention` (and, with
/// `decodeAttention`, `swba.attention`, ahead of the other forward
/// patterns) into the split-KV decode kernel, which packs the query heads
/// of a kv head into one workgroup and divides their key window among a
/// host-chosen number of workgroups, and a kernel that combines the
/// splits. With `bulkCopies` (sm_90a) the kernel's ring is filled by
/// TMA boxes (dense caches) or a bulk copy a key row (paged caches), else
/// by 16-byte cp.async.
void populateSWBADecodeToGPUPatterns(RewritePatternSet &patterns,
                                     bool decodeAttention,
                                     bool bulkCopies = false);

/// Emits an error at `op` and fails when its static sizes hold more query
/// rows per kv head than the decode kernel takes.
LogicalResult checkDecodeLowerable(Operation *op);

/// Emits an error at `op` (swba.attention or swba.attention_grad) and fails
/// when the GPU kernels do not support it (element type, head dims, memref
/// layouts); `hopper`: for chip=sm_90a, whose kernels also take head dims
/// 192 and 256.
LogicalResult checkGPULowerable(Operation *op, bool hopper = false);

} // namespace swba
} // namespace mlir

#endif // SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
