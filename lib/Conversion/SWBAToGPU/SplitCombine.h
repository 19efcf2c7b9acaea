//===- SplitCombine.h - Merge split-KV partial results ----------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the second kernel of a split-KV
// forward. The key range of each query row was divided among S
// workgroups, each leaving its normalized partial output and its
// log-sum-exp in f32 buffers; this kernel merges them:
//
//   m      = max_s lse[s, r]
//   w_s    = exp(lse[s, r] - m)       (0 for a split that saw no key)
//   out[r] = sum_s w_s partial[s, r] / sum_s w_s
//   lse[r] = m + log(sum_s w_s)
//
// Rows are generic: any op whose rows flatten to R = B * Hq * Nq (in the
// op's order) reuses it, with its out and lse passed collapsed to [R, Dv]
// and [R] (KernelParam::collapse). A row no split saw (every lse -inf)
// gets out 0 and lse -inf; a NaN lse or partial makes the row NaN.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_SPLITCOMBINE_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_SPLITCOMBINE_H

#include "LaunchContract.h"

namespace mlir::swba::gpu_kernels {

/// The names of the split count (a launch scalar) and the partial buffers.
constexpr llvm::StringLiteral kSplitsScalar = "splits";
constexpr llvm::StringLiteral kSplitOutBuffer = "split_out";
constexpr llvm::StringLiteral kSplitLseBuffer = "split_lse";

/// The partial buffers of `rows` rows of `valueDim` columns:
/// split_out f32 [splits, rows, valueDim] and split_lse f32 [splits, rows].
SmallVector<LaunchBuffer> splitBuffers(MLIRContext *context, int64_t valueDim,
                                       Size rows);

/// The types of the partial buffers (dynamic splits and rows).
MemRefType splitOutType(MLIRContext *context, int64_t valueDim);
MemRefType splitLseType(MLIRContext *context);

/// The combine kernel `swba_split_combine` in `gpuModule`: parameters
/// split_out, split_lse, out memref<?x valueDim x outElementType> and, with
/// `withLse`, lse memref<?xf32>. A warp merges a row; the split count is
/// split_lse's dim 0. With `earlyStart` (sm_90 and later) it first waits
/// for the split kernel before it (griddepcontrol.wait): its launch may
/// start it while that kernel ends (LaunchContract::earlyStart).
gpu::GPUFuncOp createSplitCombineKernel(RewriterBase &rewriter,
                                        gpu::GPUModuleOp gpuModule,
                                        Location loc, Type outElementType,
                                        int64_t valueDim, bool withLse,
                                        bool earlyStart = false);

/// Its launch: a workgroup per kCombineRows rows of split_lse, the op's
/// `out` (of rank `outRank`, the last dim the columns) and, if `lse` is not
/// empty, `lse` collapsed into rows.
LaunchContract splitCombineLaunch(StringRef out, int64_t outRank,
                                  StringRef lse);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_SPLITCOMBINE_H
