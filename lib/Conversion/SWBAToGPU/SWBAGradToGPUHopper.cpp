//===- SWBAGradToGPUHopper.cpp - swba.attention_grad on wgmma + TMA -------===//
//
// The sm_90a backward (--lower-swba{target=gpu chip=sm_90a}), head dims 64
// and 128: a dQ kernel and a dK/dV kernel, both warp-specialized on
// warpgroup MMA and TMA, both deterministic (no atomics: each workgroup
// owns its rows; dK/dV sum the GQA group themselves). With grad-fused-dq
// the dK/dV kernel adds dQ up instead (Hopper/FusedQueryGrad.cpp), with
// TMA reduce-adds into an f32 buffer and a conversion kernel after it.
//
// The kernel bodies are built from the parts in Hopper/
// (QueryGradMainloop.cpp, KeyValueGradMainloop.cpp, FusedQueryGrad.cpp);
// the tile sizes and the reasons for them are in Hopper/Tiling.h.
//
// The two consumers of either kernel issue
// their products independently: taking turns at the tensor cores
// (TurnTaking, the grad-ping-pong option), as the forward does, made the
// dQ kernel 8-10% and the dK/dV kernel 3-5% slower at head dim 128 on the
// H100 (docs/BENCHMARKS.md). Their element-wise work per tile is shorter
// than the forward's softmax, and a consumer waiting for the other's turn
// left the tensor cores idle as often as it filled them.
//
// A small delta kernel (delta = rowsum(dout * out)) runs first, and both
// kernels read its output and nothing of each other's: a runtime may run
// them at once (two streams), and each one's tail of light workgroups then
// shares the GPU with the other's work. With grad-dq-delta the dQ kernel
// computes delta of its rows itself and writes it, and the dK/dV kernel
// runs after it: one kernel and one pass over O and dO less.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "GradKernels.h"
#include "Hopper/Kernels.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// A dK/dV workgroup's start and end (K and V, the first Q/dO tiles, dK
/// and dV out) in percent of one of its key tiles, with grad-kv-tiles past
/// one (GridDim's overhead): on an H200 (bf16, 2026-12-04) a 128-token
/// window's dK/dV kernel took 195 us at one tile a workgroup and 156 at
/// eight, in waves of the same count: (100 + 30) / (100 + 30 / 8).
constexpr int64_t kKeyTileOverhead = 30;

struct AttentionGradOpToWgmma : public OpRewritePattern<AttentionGradOp> {
  AttentionGradOpToWgmma(MLIRContext *context, HopperOptions options)
      : OpRewritePattern(context, /*benefit=*/2), options(options) {}

  HopperOptions options;

  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    auto module = op->getParentOfType<ModuleOp>();
    if (!module)
      return rewriter.notifyMatchFailure(op, "expected an enclosing module");
    Type elementType =
        cast<MemRefType>(op.getQuery().getType()).getElementType();
    auto [headDim, valueDim] = kernelHeadDims(op);
    if (!coversHeadDims(headDim, valueDim))
      return rewriter.notifyMatchFailure(op, "head dims not multiples of 64 "
                                             "up to 256, nor of 16 past 64");

    Location loc = op.getLoc();
    HopperOptions tiles = withWindowTiling(
        options, headDim, valueDim, op.getBlockSize(), op.getWindow());
    if (!gradFits(headDim, valueDim, tiles)) // checkHopperGradLowerable
      return rewriter.notifyMatchFailure(op, "backward tiles do not fit");
    QueryGradLayout layout = queryGradLayout(headDim, valueDim, tiles);
    SmallVector<KeyValueGradLayout> kvLayouts;
    for (KeyValueGradPart part : keyValueGradParts(headDim, valueDim))
      kvLayouts.push_back(keyValueGradLayout(headDim, valueDim, tiles, part));
    const bool fused = fusesQueryGrad(tiles);
    const bool dqDelta = queryGradComputesDelta(tiles);

    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, loc,
                                        "swba_attention_grad_kernels");
    // dQ's reduce-adds land in whichever order the workgroups reach them.
    if (fused)
      gpuModule->setAttr(kReproducibleAttrName, rewriter.getBoolAttr(false));
    // q, k, v, dout, lse, delta, out, dq; then the maps of q, k, v, dout.
    SmallVector<Type> dqArgs{op.getQuery().getType(), op.getKey().getType(),
                             op.getValue().getType(),
                             op.getGradOut().getType(), op.getLse().getType(),
                             deltaType(op.getContext()),
                             op.getOut().getType(),
                             op.getGradQuery().getType()};
    const QueryGradTiling &dqTiling = layout.tiling;
    auto rowsMap = tensorMapType(elementType, dqTiling.blockM());
    auto keysMap = tensorMapType(elementType, layout.blockN);
    LaunchContract dqLaunch{tileGrid("q", dqTiling.blockM()),
                            dqTiling.threads(), layout.total(),
                            queryGradParams()};
    dqLaunch.params.append(
        {{"q", rowsMap}, {"k", keysMap}, {"v", keysMap}, {"dout", rowsMap}});
    // (With grad-dq-delta, O's rows come in with Q's and dO's.)
    if (dqDelta)
      dqLaunch.params.push_back({"out", rowsMap});
    gpu::GPUFuncOp dqKernel;
    if (!fused) {
      SmallVector<Value> maps;
      dqKernel = createHopperKernel(rewriter, gpuModule, loc, "swba_bwd_dq",
                                    dqArgs, dqLaunch.mapTypes(),
                                    dqTiling.threads(), maps, dqTiling.perSM());
      buildQueryGradBody(rewriter, loc, op, layout,
                         dqKernel.getArguments().take_front(dqArgs.size()),
                         maps, elementType, headDim, valueDim,
                         options.gradPingPong, dqDelta);
      gpu::ReturnOp::create(rewriter, loc);
    }
    // q, k, v, dout, lse, delta, [dqAccum,] dk, dv; then the maps of q, k,
    // v, dout [and dqAccum, in [64 rows][32 f32] boxes].
    SmallVector<Type> kvArgs(ArrayRef<Type>(dqArgs).take_front(6));
    if (fused)
      kvArgs.push_back(queryGradAccumType(op));
    kvArgs.append({op.getGradKey().getType(), op.getGradValue().getType()});
    SmallVector<std::pair<gpu::GPUFuncOp, LaunchContract>, 2> kvKernels;
    for (const KeyValueGradLayout &kvLayout : kvLayouts)
      kvKernels.push_back(buildKeyValueGradKernel(
          rewriter, gpuModule, op, kvLayout, kvArgs, fused, dqDelta));

    // With grad-dq-delta, the dQ kernel writes delta and dK/dV reads it
    // after it, on the same stream.
    if (dqDelta) {
      SmallVector<std::pair<gpu::GPUFuncOp, LaunchContract>, 3> launches{
          {dqKernel, dqLaunch}};
      launches.append(kvKernels);
      emitLaunches(rewriter, op, gradBuffers(op, false), launches);
      return success();
    }
    // (The delta kernel reads out and dout: the tensors' columns.)
    auto deltaKernel = createDeltaKernel(
        rewriter, gpuModule, op, elementType,
        cast<MemRefType>(op.getValue().getType()).getDimSize(3));
    if (fused) {
      auto convertKernel = createQueryGradConvertKernel(rewriter, gpuModule, op);
      emitLaunches(rewriter, op, gradBuffers(op, true),
                   {{deltaKernel, deltaLaunch()},
                    kvKernels.front(),
                    {convertKernel, convertLaunch()}});
    } else {
      SmallVector<std::pair<gpu::GPUFuncOp, LaunchContract>, 4> launches{
          {deltaKernel, deltaLaunch()}};
      launches.append(kvKernels);
      launches.push_back({dqKernel, dqLaunch});
      emitLaunches(rewriter, op, gradBuffers(op, false), launches);
    }
    return success();
  }

  /// The dK/dV kernel of `kvLayout`'s part and its launch: `kvArgs` are
  /// its memref parameters.
  std::pair<gpu::GPUFuncOp, LaunchContract> buildKeyValueGradKernel(
      PatternRewriter &rewriter, gpu::GPUModuleOp gpuModule, AttentionGradOp op,
      const KeyValueGradLayout &kvLayout, ArrayRef<Type> kvArgs, bool fused,
      bool afterQueryGrad) const {
    Location loc = op.getLoc();
    Type elementType =
        cast<MemRefType>(op.getQuery().getType()).getElementType();
    auto [headDim, valueDim] = kernelHeadDims(op);
    auto queryTileMap = tensorMapType(elementType, kvLayout.blockM);
    auto keyTileMap = tensorMapType(elementType, kvLayout.blockN());
    // Without fused dQ, dK/dV (the heavier workgroups) goes out first, on a
    // second stream, and dQ runs at once with it; after the dQ kernel that
    // writes delta, on its stream.
    std::array<GridDim, 3> kvGrid = tileGrid("k", kvLayout.blockN());
    kvGrid[1].most = kvLayout.keyTiles;
    kvGrid[1].perSM = kvLayout.perSM();
    kvGrid[1].overhead = kKeyTileOverhead;
    LaunchContract kvLaunch{kvGrid, kvLayout.threads(), kvLayout.total(),
                            keyValueGradParams(fused),
                            /*stream=*/fused || afterQueryGrad ? 0 : 1};
    // After the dQ kernel that writes delta, the dK/dV kernel may start
    // while it ends: its consumers wait for it before reading delta.
    kvLaunch.earlyStart = afterQueryGrad;
    kvLaunch.params.append({{"q", queryTileMap},
                            {"k", keyTileMap},
                            {"v", keyTileMap},
                            {"dout", queryTileMap}});
    if (fused)
      kvLaunch.params.push_back(
          {"dq_accum", tensorMapType(rewriter.getF32Type(), kRowsPerConsumer)});
    SmallVector<Value> kvMaps;
    StringRef name = fused ? "swba_bwd_dkdvdq" : "swba_bwd_dkdv";
    if (kvLayout.part == KeyValueGradPart::Key)
      name = "swba_bwd_dk";
    if (kvLayout.part == KeyValueGradPart::Value)
      name = "swba_bwd_dv";
    auto kvKernel = createHopperKernel(rewriter, gpuModule, loc, name, kvArgs,
                                       kvLaunch.mapTypes(), kvLayout.threads(),
                                       kvMaps, kvLayout.perSM());
    ValueRange kvParams = kvKernel.getArguments().take_front(kvArgs.size());
    SmallVector<Value> kvOperands(kvParams.begin(), kvParams.end());
    Value dqAccumMap;
    if (fused) {
      // The kernel's dqAccum memref is not read: the TMA reduce goes
      // through the map (the raw pointer parameter).
      kvOperands.erase(kvOperands.begin() + 6);
      dqAccumMap = kvKernel.getArgument(kvArgs.size() + 4);
    }
    buildKeyValueGradBody(rewriter, loc, op, kvLayout, kvOperands, kvMaps,
                          elementType, headDim, valueDim, dqAccumMap,
                          options.gradPingPong, kvLaunch.earlyStart);
    gpu::ReturnOp::create(rewriter, loc);
    return {kvKernel, kvLaunch};
  }
};

} // namespace

/// The error for backward kernels that do not fit in shared memory.
static LogicalResult reportGradSharedMemory(Operation *op,
                                            const QueryGradLayout &dq,
                                            const KeyValueGradLayout &kv) {
  InFlightDiagnostic diag = op->emitOpError();
  diag << "chip=sm_90a: grad-stages=" << kv.stages;
  if (!kv.dsSlots && dq.stages != kv.stages)
    diag << " grad-key-stages=" << dq.stages;
  // (Past one key tile a dK/dV workgroup, K and V take two buffers.)
  if (kv.keyTiles > 1)
    diag << " grad-kv-tiles=" << kv.keyTiles;
  // (O's rows take the dQ kernel's shared memory too.)
  if (dq.oBytes)
    diag << " grad-dq-delta=true";
  diag << " needs more than the " << kMaxSharedBytes - kStaticSharedBytes
       << " bytes of shared memory a workgroup can have";
  const bool dqTwo = !kv.dsSlots && dq.tiling.perSM() > 1;
  if (dqTwo || kv.perSM() > 1)
    diag << ", " << kMaxSharedBytes / 2 - kStaticSharedBytes
         << " where two run on an SM ("
         << (dqTwo && kv.perSM() > 1 ? "grad-q-consumers=1, grad-kv-consumers=1"
             : dqTwo                 ? "grad-q-consumers=1"
                                     : "grad-kv-consumers=1")
         << ")";
  diag << " (";
  if (kv.dsSlots)
    diag << "grad-fused-dq: dK/dV kernel with dS^T slots and dQ staging "
         << kv.total();
  else
    diag << "dQ kernel " << dq.total() << ", dK/dV kernel " << kv.total();
  return diag << ")";
}

LogicalResult mlir::swba::checkHopperGradLowerable(Operation *op,
                                                   HopperOptions options) {
  auto grad = dyn_cast<AttentionGradOp>(op);
  if (!grad)
    return success();
  auto [d, dv] = kernelHeadDims(grad);
  if (!coversHeadDims(d, dv))
    return success(); // the mma.sync kernels
  HopperOptions tiles =
      withWindowTiling(options, d, dv, grad.getBlockSize(), grad.getWindow());
  QueryGradLayout dq = queryGradLayout(d, dv, tiles);
  for (KeyValueGradPart part : keyValueGradParts(d, dv)) {
    KeyValueGradLayout kv = keyValueGradLayout(d, dv, tiles, part);
    if (fitsGrad(dq, kv))
      continue;
    if (kv.dsSlots && part != KeyValueGradPart::Both)
      return op->emitOpError()
             << "chip=sm_90a: grad-fused-dq needs dK and dV in one kernel "
                "(head dims with d + dv <= 256, each rounded up to a "
                "multiple of 64), got "
             << cast<ShapedType>(grad.getQuery().getType()).getDimSize(3)
             << " and "
             << cast<ShapedType>(grad.getValue().getType()).getDimSize(3);
    if (kv.dsSlots && kv.blockM < 64)
      return op->emitOpError() << "chip=sm_90a: grad-fused-dq needs query "
                                  "tiles of 64 or 128 rows, got "
                               << kv.blockM;
    if (kv.dsSlots && kv.consumers != 2)
      return op->emitOpError() << "chip=sm_90a: grad-fused-dq needs the "
                                  "dK/dV kernel's two consumers, got "
                                  "grad-kv-consumers="
                               << kv.consumers;
    return reportGradSharedMemory(op, dq, kv);
  }
  return success();
}

void mlir::swba::populateSWBAGradToGPUHopperPatterns(
    RewritePatternSet &patterns, HopperOptions options) {
  patterns.add<AttentionGradOpToWgmma>(patterns.getContext(), options);
}
