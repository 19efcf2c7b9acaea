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
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/PatternMatch.h"

#include <array>

namespace mlir::swba::gpu_kernels {

/// Attribute names of the contract in the lowered IR.
constexpr llvm::StringLiteral kLaunchAttrName = "swba.launch";
constexpr llvm::StringLiteral kBuffersAttrName = "swba.buffers";
constexpr llvm::StringLiteral kScalarsAttrName = "swba.scalars";
/// `false` on a gpu.module whose kernels' results may differ in their last
/// bits from run to run (additions in a varying order); absent: they do not.
constexpr llvm::StringLiteral kReproducibleAttrName = "swba.reproducible";

/// A runtime size: dimension `dim` of the tensor named `tensor` (an operand
/// of the op, see namedOperands, or a buffer of the launch), or, with
/// `dim == kScalar`, the launch scalar named `tensor`: a count the launcher
/// chooses at each launch (the number of splits of the split-KV forward
/// and of the decode kernels).
struct SizeRef {
  static constexpr int64_t kScalar = -1;
  StringRef tensor;
  int64_t dim;

  static SizeRef scalar(StringRef name) { return {name, kScalar}; }
  bool isScalar() const { return dim == kScalar; }
};

/// The launch scalar of a persistent kernel's grid: the device's count of
/// SMs, which a runtime fills in. The host code made by the lowering
/// launches kHostSmCount (an H100 or H200 SXM's): any count is correct,
/// another than the device's only slower.
constexpr llvm::StringLiteral kSmCountScalar = "sm_count";
constexpr int64_t kHostSmCount = 132;

/// A product of runtime sizes (no factor: 1).
struct Size {
  SmallVector<SizeRef, 1> factors;

  Size(StringRef tensor, int64_t dim) : factors{SizeRef{tensor, dim}} {}
  Size(SizeRef ref) : factors{ref} {}
  static Size product(ArrayRef<SizeRef> factors) {
    Size size;
    size.factors.assign(factors.begin(), factors.end());
    return size;
  }
  static Size one() { return Size(); }

private:
  Size() = default;
};

/// One grid dimension: ceildiv(size, per) chunks of `per`. With `most`
/// past one, a workgroup may run up to `most` chunks one after another
/// (the kernel takes ceildiv(chunks, extent) of them from the extent it was
/// launched with, so any extent in [ceildiv(chunks, most), chunks] is
/// right). The launcher puts t chunks in a workgroup, ceildiv(chunks, t)
/// workgroups, for the t in [1, most] (the largest of equals) that
/// minimizes the waves of workgroups times a workgroup's time:
///   ceildiv(grid's workgroups, perSM x SMs) x (100 t + overhead)
/// where `perSM` workgroups run on an SM at once and `overhead` is a
/// workgroup's start and end in percent of a chunk's time.
struct GridDim {
  Size size;
  int64_t per = 1;
  int64_t most = 1;
  int64_t perSM = 1;
  int64_t overhead = 0;
};

/// One kernel parameter, in order: the expanded memref descriptor of a
/// tensor (with `collapse`, of the tensor with those groups of dims merged:
/// rows of a generic kernel), or (with `map` set) a pointer to the 128-byte
/// CUtensorMap of the tensor seen as [B * H][N][D], in boxes of `map`'s
/// shape.
struct KernelParam {
  StringRef tensor;
  nvgpu::TensorMapDescriptorType map = nullptr;
  SmallVector<ReassociationIndices> collapse = {};
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
  /// When set, the kernel is launched only when this launch scalar is
  /// above 1 (a combine kernel with nothing to combine at one split).
  StringRef onlyAboveOne = {};
  /// The kernel reads what the launch before it (on the same stream)
  /// writes only after `griddepcontrol.wait`, and reads nothing before it
  /// that work older than that launch left unfinished: a launcher may
  /// start it while that launch ends (programmatic dependent launch). The
  /// launch before it lets it start by `griddepcontrol.launch_dependents`.
  bool earlyStart = false;

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
  SmallVector<Size> sizes;
  bool zero = false;
};

/// The op's operands by the names the contracts use: q, k, v, out[, lse]
/// for swba.attention; q, k, v, out, dout, lse, dq, dk, dv for
/// swba.attention_grad; q, k_cache, v_cache, page_table, seq_lens, out[,
/// lse] for swba.paged_attention.
SmallVector<std::pair<StringRef, Value>> namedOperands(Operation *op);

/// Replaces `op` by the launches of `kernels` in order (with their
/// `buffers` allocated first and freed last) and attaches the contracts to
/// the kernels, and the buffers and the names of the launch `scalars` to
/// their gpu.module. The host code made here launches with the values of
/// `scalars`; another launcher picks its own.
void emitLaunches(
    RewriterBase &rewriter, Operation *op, ArrayRef<LaunchBuffer> buffers,
    ArrayRef<std::pair<gpu::GPUFuncOp, LaunchContract>> kernels,
    ArrayRef<std::pair<StringRef, Value>> scalars = {});

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_LAUNCHCONTRACT_H
