//===- SWBAToGPU.h - SWBA ops to GPU kernels --------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H
#define SWBA_CONVERSION_SWBATOGPU_SWBATOGPU_H

#include "mlir/Support/LLVM.h"

#include "mlir/IR/Operation.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace mlir {
class RewritePatternSet;

namespace swba {

/// The chip of the GPU lowering and pipeline when none is named: sm_80, the
/// oldest chip the kernels run on, so that its PTX runs on every supported
/// GPU. Chips other than sm_90a only differ in the PTX/cubin target.
inline constexpr char kDefaultChip[] = "sm_80";

/// A chip the GPU kernels support, with the first PTX ISA version that
/// knows it (80 for PTX ISA 8.0).
struct ChipInfo {
  StringRef name;
  unsigned minPtxVersion;
};

/// The supported chip called `name` (e.g. "sm_90a"), or nothing.
std::optional<ChipInfo> lookupChip(StringRef name);

/// The supported chips' names, comma-separated, for diagnostics.
std::string supportedChips();

/// The version of a PTX ISA name such as "ptx80" that LLVM's NVPTX backend
/// knows (7.0 and later), or nothing.
std::optional<unsigned> parsePtxVersion(StringRef ptx);

/// Patterns that rewrite memref-form `swba.attention` into a gpu.launch_func
/// of a tensor-core kernel (nvgpu ldmatrix + mma.sync, sm_80 and later) in a
/// new gpu.module of the enclosing module.
void populateSWBAToGPUPatterns(RewritePatternSet &patterns);

/// Tile choices of the sm_90a forward kernel; 0 picks the per-head-dim
/// default (see SWBAToGPUHopper.cpp for the reasons).
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
/// 64 or 128 into the sm_90a backward: a warp-specialized dQ kernel on TMA
/// and warpgroup MMA (which also computes delta), then the dK/dV kernel.
/// They take precedence over populateSWBAGradToGPUPatterns.
void populateSWBAGradToGPUHopperPatterns(RewritePatternSet &patterns,
                                         HopperOptions options);

/// Emits an error at `op` and fails when the sm_90a kernel would take it
/// (swba.attention, head dims 64/128) but `options` give it a tiling that
/// does not fit (block-n, stages, shared memory).
LogicalResult checkHopperLowerable(Operation *op, HopperOptions options);

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
