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
// The tensor maps reach the kernel as pointers (the last three parameters)
// to 128-byte CUtensorMaps in global memory; the host code made here creates
// them with nvgpu.tma.create.descriptor, the Python runtime with
// cuTensorMapEncodeTiled.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "HopperKernelBuilder.h"
#include "LaunchContract.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>
#include <functional>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// How the kernel is tiled; see HopperTiling::get for the reasons.
struct HopperTiling {
  int64_t consumers; // warpgroups of 64 query rows
  int64_t blockN;    // keys per K/V tile
  int64_t stages;    // K/V tiles in flight
  bool headsFastest;
  bool overlapSoftmax; // softmax of S_j during P_{j-1} V_{j-1}
  bool pingPong;       // consumers take turns issuing their products

  int64_t blockM() const { return consumers * kRowsPerConsumer; }
  int64_t threads() const { return (consumers + 1) * kWarpgroupThreads; }
};

/// The shared-memory layout of a tiling, in bytes from @swba_smem.
struct SharedLayout {
  int64_t qBytes, kStageBytes, vStageBytes, stages;
  SharedLayout(const HopperTiling &t, int64_t headDim, int64_t valueDim)
      : qBytes(t.blockM() * headDim * 2),
        kStageBytes(t.blockN * headDim * 2),
        vStageBytes(t.blockN * valueDim * 2), stages(t.stages) {}
  int64_t kOffset(int64_t stage) const {
    return qBytes + stage * kStageBytes;
  }
  int64_t vOffset(int64_t stage) const {
    return qBytes + stages * kStageBytes + stage * vStageBytes;
  }
  int64_t total() const { return vOffset(stages); }
};

/// The tiling for head dims `d`, `dv`; failure when this kernel does not
/// cover them (the mma.sync kernel then does).
FailureOr<HopperTiling> getTiling(int64_t d, int64_t dv,
                                  const HopperOptions &options) {
  if ((d != 64 && d != 128) || (dv != 64 && dv != 128))
    return failure();
  // Consumer warpgroups of 64 query rows: while one runs its softmax, the
  // others' MMAs keep the tensor cores busy, and a K/V tile read from
  // shared memory feeds all their rows. Three at head dim 64 (192 rows):
  // there a tile's softmax (64 exponentials a thread) takes longer than
  // one other consumer's products (S and P V of m64n128k64 and
  // m64n64k128), and two others cover it; 160 registers a consumer hold
  // S, O and the P fragments without spills. 326 -> 358 and 385-389 ->
  // 405-408 TFLOP/s at design configurations 1 and 2 (variants.py,
  // 2026-11-25). Two at head dim 128, where O doubles and 160 registers
  // spill 384 bytes (294 against 480-491 TFLOP/s at configuration 3).
  // 128 keys per tile: S = 64 x 128 f32 is 64 registers a thread, O
  // another Dv / 2, and 240 registers hold them with the P fragments at
  // Dv = 128 (with three consumers, block-n=192 makes S 96 of the 160
  // registers, and the head-dim-64 kernel twice as slow).
  // Two stages: the next tile's TMA load runs during this tile's math;
  // at D = 128 a third stage would leave ~2 KB of shared memory spare.
  // The softmax of one tile overlaps the P V product of the previous one
  // (software pipelining within a warpgroup) unless asked otherwise.
  // The two consumers take turns at the tensor cores (ping-pong), so that
  // one's softmax runs while the other's products do.
  const bool narrow = d <= 64 && dv <= 64;
  HopperTiling t{narrow ? 3 : 2, 128, 2, /*headsFastest=*/narrow,
                 options.overlapSoftmax, options.pingPong};
  if (options.consumers)
    t.consumers = options.consumers;
  if (options.blockN)
    t.blockN = options.blockN;
  if (options.stages)
    t.stages = options.stages;
  return t;
}

bool fits(const HopperTiling &t, const SharedLayout &layout) {
  return (t.consumers == 2 || t.consumers == 3) && t.blockN % 64 == 0 &&
         t.blockN <= 256 && t.stages >= 1 &&
         layout.total() + kStaticSharedBytes <= kMaxSharedBytes;
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
    auto qType = cast<MemRefType>(op.getQuery().getType());
    auto vType = cast<MemRefType>(op.getValue().getType());
    Type elementType = qType.getElementType();
    int64_t headDim = qType.getDimSize(3), valueDim = vType.getDimSize(3);
    FailureOr<HopperTiling> maybeTiling =
        getTiling(headDim, valueDim, options);
    if (failed(maybeTiling))
      return rewriter.notifyMatchFailure(op, "head dims other than 64/128");
    HopperTiling tiling = *maybeTiling;
    SharedLayout layout(tiling, headDim, valueDim);
    if (!fits(tiling, layout))
      return rewriter.notifyMatchFailure(op, "tiling does not fit");

    Location loc = op.getLoc();
    auto qMapType = tensorMapType(elementType, tiling.blockM());
    auto kvMapType = tensorMapType(elementType, tiling.blockN);
    SmallVector<Value> args{op.getQuery(), op.getKey(), op.getValue(),
                            op.getOut()};
    if (op.getLse())
      args.push_back(op.getLse());

    // q, k, v, out[, lse], then the tensor maps of q, k, v.
    LaunchContract launch{tileGrid("q", tiling.blockM()), tiling.threads(),
                          layout.total()};
    for (auto [name, value] : namedOperands(op))
      launch.params.push_back({name});
    launch.params.append({{"q", qMapType}, {"k", kvMapType}, {"v", kvMapType}});

    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, loc,
                                        "swba_attention_kernels");
    SmallVector<Value> maps;
    auto kernel = createHopperKernel(
        rewriter, gpuModule, loc, "swba_fwd", ValueRange(args).getTypes(),
        launch.mapTypes(), tiling.threads(), maps);
    buildKernelBody(rewriter, loc, op, tiling, layout,
                    kernel.getArguments().take_front(args.size()), maps,
                    elementType, headDim, valueDim);
    gpu::ReturnOp::create(rewriter, loc);

    emitLaunches(rewriter, op, {}, {{kernel, launch}});
    return success();
  }

private:
  static void buildKernelBody(OpBuilder &builder, Location loc, AttentionOp op,
                              HopperTiling tiling, SharedLayout layout,
                              ValueRange args, ArrayRef<Value> maps,
                              Type elementType, int64_t headDim,
                              int64_t valueDim) {
    MLIRContext *ctx = builder.getContext();
    auto smemSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    auto barType = nvgpu::MBarrierGroupType::get(
        ctx, smemSpace, StageRing::countFor(tiling.stages));
    Value bars = nvgpu::MBarrierCreateOp::create(builder, loc, barType);
    HopperKernelBuilder e(builder, loc, elementType, bars);
    const int64_t blockM = tiling.blockM(), blockN = tiling.blockN;
    Value out = args[3];
    Value lse = args.size() > 4 ? args[4] : Value();
    BlockWindow w{static_cast<int64_t>(op.getBlockSize()),
                  static_cast<int64_t>(op.getWindow())};
    // Scores in the log2 domain: exp2 is one instruction.
    Value scale = e.f32(op.getEffectiveScale() / std::log(2.0));

    e.setLaneIds();
    // (Not warpgroupIndex(): the forward keeps its descriptors in regular
    // registers without spilling, and the uniform index made the head-dim-64
    // forward 2% slower, 451 -> 459 us at design configuration 2.)
    Value warpgroup = e.div(e.threadId, kWarpgroupThreads);
    WorkgroupTile tile = mapWorkgroup(e, tiling.headsFastest);
    Value batch = tile.batch, head = tile.head, qTile = tile.qTile;
    Value queries = e.dim(args[0], 2), keys = e.dim(args[1], 2);
    Value posOffset = e.sub(keys, queries);
    Value kvHeads = e.dim(args[1], 1);
    Value group = e.divIdx(e.dim(args[0], 1), kvHeads);
    Value kvHead = e.divIdx(head, group);
    Value q0 = e.mul(qTile, blockM);
    Value q1 = e.min(e.add(q0, e.idx(blockM)), queries);
    RowRange window = computeKeyWindow(e.b, loc, w, q0, q1, posOffset, keys);
    Value numTiles = arith::CeilDivUIOp::create(
        e.b, e.sub(window.end, window.begin), e.idx(blockN));
    // TMA coordinates, innermost first: (column, row, batch * heads + head).
    Value qPlane = e.add(arith::MulIOp::create(e.b, batch, e.dim(args[0], 1)), head);
    Value kvPlane =
        e.add(arith::MulIOp::create(e.b, batch, kvHeads), kvHead);

    // Shared memory: the extern buffer, and the descriptors' start-address
    // field at its base.
    e.sharedBuffer(layout.total());
    Value base = e.descriptorBase();

    // mbarriers: Q's, then a ring of K (operand 0) and V (operand 1) tiles.
    Value isThread0 = e.eq(e.threadId, 0);
    StageRing ring{e, tiling.stages};
    ring.init(tiling.consumers * kWarpgroupThreads / 32, isThread0);
    e.splitRoles(warpgroup, isThread0, [&] {
      Value qSlot = e.idx(StageRing::once);
      nvgpu::MBarrierArriveExpectTxOp::create(e.b, bars, e.idx(layout.qBytes),
                                              qSlot, Value());
      e.loadBoxes(maps[0], qSlot, e.idx(0), blockM, headDim, q0, qPlane);
      e.loop(e.idx(0), numTiles, e.idx(1), [&](Value j) {
        Value row = e.add(window.begin, e.mul(j, blockN));
        ring.produce(0, j, maps[1], layout.kStageBytes, layout.kOffset(0),
                     blockN, headDim, row, kvPlane);
        ring.produce(1, j, maps[2], layout.vStageBytes, layout.vOffset(0),
                     blockN, valueDim, row, kvPlane);
      });
    }, tiling.consumers);

    // Consumers.
    Value consumer = e.sub(warpgroup, e.idx(1));
    Value warpInGroup = e.rem(e.warpId, 4);
    Value rowBase = e.add(e.add(q0, e.mul(consumer, kRowsPerConsumer)),
                          e.add(e.mul(warpInGroup, 16), e.g));
    Value isLane0 = e.eq(e.laneId, 0);

    // Descriptor start addresses (in 16-byte units) of this warpgroup's Q
    // rows; K and V add their stage's offset.
    Value qDesc = arith::OrIOp::create(
        e.b,
        e.add(base, e.toI64(e.mul(consumer,
                                    kRowsPerConsumer * kBoxRowBytes / 16))),
        e.i64(descriptorHigh(16)));
    auto stageDesc = [&](Value stage, int64_t firstOffset, int64_t stageBytes,
                         int64_t lbo) {
      Value offset = e.add(e.idx(firstOffset / 16),
                           e.mul(stage, stageBytes / 16));
      return arith::OrIOp::create(e.b, e.add(base, e.toI64(offset)),
                                  e.i64(descriptorHigh(lbo)));
    };

    int64_t nS = blockN / 2, nO = valueDim / 2;
    const bool positiveScale = op.getEffectiveScale() > 0;
    const bool overlap = tiling.overlapSoftmax;
    auto sType = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(nS, e.b.getF32Type()));
    // Waits for K (operand 0) or V (1) of tile j come before the wgmma
    // fence: a wait is a loop, and ptxas serializes wgmmas that have
    // divergent code between them.
    auto waitFull = [&](int64_t operand, Value j) { ring.waitFull(operand, j); };
    auto release = [&](int64_t operand, Value j) {
      ring.release(operand, j, isLane0);
    };
    // The operands of S_j = Q K_j^T: a zero accumulator and a descriptor
    // pair per k16 slice (slice kk lies in 64-column block kk / 4 of Q and
    // K, 32 bytes further per slice inside a block). Made, like every wgmma
    // operand, before the wgmma fence: ptxas serializes wgmmas when other
    // instructions define their inputs between them.
    struct SOperands {
      SmallVector<Value> zero, descriptors;
    };
    auto prepareS = [&](Value j) {
      SOperands ops;
      Value kDesc = stageDesc(ring.stage(j), layout.kOffset(0),
                              layout.kStageBytes, 16);
      for (int64_t kk = 0; kk < headDim / 16; ++kk) {
        int64_t cb = kk / 4, within = (kk % 4) * 32;
        int64_t qOff = (cb * blockM * kBoxRowBytes + within) / 16;
        int64_t kOff = (cb * blockN * kBoxRowBytes + within) / 16;
        ops.descriptors.push_back(e.add(qDesc, e.i64(qOff)));
        ops.descriptors.push_back(e.add(kDesc, e.i64(kOff)));
      }
      ops.descriptors = e.fenceRegisters(ops.descriptors);
      ops.zero = e.zeroRegisters(nS);
      return ops;
    };
    // Issues S_j (no commit).
    auto issueS = [&](const SOperands &ops) {
      Value acc = LLVM::PoisonOp::create(e.b, sType);
      for (int64_t i = 0; i < nS; ++i)
        acc = LLVM::InsertValueOp::create(e.b, acc, ops.zero[i], i);
      for (int64_t kk = 0; kk < headDim / 16; ++kk)
        acc = e.ssMma(acc, ops.descriptors[2 * kk],
                      ops.descriptors[2 * kk + 1], blockN, kk == 0);
      return acc;
    };
    // The B descriptors of O += P V_j, one per k16 slice: V [keys][Dv] is
    // the MN-major B; a k16 slice is 16 key rows (2048 bytes); the
    // 64-column blocks of Dv = 128 are the leading byte offset apart.
    auto preparePV = [&](Value j) {
      Value vDesc = stageDesc(ring.stage(j), layout.vOffset(0),
                              layout.vStageBytes, blockN * kBoxRowBytes);
      SmallVector<Value> descriptors;
      for (int64_t kk = 0; kk < blockN / 16; ++kk)
        descriptors.push_back(
            e.add(vDesc, e.i64(kk * 16 * kBoxRowBytes / 16)));
      return e.fenceRegisters(descriptors);
    };
    // Issues O += P V_j (no commit).
    auto issuePV = [&](SmallVector<Value> acc, ArrayRef<Value> p,
                       ArrayRef<Value> descriptors) {
      for (int64_t kk = 0; kk < blockN / 16; ++kk)
        acc = e.rsMma(acc, p.slice(4 * kk, 4), descriptors[kk], valueDim);
      return acc;
    };
    // The online softmax of a retired S_j: scales and masks it, updates the
    // row maxima and sums, and returns the probabilities P_j (f32, in the
    // accumulator's registers) and the factors alpha that rescale O.
    struct TileSoftmax {
      SmallVector<Value> probs;
      Value alpha[2];
    };
    auto softmax = [&](Value sAcc, Value j, MutableArrayRef<Value> rowMax,
                       MutableArrayRef<Value> rowSum) {
      Value k0 = e.add(window.begin, e.mul(j, blockN));
      Value k1 = e.min(e.add(k0, e.idx(blockN)), window.end);
      // Register 4 * jn + 2 * h + c of the accumulator is row rowBase + 8h,
      // column 8 * jn + 2 * t + c of the tile.
      SmallVector<Value> raw;
      for (int64_t i = 0; i < nS; ++i)
        raw.push_back(LLVM::ExtractValueOp::create(e.b, sAcc, i));
      // With a positive scale the scores stay unscaled here: the row max of
      // the raw scores, scaled once, is the max of the scaled ones, and
      // scaling folds into the exponent's subtraction (one FFMA a score;
      // llvm.intr.fma, since math.fma becomes a libdevice call).
      SmallVector<Value> s = e.fenceRegisters(raw);
      if (!positiveScale)
        for (Value &x : s)
          x = e.mulf(x, scale);
      s = e.maskScores(s, w, rowBase, q0, q1, k0, k1, blockN, posOffset);

      // Reductions as trees, not chains: a thread's 32 values of a row in
      // 5 dependent steps instead of 32.
      std::function<Value(ArrayRef<Value>, bool)> tree =
          [&](ArrayRef<Value> values, bool isMax) -> Value {
        if (values.size() == 1)
          return values[0];
        size_t half = values.size() / 2;
        Value lo = tree(values.take_front(half), isMax);
        Value hi = tree(values.drop_front(half), isMax);
        return isMax ? Value(arith::MaxNumFOp::create(e.b, lo, hi))
                     : e.addf(lo, hi);
      };
      TileSoftmax result;
      Value ref[2];
      for (int64_t h = 0; h < 2; ++h) {
        SmallVector<Value> row;
        for (int64_t i = 0; i < nS; ++i)
          if ((i / 2) % 2 == h)
            row.push_back(s[i]);
        Value mx = tree(row, /*isMax=*/true);
        if (positiveScale)
          mx = e.mulf(mx, scale);
        Value old = rowMax[h];
        mx = e.quadReduce(arith::MaxNumFOp::create(e.b, old, mx),
                          /*isMax=*/true);
        rowMax[h] = mx;
        // A row that has seen only masked keys keeps max -inf; subtracting 0
        // keeps its exponentials at 0 instead of NaN.
        Value noneSeen = arith::CmpFOp::create(
            e.b, arith::CmpFPredicate::OEQ, mx, e.negInf());
        ref[h] = e.select(noneSeen, e.f32(0.0), mx);
        result.alpha[h] = e.ex2(e.subf(old, ref[h]));
      }
      SmallVector<Value> rows[2];
      for (int64_t i = 0; i < nS; ++i) {
        int64_t h = (i / 2) % 2;
        s[i] = e.ex2(positiveScale
                         ? Value(LLVM::FMAOp::create(
                               e.b, s[i], scale,
                               arith::NegFOp::create(e.b, ref[h])))
                         : e.subf(s[i], ref[h]));
        rows[h].push_back(s[i]);
      }
      for (int64_t h = 0; h < 2; ++h)
        rowSum[h] = e.addf(e.mulf(rowSum[h], result.alpha[h]),
                           tree(rows[h], /*isMax=*/false));
      result.probs = s;
      return result;
    };
    // P as wgmma A fragments (the m16n8k16 A pairing per warp: k16 slice kk
    // takes n8 blocks 2kk and 2kk + 1).
    auto pack = [&](ArrayRef<Value> probs) {
      SmallVector<Value> p;
      for (int64_t kk = 0; kk < blockN / 16; ++kk) {
        int64_t j0 = 4 * (2 * kk), j1 = 4 * (2 * kk + 1);
        for (int64_t r : {j0, j0 + 2, j1, j1 + 2})
          p.push_back(e.packPair(probs[r], probs[r + 1]));
      }
      return p;
    };
    auto rescale = [&](SmallVector<Value> acc, Value alpha[2]) {
      for (int64_t i = 0; i < nO; ++i)
        acc[i] = e.mulf(acc[i], alpha[(i / 2) % 2]);
      return acc;
    };

    e.waitParity(e.idx(StageRing::once), e.i1(false));

    // The consumers take turns at the tensor cores (pipelined schedule
    // only), so that one's softmax runs while the others' products keep
    // the tensor cores busy.
    TurnTaking turns(e, consumer, tiling.consumers,
                     overlap && tiling.pingPong);

    SmallVector<Value> acc(nO, e.f32(0.0));
    SmallVector<Value> rowMax(2, e.negInf()), rowSum(2, e.f32(0.0));
    scf::ForOp loop;
    if (!overlap) {
      // Each tile in turn: S_j, its softmax, then P_j V_j.
      SmallVector<Value> init(acc);
      init.append(rowMax);
      init.append(rowSum);
      loop = scf::ForOp::create(e.b, e.idx(0), numTiles, e.idx(1), init);
      OpBuilder::InsertionGuard g2(e.b);
      e.b.setInsertionPointToEnd(loop.getBody());
      Value j = loop.getInductionVar();
      ValueRange iter = loop.getRegionIterArgs();
      acc.assign(iter.begin(), iter.begin() + nO);
      rowMax.assign(iter.begin() + nO, iter.begin() + nO + 2);
      rowSum.assign(iter.begin() + nO + 2, iter.begin() + nO + 4);
      waitFull(0, j);
      SOperands sOps = prepareS(j);
      NVVM::WgmmaFenceAlignedOp::create(e.b);
      Value sAcc = issueS(sOps);
      NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
      NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
      release(0, j);
      TileSoftmax sm = softmax(sAcc, j, rowMax, rowSum);
      acc = rescale(acc, sm.alpha);
      SmallVector<Value> p = pack(sm.probs);
      waitFull(1, j);
      SmallVector<Value> vDescs = preparePV(j);
      acc = e.fenceRegisters(acc);
      p = e.fenceRegisters(p);
      NVVM::WgmmaFenceAlignedOp::create(e.b);
      acc = issuePV(acc, p, vDescs);
      NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
      NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
      acc = e.fenceRegisters(acc);
      release(1, j);
      SmallVector<Value> yielded(acc);
      yielded.append(rowMax);
      yielded.append(rowSum);
      scf::YieldOp::create(e.b, yielded);
    } else {
      // Software-pipelined: iteration j issues S_j and then P_{j-1}
      // V_{j-1}, waits for S_j only, and runs the softmax of S_j while
      // P_{j-1} V_{j-1} is still on the tensor cores; O is rescaled once
      // that product has retired.
      Value zero = e.idx(0);
      waitFull(0, zero);
      SOperands s0Ops = prepareS(zero);
      turns.take();
      NVVM::WgmmaFenceAlignedOp::create(e.b);
      Value s0 = issueS(s0Ops);
      NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
      turns.pass();
      NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
      release(0, zero);
      TileSoftmax first = softmax(s0, zero, rowMax, rowSum);
      SmallVector<Value> init(acc);
      init.append(rowMax);
      init.append(rowSum);
      init.append(pack(first.probs));
      loop = scf::ForOp::create(e.b, e.idx(1), numTiles, e.idx(1), init);
      {
        OpBuilder::InsertionGuard g2(e.b);
        e.b.setInsertionPointToEnd(loop.getBody());
        Value j = loop.getInductionVar();
        Value prev = e.sub(j, e.idx(1));
        ValueRange iter = loop.getRegionIterArgs();
        SmallVector<Value> o(iter.begin(), iter.begin() + nO);
        SmallVector<Value> mx(iter.begin() + nO, iter.begin() + nO + 2);
        SmallVector<Value> sum(iter.begin() + nO + 2, iter.begin() + nO + 4);
        SmallVector<Value> p(iter.begin() + nO + 4, iter.end());
        waitFull(0, j);
        waitFull(1, prev);
        SOperands sOps = prepareS(j);
        SmallVector<Value> vDescs = preparePV(prev);
        turns.take();
        NVVM::WgmmaFenceAlignedOp::create(e.b);
        Value sAcc = issueS(sOps);
        NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
        o = issuePV(o, p, vDescs);
        NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
        turns.pass();
        NVVM::WgmmaWaitGroupSyncOp::create(e.b, 1);
        release(0, j);
        TileSoftmax sm = softmax(sAcc, j, mx, sum);
        // The softmax's results fenced before the wait: otherwise the
        // compiler may sink its arithmetic below the wait, after the P V
        // product, which is the overlap undone.
        SmallVector<Value> done(sm.probs);
        done.append({sm.alpha[0], sm.alpha[1], mx[0], mx[1], sum[0], sum[1]});
        done = e.fenceRegisters(done);
        sm.probs.assign(done.begin(), done.begin() + nS);
        sm.alpha[0] = done[nS];
        sm.alpha[1] = done[nS + 1];
        mx.assign(done.begin() + nS + 2, done.begin() + nS + 4);
        sum.assign(done.begin() + nS + 4, done.end());
        NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
        o = e.fenceRegisters(o);
        release(1, prev);
        // P_j is packed only now: the registers P_{j-1} V_{j-1} read are
        // written after it has retired (ptxas serializes every wgmma
        // otherwise, as it folds register copies).
        o = e.fenceRegisters(rescale(o, sm.alpha));
        SmallVector<Value> yielded(o);
        yielded.append(mx);
        yielded.append(sum);
        yielded.append(e.fenceRegisters(pack(sm.probs)));
        scf::YieldOp::create(e.b, yielded);
      }
    }
    // What the loop leaves: O, the row maxima and sums (and, pipelined, the
    // last P, whose product with V is still to be added).
    ValueRange loopResults = loop.getResults();
    SmallVector<Value> results(loopResults.begin(),
                               loopResults.begin() + nO + 4);
    if (overlap) {
      Value last = e.sub(numTiles, e.idx(1));
      SmallVector<Value> o(results.begin(), results.begin() + nO);
      SmallVector<Value> p(loopResults.begin() + nO + 4, loopResults.end());
      waitFull(1, last);
      SmallVector<Value> vDescs = preparePV(last);
      turns.take();
      NVVM::WgmmaFenceAlignedOp::create(e.b);
      o = issuePV(o, p, vDescs);
      NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
      turns.pass();
      NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
      o = e.fenceRegisters(o);
      release(1, last);
      std::copy(o.begin(), o.end(), results.begin());
    }

    // Epilogue: complete the row sums over the quad, normalize, store.
    auto pairType = VectorType::get({2}, elementType);
    for (int64_t h = 0; h < 2; ++h) {
      Value sum = e.quadReduce(results[nO + 2 + h], /*isMax=*/false);
      Value inv = e.divf(e.f32(1.0), sum);
      Value row = e.add(rowBase, e.idx(8 * h));
      e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row,
                                   queries),
             [&] {
               for (int64_t jn = 0; jn < valueDim / 8; ++jn) {
                 Value pair = vector::FromElementsOp::create(
                     e.b, VectorType::get({2}, e.b.getF32Type()),
                     ValueRange{e.mulf(results[4 * jn + 2 * h], inv),
                                e.mulf(results[4 * jn + 2 * h + 1], inv)});
                 pair = arith::TruncFOp::create(e.b, pairType, pair);
                 Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
                 vector::StoreOp::create(e.b, pair, out,
                                         ValueRange{batch, head, row, col});
               }
               if (!lse)
                 return;
               e.when(e.eq(e.t, 0), [&] {
                 // Back from the log2 domain: lse = (max + log2(sum)) ln 2.
                 Value value = e.mulf(
                     e.addf(results[nO + h], e.lg2(sum)),
                     e.f32(std::log(2.0)));
                 e.store(value, lse, {batch, head, row});
               });
             });
    }
  }
};

} // namespace

LogicalResult mlir::swba::checkHopperLowerable(Operation *op,
                                               HopperOptions options) {
  auto attention = dyn_cast<AttentionOp>(op);
  if (!attention)
    return success();
  int64_t headDim = cast<ShapedType>(attention.getQuery().getType())
                        .getDimSize(3);
  int64_t valueDim = cast<ShapedType>(attention.getValue().getType())
                         .getDimSize(3);
  FailureOr<HopperTiling> tiling = getTiling(headDim, valueDim, options);
  if (failed(tiling))
    return success(); // the mma.sync kernel
  SharedLayout layout(*tiling, headDim, valueDim);
  if (fits(*tiling, layout))
    return success();
  return op->emitOpError()
         << "chip=sm_90a: block-n=" << tiling->blockN
         << " stages=" << tiling->stages
         << " needs block-n a multiple of 64 up to 256, at least one stage "
            "and at most "
         << kMaxSharedBytes - kStaticSharedBytes
         << " bytes of shared memory for Q and the K/V stages (this takes "
         << layout.total() << ")";
}

void mlir::swba::populateSWBAToGPUHopperPatterns(RewritePatternSet &patterns,
                                                 HopperOptions options) {
  patterns.add<AttentionOpToWgmma>(patterns.getContext(), options);
}
