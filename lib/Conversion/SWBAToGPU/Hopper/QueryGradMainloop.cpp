//===- QueryGradMainloop.cpp - The sm_90a dQ kernel -----------------------===//
//
// The body of the sm_90a dQ kernel (SWBAGradToGPUHopper.cpp has the kernel,
// its launch and the overview of the backward): 3 warpgroups. The producer
// loads the workgroup's 128 rows of Q and dO once and a ring of K/V tiles
// (the rows' block window only; see QueryGradTiling), each stage on
// full/empty mbarriers. Each consumer owns 64 query rows and, per tile,
//   S  = Q K^T   and   dP = dO V^T      (SS wgmma, one group)
//   P  = exp(S scale - lse)             (masked at the window's edges)
//   dS = P (dP - delta)
//   dQ += dS K                          (RS wgmma: dS from registers, K as
//                                        the MN-major B)
// then dQ * scale is stored.
//
//===----------------------------------------------------------------------===//

#include "Consumer.h"
#include "Epilogue.h"
#include "Kernels.h"
#include "Producer.h"
#include "Softmax.h"
#include "Workgroup.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// What the parts of the dQ kernel read.
struct QueryGradKernel : BackwardKernel {
  const QueryGradLayout &layout;
  int64_t headDim, valueDim, blockM, blockN;
  QueryTile tile;
  ConsumerRows rows;
  Value base, qDesc, doDesc;
  /// Per row h (rowBase + 8h): lse in the log2 domain, and delta.
  Value lseLog2[2], rowDelta[2];
  /// Where the kernel computes delta (grad-dq-delta): the delta buffer it
  /// writes for the dK/dV kernel.
  Value deltaOut;

  QueryGradKernel(HopperKernelBuilder &e, AttentionGradOp op,
                  const QueryGradLayout &layout, int64_t headDim,
                  int64_t valueDim)
      : BackwardKernel(e, op, layout.stages), layout(layout), headDim(headDim),
        valueDim(valueDim), blockM(layout.tiling.blockM()),
        blockN(layout.blockN) {}

  void setUp(ValueRange args, ArrayRef<Value> maps, bool computeDelta);
  SmallVector<Value> mainloop(bool pingPong);

private:
  void loadRowStats(Value lse, Value delta);
  void computeRowDeltas();
  SmallVector<Value> step(TurnTaking &turns, Value j, SmallVector<Value> acc,
                          bool interiorKnown);
  SmallVector<Value> tileStep(TurnTaking &turns, Value j,
                              SmallVector<Value> acc, bool interiorKnown);
};

} // namespace

/// The workgroup's tile, the shared buffer and its mbarriers, the producer
/// (warpgroup 0), then the consumers' rows, row statistics and Q and dO
/// descriptors. `args`: q, k, v, dout, lse, delta, out, dq (dout and out
/// are not read as memrefs: dO comes through its tensor map, and where
/// `computeDelta` O through the fifth map, for delta of the workgroup's
/// rows, which it writes for the dK/dV kernel instead of reading the delta
/// kernel's).
void QueryGradKernel::setUp(ValueRange args, ArrayRef<Value> maps,
                            bool computeDelta) {
  e.setLaneIds();
  Value warpgroup = e.warpgroupIndex();
  tile = QueryTile::get(e, /*headsFastest=*/false, args[0], args[1], w, blockM,
                        blockN);
  e.sharedBuffer(layout.total());
  base = e.descriptorBase();
  Value isThread0 = e.eq(e.threadId, 0);
  const int64_t consumers = layout.tiling.consumers;
  ring.init(consumers * kWarpgroupThreads / 32, isThread0);
  // Operand 0 of the ring is K, operand 1 V.
  e.splitRoles(
      warpgroup, isThread0,
      [&] {
        SmallVector<TmaOperand, 3> once{
            TmaOperand{maps[0], 0, headDim},
            TmaOperand{maps[3], layout.doOffset(), valueDim}};
        if (computeDelta)
          once.push_back(TmaOperand{maps[4], layout.oOffset(), valueDim});
        produceTiles(
            e, ring, once, blockM, tile.q0, tile.qPlane, tile.numTiles,
            {TmaOperand{maps[1], layout.kOffset(), headDim, layout.kStageBytes},
             TmaOperand{maps[2], layout.vOffset(), valueDim,
                        layout.vStageBytes}},
            blockN, [&](Value j) {
              return std::make_pair(e.add(tile.window.begin, e.mul(j, blockN)),
                                    tile.kvPlane);
            });
      },
      consumers, layout.tiling.perSM());

  rows = ConsumerRows::get(e, warpgroup, tile.q0);
  if (computeDelta)
    deltaOut = args[5];
  loadRowStats(args[4], computeDelta ? Value() : args[5]);
  // Descriptors: this consumer's Q and dO rows (K-major A).
  std::tie(qDesc, doDesc) =
      onceDescriptors(e, base, rows.consumer, layout.doOffset());
}

/// lse (in the log2 domain) and, where `delta` is given, delta (written by
/// the delta kernel, which runs first) of this thread's rows; rows past the
/// end read nothing and are never stored.
void QueryGradKernel::loadRowStats(Value lse, Value delta) {
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rows.rowBase, e.idx(8 * h));
    Value inRange = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row,
                                          tile.queries);
    SmallVector<Type> types(delta ? 2 : 1, e.b.getF32Type());
    auto ifOp = scf::IfOp::create(e.b, types, inRange,
                                  /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToStart(ifOp.thenBlock());
      SmallVector<Value> stats{
          e.mulf(e.load(lse, {tile.batch, tile.head, row}), log2e)};
      if (delta)
        stats.push_back(e.load(delta, {tile.batch, tile.head, row}));
      scf::YieldOp::create(e.b, stats);
      e.b.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(e.b, SmallVector<Value>(types.size(), e.f32(0.0)));
    }
    lseLog2[h] = ifOp.getResult(0);
    if (delta)
      rowDelta[h] = ifOp.getResult(1);
  }
}

/// delta = rowsum(dO * O) of this thread's rows from the workgroup's dO
/// and O in shared memory (after the once-loaded operands have landed):
/// a quad of threads a row, as in the delta kernel, each thread's 16-byte
/// chunks t, t + 4, ... of each 64-column box (whose 128-byte swizzle puts
/// chunk c of row r at c ^ (r % 8); r % 8 is the thread's g), combined by
/// shuffles; the quad's first thread writes it for the dK/dV kernel. Rows
/// past the end are TMA's zeros and are never stored.
void QueryGradKernel::computeRowDeltas() {
  auto f32Vec = VectorType::get({kVec}, e.b.getF32Type());
  auto vecType = VectorType::get({kVec}, e.elementType);
  Value isFirst = e.eq(e.t, 0);
  for (int64_t h = 0; h < 2; ++h) {
    Value row = e.add(rows.rowBase, e.idx(8 * h));
    Value tileRow = e.sub(row, tile.q0);
    Value partial = e.f32(0.0);
    for (int64_t box = 0; box < valueDim / kBoxCols; ++box) {
      int64_t boxBytes = box * blockM * kBoxRowBytes;
      Value dO = e.boxView(e.idx(layout.doOffset() + boxBytes), blockM);
      Value o = e.boxView(e.idx(layout.oOffset() + boxBytes), blockM);
      for (int64_t c = 0; c < kBoxCols / kVec; c += 4) {
        Value chunk = arith::XOrIOp::create(e.b, e.add(e.t, e.idx(c)), e.g);
        SmallVector<Value> index{e.idx(0), tileRow, e.mul(chunk, kVec)};
        auto load = [&](Value view) {
          Value v = vector::LoadOp::create(e.b, vecType, view, index);
          return arith::ExtFOp::create(e.b, f32Vec, v).getResult();
        };
        partial =
            e.addf(partial,
                   vector::ReductionOp::create(e.b, vector::CombiningKind::ADD,
                                               e.mulf(load(dO), load(o))));
      }
    }
    rowDelta[h] = e.quadReduce(partial, /*isMax=*/false);
    Value inRange = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row,
                                          tile.queries);
    auto write =
        scf::IfOp::create(e.b, arith::AndIOp::create(e.b, inRange, isFirst),
                          /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(write.thenBlock());
    e.store(rowDelta[h], deltaOut, {tile.batch, tile.head, row});
  }
}

/// dQ (unscaled) after every key tile of the workgroup's, or where
/// consumersTakeOwnTiles of this consumer's rows (the others skipped: two
/// turns a tile).
SmallVector<Value> QueryGradKernel::mainloop(bool pingPong) {
  e.waitParity(e.idx(0), e.i1(false));
  if (deltaOut)
    computeRowDeltas();
  TurnTaking turns(e, rows.consumer, layout.tiling.consumers, pingPong);
  SmallVector<Value> init(headDim / 2, e.f32(0.0));
  // On bands of more than 512 keys, three loops: the tiles before the
  // interior ones, the interior ones (neither the test nor the mask in
  // their body), the tiles after them, as in the forward. Where band edges
  // cut the tiles or at head dim 64: dQ kernel 4-5% faster at token
  // windows of 4096, 3% on frames of 256. Frames of whole tiles at head
  // dim 128 keep one loop: with three ptxas spilled 56 / 152 bytes (8 / 16
  // before) and the kernel was 1-2% slower (H200, docs/BENCHMARKS.md).
  bool splitInterior = keySpan(w.blockSize, w.window) > 512 &&
                       (w.blockSize < blockN || headDim <= 64);
  // With one loop, the tiles test the consumer's own interior (as the
  // forward's).
  if (!splitInterior && headDim <= 64)
    tile.takeConsumerInterior(e, w, rows.consumer);
  return overConsumerTiles(
      e, ring, turns, tile, rows, w, blockM, blockN, /*turnsPerTile=*/2,
      [&](Value first, Value end) {
        return e.keyTileLoops(
            first, end, init, splitInterior, tile.window.begin, tile.interior,
            blockN, [&](Value j, ValueRange iter, bool known) {
              return step(turns, j, SmallVector<Value>(iter), known);
            });
      });
}

/// Key tile j: S and dP, then dS, then dQ += dS K; returns the next dQ.
SmallVector<Value> QueryGradKernel::step(TurnTaking &turns, Value j,
                                         SmallVector<Value> acc,
                                         bool interiorKnown) {
  // Where S, dP and the dQ accumulator take 160 or more of a thread's 240
  // registers (128-key tiles, or head dims past 128) the tile's
  // descriptors are made from opaque copies of their bases: hoisted out of
  // the loop (Q's and dO's k16 slices, and K's and V's, are the same in
  // every tile of a stage), they held registers for its length, and ptxas
  // spilled. 3-9% faster there; with 64-key tiles at head dims up to 128
  // the hoisting costs nothing and is kept (docs/BENCHMARKS.md).
  if (blockN + headDim / 2 < 160)
    return tileStep(turns, j, acc, interiorKnown);
  OpaqueScope opaque(e, {&base, &qDesc, &doDesc});
  return tileStep(turns, j, acc, interiorKnown);
}

SmallVector<Value> QueryGradKernel::tileStep(TurnTaking &turns, Value j,
                                             SmallVector<Value> acc,
                                             bool interiorKnown) {
  Value k0 = e.add(tile.window.begin, e.mul(j, blockN));
  Value k1 = e.min(e.add(k0, e.idx(blockN)), tile.window.end);
  ring.waitFull(0, j);
  ring.waitFull(1, j);
  Value kBase =
      ring.stageAddress(base, j, layout.kOffset(), layout.kStageBytes);
  Value vBase =
      ring.stageAddress(base, j, layout.vOffset(), layout.vStageBytes);
  auto high = [&](int64_t lbo) { return e.i64(descriptorHigh(lbo)); };
  // The stage's K and V: K-major B operands of S and dP.
  Value kDescK = arith::OrIOp::create(e.b, kBase, high(16));
  Value vDescK = arith::OrIOp::create(e.b, vBase, high(16));
  // Where S, dP and dQ's accumulator leave room (64-key tiles, or head
  // dim 64), S and dP as two groups: P is made while dP's product runs,
  // in the mask's branches (so that ptxas does not move dP's wait above
  // it: maskUnless); 2-7% less time than with P and dS after both
  // products. With 128-key tiles at head dim 128 it was 1% slower
  // (docs/BENCHMARKS.md).
  bool scoresFirst = blockN <= 64 || headDim <= 64;
  auto [sAcc, dpAcc] =
      issueScoreProducts(e, turns, qDesc, kDescK, doDesc, vDescK, blockM,
                         blockN, headDim, valueDim, blockN, scoresFirst);
  if (!scoresFirst)
    ring.release(1, j, rows.isLane0);
  auto [s, dp] = unpackScores(e, sAcc, scoresFirst ? Value() : dpAcc, blockN,
                              positiveScale, scaleLog2);
  // Edge tiles mask element-wise; interior tiles do not.
  // The interior range (ForwardMainloop.cpp) where it was faster: head
  // dims up to 64 on bands with edges inside tiles (4% on the 128-token
  // window), and at 64 on frames of whole tiles in 32 bits
  // (interiorTile32: 3% faster on frames of 256 and small frames). At 128
  // the dQ kernel was 3-6% slower with the 64-bit range, on token windows
  // and frames alike, and within 2% either way with the 32-bit one: the
  // per-tile test stays there.
  // (None at all in the interior loop of keyTileLoops.)
  Value interior;
  if (!interiorKnown && w.blockSize < blockN && headDim <= 64)
    interior = e.interiorTile(k0, blockN, tile.interior);
  else if (!interiorKnown && headDim <= 64)
    interior = e.interiorTile32(tile.window.begin, j, blockN, tile.interior);
  // P = 2^(S scale log2e - lse log2e), dS = P (dP - delta).
  auto probability = [&](Value x, int64_t i) {
    Value negLse = arith::NegFOp::create(e.b, lseLog2[(i / 2) % 2]);
    return recomputeProbability(e, x, scaleLog2, negLse, positiveScale);
  };
  auto scoreGrad = [&](Value p, int64_t i) {
    return e.mulf(p, e.subf(dp[i], rowDelta[(i / 2) % 2]));
  };
  const bool bitMask = std::max(headDim, valueDim) <= 64;
  SmallVector<Value> ds;
  if (scoresFirst) {
    auto probabilities = [&](ArrayRef<Value> scores) {
      SmallVector<Value> probs;
      for (auto [i, x] : llvm::enumerate(scores))
        probs.push_back(probability(x, i));
      return probs;
    };
    SmallVector<Value> p =
        interiorKnown
            ? probabilities(s)
            : e.maskScores(s, w, rows.rowBase, tile.q0, tile.q1, interior, k0,
                           k1, blockN, tile.posOffset, bitMask, probabilities);
    // V's stage is free once dP has completed.
    dp = scoreGradRegisters(e, dpAcc, blockN);
    ring.release(1, j, rows.isLane0);
    for (auto [i, x] : llvm::enumerate(p))
      ds.push_back(scoreGrad(x, i));
  } else {
    if (!interiorKnown)
      s = e.maskScores(s, w, rows.rowBase, tile.q0, tile.q1, interior, k0, k1,
                       blockN, tile.posOffset, bitMask);
    for (auto [i, x] : llvm::enumerate(s))
      ds.push_back(scoreGrad(probability(x, i), i));
  }
  SmallVector<Value> dsFrags = e.packAFragments(ds, blockN);

  // dQ += dS K: K [keys][D] is the MN-major B; the 64-column blocks of
  // D = 128 are the leading byte offset apart.
  Value kDescMN = arith::OrIOp::create(e.b, kBase, high(blockN * kBoxRowBytes));
  SmallVector<Value> bDescs =
      e.fenceRegisters(e.mnMajorSlices(kDescMN, blockN / 16));
  dsFrags = e.fenceRegisters(dsFrags);
  acc = e.fenceRegisters(acc);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  acc = e.rsMmaSlices(acc, dsFrags, bDescs, headDim);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  acc = e.fenceRegisters(acc);
  ring.release(0, j, rows.isLane0);
  return acc;
}

void mlir::swba::gpu_kernels::buildQueryGradBody(
    OpBuilder &builder, Location loc, AttentionGradOp op,
    const QueryGradLayout &layout, ValueRange args, ArrayRef<Value> maps,
    Type elementType, int64_t headDim, int64_t valueDim, bool pingPong,
    bool computeDelta) {
  // The dK/dV kernel after this one may start once every workgroup of
  // this one has: it waits for this one before it reads delta.
  if (computeDelta)
    NVVM::GriddepcontrolOp::create(builder, loc,
                                   NVVM::GridDepActionKind::launch_dependents);
  Value bars = StageRing::createBarriers(builder, loc, layout.stages);
  HopperKernelBuilder e(builder, loc, elementType, bars);
  QueryGradKernel kernel(e, op, layout, headDim, valueDim);
  kernel.setUp(args, maps, computeDelta);
  SmallVector<Value> dq = kernel.mainloop(pingPong);
  // dQ = scale * sum dS K.
  storeQueryGradRows(e, dq, headDim, kernel.scale, kernel.rows.rowBase,
                     kernel.tile.queries, args[7], kernel.tile.batch,
                     kernel.tile.head);
}
