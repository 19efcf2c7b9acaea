//===- SWBAToGPU.cpp - swba.attention to a tensor-core GPU kernel ---------===//
//
// Lowers memref-form swba.attention to a gpu.launch_func of a kernel in a
// gpu.module. One workgroup of 4 warps owns 64 or 128 query rows (one or two
// m16 tiles per warp, see KernelTiling in MmaSync/Kernels.h) of one (batch,
// head); its KV loop
// runs over the tiles of the rows' block window only (computeKeyWindow). K
// and V tiles are staged in shared memory, the next one loaded into
// registers while the current one is consumed;
// both products run on tensor cores through nvgpu.ldmatrix + nvgpu.mma.sync
// (m16n8k16, f16/bf16 in, f32 accumulate); the online softmax lives in the
// mma accumulator registers (fragment layouts: KernelBuilder.h). A tile
// that every row of the workgroup sees whole skips the element mask
// (isTileFullyVisible). The body is built in MmaSync/ForwardMainloop.cpp.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "LaunchContract.h"
#include "Hopper/Tiling.h"
#include "MmaSync/Kernels.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

struct AttentionOpToGPU : public OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    auto module = op->getParentOfType<ModuleOp>();
    if (!module)
      return rewriter.notifyMatchFailure(op, "expected an enclosing module");

    auto qType = cast<MemRefType>(op.getQuery().getType());
    auto vType = cast<MemRefType>(op.getValue().getType());
    Type elementType = qType.getElementType();
    int64_t headDim = qType.getDimSize(3), valueDim = vType.getDimSize(3);
    KernelTiling tiling = KernelTiling::get(headDim, valueDim);

    // The kernel: one gpu.module per op, named uniquely in the module.
    Location loc = op.getLoc();
    SmallVector<Value> args{op.getQuery(), op.getKey(), op.getValue(),
                            op.getOut()};
    if (op.getLse())
      args.push_back(op.getLse());
    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, loc,
                                        "swba_attention_kernels");

    // Shared memory: a K tile and a V tile; Q is staged through the K tile,
    // or through a buffer of its own when a workgroup has more query rows
    // than a K tile.
    SmallVector<Type> smemTypes{sharedTileType(elementType, kBlockN, headDim),
                                sharedTileType(elementType, kBlockN, valueDim)};
    if (tiling.blockM() > kBlockN)
      smemTypes.push_back(
          sharedTileType(elementType, tiling.blockM(), headDim));
    auto kernel = createKernel(rewriter, gpuModule, loc, "swba_fwd",
                               TypeRange(ValueRange(args)), smemTypes);
    Block &entry = kernel.getBody().front();
    rewriter.setInsertionPointToStart(&entry);
    ArrayRef<BlockArgument> smem = kernel.getWorkgroupAttributions();
    buildMmaForwardBody(rewriter, loc, op, tiling,
                        entry.getArguments().take_front(args.size()), smem[0],
                        smem[1], smem.size() > 2 ? smem[2] : smem[0],
                        elementType, headDim, valueDim);
    gpu::ReturnOp::create(rewriter, loc);

    LaunchContract launch{tileGrid("q", tiling.blockM()), kThreads};
    for (auto [name, value] : namedOperands(op))
      launch.params.push_back({name});
    emitLaunches(rewriter, op, {}, {{kernel, launch}});
    return success();
  }
};

} // namespace

LogicalResult mlir::swba::checkGPULowerable(Operation *op, bool hopper) {
  // Both ops start with q, k, v.
  auto qType = cast<ShapedType>(op->getOperand(0).getType());
  auto vType = cast<ShapedType>(op->getOperand(2).getType());
  Type elementType = qType.getElementType();
  if (!elementType.isF16() && !elementType.isBF16())
    return op->emitOpError() << "target=gpu supports f16 and bf16, got "
                             << elementType;
  // Past 128 only the sm_90a kernels hold a row's accumulators (O of 256
  // columns is 128 registers a thread of a warpgroup; the mma.sync kernel's
  // warps would need 256 for their 16 rows).
  int64_t d = qType.getDimSize(3), dv = vType.getDimSize(3);
  bool mmaSync = d % 16 == 0 && d >= 16 && d <= 128 && dv % 16 == 0 &&
                 dv >= 16 && dv <= 128;
  auto [kernelD, kernelDv] = gpu_kernels::kernelHeadDims(op);
  if (!mmaSync && !(hopper && gpu_kernels::coversHeadDims(kernelD, kernelDv)))
    return op->emitOpError()
           << "target=gpu supports head dims that are multiples of 16 "
              "from 16 to 128 (64 and 128 are the tuned ones), and with "
              "chip=sm_90a multiples of 16 from 64 to 256, got "
           << d << " and " << dv;
  for (Value operand : op->getOperands()) {
    auto memref = dyn_cast<MemRefType>(operand.getType());
    if (memref && !memref.getLayout().isIdentity())
      return op->emitOpError()
             << "target=gpu needs contiguous (identity-layout) memrefs, got "
             << memref;
  }
  return success();
}

void mlir::swba::populateSWBAToGPUPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionOpToGPU>(patterns.getContext());
}
