//===- GradKernels.h - The swba.attention_grad GPU kernels ------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the kernels of the backward (on
// both paths a delta kernel, delta = rowsum(dout * out), then dQ and dK/dV,
// which read delta and nothing of each other; on sm_90a with grad-dq-delta
// dQ computes delta and dK/dV runs after it) and their launch contracts, so
// that a lowering can combine an mma.sync kernel with a wgmma one.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H

#include "KernelBuilder.h"
#include "LaunchContract.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

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

/// dQ's f32 accumulator when the dK/dV kernel adds dQ up (TMA
/// reduce-adds): memref<?x?x?xDxf32> ([B][Hq][Nq][D]).
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

/// The backward's device buffers: `delta` ([B][Hq][Nq] f32) and, when the
/// dK/dV kernel adds dQ up, `dq_accum` (queryGradAccumType, zeroed).
SmallVector<LaunchBuffer> gradBuffers(AttentionGradOp op, bool fusedQueryGrad);

/// The delta kernel's launch: dout, out, delta over (query heads, query
/// rows / kDeltaRows, batch).
LaunchContract deltaLaunch();

/// The dQ conversion kernel's launch: dq_accum, dq over (query heads, query
/// rows / kConvertRows, batch).
LaunchContract convertLaunch();

/// The memref parameters of a dQ kernel: q, k, v, dout, lse, delta, out, dq.
SmallVector<KernelParam> queryGradParams();

/// The memref parameters of a dK/dV kernel: q, k, v, dout, lse, delta,
/// [dq_accum,] dk, dv.
SmallVector<KernelParam> keyValueGradParams(bool fusedQueryGrad);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_GRADKERNELS_H
