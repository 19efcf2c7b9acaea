//===- Kernels.h - Bodies of the mma.sync kernels ---------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the tiling and the body of the
// mma.sync forward kernel (SWBAToGPU.cpp makes the kernel and its launch;
// the body is built here, part by part, in ForwardMainloop.cpp). The
// mma.sync backward's bodies are in SWBAGradToGPU.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_MMASYNC_KERNELS_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_MMASYNC_KERNELS_H

#include "../KernelBuilder.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

namespace mlir::swba::gpu_kernels {

/// How the forward kernel for one op is tiled.
struct KernelTiling {
  /// m16 row tiles per warp. Two tiles share every K and V fragment read from
  /// shared memory, halving that traffic per FLOP, which bounds an
  /// mma.sync kernel; at head dim 128 the accumulators of two tiles would
  /// not fit the 255 registers of a thread.
  int64_t mTiles;
  /// Whether consecutive workgroups take the same query tile of successive
  /// heads (every head's heaviest tiles in the first wave: short sequences,
  /// few workgroups) or successive query tiles of one head (neighbours share
  /// K/V in L2: long sequences, many 64-row workgroups at head dim 128).
  bool headsFastest;
  int64_t blockM() const { return 16 * kWarps * mTiles; }

  static KernelTiling get(int64_t headDim, int64_t valueDim) {
    bool small = headDim <= 64 && valueDim <= 64;
    return {small ? 2 : 1, small};
  }
};

/// The forward kernel's body. `args`: q, k, v, out and, if the op has one,
/// lse; `sK`, `sV`: shared K and V tiles; `sQ`: where Q is staged (the K
/// tile, or a buffer of its own when a workgroup has more query rows than
/// a K tile).
void buildMmaForwardBody(OpBuilder &builder, Location loc, AttentionOp op,
                         KernelTiling tiling, ValueRange args, Value sK,
                         Value sV, Value sQ, Type elementType, int64_t headDim,
                         int64_t valueDim);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_MMASYNC_KERNELS_H
