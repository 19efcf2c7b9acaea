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
// shares the GPU with the other's work.
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
    auto qType = cast<MemRefType>(op.getQuery().getType());
    Type elementType = qType.getElementType();
    int64_t headDim = qType.getDimSize(3);
    int64_t valueDim =
        cast<MemRefType>(op.getValue().getType()).getDimSize(3);
    if (!coversHeadDims(headDim, valueDim))
      return rewriter.notifyMatchFailure(op, "head dims other than 64/128");

    Location loc = op.getLoc();
    using T = QueryGradTiling;
    QueryGradLayout layout = queryGradLayout(headDim, valueDim, options);
    using KV = KeyValueGradTiling;
    KeyValueGradLayout kvLayout =
        keyValueGradLayout(headDim, valueDim, options);
    if (!fitsGrad(layout, kvLayout)) // checkHopperGradLowerable reported it
      return rewriter.notifyMatchFailure(op, "backward tiles do not fit");
    const bool fused = options.gradFusedDQ;

    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, loc,
                                        "swba_attention_grad_kernels");
    // q, k, v, dout, lse, delta, out, dq; then the maps of q, k, v, dout.
    SmallVector<Type> dqArgs{op.getQuery().getType(), op.getKey().getType(),
                             op.getValue().getType(),
                             op.getGradOut().getType(), op.getLse().getType(),
                             deltaType(op.getContext()),
                             op.getOut().getType(),
                             op.getGradQuery().getType()};
    auto rowsMap = tensorMapType(elementType, T::blockM());
    auto keysMap = tensorMapType(elementType, layout.blockN);
    gpu::GPUFuncOp dqKernel;
    if (!fused) {
      std::string name = "swba_attention_bwd_dq_wgmma_t" +
                         std::to_string(T::threads()) + "_s" +
                         std::to_string(layout.total()) + "_n" +
                         std::to_string(layout.blockN) + "_m" +
                         std::to_string(T::blockM());
      SmallVector<Value> maps;
      dqKernel = createHopperKernel(rewriter, gpuModule, loc, name, dqArgs,
                                    {rowsMap, keysMap, keysMap, rowsMap},
                                    T::threads(), maps);
      buildQueryGradBody(rewriter, loc, op, layout,
                         dqKernel.getArguments().take_front(dqArgs.size()),
                         maps, elementType, headDim, valueDim,
                         options.gradPingPong);
      gpu::ReturnOp::create(rewriter, loc);
    }
    auto queryTileMap = tensorMapType(elementType, kvLayout.blockM);
    auto keyTileMap = tensorMapType(elementType, KV::blockN());
    // q, k, v, dout, lse, delta, [dqAccum,] dk, dv; then the maps of q, k,
    // v, dout.
    SmallVector<Type> kvArgs(ArrayRef<Type>(dqArgs).take_front(6));
    if (fused)
      kvArgs.push_back(queryGradAccumType(op));
    kvArgs.append({op.getGradKey().getType(), op.getGradValue().getType()});
    std::string kvName = std::string("swba_attention_bwd_") +
                         (fused ? "dkdvdq" : "dkdv") + "_wgmma_t" +
                         std::to_string(KV::threads()) + "_s" +
                         std::to_string(kvLayout.total()) + "_n" +
                         std::to_string(KV::blockN()) + "_m" +
                         std::to_string(kvLayout.blockM);
    // The fused kernel's fifth map: dqAccum, [64 rows][32 f32] boxes.
    auto accumMap = tensorMapType(rewriter.getF32Type(), kRowsPerConsumer);
    SmallVector<nvgpu::TensorMapDescriptorType> kvMapTypes{
        queryTileMap, keyTileMap, keyTileMap, queryTileMap};
    if (fused)
      kvMapTypes.push_back(accumMap);
    SmallVector<Value> kvMaps;
    auto kvKernel = createHopperKernel(rewriter, gpuModule, loc, kvName,
                                       kvArgs, kvMapTypes, KV::threads(),
                                       kvMaps);
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
                          options.gradPingPong);
    gpu::ReturnOp::create(rewriter, loc);

    GradLaunch dqLaunch{T::blockM(), T::threads(), layout.total(),
                        [&](LoopEmitter &e, ArrayRef<Value>) {
                          return SmallVector<Value>{
                              createTensorMap(e, op.getQuery(), rowsMap),
                              createTensorMap(e, op.getKey(), keysMap),
                              createTensorMap(e, op.getValue(), keysMap),
                              createTensorMap(e, op.getGradOut(), rowsMap)};
                        }};
    GradLaunch kvLaunch{
        KV::blockN(), KV::threads(), kvLayout.total(),
        [&](LoopEmitter &e, ArrayRef<Value> args) {
          SmallVector<Value> maps{
              createTensorMap(e, op.getQuery(), queryTileMap),
              createTensorMap(e, op.getKey(), keyTileMap),
              createTensorMap(e, op.getValue(), keyTileMap),
              createTensorMap(e, op.getGradOut(), queryTileMap)};
          if (fused) // args: q, k, v, dout, lse, delta, dqAccum, ...
            maps.push_back(createTensorMap(e, args[6], accumMap));
          return maps;
        }};
    auto deltaKernel =
        createDeltaKernel(rewriter, gpuModule, op, elementType, valueDim);
    if (fused) {
      auto convertKernel = createQueryGradConvertKernel(rewriter, gpuModule, op);
      launchGradKernels(rewriter, op, nullptr, GradLaunch{0}, kvKernel,
                        kvLaunch, deltaKernel, GradLaunch{kDeltaRows},
                        convertKernel, GradLaunch{kConvertRows});
    } else {
      launchGradKernels(rewriter, op, dqKernel, dqLaunch, kvKernel, kvLaunch,
                        deltaKernel, GradLaunch{kDeltaRows});
    }
    return success();
  }
};

} // namespace

LogicalResult mlir::swba::checkHopperGradLowerable(Operation *op,
                                                   HopperOptions options) {
  auto grad = dyn_cast<AttentionGradOp>(op);
  if (!grad)
    return success();
  int64_t d = cast<ShapedType>(grad.getQuery().getType()).getDimSize(3);
  int64_t dv = cast<ShapedType>(grad.getValue().getType()).getDimSize(3);
  if (!coversHeadDims(d, dv))
    return success(); // the mma.sync kernels
  QueryGradLayout dq = queryGradLayout(d, dv, options);
  KeyValueGradLayout kv = keyValueGradLayout(d, dv, options);
  if (fitsGrad(dq, kv))
    return success();
  InFlightDiagnostic diag = op->emitOpError();
  diag << "chip=sm_90a: grad-stages=" << dq.stages << " needs more than the "
       << kMaxSharedBytes - kStaticSharedBytes
       << " bytes of shared memory a workgroup can have (";
  if (kv.dsSlots)
    diag << "grad-fused-dq: dK/dV kernel with dS^T slots and dQ staging "
         << kv.total();
  else
    diag << "dQ kernel " << dq.total() << ", dK/dV kernel " << kv.total();
  return diag << ")";
}

void mlir::swba::populateSWBAGradToGPUHopperPatterns(
    RewritePatternSet &patterns, HopperOptions options) {
  patterns.add<AttentionGradOpToWgmma>(patterns.getContext(), options);
}
