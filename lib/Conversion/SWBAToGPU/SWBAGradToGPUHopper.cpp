//===- SWBAGradToGPUHopper.cpp - swba.attention_grad on wgmma + TMA -------===//
//
// The sm_90a backward (--lower-swba{target=gpu chip=sm_90a}), head dims 64
// and 128: a dQ kernel and a dK/dV kernel, both warp-specialized on
// warpgroup MMA and TMA, both deterministic (no atomics: each workgroup
// owns its rows; dK/dV sum the GQA group themselves). With grad-fused-dq
// the dK/dV kernel adds dQ up instead (see buildKeyValueGradBody), with
// TMA reduce-adds into an f32 buffer and a conversion kernel after it.
//
// dQ kernel: 3 warpgroups. The producer loads the workgroup's 128 rows of Q
// and dO once and a ring of K/V tiles of 128 keys (the rows' block window
// only; see QueryGradTiling), each stage on full/empty mbarriers. Each consumer owns 64 query
// rows and, per tile,
//   S  = Q K^T   and   dP = dO V^T      (SS wgmma, one group)
//   P  = exp(S scale - lse)             (masked at the window's edges)
//   dS = P (dP - delta)
//   dQ += dS K                          (RS wgmma: dS from registers, K as
//                                        the MN-major B)
// then dQ * scale is stored. The two consumers of either kernel issue
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
#include "HopperKernelBuilder.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// The dQ kernel's tiling: two consumers of 64 query rows, two stages (the
/// `grad-stages` option), and key tiles of `blockN` = 128 at every head dim
/// (the `grad-key-tile` option; 64 where 128 does not fit in shared memory,
/// see `queryGradLayout`). At head dim 64 the S, dP and dQ
/// accumulators take 64 + 64 + 32 registers a thread; wider wgmmas and half
/// the tiles made the kernel 15% faster than 64-key tiles. At head dim 128
/// they take 64 + 64 + 64 and ptxas spills 188 bytes, yet the kernel still
/// runs 3-4% faster than with 64-key tiles (32 + 32 + 64, no spills): GPU
/// time 2068 -> 2015 us and 7874 -> 7533 us at the two head-dim-128
/// design configurations (`kernel_times.py --options`, 4 alternating
/// rounds, 2026-11-25), since the spilled values are not on the
/// per-tile path and the K/V loads and barrier waits per query row halve.
struct QueryGradTiling {
  static constexpr int64_t consumers = 2;
  int64_t blockN;
  static int64_t blockM() { return consumers * kRowsPerConsumer; }
  static int64_t threads() { return (consumers + 1) * kWarpgroupThreads; }
  static QueryGradTiling get(int64_t option) { return {option ? option : 128}; }
};

/// Shared memory of the dQ kernel: Q and dO of the workgroup's rows, then
/// the K and V stages.
struct QueryGradLayout {
  int64_t blockN, stages, qBytes, doBytes, kStageBytes, vStageBytes;
  QueryGradLayout(int64_t d, int64_t dv, int64_t blockN, int64_t stages)
      : blockN(blockN), stages(stages),
        qBytes(QueryGradTiling::blockM() * d * 2),
        doBytes(QueryGradTiling::blockM() * dv * 2),
        kStageBytes(blockN * d * 2), vStageBytes(blockN * dv * 2) {}
  int64_t doOffset() const { return qBytes; }
  int64_t kOffset() const { return qBytes + doBytes; }
  int64_t vOffset() const {
    return kOffset() + stages * kStageBytes;
  }
  int64_t total() const {
    return vOffset() + stages * vStageBytes;
  }
};

void buildQueryGradBody(OpBuilder &builder, Location loc, AttentionGradOp op,
                        const QueryGradLayout &layout, ValueRange a,
                        ArrayRef<Value> maps, Type elementType,
                        int64_t headDim, int64_t valueDim, bool pingPong) {
  using T = QueryGradTiling;
  MLIRContext *ctx = builder.getContext();
  auto smemSpace = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value bars = nvgpu::MBarrierCreateOp::create(
      builder, loc,
      nvgpu::MBarrierGroupType::get(ctx, smemSpace,
                                    StageRing::countFor(layout.stages)));
  HopperKernelBuilder e(builder, loc, elementType, bars);
  const int64_t blockM = T::blockM(), blockN = layout.blockN;
  // a: q, k, v, dout, lse, delta, out, dq (dout and out are not read as
  // memrefs: dO comes through its tensor map, delta from the delta kernel).
  Value q = a[0], k = a[1], lse = a[4], delta = a[5], dq = a[7];
  BlockWindow w{static_cast<int64_t>(op.getBlockSize()),
                static_cast<int64_t>(op.getWindow())};
  double scale = op.getEffectiveScale();
  const bool positiveScale = scale > 0;
  Value scaleLog2 = e.f32(scale / std::log(2.0));
  Value log2e = e.f32(1.0 / std::log(2.0));

  e.setLaneIds();
  Value warpgroup = e.warpgroupIndex();
  WorkgroupTile tile = mapWorkgroup(e, /*headsFastest=*/false);
  Value batch = tile.batch, head = tile.head;
  Value queries = e.dim(q, 2), keys = e.dim(k, 2);
  Value posOffset = e.sub(keys, queries);
  Value kvHeads = e.dim(k, 1);
  Value kvHead = e.divIdx(head, e.divIdx(e.dim(q, 1), kvHeads));
  Value q0 = e.mul(tile.qTile, blockM);
  Value q1 = e.min(e.add(q0, e.idx(blockM)), queries);
  RowRange window = computeKeyWindow(e.b, loc, w, q0, q1, posOffset, keys);
  Value numTiles = arith::CeilDivUIOp::create(
      e.b, e.sub(window.end, window.begin), e.idx(blockN));
  Value qPlane =
      e.add(arith::MulIOp::create(e.b, batch, e.dim(q, 1)), head);
  Value kvPlane = e.add(arith::MulIOp::create(e.b, batch, kvHeads), kvHead);

  e.sharedBuffer(layout.total());
  Value base = e.descriptorBase();
  Value isThread0 = e.eq(e.threadId, 0);
  StageRing ring{e, layout.stages};
  ring.init(T::consumers * kWarpgroupThreads / 32, isThread0);
  // Operand 0 of the ring is K, operand 1 V.
  e.splitRoles(warpgroup, isThread0, [&] {
    Value once = e.idx(StageRing::once);
    nvgpu::MBarrierArriveExpectTxOp::create(
        e.b, bars, e.idx(layout.qBytes + layout.doBytes), once, Value());
    e.loadBoxes(maps[0], once, e.idx(0), blockM, headDim, q0, qPlane);
    e.loadBoxes(maps[3], once, e.idx(layout.doOffset()), blockM, valueDim,
                q0, qPlane);
    e.loop(e.idx(0), numTiles, e.idx(1), [&](Value j) {
      Value row = e.add(window.begin, e.mul(j, blockN));
      ring.produce(0, j, maps[1], layout.kStageBytes, layout.kOffset(),
                   blockN, headDim, row, kvPlane);
      ring.produce(1, j, maps[2], layout.vStageBytes, layout.vOffset(),
                   blockN, valueDim, row, kvPlane);
    });
  });

  // Consumers.
  Value consumer = e.sub(warpgroup, e.idx(1));
  Value rowBase = e.add(e.add(q0, e.mul(consumer, kRowsPerConsumer)),
                        e.add(e.mul(e.rem(e.warpId, 4), 16), e.g));
  Value isLane0 = e.eq(e.laneId, 0);

  // Per row h (rowBase + 8h): lse in the log2 domain, and delta (written by
  // the delta kernel, which runs first); rows past the end read nothing and
  // are never stored.
  Value lseLog2[2], rowDelta[2];
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rowBase, e.idx(8 * h));
    Value inRange =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries);
    auto ifOp = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type(),
                                                 e.b.getF32Type()},
                                  inRange, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard g2(e.b);
      e.b.setInsertionPointToStart(ifOp.thenBlock());
      Value l = e.mulf(e.load(lse, {batch, head, row}), log2e);
      scf::YieldOp::create(e.b,
                           ValueRange{l, e.load(delta, {batch, head, row})});
      e.b.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(e.b, ValueRange{e.f32(0.0), e.f32(0.0)});
    }
    lseLog2[h] = ifOp.getResult(0);
    rowDelta[h] = ifOp.getResult(1);
  }

  // Descriptors: this consumer's Q and dO rows (K-major A), the stage's K
  // (K-major B for S, MN-major B for dQ) and V (K-major B for dP).
  auto high = [&](int64_t lbo) { return e.i64(descriptorHigh(lbo)); };
  Value rowsOffset = e.toI64(e.mul(consumer, kRowsPerConsumer * kBoxRowBytes / 16));
  Value qDesc = arith::OrIOp::create(e.b, e.add(base, rowsOffset), high(16));
  Value doDesc = arith::OrIOp::create(
      e.b, e.add(e.add(base, rowsOffset), e.i64(layout.doOffset() / 16)),
      high(16));
  auto stageBase = [&](Value j, int64_t firstOffset, int64_t stageBytes) {
    return e.add(base, e.toI64(e.add(e.idx(firstOffset / 16),
                                     e.mul(ring.stage(j), stageBytes / 16))));
  };

  e.waitParity(e.idx(0), e.i1(false));
  TurnTaking turns(e, consumer, T::consumers, pingPong);
  int64_t nS = blockN / 2, nQ = headDim / 2;
  auto accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(nS, e.b.getF32Type()));
  SmallVector<Value> init(nQ, e.f32(0.0));
  auto loop = scf::ForOp::create(e.b, e.idx(0), numTiles, e.idx(1), init);
  {
    OpBuilder::InsertionGuard g2(e.b);
    e.b.setInsertionPointToEnd(loop.getBody());
    Value j = loop.getInductionVar();
    SmallVector<Value> acc(loop.getRegionIterArgs());
    Value k0 = e.add(window.begin, e.mul(j, blockN));
    Value k1 = e.min(e.add(k0, e.idx(blockN)), window.end);

    ring.waitFull(0, j);
    ring.waitFull(1, j);
    Value kBase = stageBase(j, layout.kOffset(), layout.kStageBytes);
    Value vBase = stageBase(j, layout.vOffset(), layout.vStageBytes);
    // S and dP operands: slice kk of a K-major operand lies in 64-column
    // block kk / 4, 32 bytes further per slice inside a block.
    SmallVector<Value> ops;
    auto kMajor = [&](int64_t rows, int64_t kk) {
      int64_t cb = kk / 4, within = (kk % 4) * 32;
      return e.i64((cb * rows * kBoxRowBytes + within) / 16);
    };
    Value kDescK = arith::OrIOp::create(e.b, kBase, high(16));
    Value vDescK = arith::OrIOp::create(e.b, vBase, high(16));
    for (int64_t kk = 0; kk < headDim / 16; ++kk) {
      ops.push_back(e.add(qDesc, kMajor(blockM, kk)));
      ops.push_back(e.add(kDescK, kMajor(blockN, kk)));
    }
    for (int64_t kk = 0; kk < valueDim / 16; ++kk) {
      ops.push_back(e.add(doDesc, kMajor(blockM, kk)));
      ops.push_back(e.add(vDescK, kMajor(blockN, kk)));
    }
    // (Descriptors made between the wgmmas of one group are fine for ptxas;
    // fencing all of them first would keep 2 (D + Dv) / 16 more registers
    // live.)
    SmallVector<Value> zeros = e.zeroRegisters(2 * nS);
    auto zeroAcc = [&](int64_t first) {
      Value z = LLVM::PoisonOp::create(e.b, accType);
      for (int64_t i = 0; i < nS; ++i)
        z = LLVM::InsertValueOp::create(e.b, z, zeros[first + i], i);
      return z;
    };
    turns.take();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    Value sAcc = zeroAcc(0), dpAcc = zeroAcc(nS);
    int64_t dk = headDim / 16;
    for (int64_t kk = 0; kk < dk; ++kk)
      sAcc = e.ssMma(sAcc, ops[2 * kk], ops[2 * kk + 1], blockN, kk == 0);
    for (int64_t kk = 0; kk < valueDim / 16; ++kk)
      dpAcc = e.ssMma(dpAcc, ops[2 * (dk + kk)], ops[2 * (dk + kk) + 1],
                      blockN, kk == 0);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    turns.pass();
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
    ring.release(1, j, isLane0);

    SmallVector<Value> s, dp;
    for (int64_t i = 0; i < nS; ++i) {
      s.push_back(LLVM::ExtractValueOp::create(e.b, sAcc, i));
      dp.push_back(LLVM::ExtractValueOp::create(e.b, dpAcc, i));
    }
    s = e.fenceRegisters(s);
    dp = e.fenceRegisters(dp);
    if (!positiveScale)
      for (Value &x : s)
        x = e.mulf(x, scaleLog2);
    // Edge tiles mask element-wise; interior tiles do not.
    s = e.maskScores(s, w, rowBase, q0, q1, k0, k1, blockN, posOffset);

    // dS = P (dP - delta), P = 2^(S scale log2e - lse log2e).
    SmallVector<Value> ds;
    for (int64_t i = 0; i < nS; ++i) {
      int64_t h = (i / 2) % 2;
      Value negLse = arith::NegFOp::create(e.b, lseLog2[h]);
      Value p = e.ex2(positiveScale
                          ? Value(LLVM::FMAOp::create(e.b, s[i], scaleLog2,
                                                      negLse))
                          : e.addf(s[i], negLse));
      ds.push_back(e.mulf(p, e.subf(dp[i], rowDelta[h])));
    }
    SmallVector<Value> dsFrags;
    for (int64_t kk = 0; kk < blockN / 16; ++kk) {
      int64_t j0 = 4 * (2 * kk), j1 = 4 * (2 * kk + 1);
      for (int64_t r : {j0, j0 + 2, j1, j1 + 2})
        dsFrags.push_back(e.packPair(ds[r], ds[r + 1]));
    }

    // dQ += dS K: K [keys][D] is the MN-major B; a k16 slice is 16 key rows
    // (2048 bytes); the 64-column blocks of D = 128 are the leading byte
    // offset apart.
    Value kDescMN =
        arith::OrIOp::create(e.b, kBase, high(blockN * kBoxRowBytes));
    SmallVector<Value> bDescs;
    for (int64_t kk = 0; kk < blockN / 16; ++kk)
      bDescs.push_back(e.add(kDescMN, e.i64(kk * 16 * kBoxRowBytes / 16)));
    bDescs = e.fenceRegisters(bDescs);
    dsFrags = e.fenceRegisters(dsFrags);
    acc = e.fenceRegisters(acc);
    turns.take();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    for (int64_t kk = 0; kk < blockN / 16; ++kk)
      acc = e.rsMma(acc, ArrayRef<Value>(dsFrags).slice(4 * kk, 4),
                    bDescs[kk], headDim);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    turns.pass();
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
    acc = e.fenceRegisters(acc);
    ring.release(0, j, isLane0);
    scf::YieldOp::create(e.b, acc);
  }

  // dQ = scale * sum dS K, rows rowBase + 8h, columns 8 * jn + 2 * t + c.
  ValueRange results = loop.getResults();
  auto pairType = VectorType::get({2}, elementType);
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rowBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries),
           [&] {
             for (int64_t jn = 0; jn < headDim / 8; ++jn) {
               Value pair = vector::FromElementsOp::create(
                   e.b, VectorType::get({2}, e.b.getF32Type()),
                   ValueRange{e.mulf(results[4 * jn + 2 * h], e.f32(scale)),
                              e.mulf(results[4 * jn + 2 * h + 1],
                                     e.f32(scale))});
               pair = arith::TruncFOp::create(e.b, pairType, pair);
               Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
               vector::StoreOp::create(e.b, pair, dq,
                                       ValueRange{batch, head, row, col});
             }
           });
  }
}


/// The dK/dV kernel's tiling: two consumers of 64 keys (128 keys a
/// workgroup), two stages (`grad-stages`), query tiles of `blockM` rows:
/// 128 at head dims
/// 64 (S^T and dP^T accumulators of 64 registers each next to dK and dV of
/// 32), 64 at 128 (32 each next to 64 + 64; that already spills 100 bytes).
struct KeyValueGradTiling {
  static constexpr int64_t consumers = 2;
  int64_t blockM;
  static int64_t blockN() { return consumers * kRowsPerConsumer; }
  static int64_t threads() { return (consumers + 1) * kWarpgroupThreads; }
  static KeyValueGradTiling get(int64_t d, int64_t dv, int64_t option) {
    if (option)
      return {option};
    return {d <= 64 && dv <= 64 ? 128 : 64};
  }
};

/// Shared memory of the dK/dV kernel: K and V of the workgroup's keys, then
/// the Q and dO stages, the row statistics and, when the kernel also adds
/// up dQ, `dsSlots` slots of the query tile's dS^T ([128 keys][blockM
/// queries] in 64-query boxes, 128B-swizzled: the MN-major A operand of
/// dQ = dS K). Three slots: a consumer writes tile j's while the other may
/// still read tile j - 1's, and tile j - 2's is read by a product that the
/// writer's turn does not yet guarantee is complete.
//
// Each consumer's share of dQ (f32, 64 rows x `dqColumns`) goes out through
// a staging buffer that a TMA reduce-add reads: [64 rows][32 f32] boxes,
// 128B-swizzled. Where the consumer's own rows of a dS^T slot hold it
// (128-row query tiles, 64 dQ columns) it is staged there, in the slot
// that no product reads until the consumer's next dS^T is written;
// otherwise in `stagingBytes` of its own.
struct KeyValueGradLayout {
  static constexpr int64_t fusedSlots = 3;
  int64_t blockM, stages, kBytes, vBytes, qStageBytes, doStageBytes,
      dsSlots, dqColumns, stagingBytes;
  KeyValueGradLayout(int64_t d, int64_t dv, int64_t blockM, int64_t stages,
                     bool fusedQueryGrad)
      : blockM(blockM), stages(stages),
        kBytes(KeyValueGradTiling::blockN() * d * 2),
        vBytes(KeyValueGradTiling::blockN() * dv * 2),
        qStageBytes(blockM * d * 2), doStageBytes(blockM * dv * 2),
        dsSlots(fusedQueryGrad ? fusedSlots : 0),
        dqColumns(fusedQueryGrad ? queryGradColumns(blockM, d) : 0),
        stagingBytes(fusedQueryGrad && !stagesInSlots()
                         ? KeyValueGradTiling::consumers * stagingPerConsumer()
                         : 0) {}
  /// How the two consumers split a query tile's dQ (see QueryGradShare).
  enum class QueryGradSplit { Rows, Columns, Keys };
  static QueryGradSplit queryGradSplit(int64_t blockM, int64_t d) {
    if (blockM >= 2 * kRowsPerConsumer)
      return QueryGradSplit::Rows;
    return d >= 2 * kBoxCols ? QueryGradSplit::Columns : QueryGradSplit::Keys;
  }
  /// dQ columns of a consumer's share.
  static int64_t queryGradColumns(int64_t blockM, int64_t d) {
    return queryGradSplit(blockM, d) == QueryGradSplit::Columns ? d / 2 : d;
  }
  static constexpr int64_t stagingBoxBytes = kRowsPerConsumer * kBoxRowBytes;
  int64_t stagingPerConsumer() const {
    return kRowsPerConsumer * dqColumns * 4;
  }
  /// A consumer's rows of a dS^T slot: blockM / 64 pieces of 64 rows x
  /// 128 bytes, one per 64-query box.
  bool stagesInSlots() const { return blockM >= 2 * dqColumns; }
  int64_t vOffset() const { return kBytes; }
  int64_t qOffset() const { return kBytes + vBytes; }
  int64_t doOffset() const {
    return qOffset() + stages * qStageBytes;
  }
  /// Per consumer, two slots of the query tile's -lse log2(e) and delta
  /// (blockM f32 each).
  int64_t rowStatsOffset() const {
    return doOffset() + stages * doStageBytes;
  }
  int64_t rowStatsSlotBytes() const { return 2 * blockM * 4; }
  /// The dS^T slots, 1024-aligned (the swizzle atom).
  int64_t dsOffset() const {
    return llvm::alignTo(rowStatsOffset() + KeyValueGradTiling::consumers *
                                                2 * rowStatsSlotBytes(),
                         kAtomBytes);
  }
  int64_t dsSlotBytes() const {
    return KeyValueGradTiling::blockN() * blockM * 2;
  }
  int64_t stagingOffset() const { return dsOffset() + dsSlots * dsSlotBytes(); }
  int64_t total() const { return stagingOffset() + stagingBytes; }
};

/// What one consumer of the dK/dV kernel computes of dQ = dS K for a query
/// tile when the kernel adds dQ up: 64 query rows from `rowOffset`, `n`
/// columns from `columnOffset`, over `steps` k16 slices of the workgroup's
/// keys from `keyOffset`. With 128-row query tiles the consumers split the
/// rows, with 64 rows and head dim 128 the columns (32 accumulator
/// registers either way); with 64 rows at head dim 64 each takes its own
/// 64 keys, and both add into the same rows.
struct QueryGradShare {
  Value rowOffset, columnOffset, keyOffset;
  int64_t n, steps;
  static QueryGradShare get(HopperKernelBuilder &e, Value consumer,
                            int64_t blockM, int64_t headDim) {
    Value zero = e.idx(0), half = e.mul(consumer, kRowsPerConsumer);
    int64_t allKeys = KeyValueGradTiling::blockN() / 16;
    int64_t n = KeyValueGradLayout::queryGradColumns(blockM, headDim);
    switch (KeyValueGradLayout::queryGradSplit(blockM, headDim)) {
    case KeyValueGradLayout::QueryGradSplit::Rows:
      return {half, zero, zero, n, allKeys};
    case KeyValueGradLayout::QueryGradSplit::Columns:
      return {zero, half, zero, n, allKeys};
    case KeyValueGradLayout::QueryGradSplit::Keys:
      break;
    }
    return {zero, zero, half, n, kRowsPerConsumer / 16};
  }
};

// dK/dV kernel: 3 warpgroups. The producer loads the workgroup's 128 keys
// of K and V once and a ring of Q/dO tiles of 64 query rows: for each
// query head of the GQA group, the query tiles of the keys' reverse window.
// Each consumer owns 64 keys and, per query tile,
//   S^T = K Q^T   and   dP^T = V dO^T   (SS wgmma, keys as rows)
//   P^T = exp(S^T scale - lse)          (lse, delta per column: a query)
//   dS^T = P^T (dP^T - delta)
//   dV += P^T dO   and   dK += dS^T Q   (RS wgmma, dO and Q MN-major)
// then stores dK * scale and dV: the group's sum, without atomics.
//
// With `dqAccumMap` (the tensor map of dqAccum, f32 [B][Hq][Nq][D],
// zeroed), the kernel also adds dQ up
// (five products instead of the separate dQ kernel's recomputed S and dP):
// each consumer writes its dS^T into a shared slot, and in its second turn
// of tile j multiplies tile j - 1's dS (both consumers' keys: the turn
// order guarantees the other has written it) by K, and adds the result to
// dqAccum: through a staging buffer, by a TMA reduce-add that one thread
// of the consumer issues (`dqAccumMap`: boxes of [64 rows][32 f32]; rows
// past the queries fall outside the map, and rows past the tile add the
// zeros of their masked dS). Tile j - 1 rather than j keeps a consumer
// from waiting for the other's softmax; the last tile's dQ takes one more
// turn after the loop. dqAccum holds unscaled sums; a conversion kernel
// scales them into dq. (At design configuration 3 the reduce-adds cost 8%
// of the kernel's time; per-thread red.global.add.v2.f32 reductions cost
// 23%: docs/BENCHMARKS.md.)
void buildKeyValueGradBody(OpBuilder &builder, Location loc,
                           AttentionGradOp op,
                           const KeyValueGradLayout &layout, ValueRange a,
                           ArrayRef<Value> maps, Type elementType,
                           int64_t headDim, int64_t valueDim,
                           Value dqAccumMap, bool pingPong) {
  using T = KeyValueGradTiling;
  MLIRContext *ctx = builder.getContext();
  auto smemSpace = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  Value bars = nvgpu::MBarrierCreateOp::create(
      builder, loc,
      nvgpu::MBarrierGroupType::get(ctx, smemSpace,
                                    StageRing::countFor(layout.stages)));
  HopperKernelBuilder e(builder, loc, elementType, bars);
  const int64_t blockM = layout.blockM, blockN = T::blockN();
  // a: q, k, v, dout, lse, delta, dk, dv.
  Value q = a[0], k = a[1], lse = a[4], delta = a[5], dk = a[6], dv = a[7];
  BlockWindow w{static_cast<int64_t>(op.getBlockSize()),
                static_cast<int64_t>(op.getWindow())};
  double scale = op.getEffectiveScale();
  const bool positiveScale = scale > 0;
  Value scaleLog2 = e.f32(scale / std::log(2.0));
  Value log2e = e.f32(1.0 / std::log(2.0));

  e.setLaneIds();
  Value warpgroup = e.warpgroupIndex();
  // Grid (key heads, key tiles, batch); early key tiles, which the most
  // queries see, first.
  WorkgroupTile tile =
      mapWorkgroup(e, /*headsFastest=*/false, /*lastFirst=*/false);
  Value batch = tile.batch, kvHead = tile.head;
  Value queries = e.dim(q, 2), keys = e.dim(k, 2);
  Value posOffset = e.sub(keys, queries);
  Value heads = e.dim(q, 1), kvHeads = e.dim(k, 1);
  Value group = e.divIdx(heads, kvHeads);
  Value k0 = e.mul(tile.qTile, blockN);
  Value k1 = e.min(e.add(k0, e.idx(blockN)), keys);
  RowRange window = computeQueryWindow(e.b, loc, w, k0, k1, posOffset, queries);
  Value span = e.sub(window.end, window.begin);
  Value nonEmpty = arith::CmpIOp::create(e.b, arith::CmpIPredicate::sgt,
                                         span, e.idx(0));
  Value qTiles = e.select(
      nonEmpty, arith::CeilDivUIOp::create(e.b, span, e.idx(blockM)),
      e.idx(0));
  Value numTiles = arith::MulIOp::create(e.b, qTiles, group);
  Value kvPlane = e.add(arith::MulIOp::create(e.b, batch, kvHeads), kvHead);
  // Tile j: query head kvHead * group + j / qTiles, rows from
  // window.begin + (j % qTiles) * blockM.
  auto queryHead = [&](Value j) {
    return e.add(arith::MulIOp::create(e.b, kvHead, group),
                 e.divU32(j, qTiles));
  };
  auto queryRow = [&](Value j) {
    return e.add(window.begin, e.mul(e.remU32(j, qTiles), blockM));
  };

  e.sharedBuffer(layout.total());
  Value base = e.descriptorBase();
  Value isThread0 = e.eq(e.threadId, 0);
  StageRing ring{e, layout.stages};
  ring.init(T::consumers * kWarpgroupThreads / 32, isThread0);
  // Operand 0 of the ring is Q, operand 1 dO.
  e.splitRoles(warpgroup, isThread0, [&] {
    Value once = e.idx(StageRing::once);
    nvgpu::MBarrierArriveExpectTxOp::create(
        e.b, bars, e.idx(layout.kBytes + layout.vBytes), once, Value());
    e.loadBoxes(maps[1], once, e.idx(0), blockN, headDim, k0, kvPlane);
    e.loadBoxes(maps[2], once, e.idx(layout.vOffset()), blockN, valueDim, k0,
                kvPlane);
    e.loop(e.idx(0), numTiles, e.idx(1), [&](Value j) {
      Value row = queryRow(j);
      Value plane =
          e.add(arith::MulIOp::create(e.b, batch, heads), queryHead(j));
      ring.produce(0, j, maps[0], layout.qStageBytes, layout.qOffset(),
                   blockM, headDim, row, plane);
      ring.produce(1, j, maps[3], layout.doStageBytes, layout.doOffset(),
                   blockM, valueDim, row, plane);
    });
  });

  // Consumers.
  Value consumer = e.sub(warpgroup, e.idx(1));
  // This thread's key rows: keyBase + 8h.
  Value keyBase = e.add(e.add(k0, e.mul(consumer, kRowsPerConsumer)),
                        e.add(e.mul(e.rem(e.warpId, 4), 16), e.g));
  Value isLane0 = e.eq(e.laneId, 0);
  auto high = [&](int64_t lbo) { return e.i64(descriptorHigh(lbo)); };
  Value rowsOffset =
      e.toI64(e.mul(consumer, kRowsPerConsumer * kBoxRowBytes / 16));
  // K and V rows of this consumer: the A operands (K-major).
  Value kDesc = arith::OrIOp::create(e.b, e.add(base, rowsOffset), high(16));
  Value vDesc = arith::OrIOp::create(
      e.b, e.add(e.add(base, rowsOffset), e.i64(layout.vOffset() / 16)),
      high(16));
  auto stageBase = [&](Value j, int64_t firstOffset, int64_t stageBytes) {
    return e.add(base, e.toI64(e.add(e.idx(firstOffset / 16),
                                     e.mul(ring.stage(j), stageBytes / 16))));
  };
  auto kMajor = [&](int64_t rows, int64_t kk) {
    int64_t cb = kk / 4, within = (kk % 4) * 32;
    return e.i64((cb * rows * kBoxRowBytes + within) / 16);
  };

  e.waitParity(e.idx(0), e.i1(false));
  // Adding dQ up: this consumer's share, the dS^T slots as 32-bit words
  // and the staging area as f32.
  const bool fusedQueryGrad = static_cast<bool>(dqAccumMap);
  // The fused kernel's turn order is what guarantees that the other
  // consumer's dS^T is in its slot when this one's dQ product reads it.
  TurnTaking turns(e, consumer, T::consumers, pingPong || fusedQueryGrad);
  int64_t nS = blockM / 2, nK = headDim / 2, nV = valueDim / 2;
  QueryGradShare share;
  Value dsWords, stagingF32, isLeader;
  if (fusedQueryGrad) {
    share = QueryGradShare::get(e, consumer, blockM, headDim);
    auto wordsType = MemRefType::get(
        {(layout.total() - layout.dsOffset()) / 4}, e.b.getI32Type(),
        MemRefLayoutAttrInterface(), smemSpace);
    dsWords = memref::ViewOp::create(e.b, wordsType, e.buffer,
                                     e.idx(layout.dsOffset()), ValueRange{});
    auto floatsType = MemRefType::get(
        {(layout.total() - layout.dsOffset()) / 4}, e.b.getF32Type(),
        MemRefLayoutAttrInterface(), smemSpace);
    stagingF32 = memref::ViewOp::create(e.b, floatsType, e.buffer,
                                        e.idx(layout.dsOffset()),
                                        ValueRange{});
    isLeader = e.eq(e.rem(e.threadId, kWarpgroupThreads), 0);
  }
  // The consumer warpgroup's own barrier (named barrier 3 + consumer).
  auto syncWarpgroup = [&] {
    NVVM::BarrierOp::create(
        e.b, loc, Type(),
        arith::IndexCastOp::create(e.b, e.b.getI32Type(),
                                   e.add(consumer, e.idx(3))),
        e.constI32(kWarpgroupThreads), NVVM::BarrierReductionAttr(), Value());
  };
  // The leader waits until the TMA reduces it issued have read their
  // staging boxes.
  auto waitStagingRead = [&] {
    e.when(isLeader, [&] {
      NVVM::CpAsyncBulkWaitGroupOp::create(e.b, 0, e.b.getUnitAttr());
    });
  };
  auto dsSlot = [&](Value j) {
    return arith::RemUIOp::create(e.b, j, e.idx(layout.dsSlots));
  };
  // dQ (unscaled) of this consumer's share of the tile in dS^T slot `slot`:
  // A = dS, MN-major (the slot holds dS^T [keys][queries]); B = K [keys][D],
  // MN-major as in the dQ kernel. Issued inside a wgmma group.
  auto issueQueryGrad = [&](Value slot) {
    auto type = LLVM::LLVMStructType::getLiteral(
        ctx, SmallVector<Type>(share.n / 2, e.b.getF32Type()));
    SmallVector<Value> zeros = e.zeroRegisters(share.n / 2);
    Value acc = LLVM::PoisonOp::create(e.b, type);
    for (int64_t i = 0; i < share.n / 2; ++i)
      acc = LLVM::InsertValueOp::create(e.b, acc, zeros[i], i);
    int64_t boxBytes = blockN * kBoxRowBytes;
    Value aStart = e.add(
        e.idx(layout.dsOffset()),
        e.add(e.mul(slot, layout.dsSlotBytes()),
              e.add(e.mul(e.divIdx(share.rowOffset, e.idx(kBoxCols)), boxBytes),
                    e.mul(share.keyOffset, kBoxRowBytes))));
    Value bStart =
        e.add(e.mul(e.divIdx(share.columnOffset, e.idx(kBoxCols)), boxBytes),
              e.mul(share.keyOffset, kBoxRowBytes));
    Value aDesc = arith::OrIOp::create(
        e.b, e.add(base, e.toI64(e.divIdx(aStart, e.idx(16)))),
        high(boxBytes));
    Value bDesc = arith::OrIOp::create(
        e.b, e.add(base, e.toI64(e.divIdx(bStart, e.idx(16)))),
        high(boxBytes));
    for (int64_t kk = 0; kk < share.steps; ++kk) {
      Value step = e.i64(kk * 16 * kBoxRowBytes / 16);
      acc = e.ssMma(acc, e.add(aDesc, step), e.add(bDesc, step), share.n,
                    kk == 0, /*mnMajorA=*/true, /*mnMajorB=*/true);
    }
    return acc;
  };
  // Byte offset (from the dS^T slots) of staging box `box` of tile `j`'s
  // share: this consumer's rows of slot (j + 2) % 3, which nothing reads
  // until its dS^T of tile j + 2 is written there (by then the reduce has
  // read it: see the wait at the top of the loop), or its own area.
  auto stagingBox = [&](Value j, int64_t box) {
    if (layout.stagesInSlots())
      return e.add(
          e.mul(dsSlot(e.add(j, e.idx(2))), layout.dsSlotBytes()),
          e.add(e.idx(box * blockN * kBoxRowBytes),
                e.mul(consumer, KeyValueGradLayout::stagingBoxBytes)));
    return e.add(
        e.idx(layout.stagingOffset() - layout.dsOffset() +
              box * KeyValueGradLayout::stagingBoxBytes),
        e.mul(consumer, layout.stagingPerConsumer()));
  };
  // Adds the share `acc` (after its wait) of tile `j` to dqAccum: the
  // warpgroup writes it into staging boxes (element (r, c) of a box at row
  // r, 16-byte chunk (c / 4) XOR (r % 8)), fences it for the async proxy,
  // syncs (named barrier 5 + consumer), and its first thread issues one
  // TMA reduce-add per box and commits them as a bulk group.
  auto reduceQueryGrad = [&](Value acc, Value j) {
    SmallVector<Value> values;
    for (int64_t i = 0; i < share.n / 2; ++i)
      values.push_back(LLVM::ExtractValueOp::create(e.b, acc, i));
    values = e.fenceRegisters(values);
    auto pairType = VectorType::get({2}, e.b.getF32Type());
    Value rowBytes = e.mul(e.add(e.mul(e.rem(e.warpId, 4), 16), e.g),
                           kBoxRowBytes);
    for (int64_t jn = 0; jn < share.n / 8; ++jn) {
      Value boxStart = stagingBox(j, jn / 4);
      Value chunk = arith::XOrIOp::create(
          e.b, e.g, e.add(e.idx(2 * (jn % 4)), e.divIdx(e.t, e.idx(2))));
      Value within = e.add(e.mul(chunk, 16), e.mul(e.rem(e.t, 2), 8));
      for (int64_t h = 0; h < 2; ++h) {
        Value byte = e.add(boxStart, e.add(e.add(rowBytes, within),
                                           e.idx(8 * h * kBoxRowBytes)));
        Value pair = vector::FromElementsOp::create(
            e.b, pairType,
            ValueRange{values[4 * jn + 2 * h], values[4 * jn + 2 * h + 1]});
        vector::StoreOp::create(e.b, pair, stagingF32,
                                ValueRange{e.divIdx(byte, e.idx(4))});
      }
    }
    NVVM::FenceProxyOp::create(
        e.b, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    NVVM::BarrierOp::create(
        e.b, loc, Type(),
        arith::IndexCastOp::create(e.b, e.b.getI32Type(),
                                   e.add(consumer, e.idx(5))),
        e.constI32(kWarpgroupThreads), NVVM::BarrierReductionAttr(), Value());
    e.when(isLeader, [&] {
      Value row = e.add(queryRow(j), share.rowOffset);
      Value plane =
          e.add(arith::MulIOp::create(e.b, batch, heads), queryHead(j));
      auto i32 = [&](Value v) {
        return arith::IndexCastOp::create(e.b, e.b.getI32Type(), v);
      };
      Value bufferAddress = memref::ExtractAlignedPointerAsIndexOp::create(
          e.b, e.buffer);
      for (int64_t box = 0; box < share.n / 32; ++box) {
        Value src = LLVM::IntToPtrOp::create(
            e.b, LLVM::LLVMPointerType::get(ctx, 3),
            e.toI64(e.add(bufferAddress,
                          e.add(e.idx(layout.dsOffset()), stagingBox(j, box)))));
        NVVM::CpAsyncBulkTensorReduceOp::create(
            e.b, dqAccumMap, src, NVVM::TMAReduxKind::ADD,
            NVVM::TMAStoreMode::TILE,
            ValueRange{i32(e.add(share.columnOffset, e.idx(32 * box))),
                       i32(row), i32(plane)},
            Value());
      }
      NVVM::CpAsyncBulkCommitGroupOp::create(e.b);
    });
  };
  auto accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(nS, e.b.getF32Type()));

  // A query tile's row statistics, -lse log2(e) then delta (2 blockM f32),
  // go through shared memory (loaded from global memory next to their use,
  // all 32 of a thread's values were hoisted and spilled). Each thread
  // loads statsPerThread of them, entry `local` = its lane in the
  // warpgroup + 128 i (columns clamped into the queries; a clamped column
  // is masked), one tile ahead, and scales them as it stores them: loaded
  // at the top of the tile that uses them, the L2 latency stood between
  // the previous tile's products and this one's (docs/BENCHMARKS.md).
  const int64_t statsPerThread = 2 * blockM / kWarpgroupThreads;
  auto statsEntry = [&](int64_t i) {
    return e.add(e.rem(e.threadId, kWarpgroupThreads),
                 e.idx(i * kWarpgroupThreads));
  };
  auto isLseEntry = [&](int64_t i) {
    return arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                 statsEntry(i), e.idx(blockM));
  };
  // Raw lse or delta of this thread's entries of the tile at query head
  // `qHead`, rows from `r0`, if `cond` (zeros otherwise).
  auto loadStats = [&](Value cond, Value qHead, Value r0) {
    SmallVector<Type> types(statsPerThread, e.b.getF32Type());
    auto ifOp = scf::IfOp::create(e.b, types, cond, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard g2(e.b);
    e.b.setInsertionPointToStart(ifOp.thenBlock());
    SmallVector<Value> values;
    for (int64_t i = 0; i < statsPerThread; ++i) {
      Value query = e.min(e.add(r0, e.rem(statsEntry(i), blockM)),
                          e.sub(queries, e.idx(1)));
      auto pick = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()},
                                    isLseEntry(i), /*withElseRegion=*/true);
      OpBuilder::InsertionGuard g3(e.b);
      e.b.setInsertionPointToStart(pick.thenBlock());
      scf::YieldOp::create(e.b, e.load(lse, {batch, qHead, query}));
      e.b.setInsertionPointToStart(pick.elseBlock());
      scf::YieldOp::create(e.b, e.load(delta, {batch, qHead, query}));
      values.push_back(pick.getResult(0));
    }
    scf::YieldOp::create(e.b, values);
    e.b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(
        e.b, SmallVector<Value>(statsPerThread, e.f32(0.0)));
    return SmallVector<Value>(ifOp.getResults());
  };
  SmallVector<Value> statsFactor;
  for (int64_t i = 0; i < statsPerThread; ++i)
    statsFactor.push_back(
        e.select(isLseEntry(i), arith::NegFOp::create(e.b, log2e), e.f32(1.0)));

  // The loop carries tile j's first row and query head (tile j + 1 is the
  // next query tile of the head, or the first of the next head), which
  // saves two divisions by qTiles a tile.
  Value firstHead = arith::MulIOp::create(e.b, kvHead, group);
  Value rowLimit = e.add(window.begin, e.mul(qTiles, blockM));
  auto nextTile = [&](Value qHead, Value r0) {
    Value row = e.add(r0, e.idx(blockM));
    Value wrap =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::uge, row, rowLimit);
    return std::make_pair(e.select(wrap, e.add(qHead, e.idx(1)), qHead),
                          e.select(wrap, window.begin, row));
  };

  SmallVector<Value> init(nK + nV, e.f32(0.0));
  init.append({firstHead, window.begin});
  init.append(loadStats(
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, numTiles,
                            e.idx(0)),
      firstHead, window.begin));
  auto loop = scf::ForOp::create(e.b, e.idx(0), numTiles, e.idx(1), init);
  {
    OpBuilder::InsertionGuard g2(e.b);
    e.b.setInsertionPointToEnd(loop.getBody());
    Value j = loop.getInductionVar();
    ValueRange iter = loop.getRegionIterArgs();
    SmallVector<Value> dkAcc(iter.begin(), iter.begin() + nK);
    SmallVector<Value> dvAcc(iter.begin() + nK, iter.begin() + nK + nV);
    Value qHead = iter[nK + nV], r0 = iter[nK + nV + 1];
    ValueRange tileStats = iter.drop_front(nK + nV + 2);

    // The tile's statistics into this consumer's slot j % 2, read back
    // where they are used. One named barrier per warpgroup and tile: a
    // thread that writes slot j % 2 again has passed this barrier of tile
    // j + 1, so every thread is done reading tile j - 1's.
    Value statsSlot = e.add(
        e.idx(layout.rowStatsOffset()),
        e.mul(e.add(e.mul(consumer, 2), arith::RemUIOp::create(e.b, j, e.idx(2))),
              layout.rowStatsSlotBytes()));
    auto statsType = MemRefType::get({2 * blockM}, e.b.getF32Type(),
                                     MemRefLayoutAttrInterface(), smemSpace);
    Value stats = memref::ViewOp::create(e.b, statsType, e.buffer, statsSlot,
                                         ValueRange{});
    // The staging boxes of the last reduce (tile j - 2's share) are free
    // again once its TMA has read them; the barrier below tells the
    // warpgroup.
    if (fusedQueryGrad)
      waitStagingRead();
    for (int64_t i = 0; i < statsPerThread; ++i)
      e.store(e.mulf(tileStats[i], statsFactor[i]), stats, {statsEntry(i)});
    syncWarpgroup();
    auto [nextHead, nextRow] = nextTile(qHead, r0);
    SmallVector<Value> nextStats = loadStats(
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                              e.add(j, e.idx(1)), numTiles),
        nextHead, nextRow);
    Value r1 = e.min(e.add(r0, e.idx(blockM)), window.end);

    ring.waitFull(0, j);
    ring.waitFull(1, j);
    Value qBase = stageBase(j, layout.qOffset(), layout.qStageBytes);
    Value doBase = stageBase(j, layout.doOffset(), layout.doStageBytes);
    Value qDescK = arith::OrIOp::create(e.b, qBase, high(16));
    Value doDescK = arith::OrIOp::create(e.b, doBase, high(16));
    SmallVector<Value> ops;
    for (int64_t kk = 0; kk < headDim / 16; ++kk) {
      ops.push_back(e.add(kDesc, kMajor(blockN, kk)));
      ops.push_back(e.add(qDescK, kMajor(blockM, kk)));
    }
    for (int64_t kk = 0; kk < valueDim / 16; ++kk) {
      ops.push_back(e.add(vDesc, kMajor(blockN, kk)));
      ops.push_back(e.add(doDescK, kMajor(blockM, kk)));
    }
    // (Descriptors made between the wgmmas of one group are fine for ptxas;
    // fencing all of them first would keep 2 (D + Dv) / 16 more registers
    // live.)
    SmallVector<Value> zeros =
        e.zeroRegisters(2 * nS);
    auto zeroAcc = [&](int64_t first) {
      Value z = LLVM::PoisonOp::create(e.b, accType);
      for (int64_t i = 0; i < nS; ++i)
        z = LLVM::InsertValueOp::create(e.b, z, zeros[first + i], i);
      return z;
    };
    turns.take();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    Value sAcc = zeroAcc(0), dpAcc = zeroAcc(nS);
    int64_t dkSteps = headDim / 16;
    for (int64_t kk = 0; kk < dkSteps; ++kk)
      sAcc = e.ssMma(sAcc, ops[2 * kk], ops[2 * kk + 1], blockM, kk == 0);
    for (int64_t kk = 0; kk < valueDim / 16; ++kk)
      dpAcc = e.ssMma(dpAcc, ops[2 * (dkSteps + kk)],
                      ops[2 * (dkSteps + kk) + 1], blockM, kk == 0);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    turns.pass();
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);

    SmallVector<Value> s, dp;
    for (int64_t i = 0; i < nS; ++i) {
      s.push_back(LLVM::ExtractValueOp::create(e.b, sAcc, i));
      dp.push_back(LLVM::ExtractValueOp::create(e.b, dpAcc, i));
    }
    s = e.fenceRegisters(s);
    dp = e.fenceRegisters(dp);
    if (!positiveScale)
      for (Value &x : s)
        x = e.mulf(x, scaleLog2);
    // Register 4 * jn + 2 * h + c is key keyBase + 8h, query
    // r0 + 8 * jn + 2 * t + c. Edge tiles mask element-wise.
    auto queryOf = [&](int64_t i) {
      int64_t jn = i / 4, c = i % 2;
      return e.add(r0, e.add(e.mul(e.t, 2), e.idx(8 * jn + c)));
    };
    Value interior = arith::AndIOp::create(
        e.b,
        arith::AndIOp::create(
            e.b,
            arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                  e.sub(r1, r0), e.idx(blockM)),
            arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                  e.sub(k1, k0), e.idx(blockN))),
        isTileFullyVisible(e.b, loc, w, r0, r1, k0, k1, posOffset));
    s = e.maskUnless(interior, s, [&](int64_t i) {
      int64_t h = (i / 2) % 2;
      Value key = e.add(keyBase, e.idx(8 * h));
      Value query = queryOf(i);
      return arith::AndIOp::create(
          e.b,
          arith::AndIOp::create(
              e.b,
              arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, query,
                                    r1),
              arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, key,
                                    keys)),
          isVisible(e.b, loc, w, query, key, posOffset));
    });

    // P^T and dS^T, packed into A fragments pair by pair as they are made
    // (64 f32 of them alive at once would not fit next to dK and dV): k16
    // slice kk takes n8 blocks 2kk and 2kk + 1. lse and delta of a column
    // (query) serve both of the thread's rows.
    SmallVector<Value> ptFrags, dsFrags;
    for (int64_t jn = 0; jn < blockM / 8; ++jn) {
      // The pair of columns 8 jn + 2t, + 1: one 8-byte load each.
      Value column = e.add(e.mul(e.t, 2), e.idx(8 * jn));
      auto pairOf = [&](Value at) {
        Value pair = vector::LoadOp::create(
            e.b, VectorType::get({2}, e.b.getF32Type()), stats,
            ValueRange{at});
        return std::array<Value, 2>{
            vector::ExtractOp::create(e.b, pair, 0).getResult(),
            vector::ExtractOp::create(e.b, pair, 1).getResult()};
      };
      std::array<Value, 2> negLse = pairOf(column),
                           dlt = pairOf(e.add(column, e.idx(blockM)));
      for (int64_t h = 0; h < 2; ++h) {
        Value p[2], ds[2];
        for (int64_t c = 0; c < 2; ++c) {
          int64_t i = 4 * jn + 2 * h + c;
          p[c] = e.ex2(positiveScale
                           ? Value(LLVM::FMAOp::create(e.b, s[i], scaleLog2,
                                                       negLse[c]))
                           : e.addf(s[i], negLse[c]));
          ds[c] = e.mulf(p[c], e.subf(dp[i], dlt[c]));
        }
        ptFrags.push_back(e.packPair(p[0], p[1]));
        dsFrags.push_back(e.packPair(ds[0], ds[1]));
      }
    }
    // dS^T into slot j % 3 for dQ: the thread's pair (key row, queries
    // 8 jn + 2t, + 1) goes to 16-byte chunk jn % 8 of the row in box jn / 8,
    // XOR the row's index in its 8-row atom (g): the 128B swizzle.
    if (fusedQueryGrad) {
      Value row = e.add(e.mul(consumer, kRowsPerConsumer),
                        e.add(e.mul(e.rem(e.warpId, 4), 16), e.g));
      Value rowWord = e.add(
          e.mul(dsSlot(j), layout.dsSlotBytes() / 4),
          e.add(e.mul(row, kBoxRowBytes / 4), e.t));
      for (int64_t jn = 0; jn < blockM / 8; ++jn) {
        Value chunk = arith::XOrIOp::create(e.b, e.g, e.idx(jn % 8));
        Value word = e.add(rowWord,
                           e.add(e.mul(chunk, 4),
                                 e.idx(jn / 8 * blockN * kBoxRowBytes / 4)));
        for (int64_t h = 0; h < 2; ++h)
          e.store(dsFrags[2 * jn + h], dsWords,
                  {e.add(word, e.idx(8 * h * kBoxRowBytes / 4))});
      }
      // The stores are generic-proxy writes that a wgmma (async proxy)
      // reads.
      NVVM::FenceProxyOp::create(
          e.b, NVVM::ProxyKind::async_shared,
          NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    }

    // The A fragment order of a k16 slice: (jn = 2kk, h = 0), (2kk, 1),
    // (2kk + 1, 0), (2kk + 1, 1) - the order they were made in.
    ptFrags = e.fenceRegisters(ptFrags);
    dsFrags = e.fenceRegisters(dsFrags);

    // dV += P^T dO and dK += dS^T Q: dO [queries][Dv] and Q [queries][D]
    // are MN-major B operands; a k16 slice is 16 query rows (2048 bytes);
    // 64-column blocks are blockM rows apart.
    Value doDescMN =
        arith::OrIOp::create(e.b, doBase, high(blockM * kBoxRowBytes));
    Value qDescMN =
        arith::OrIOp::create(e.b, qBase, high(blockM * kBoxRowBytes));
    SmallVector<Value> bDescs;
    for (int64_t kk = 0; kk < blockM / 16; ++kk)
      bDescs.push_back(e.add(doDescMN, e.i64(kk * 16 * kBoxRowBytes / 16)));
    for (int64_t kk = 0; kk < blockM / 16; ++kk)
      bDescs.push_back(e.add(qDescMN, e.i64(kk * 16 * kBoxRowBytes / 16)));
    bDescs = e.fenceRegisters(bDescs);
    dvAcc = e.fenceRegisters(dvAcc);
    dkAcc = e.fenceRegisters(dkAcc);
    turns.take();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    for (int64_t kk = 0; kk < blockM / 16; ++kk)
      dvAcc = e.rsMma(dvAcc, ArrayRef<Value>(ptFrags).slice(4 * kk, 4),
                      bDescs[kk], valueDim);
    for (int64_t kk = 0; kk < blockM / 16; ++kk)
      dkAcc = e.rsMma(dkAcc, ArrayRef<Value>(dsFrags).slice(4 * kk, 4),
                      bDescs[blockM / 16 + kk], headDim);
    // Tile j - 1's dQ (at j = 0 the product reads a slot not yet written,
    // and its result is dropped).
    Value dqAcc;
    if (fusedQueryGrad)
      dqAcc = issueQueryGrad(dsSlot(e.add(j, e.idx(layout.dsSlots - 1))));
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    turns.pass();
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
    dvAcc = e.fenceRegisters(dvAcc);
    dkAcc = e.fenceRegisters(dkAcc);
    if (fusedQueryGrad)
      e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, j,
                                   e.idx(0)),
             [&] { reduceQueryGrad(dqAcc, e.sub(j, e.idx(1))); });
    ring.release(0, j, isLane0);
    ring.release(1, j, isLane0);
    SmallVector<Value> yielded(dkAcc);
    yielded.append(dvAcc);
    yielded.append({nextHead, nextRow});
    yielded.append(nextStats);
    scf::YieldOp::create(e.b, yielded);
  }

  // The last tile's dQ: one more turn each.
  if (fusedQueryGrad) {
    turns.take();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    Value dqAcc = issueQueryGrad(
        dsSlot(e.add(numTiles, e.idx(layout.dsSlots - 1))));
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    turns.pass();
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, numTiles,
                                 e.idx(0)),
           [&] {
             // The staging boxes are rewritten: tile numTiles - 2's reduce
             // must have read them (as at the top of the loop), and the
             // warpgroup must know it.
             waitStagingRead();
             syncWarpgroup();
             reduceQueryGrad(dqAcc, e.sub(numTiles, e.idx(1)));
             // The staging boxes stay until the reduce has read them.
             waitStagingRead();
           });
  }

  // dK = scale * sum dS^T Q, dV = sum P^T dO: key rows keyBase + 8h.
  ValueRange results = loop.getResults();
  auto pairType = VectorType::get({2}, elementType);
  auto storeRows = [&](ValueRange acc, Value dst, int64_t width,
                       double factor, Value key, int64_t h) {
    for (int64_t jn = 0; jn < width / 8; ++jn) {
      Value pair = vector::FromElementsOp::create(
          e.b, VectorType::get({2}, e.b.getF32Type()),
          ValueRange{e.mulf(acc[4 * jn + 2 * h], e.f32(factor)),
                     e.mulf(acc[4 * jn + 2 * h + 1], e.f32(factor))});
      pair = arith::TruncFOp::create(e.b, pairType, pair);
      Value col = e.add(e.mul(e.t, 2), e.idx(jn * 8));
      vector::StoreOp::create(e.b, pair, dst,
                              ValueRange{batch, kvHead, key, col});
    }
  };
  for (int64_t h = 0; h < 2; ++h) {
    Value key = e.add(keyBase, e.idx(8 * h));
    e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, key, keys),
           [&] {
             storeRows(results.take_front(nK), dk, headDim, scale, key, h);
             storeRows(results.slice(nK, nV), dv, valueDim, 1.0, key, h);
           });
  }
}

QueryGradLayout queryGradLayout(int64_t d, int64_t dv,
                                const HopperOptions &options) {
  int64_t stages = options.gradStages ? options.gradStages : 2;
  QueryGradLayout layout(d, dv, QueryGradTiling::get(options.gradKeyTile).blockN,
                         stages);
  // The default key tile gives way to 64 keys where 128 would not fit (head
  // dim 128 with 3 stages or more); a tile asked for stays as asked, and
  // the op gets an error if it does not fit.
  if (!options.gradKeyTile &&
      layout.total() + kStaticSharedBytes > kMaxSharedBytes)
    return QueryGradLayout(d, dv, 64, stages);
  return layout;
}

KeyValueGradLayout keyValueGradLayout(int64_t d, int64_t dv,
                                      const HopperOptions &options) {
  return KeyValueGradLayout(
      d, dv, KeyValueGradTiling::get(d, dv, options.gradQueryTile).blockM,
      options.gradStages ? options.gradStages : 2,
      /*fusedQueryGrad=*/options.gradFusedDQ);
}

/// Whether the kernels fit in shared memory (the dQ kernel only where there
/// is one: without grad-fused-dq).
bool fitsGrad(const QueryGradLayout &dq, const KeyValueGradLayout &kv) {
  return (kv.dsSlots || dq.total() + kStaticSharedBytes <= kMaxSharedBytes) &&
         kv.total() + kStaticSharedBytes <= kMaxSharedBytes;
}

bool coversHeadDims(int64_t d, int64_t dv) {
  return (d == 64 || d == 128) && (dv == 64 || dv == 128);
}

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
    LaunchContract dqLaunch{tileGrid("q", T::blockM()), T::threads(),
                            layout.total(), queryGradParams()};
    dqLaunch.params.append(
        {{"q", rowsMap}, {"k", keysMap}, {"v", keysMap}, {"dout", rowsMap}});
    gpu::GPUFuncOp dqKernel;
    if (!fused) {
      SmallVector<Value> maps;
      dqKernel = createHopperKernel(rewriter, gpuModule, loc, "swba_bwd_dq",
                                    dqArgs, dqLaunch.mapTypes(), T::threads(),
                                    maps);
      buildQueryGradBody(rewriter, loc, op, layout,
                         dqKernel.getArguments().take_front(dqArgs.size()),
                         maps, elementType, headDim, valueDim,
                         options.gradPingPong);
      gpu::ReturnOp::create(rewriter, loc);
    }
    auto queryTileMap = tensorMapType(elementType, kvLayout.blockM);
    auto keyTileMap = tensorMapType(elementType, KV::blockN());
    // q, k, v, dout, lse, delta, [dqAccum,] dk, dv; then the maps of q, k,
    // v, dout [and dqAccum, in [64 rows][32 f32] boxes].
    SmallVector<Type> kvArgs(ArrayRef<Type>(dqArgs).take_front(6));
    if (fused)
      kvArgs.push_back(queryGradAccumType(op));
    kvArgs.append({op.getGradKey().getType(), op.getGradValue().getType()});
    // Without fused dQ, dK/dV (the heavier workgroups) goes out first, on a
    // second stream, and dQ runs at once with it.
    LaunchContract kvLaunch{tileGrid("k", KV::blockN()), KV::threads(),
                            kvLayout.total(), keyValueGradParams(fused),
                            /*stream=*/fused ? 0 : 1};
    kvLaunch.params.append({{"q", queryTileMap},
                            {"k", keyTileMap},
                            {"v", keyTileMap},
                            {"dout", queryTileMap}});
    if (fused)
      kvLaunch.params.push_back(
          {"dq_accum", tensorMapType(rewriter.getF32Type(), kRowsPerConsumer)});
    SmallVector<Value> kvMaps;
    auto kvKernel = createHopperKernel(
        rewriter, gpuModule, loc, fused ? "swba_bwd_dkdvdq" : "swba_bwd_dkdv",
        kvArgs, kvLaunch.mapTypes(), KV::threads(), kvMaps);
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

    auto deltaKernel =
        createDeltaKernel(rewriter, gpuModule, op, elementType, valueDim);
    if (fused) {
      auto convertKernel = createQueryGradConvertKernel(rewriter, gpuModule, op);
      emitLaunches(rewriter, op, gradBuffers(op, true),
                   {{deltaKernel, deltaLaunch()},
                    {kvKernel, kvLaunch},
                    {convertKernel, convertLaunch()}});
    } else {
      emitLaunches(rewriter, op, gradBuffers(op, false),
                   {{deltaKernel, deltaLaunch()},
                    {kvKernel, kvLaunch},
                    {dqKernel, dqLaunch}});
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
