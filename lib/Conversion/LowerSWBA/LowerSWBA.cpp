//===- LowerSWBA.cpp - The --lower-swba pass ------------------------------===//

#include "swba/Conversion/Passes.h"
#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Conversion/SWBAToLoops/SWBAToLoops.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::swba {
#define GEN_PASS_DEF_LOWERSWBA
#include "swba/Conversion/Passes.h.inc"
} // namespace mlir::swba

using namespace mlir;
using namespace mlir::swba;

/// Largest tile-q/tile-k: the CPU loops' per-tile scratch (two tile-q x
/// tile-k score tiles and the accumulators) lives on the stack.
static constexpr int64_t kMaxLoopTile = 256;
/// Largest stages/grad-stages: far more than fits in shared memory, and small
/// enough that the shared-memory sizes computed from it cannot wrap.
static constexpr int64_t kMaxStages = 16;
/// Largest split-kv: batch x splits is a grid dimension (at most 65535).
static constexpr int64_t kMaxSplits = 1024;

LogicalResult
mlir::swba::verifyLowerSWBAOptions(const LowerSWBAOptions &options,
                                   function_ref<void(const Twine &)> emitError) {
  auto fail = [&](const Twine &message) {
    emitError(message);
    return failure();
  };
  if (options.target != "cpu" && options.target != "gpu")
    return fail("unsupported target '" + options.target +
                "' (supported: 'cpu', 'gpu')");
  if (!lookupChip(options.chip))
    return fail("unsupported chip '" + options.chip +
                "' (supported: " + supportedChips() + ")");
  for (int64_t tile : {options.tileQ, options.tileK})
    if (tile < 1 || tile > kMaxLoopTile)
      return fail("tile-q and tile-k must be in [1, " + Twine(kMaxLoopTile) +
                  "], got tile-q=" + Twine(options.tileQ) +
                  " tile-k=" + Twine(options.tileK));
  if (options.consumers < 0 || options.consumers > 3)
    return fail("consumers must be 0, 1, 2 or 3, got " +
                Twine(options.consumers));
  if (options.workgroupsPerSM < 0 || options.workgroupsPerSM > 3)
    return fail("workgroups-per-sm must be 0, 1, 2 or 3, got " +
                Twine(options.workgroupsPerSM));
  if (!options.tileScheduler.empty() && options.tileScheduler != "grid" &&
      options.tileScheduler != "persistent")
    return fail("tile-scheduler must be empty, 'grid' or 'persistent', got '" +
                options.tileScheduler + "'");
  if (!options.pingPong.empty() && options.pingPong != "true" &&
      options.pingPong != "false")
    return fail("ping-pong must be empty, 'true' or 'false', got '" +
                options.pingPong + "'");
  if (!options.gradFusedDQ.empty() && options.gradFusedDQ != "true" &&
      options.gradFusedDQ != "false")
    return fail("grad-fused-dq must be empty, 'true' or 'false', got '" +
                options.gradFusedDQ + "'");
  if (!options.gradDqDelta.empty() && options.gradDqDelta != "true" &&
      options.gradDqDelta != "false")
    return fail("grad-dq-delta must be empty, 'true' or 'false', got '" +
                options.gradDqDelta + "'");
  if (options.gradDqDelta == "true" && options.gradFusedDQ == "true")
    return fail("grad-dq-delta=true computes delta in the separate dQ "
                "kernel; grad-fused-dq=true has none");
  if (options.tileScheduler == "persistent" && options.workgroupsPerSM > 1)
    return fail("tile-scheduler=persistent launches one workgroup an SM; "
                "workgroups-per-sm=" +
                Twine(options.workgroupsPerSM) + " needs tile-scheduler=grid");
  if (options.blockN != 0 &&
      (options.blockN < 0 || options.blockN % 64 != 0 || options.blockN > 256))
    return fail("block-n must be 0 or a multiple of 64 up to 256, got " +
                Twine(options.blockN));
  for (int64_t stages :
       {options.stages, options.gradStages, options.gradKeyStages})
    if (stages < 0 || stages > kMaxStages)
      return fail("stages, grad-stages and grad-key-stages must be in [0, " +
                  Twine(kMaxStages) + "], got stages=" + Twine(options.stages) +
                  " grad-stages=" + Twine(options.gradStages) +
                  " grad-key-stages=" + Twine(options.gradKeyStages));
  if (options.splitKv < 0 || options.splitKv > kMaxSplits)
    return fail("split-kv must be in [0, " + Twine(kMaxSplits) + "], got " +
                Twine(options.splitKv));
  for (int64_t tile : {options.gradKeyTile, options.gradQueryTile})
    if (tile != 0 && tile != 32 && tile != 64 && tile != 128)
      return fail("grad-key-tile and grad-query-tile must be 0, 32, 64 or "
                  "128, got " +
                  Twine(tile));
  if (options.gradKvConsumers < 0 || options.gradKvConsumers > 2)
    return fail("grad-kv-consumers must be 0, 1 or 2, got " +
                Twine(options.gradKvConsumers));
  if (options.gradKvTiles < 0 || options.gradKvTiles > 16)
    return fail("grad-kv-tiles must be in [0, 16], got " +
                Twine(options.gradKvTiles));
  if (options.gradKvTiles > 1 && options.gradFusedDQ == "true")
    return fail("grad-kv-tiles=" + Twine(options.gradKvTiles) +
                " runs the dK/dV kernel of the separate dQ kernel; "
                "grad-fused-dq=true adds dQ up in one key tile a workgroup");
  if (options.gradQConsumers < 0 || options.gradQConsumers > 3)
    return fail("grad-q-consumers must be 0, 1, 2 or 3, got " +
                Twine(options.gradQConsumers));
  return success();
}

/// Asserts at run time what the verifier checks of static sizes, where some
/// are dynamic: mismatched batches, heads or lengths, or more queries than
/// keys, would make the lowered loops and kernels read and write out of
/// bounds. Nothing is emitted for static sizes.
static void emitDynamicSizeChecks(Operation *op) {
  SmallVector<Value> queryLike, keyLike;
  auto paged = dyn_cast<PagedAttentionOp>(op);
  if (paged) {
    queryLike = {paged.getQuery(), paged.getOut()};
    if (paged.getLse())
      queryLike.push_back(paged.getLse());
    keyLike = {paged.getKeyCache(), paged.getValueCache()};
  } else if (auto forward = dyn_cast<AttentionOp>(op)) {
    queryLike = {forward.getQuery(), forward.getOut()};
    if (forward.getLse())
      queryLike.push_back(forward.getLse());
    keyLike = {forward.getKey(), forward.getValue()};
  } else {
    auto grad = cast<AttentionGradOp>(op);
    queryLike = {grad.getQuery(), grad.getOut(), grad.getGradOut(),
                 grad.getLse(), grad.getGradQuery()};
    keyLike = {grad.getKey(), grad.getValue(), grad.getGradKey(),
               grad.getGradValue()};
  }
  OpBuilder b(op);
  Location loc = op->getLoc();
  auto isDynamic = [](Value v, int64_t i) {
    return cast<ShapedType>(v.getType()).isDynamicDim(i);
  };
  auto dim = [&](Value v, int64_t i) -> Value {
    return memref::DimOp::create(b, loc, v, i);
  };
  auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, loc, p, x, y);
  };
  auto check = [&](Value holds, const Twine &what) {
    cf::AssertOp::create(b, loc, holds,
                         (op->getName().getStringRef() + ": " + what).str());
  };
  auto requireEqual = [&](Value x, Value y, int64_t i, StringRef what) {
    if (isDynamic(x, i) || isDynamic(y, i))
      check(cmp(arith::CmpIPredicate::eq, dim(x, i), dim(y, i)),
            Twine(what) + " sizes differ");
  };

  Value q = queryLike.front(), k = keyLike.front();
  for (Value x : llvm::drop_begin(queryLike)) {
    requireEqual(x, q, 0, "batch");
    requireEqual(x, q, 1, "query head");
    requireEqual(x, q, 2, "query length");
  }
  // The caches: [num_pages, page_size, Hkv, D], with the batch in the page
  // table and the lengths instead.
  int64_t keyHeadDim = paged ? 2 : 1;
  if (paged) {
    requireEqual(paged.getPageTable(), q, 0, "batch");
    requireEqual(paged.getSeqLens(), q, 0, "batch");
    requireEqual(paged.getValueCache(), k, 0, "page count");
    requireEqual(paged.getValueCache(), k, 1, "page size");
    requireEqual(paged.getValueCache(), k, 2, "key/value head");
  } else {
    for (Value x : keyLike)
      requireEqual(x, q, 0, "batch");
    for (Value x : llvm::drop_begin(keyLike)) {
      requireEqual(x, k, 1, "key/value head");
      requireEqual(x, k, 2, "key length");
    }
    if (isDynamic(q, 2) || isDynamic(k, 2))
      check(cmp(arith::CmpIPredicate::ule, dim(q, 2), dim(k, 2)),
            "more queries than keys");
  }
  if (isDynamic(q, 1) || isDynamic(k, keyHeadDim)) {
    // Query heads a multiple of key/value heads; none of either is valid.
    Value queryHeads = dim(q, 1), keyHeads = dim(k, keyHeadDim);
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    Value rem = arith::RemUIOp::create(
        b, loc, queryHeads, arith::MaxUIOp::create(b, loc, keyHeads, one));
    Value grouped = arith::AndIOp::create(
        b, loc, cmp(arith::CmpIPredicate::eq, rem, zero),
        arith::OrIOp::create(b, loc,
                             cmp(arith::CmpIPredicate::ne, keyHeads, zero),
                             cmp(arith::CmpIPredicate::eq, queryHeads, zero)));
    check(grouped, "query heads not a multiple of key/value heads");
  }
}

namespace {
struct LowerSWBAPass : public swba::impl::LowerSWBABase<LowerSWBAPass> {
  using LowerSWBABase::LowerSWBABase;

  LowerSWBAOptions options() {
    LowerSWBAOptions o;
    o.target = target;
    o.tileQ = tileQ;
    o.tileK = tileK;
    o.chip = chip;
#define SWBA_COPY_OPTION(member) o.member = member;
    SWBA_GPU_KERNEL_OPTIONS(SWBA_COPY_OPTION)
#undef SWBA_COPY_OPTION
    return o;
  }

  void runOnOperation() override {
    Operation *root = getOperation();
    if (failed(verifyLowerSWBAOptions(
            options(), [&](const Twine &message) {
              root->emitError("--lower-swba: " + message);
            })))
      return signalPassFailure();

    // Every op must be lowerable before anything is rewritten.
    bool gpu = target == "gpu";
    WalkResult unsupported = root->walk([&](Operation *op) {
      if (!isa<AttentionOp, AttentionGradOp, PagedAttentionOp>(op))
        return WalkResult::advance();
      if (!cast<DestinationStyleOpInterface>(op).hasPureBufferSemantics()) {
        op->emitOpError() << "must be bufferized before --lower-swba (run "
                             "--one-shot-bufferize first)";
        return WalkResult::interrupt();
      }
      bool decodes =
          isa<PagedAttentionOp>(op) || (decode && isa<AttentionOp>(op));
      if (gpu && decodes && failed(checkDecodeLowerable(op)))
        return WalkResult::interrupt();
      auto forward = dyn_cast<AttentionOp>(op);
      if (gpu && forward && forward.getKeyOffset()) {
        op->emitOpError() << "'key_offset' is supported by --lower-swba "
                             "target=cpu only";
        return WalkResult::interrupt();
      }
      if (gpu && (failed(checkGPULowerable(op, chip == "sm_90a")) ||
                  failed(checkSplitKvLowerable(op, options()))))
        return WalkResult::interrupt();
      if (gpu && !decodes && chip == "sm_90a" &&
          (failed(checkHopperLowerable(op, options())) ||
           failed(checkHopperGradLowerable(op, options()))))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (unsupported.wasInterrupted())
      return signalPassFailure();

    root->walk([](Operation *op) {
      if (isa<AttentionOp, AttentionGradOp, PagedAttentionOp>(op))
        emitDynamicSizeChecks(op);
    });

    RewritePatternSet patterns(&getContext());
    if (gpu) {
      populateSWBADecodeToGPUPatterns(patterns, decode, chip == "sm_90a");
      if (chip == "sm_90a") {
        populateSWBAToGPUHopperPatterns(patterns, options());
        populateSWBAGradToGPUHopperPatterns(patterns, options());
      }
      populateSWBAToGPUPatterns(patterns);
      populateSWBAGradToGPUPatterns(patterns);
    }
    else
      populateSWBAToLoopsPatterns(patterns, LoopTiling{tileQ, tileK});
    walkAndApplyPatterns(root, std::move(patterns));
  }
};
} // namespace
