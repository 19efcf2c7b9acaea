//===- SWBAToGPUHopper.cpp - swba.attention to a wgmma + TMA kernel -------===//
//
// The sm_90a forward kernel (--lower-swba{target=gpu chip=sm_90a}), for head
// dims 64 and 128. A workgroup of 1 + n warpgroups owns 64 n query rows of
// one (batch, head), n = 3 at head dim 64 and 2 at 128 (getTiling):
//
//  * warpgroup 0 is the producer: it gives up registers (setmaxnreg) and one
//    thread issues TMA loads (nvgpu.tma.async.load, 128B swizzle) of Q once
//    and of the K and V tiles of the block window into a ring of `stages`
//    shared-memory slots, each completing on its "full" mbarrier, after
//    waiting on the slot's "empty" mbarrier;
//  * warpgroups 1 to n are consumers of 64 query rows each: S = Q K^T on
//    warpgroup MMA with both operands in shared memory
//    (nvvm.wgmma.mma_async), online softmax in the accumulator registers,
//    then O += P V with P taken straight from registers (the register-A form
//    of wgmma, which no MLIR op offers: llvm.inline_asm), releasing each
//    slot as soon as the MMAs reading it have retired.
//
// Why not nvgpu.warpgroup.mma: it reads A only from shared memory (P would
// take a round trip through shared memory), it steps a K-major B by the
// MN-major stride (wrong for K^T), and it waits for completion right after
// issuing. docs/DESIGN.md (section 3) has the details and the layouts.
//
// Shared memory is one extern buffer @swba_smem (dynamic shared memory;
// gpu.dynamic_shared_memory would overlap the mbarriers in LLVM 22), 1024-B
// aligned, holding
//   Q [D/64][64 n rows][64]   then   K[stage][D/64][BN][64]   then
//   V[stage][Dv/64][BN][64]
// where every [rows][64] block of 16-bit elements is one TMA box: 128-byte
// rows in the 128B-swizzled layout that wgmma's descriptors describe.
//
// With split-kv the forward is two kernels: swba_fwd_split, whose grid's
// z is splits x batch and whose workgroups each take a share of their
// query tile's key tiles (Workgroup.h), leaving normalized partial O and lse
// in f32 buffers [splits, B Hq Nq, Dv] and [splits, B Hq Nq], then
// swba_split_combine (SplitCombine.h), which merges them by their lse into
// out and lse. The count of splits is a launch scalar: the host code made
// here launches split-kv splits, a runtime picks its own from the shapes.
//
// The tensor maps reach the kernel as pointers (the last three parameters)
// to 128-byte CUtensorMaps in global memory; the host code made here creates
// them with nvgpu.tma.create.descriptor, the Python runtime with
// cuTensorMapEncodeTiled.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "Hopper/Kernels.h"
#include "LaunchContract.h"
#include "SplitCombine.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// The persistent forward's tile counter: one i32, zeroed at each launch.
constexpr llvm::StringLiteral kTileCounterBuffer = "tile_counter";
MemRefType tileCounterType(MLIRContext *context) {
  return MemRefType::get({1}, IntegerType::get(context, 32));
}

int64_t valueDimOf(AttentionOp op) {
  return cast<MemRefType>(op.getValue().getType()).getDimSize(3);
}

struct AttentionOpToWgmma : public OpRewritePattern<AttentionOp> {
  AttentionOpToWgmma(MLIRContext *context, HopperOptions options)
      : OpRewritePattern(context, /*benefit=*/2), options(options) {}

  HopperOptions options;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    auto module = op->getParentOfType<ModuleOp>();
    if (!module)
      return rewriter.notifyMatchFailure(op, "expected an enclosing module");
    auto [headDim, valueDim] = kernelHeadDims(op);
    FailureOr<HopperTiling> maybeTiling = getTiling(
        headDim, valueDim,
        withWindowTiling(options, headDim, valueDim, op.getBlockSize(),
                         op.getWindow()));
    if (failed(maybeTiling))
      return rewriter.notifyMatchFailure(
          op, "head dims not multiples of 64 up to 256, nor of 16 past 64");
    HopperTiling tiling = *maybeTiling;
    SharedLayout layout =
        forwardLayout(tiling, headDim, valueDim,
                      BlockWindow{static_cast<int64_t>(op.getBlockSize()),
                                  static_cast<int64_t>(op.getWindow())},
                      options.splitKv > 0);
    if (!fits(tiling, layout))
      return rewriter.notifyMatchFailure(op, "tiling does not fit");

    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, op.getLoc(),
                                        "swba_attention_kernels");
    if (options.splitKv > 0) {
      rewriteSplit(op, rewriter, gpuModule, tiling, layout);
      return success();
    }
    // q, k, v, out[, lse], then the tensor maps of q, k, v. A persistent
    // kernel's grid is one workgroup an SM (the launch scalar sm_count).
    std::array<GridDim, 3> grid =
        tiling.persistent
            ? std::array<GridDim, 3>{GridDim{SizeRef::scalar(kSmCountScalar)},
                                     GridDim{Size::one()},
                                     GridDim{Size::one()}}
            : tileGrid("q", tiling.blockM());
    LaunchContract launch{grid, tiling.threads(), layout.total()};
    for (auto [name, value] : namedOperands(op))
      launch.params.push_back({name});
    // (A persistent kernel's workgroups claim query tiles from a zeroed
    // counter, its last memref.)
    if (tiling.persistent)
      launch.params.push_back({kTileCounterBuffer});
    auto kernel = createForwardKernel(op, rewriter, gpuModule, tiling, layout,
                                      "swba_fwd", launch, /*split=*/false);
    if (!tiling.persistent) {
      emitLaunches(rewriter, op, {}, {{kernel, launch}});
      return success();
    }
    // The host code launches kHostSmCount workgroups, or one a query tile
    // where there are fewer tiles (at least one: it finds none to claim).
    rewriter.setInsertionPoint(op);
    Location loc = op.getLoc();
    auto dim = [&](int64_t i) -> Value {
      return memref::DimOp::create(rewriter, loc, op.getQuery(), i);
    };
    auto constant = [&](int64_t c) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, c);
    };
    Value tiles = arith::MulIOp::create(
        rewriter, loc, arith::MulIOp::create(rewriter, loc, dim(0), dim(1)),
        arith::CeilDivUIOp::create(rewriter, loc, dim(2),
                                   constant(tiling.blockM())));
    Value sms = arith::MaxUIOp::create(
        rewriter, loc,
        arith::MinUIOp::create(rewriter, loc, tiles, constant(kHostSmCount)),
        constant(1));
    emitLaunches(rewriter, op,
                 {LaunchBuffer{kTileCounterBuffer, tileCounterType(op.getContext()),
                               {}, /*zero=*/true}},
                 {{kernel, launch}}, {{kSmCountScalar, sms}});
    return success();
  }

private:
  /// The kernel `name` of `launch` (the memref parameters given, the tensor
  /// maps of q, k, v added here) with the forward's body.
  gpu::GPUFuncOp createForwardKernel(AttentionOp op, RewriterBase &rewriter,
                                     gpu::GPUModuleOp gpuModule,
                                     const HopperTiling &tiling,
                                     const SharedLayout &layout, StringRef name,
                                     LaunchContract &launch, bool split) const {
    Location loc = op.getLoc();
    Type elementType =
        cast<MemRefType>(op.getQuery().getType()).getElementType();
    auto qMapType = tensorMapType(elementType, tiling.blockM());
    auto kvMapType = tensorMapType(elementType, tiling.blockN);
    llvm::StringMap<Type> types;
    for (auto [tensorName, value] : namedOperands(op))
      types[tensorName] = value.getType();
    types[kSplitOutBuffer] = splitOutType(op.getContext(), valueDimOf(op));
    types[kSplitLseBuffer] = splitLseType(op.getContext());
    types[kTileCounterBuffer] = tileCounterType(op.getContext());
    SmallVector<Type> args;
    for (const KernelParam &param : launch.params)
      args.push_back(types.lookup(param.tensor));
    launch.params.append({{"q", qMapType}, {"k", kvMapType}, {"v", kvMapType}});
    // The persistent one pass stores O through TMA (64-row boxes).
    bool stagesOut = layout.outStagingBytes > 0;
    if (stagesOut)
      launch.params.push_back(
          {"out", tensorMapType(elementType, kRowsPerConsumer)});
    SmallVector<Value> maps;
    auto kernel =
        createHopperKernel(rewriter, gpuModule, loc, name, args,
                           launch.mapTypes(), tiling.threads(), maps,
                           tiling.perSM);
    auto [headDim, valueDim] = kernelHeadDims(op);
    // The split kernel lets the combine kernel after it start at once: it
    // waits for this one before it reads the partials.
    if (split)
      NVVM::GriddepcontrolOp::create(
          rewriter, loc, NVVM::GridDepActionKind::launch_dependents);
    // (The out map as the kernel's pointer: the TMA store takes it.)
    Value outMap =
        stagesOut ? kernel.getArgument(kernel.getNumArguments() - 1) : Value();
    buildForwardBody(rewriter, loc, op, tiling, layout,
                     kernel.getArguments().take_front(args.size()), maps,
                     elementType, headDim, valueDim, split, outMap);
    gpu::ReturnOp::create(rewriter, loc);
    return kernel;
  }

  /// The split-KV forward: swba_fwd_split over (heads, query tiles,
  /// splits x batch) into the partial buffers, then swba_split_combine.
  void rewriteSplit(AttentionOp op, PatternRewriter &rewriter,
                    gpu::GPUModuleOp gpuModule, const HopperTiling &tiling,
                    const SharedLayout &layout) const {
    std::array<GridDim, 3> grid = tileGrid("q", tiling.blockM());
    grid[2].size = Size::product({{"q", 0}, SizeRef::scalar(kSplitsScalar)});
    LaunchContract launch{grid, tiling.threads(), layout.total(),
                          {{"q"}, {"k"}, {"v"}, {kSplitOutBuffer},
                           {kSplitLseBuffer}}};
    auto kernel = createForwardKernel(op, rewriter, gpuModule, tiling, layout,
                                      "swba_fwd_split", launch, /*split=*/true);
    auto outType = cast<MemRefType>(op.getOut().getType());
    LaunchContract combineLaunch =
        splitCombineLaunch("out", outType.getRank(), op.getLse() ? "lse" : "");
    combineLaunch.earlyStart = true;
    auto combine = createSplitCombineKernel(
        rewriter, gpuModule, op.getLoc(), outType.getElementType(),
        valueDimOf(op), static_cast<bool>(op.getLse()),
        combineLaunch.earlyStart);
    Size rows = Size::product({{"q", 0}, {"q", 1}, {"q", 2}});
    rewriter.setInsertionPoint(op);
    Value splits = arith::ConstantIndexOp::create(rewriter, op.getLoc(),
                                                  options.splitKv);
    emitLaunches(rewriter, op,
                 splitBuffers(op.getContext(), valueDimOf(op), rows),
                 {{kernel, launch}, {combine, combineLaunch}},
                 {{kSplitsScalar, splits}});
  }
};

} // namespace

LogicalResult mlir::swba::checkHopperLowerable(Operation *op,
                                               HopperOptions options) {
  auto attention = dyn_cast<AttentionOp>(op);
  if (!attention)
    return success();
  auto [headDim, valueDim] = kernelHeadDims(op);
  FailureOr<HopperTiling> tiling = getTiling(
      headDim, valueDim,
      withWindowTiling(options, headDim, valueDim, attention.getBlockSize(),
                       attention.getWindow()));
  if (failed(tiling))
    return success(); // the mma.sync kernel
  SharedLayout layout =
      forwardLayout(*tiling, headDim, valueDim,
                    BlockWindow{static_cast<int64_t>(attention.getBlockSize()),
                                static_cast<int64_t>(attention.getWindow())},
                    options.splitKv > 0);
  if (fits(*tiling, layout))
    return success();
  if (!accumulatorsFit(*tiling, valueDim) && sharedMemoryFits(*tiling, layout))
    return op->emitOpError()
           << "chip=sm_90a: workgroups-per-sm=" << tiling->perSM
           << " with consumers=" << tiling->consumers << " gives a thread "
           << launchRegisters(tiling->consumers + 1, tiling->perSM)
           << " registers at launch, too few for a consumer's 64 x "
           << std::max(tiling->blockN, valueDim)
           << " f32 accumulator (block-n=" << tiling->blockN
           << ", value head dim " << valueDim
           << "); two or three workgroups an SM take block-n=64 at head dim "
              "64";
  return op->emitOpError()
         << "chip=sm_90a: block-n=" << tiling->blockN
         << " stages=" << tiling->stages
         << " workgroups-per-sm=" << tiling->perSM
         << " needs block-n a multiple of 64 up to 256, at least one stage, "
            "one to three workgroups an SM and at most "
         << kMaxSharedBytes / std::max<int64_t>(tiling->perSM, 1) -
                kStaticSharedBytes
         << " bytes of shared memory a workgroup for Q and the K/V stages "
            "(this takes "
         << layout.total() << ")";
}

LogicalResult mlir::swba::checkSplitKvLowerable(Operation *op,
                                                HopperOptions options) {
  auto attention = dyn_cast<AttentionOp>(op);
  if (!attention || options.splitKv == 0)
    return success();
  auto [headDim, valueDim] = kernelHeadDims(op);
  if (options.chip == "sm_90a" &&
      succeeded(getTiling(headDim, valueDim, options)))
    return success();
  return op->emitOpError()
         << "split-kv=" << options.splitKv
         << " needs the sm_90a forward (chip=sm_90a, head dims multiples of "
            "64 up to 256 or of 16 past 64), got chip="
         << options.chip << " and head dims "
         << cast<ShapedType>(attention.getQuery().getType()).getDimSize(3)
         << "/" << valueDimOf(attention);
}

void mlir::swba::populateSWBAToGPUHopperPatterns(RewritePatternSet &patterns,
                                                 HopperOptions options) {
  patterns.add<AttentionOpToWgmma>(patterns.getContext(), options);
}
