//===- LaunchContract.h - How the host launches a SWBA kernel ---*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: everything a host needs to launch
// the kernels of one swba op, filled in once per kernel kind by the
// lowering. The same description emits the host code (buffers, tensor maps,
// gpu.launch_func grids, in order) and is attached to the kernels as data
// (`swba.launch` on each gpu.func, `swba.buffers` on the gpu.module), which
// --swba-write-launch-manifest writes out as JSON for other runtimes (the
// Python bridge launches from it alone). So the emitted host code and the
// manifest cannot disagree.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_LAUNCHCONTRACT_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_LAUNCHCONTRACT_H

#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/PatternMatch.h"

#include <array>

namespace mlir::swba::gpu_kernels {

/// Attribute names of the contract in the lowered IR.
constexpr llvm::StringLiteral kLaunchAttrName = "swba.launch";
constexpr llvm::StringLiteral kBuffersAttrName = "swba.buffers";
constexpr llvm::StringLiteral kSizesAttrName = "swba.sizes";

/// A size the host chooses at each launch, not the shape of any tensor:
/// the split count of the decode kernels (any value >= 1 gives the same
/// result; the runtime picks it from the shapes and the GPU's size).
constexpr llvm::StringLiteral kSplitsSize = "splits";

/// A runtime size: dimension `dim` of the tensor named `tensor` (an operand
/// of the op, see namedOperands, or a buffer of the launch), or, with dim
/// 0, a size the host chooses (LaunchSize).
struct SizeRef {
  StringRef tensor;
  int64_t dim;
};

/// One grid dimension: ceildiv(size, per).
struct GridDim {
  SizeRef size;
  int64_t per = 1;
};

/// One kernel parameter, in order: the expanded memref descriptor of a
/// tensor, or (with `map` set) a pointer to the 128-byte CUtensorMap of the
/// tensor seen as [B * H][N][D], in boxes of `map`'s shape.
struct KernelParam {
  StringRef tensor;
  nvgpu::TensorMapDescriptorType map = nullptr;
};

/// The grid of the workgroup-to-tile mapping (mapWorkgroup) over the
/// tensor `rowsOf` [B][H][N][...] (q for query tiles, k for key tiles):
/// (H, ceildiv(N, rowsPer), B).
inline std::array<GridDim, 3> tileGrid(StringRef rowsOf, int64_t rowsPer) {
  return {GridDim{{rowsOf, 1}}, GridDim{{rowsOf, 2}, rowsPer},
          GridDim{{rowsOf, 0}}};
}

/// How one kernel is launched.
struct LaunchContract {
  std::array<GridDim, 3> grid;
  int64_t threads;
  /// Dynamic shared memory bytes (0: none).
  int64_t sharedBytes = 0;
  SmallVector<KernelParam> params;
  /// 0: the caller's stream. 1: a second stream, which may run it at once
  /// with the stream-0 kernels that follow it; it waits for the stream-0
  /// work before it, and the op's work ends when both streams' do.
  int64_t stream = 0;

  /// The types of the tensor-map parameters, in order (the kernel takes
  /// them after its memrefs).
  SmallVector<nvgpu::TensorMapDescriptorType> mapTypes() const {
    SmallVector<nvgpu::TensorMapDescriptorType> maps;
    for (const KernelParam &param : params)
      if (param.map)
        maps.push_back(param.map);
    return maps;
  }
};

/// A device buffer the launches share, allocated before them (zeroed when
/// `zero`) and freed after.
struct LaunchBuffer {
  StringRef name;
  MemRefType type;
  /// The sizes of the type's dynamic dims, in order.
  SmallVector<SizeRef> sizes;
  bool zero = false;
};

/// A size the host chooses (kSplitsSize), with the value the emitted host
/// code launches with.
struct LaunchSize {
  StringRef name;
  Value value;
};

/// The op's operands by the names the contracts use: q, k, v, out[, lse]
/// for swba.attention; q, k, v, out, dout, lse, dq, dk, dv for
/// swba.attention_grad; q, k_cache, v_cache, page_table, seq_lens, out[,
/// lse] for swba.paged_attention.
SmallVector<std::pair<StringRef, Value>> namedOperands(Operation *op);

/// Replaces `op` by the launches of `kernels` in order (with their
/// `buffers` allocated first and freed last) and attaches the contracts to
/// the kernels and the buffers and host-chosen `sizes` to their gpu.module.
void emitLaunches(RewriterBase &rewriter, Operation *op,
                  ArrayRef<LaunchBuffer> buffers,
                  ArrayRef<std::pair<gpu::GPUFuncOp, LaunchContract>> kernels,
                  ArrayRef<LaunchSize> sizes = {});

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_LAUNCHCONTRACT_H
