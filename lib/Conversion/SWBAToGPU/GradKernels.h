//===- GradKernels.h - The swba.attention_grad GPU kernels ------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the kernels of the backward that
// both paths share or combine (the delta kernel delta = rowsum(dout * out)
// that runs first, the mma.sync dQ and dK/dV kernels, the dQ conversion
// kernel of grad-fused-dq) and their launch, so that a lowering can combine
// an mma.sync kernel with a wgmma one.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H

#include "KernelBuilder.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include <functional>

namespace mlir::swba::gpu_kernels {

/// delta's type: memref<?x?x?xf32> ([B][Hq][Nq]).
MemRefType deltaType(MLIRContext *ctx);

/// The mma.sync dQ kernel (4 warps, 64 query rows per workgroup) with
/// parameters q, k, v, dout, lse, delta, out, dq, in `gpuModule`.
gpu::GPUFuncOp createQueryGradKernel(RewriterBase &rewriter,
                                     gpu::GPUModuleOp gpuModule,
                                     AttentionGradOp op);

/// The mma.sync dK/dV kernel (4 warps, 64 key rows per workgroup) with
/// parameters q, k, v, dout, lse, delta, dk, dv, in `gpuModule`.
gpu::GPUFuncOp createKeyValueGradKernel(RewriterBase &rewriter,
                                        gpu::GPUModuleOp gpuModule,
                                        AttentionGradOp op);

/// Rows of the delta kernel's workgroup: one quad of threads a row.
constexpr int64_t kDeltaRows = kThreads / 4;

/// The delta kernel: delta = rowsum(dout * out) in f32, for kDeltaRows
/// query rows of one (batch, query head) per workgroup of kThreads threads;
/// each quad's 4 threads sum every fourth 16-byte chunk of a row and
/// combine by shuffles.
/// Parameters: dout, out, delta; grid (query heads, query rows /
/// kDeltaRows, batch). Any value dim that is a multiple of 16.
gpu::GPUFuncOp createDeltaKernel(RewriterBase &rewriter,
                                 gpu::GPUModuleOp gpuModule,
                                 AttentionGradOp op, Type elementType,
                                 int64_t valueDim);

/// dQ's f32 accumulator when the dK/dV kernel adds dQ up (grad-fused-dq,
/// TMA reduce-adds): memref<?x?x?xDxf32> ([B][Hq][Nq][D]).
MemRefType queryGradAccumType(AttentionGradOp op);

/// Rows of the dQ conversion kernel's workgroup.
constexpr int64_t kConvertRows = 32;

/// The dQ conversion kernel: dq = scale * dqAccum in dq's element type, for
/// kConvertRows rows of one (batch, query head) per workgroup of kThreads
/// threads, 8 elements a thread and step. Parameters: dqAccum, dq; grid
/// (query heads, query rows / kConvertRows, batch). Head dims that are a
/// multiple of 8.
gpu::GPUFuncOp createQueryGradConvertKernel(RewriterBase &rewriter,
                                            gpu::GPUModuleOp gpuModule,
                                            AttentionGradOp op);

/// How a backward kernel is launched: rows (of the queries for dQ, of the
/// keys for dK/dV) per workgroup, threads, dynamic shared memory, and the
/// parameters it takes after the memrefs (tensor maps), made on the host
/// from those memrefs.
struct GradLaunch {
  int64_t rows;
  int64_t threads = kThreads;
  int64_t sharedBytes = 0;
  std::function<SmallVector<Value>(LoopEmitter &, ArrayRef<Value>)>
      extraArgs = nullptr;
};

/// Replaces `op` by: a device buffer for delta, the delta kernel's launch
/// over (query heads, query tiles, batch) (parameters dout, out, delta),
/// the dQ launch over (query heads, query tiles, batch), the dK/dV launch
/// over (key heads, key tiles, batch), and freeing delta. dQ and dK/dV
/// read delta and nothing of each other's: they only follow the delta
/// kernel.
///
/// With a `convertKernel` instead of a dQ kernel, the dK/dV kernel adds dQ
/// up: a zeroed f32 dqAccum buffer goes to it after delta (parameters q, k,
/// v, dout, lse, delta, dqAccum, dk, dv), and the conversion kernel then
/// writes dq from it over (query heads, query tiles, batch).
void launchGradKernels(RewriterBase &rewriter, AttentionGradOp op,
                       gpu::GPUFuncOp dqKernel, GradLaunch dqLaunch,
                       gpu::GPUFuncOp kvKernel, GradLaunch kvLaunch,
                       gpu::GPUFuncOp deltaKernel = nullptr,
                       GradLaunch deltaLaunch = GradLaunch{0},
                       gpu::GPUFuncOp convertKernel = nullptr,
                       GradLaunch convertLaunch = GradLaunch{0});

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H
