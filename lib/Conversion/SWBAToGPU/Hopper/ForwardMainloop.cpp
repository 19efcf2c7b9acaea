//===- ForwardMainloop.cpp - The sm_90a forward kernel --------------------===//
//
// The body of the sm_90a forward kernel (SWBAToGPUHopper.cpp has the
// kernel, its launch and the overview): the producer streams K and V
// tiles (Producer.h); each consumer warpgroup of 64 query rows runs
//   S_j = Q K_j^T             shared-memory wgmma
//   P_j = online softmax      in the accumulator registers (Softmax.h)
//   O  += P_j V_j             register-A wgmma (P never leaves registers)
// over the key tiles of its block window, and the epilogue stores
// O / rowsum and lse (Epilogue.h); the split-KV variant runs a share of
// the key tiles and stores its normalized partial O and lse in f32 for the
// combine kernel (SplitCombine.h). By default the softmax of S_j runs
// while P_{j-1} V_{j-1} is on the tensor cores (overlap-softmax), and the
// consumers take turns at the tensor cores (ping-pong).
//
//===----------------------------------------------------------------------===//

#include "Consumer.h"
#include "Epilogue.h"
#include "Kernels.h"
#include "Producer.h"
#include "Softmax.h"
#include "Workgroup.h"

#include <cmath>
#include <optional>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// What the parts of the forward kernel read: the tiling, the workgroup's
/// tile, the ring, this consumer's rows and the descriptors of its Q rows.
struct ForwardKernel {
  HopperKernelBuilder &e;
  const HopperTiling &tiling;
  const SharedLayout &layout;
  int64_t headDim, valueDim, blockM, blockN, nS, nO;
  BlockWindow w;
  bool positiveScale;
  /// The split-KV variant: partial results, a share of the key tiles.
  bool split;
  /// Bands of more than 512 keys: the pipelined forward's interior tiles
  /// run in a loop of their own (pipelinedLoop); narrower bands take one.
  bool splitInterior;
  /// Head dims up to 64: edge masks as bits (maskColumns) and, with one
  /// loop, the consumer's own interior (loops).
  bool smallHeads;
  /// The scale times log2(e): scores in the log2 domain.
  Value scale;
  OnlineSoftmax softmax;
  StageRing ring;
  QueryTile tile;
  ConsumerRows rows;
  /// qDesc: this consumer's Q rows (a persistent kernel's in this round's
  /// Q buffer).
  Value base, qDesc, warpgroup;
  /// A persistent kernel's tile counter (the producer's).
  Value counter;
  /// A persistent kernel's consumers take turns across its query tiles
  /// (TurnTaking's first pass made once); otherwise per tile, in loops().
  std::optional<TurnTaking> turnsAcrossTiles;
  /// The key tiles a consumer's rows see on a token window short enough
  /// that they all fit its registers at once (wholeBandTiles), or 0.
  int64_t bandTiles = 0;

  ForwardKernel(HopperKernelBuilder &e, AttentionOp op,
                const HopperTiling &tiling, const SharedLayout &layout,
                int64_t headDim, int64_t valueDim, bool split)
      : e(e), tiling(tiling), layout(layout), headDim(headDim),
        valueDim(valueDim), blockM(tiling.blockM()), blockN(tiling.blockN),
        nS(blockN / 2),
        nO(valueDim / 2), w{static_cast<int64_t>(op.getBlockSize()),
                            static_cast<int64_t>(op.getWindow())},
        positiveScale(op.getEffectiveScale() > 0), split(split),
        splitInterior(keySpan(w.blockSize, w.window) > 512),
        smallHeads(std::max(headDim, valueDim) <= 64),
        scale(e.f32(op.getEffectiveScale() / std::log(2.0))),
        softmax{e, scale, positiveScale}, ring{e, tiling.stages,
                                               tiling.persistent,
                                               tiling.queryBuffers,
                                               layout.qBytes} {
    if (!split)
      bandTiles = wholeBandTiles(w, tiling, headDim, valueDim);
    assert((bandTiles > 0) == layout.rowSumOnes &&
           "the one pass's P V products read the layout's ones");
  }

  void setUp(ValueRange args, ArrayRef<Value> maps);
  SmallVector<Value> mainloop();
  void forEachTile(ValueRange args, Value counter,
                   function_ref<Value(const QueryTile &)> body);
  QueryTile claimedTile(ValueRange args, bool consumer = false);
  Value tileSlot();
  void writePlan(ValueRange args, Value slot, const WorkgroupTile &t);
  /// Whether the consumers' loops test their own interior keys (loops()).
  bool consumersOwnInterior() const { return !splitInterior && smallHeads; }
  /// Whether the producer plans each claimed tile (writePlan): where the
  /// consumers run their band in one pass (a few key tiles a query tile,
  /// whose consumers take their own tiles). Elsewhere the consumers'
  /// arithmetic is a smaller share of a tile, and the plan's values, live
  /// across their loop, made them spill (ptxas 13.0): small frames with
  /// tile-scheduler=persistent 304 bytes where they spilled none, frames
  /// of 256 x 16 at head dim 64 92 where they spilled 52.
  bool planned() const { return tiling.persistent && bandTiles > 0; }
  /// Set where the consumers have waited for Q before the mainloop.
  bool onceAwaited = false;

private:
  SmallVector<Value> loops(SmallVector<Value> init);
  Value stageDesc(Value stage, int64_t firstOffset, int64_t stageBytes,
                  int64_t lbo);
  std::pair<Value, Value> tileKeys(Value j);
  struct SOperands {
    SmallVector<Value> zero, descriptors;
  };
  /// The descriptor of k16 slice kk of this consumer's Q rows.
  Value qSlice(int64_t kk) {
    return e.add(qDesc, e.i64(HopperKernelBuilder::kMajorSlice(blockM, kk)));
  }
  SOperands prepareS(Value j, ArrayRef<Value> qSlices = {});
  Value issueS(const SOperands &ops);
  SmallVector<Value> preparePV(Value j);
  void fillOnes();
  OnlineSoftmax::Tile softmaxOf(Value sAcc, Value j,
                                MutableArrayRef<Value> rowMax,
                                MutableArrayRef<Value> rowSum,
                                bool interiorKnown = false);
  SmallVector<Value> plainLoop(Value first, Value end, SmallVector<Value> init);
  SmallVector<Value> pipelinedLoop(TurnTaking &turns, Value first, Value end,
                                   SmallVector<Value> init);
  SmallVector<Value> pipelinedStep(TurnTaking &turns, Value j, ValueRange iter,
                                   bool interiorKnown);
  SmallVector<std::optional<SmallVector<Value>>> bandBits();
  SmallVector<Value> wholeBandPass(TurnTaking &turns, Value first,
                                   SmallVector<Value> init);
};

} // namespace

/// The workgroup's tile, the shared buffer and its mbarriers, the producer
/// (warpgroup 0), then the consumers' rows and Q descriptors.
void ForwardKernel::setUp(ValueRange args, ArrayRef<Value> maps) {
  e.setLaneIds();
  // (Not warpgroupIndex(): the forward keeps its descriptors in regular
  // registers without spilling, and the uniform index made the head-dim-64
  // forward 2% slower, 451 -> 459 us at design configuration 2.)
  warpgroup = e.div(e.threadId, kWarpgroupThreads);
  // The split-KV variant's count of splits: its partial lse's dim 0. (A
  // persistent kernel's tiles come in forEachTile.)
  if (!tiling.persistent)
    tile = QueryTile::get(e, tiling.headsFastest, args[0], args[1], w, blockM,
                          blockN, split ? e.dim(args[4], 0) : Value());

  // Shared memory: the extern buffer, and the descriptors' start-address
  // field at its base.
  e.sharedBuffer(layout.total());
  base = e.descriptorBase();

  if (layout.rowSumOnes)
    fillOnes();
  // mbarriers: Q's, then a ring of K (operand 0) and V (operand 1) tiles.
  // (Their initialization ends with the workgroup's barrier.)
  Value isThread0 = e.eq(e.threadId, 0);
  ring.init(tiling.consumers * kWarpgroupThreads / 32, isThread0);
  e.splitRoles(
      warpgroup, isThread0,
      [&] {
        auto produce = [&](const QueryTile &t) {
          produceTiles(e, ring, {TmaOperand{maps[0], 0, headDim}}, blockM,
                       t.q0, t.qPlane, t.numTiles,
                       {TmaOperand{maps[1], layout.kOffset(0), headDim,
                                   layout.kStageBytes},
                        TmaOperand{maps[2], layout.vOffset(0), valueDim,
                                   layout.vStageBytes}},
                       blockN, [&](Value j) {
                         return std::make_pair(
                             e.add(t.window.begin, e.mul(j, blockN)),
                             t.kvPlane);
                       });
          return t.numTiles;
        };
        if (tiling.persistent)
          forEachTile(args, counter, produce);
        else
          produce(tile);
      },
      tiling.consumers, tiling.perSM,
      /*producerAtLeast=*/tiling.persistent ? 32 : 0);

  // The consumer's rows (a persistent kernel's again for each tile).
  rows = ConsumerRows::get(e, warpgroup, tiling.persistent ? e.idx(0) : tile.q0);
  // Descriptor start addresses (in 16-byte units) of this warpgroup's Q
  // rows; K and V add their stage's offset.
  qDesc = arith::OrIOp::create(
      e.b,
      e.add(base, e.toI64(e.mul(rows.consumer,
                                kRowsPerConsumer * kBoxRowBytes / 16))),
      e.i64(descriptorHigh(16)));
}

Value ForwardKernel::stageDesc(Value stage, int64_t firstOffset,
                               int64_t stageBytes, int64_t lbo) {
  Value offset = e.add(e.idx(firstOffset / 16), e.mul(stage, stageBytes / 16));
  return arith::OrIOp::create(e.b, e.add(base, e.toI64(offset)),
                              e.i64(descriptorHigh(lbo)));
}

/// The keys [k0, k1) of key tile j of the query tile's window.
std::pair<Value, Value> ForwardKernel::tileKeys(Value j) {
  Value k0 = e.add(tile.window.begin, e.mul(j, blockN));
  return {k0, e.min(e.add(k0, e.idx(blockN)), tile.window.end)};
}

/// The operands of S_j = Q K_j^T: a zero accumulator and a descriptor pair
/// per k16 slice. Made, like every wgmma operand, before the wgmma fence:
/// ptxas serializes wgmmas when other instructions define their inputs
/// between them.
ForwardKernel::SOperands ForwardKernel::prepareS(Value j,
                                                 ArrayRef<Value> qSlices) {
  SOperands ops;
  Value kDesc =
      stageDesc(ring.stage(j), layout.kOffset(0), layout.kStageBytes, 16);
  SmallVector<Value> made;
  for (int64_t kk = 0; kk < headDim / 16; ++kk) {
    if (qSlices.empty())
      made.push_back(qSlice(kk));
    made.push_back(
        e.add(kDesc, e.i64(HopperKernelBuilder::kMajorSlice(blockN, kk))));
  }
  made = e.fenceRegisters(made);
  // Q's slices and K's, interleaved; Q's given (fenced) where several S
  // products share them.
  for (int64_t kk = 0; kk < headDim / 16; ++kk) {
    if (qSlices.empty()) {
      ops.descriptors.append({made[2 * kk], made[2 * kk + 1]});
      continue;
    }
    ops.descriptors.append({qSlices[kk], made[kk]});
  }
  ops.zero = e.zeroRegisters(nS);
  return ops;
}

/// Issues S_j (no commit).
Value ForwardKernel::issueS(const SOperands &ops) {
  Value acc = e.accumulatorOf(ops.zero);
  for (int64_t kk = 0; kk < headDim / 16; ++kk)
    acc = e.ssMma(acc, ops.descriptors[2 * kk], ops.descriptors[2 * kk + 1],
                  blockN, kk == 0);
  return acc;
}

/// The B descriptors of O += P V_j, one per k16 slice: V [keys][Dv] is the
/// MN-major B; the 64-column blocks of Dv = 128 are the leading byte
/// offset apart.
SmallVector<Value> ForwardKernel::preparePV(Value j) {
  Value vDesc = stageDesc(ring.stage(j), layout.vOffset(0), layout.vStageBytes,
                          blockN * kBoxRowBytes);
  return e.fenceRegisters(e.mnMajorSlices(vDesc, blockN / 16));
}

/// The ones of the rows' sums (SharedLayout::rowSumOnes), written by the
/// producer warpgroup's threads 16 bytes each and fenced for the wgmmas
/// that read them (async proxy), before the workgroup's barrier.
void ForwardKernel::fillOnes() {
  constexpr int64_t kWords = SharedLayout::kOnesBytes / 16;
  static_assert(kWords == kWarpgroupThreads, "a 16-byte store a thread");
  auto smemSpace = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  Value ones = memref::ViewOp::create(
      e.b,
      MemRefType::get({4 * kWords}, e.b.getI32Type(),
                      MemRefLayoutAttrInterface(), smemSpace),
      e.buffer, e.idx(layout.onesOffset()), ValueRange{});
  // A pair of ones of the element type in each i32.
  int64_t one = e.elementType.isBF16() ? 0x3F80 : 0x3C00;
  Value word =
      arith::ConstantIntOp::create(e.b, e.b.getI32Type(), (one << 16) | one);
  Value quad = vector::BroadcastOp::create(
      e.b, VectorType::get({4}, e.b.getI32Type()), word);
  e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, e.threadId,
                               e.idx(kWarpgroupThreads)),
         [&] {
           vector::StoreOp::create(
               e.b, quad, ones, ValueRange{e.mul(e.threadId, 4)},
               /*nontemporal=*/false, naturalAlignment(quad.getType()));
           e.fenceAsyncShared();
         });
}

/// The online softmax of a retired S_j: masks it where the tile is not
/// interior, then updates the row statistics (OnlineSoftmax).
OnlineSoftmax::Tile ForwardKernel::softmaxOf(Value sAcc, Value j,
                                             MutableArrayRef<Value> rowMax,
                                             MutableArrayRef<Value> rowSum,
                                             bool interiorKnown) {
  // (Not a structured binding: the lambdas below capture k0.)
  Value k0, k1;
  std::tie(k0, k1) = tileKeys(j);
  SmallVector<Value> raw;
  for (int64_t i = 0; i < nS; ++i)
    raw.push_back(LLVM::ExtractValueOp::create(e.b, sAcc, i));
  SmallVector<Value> s = e.fenceRegisters(raw);
  if (!positiveScale)
    for (Value &x : s)
      x = e.mulf(x, scale);
  // Bands with edges inside tiles test a tile's keys against the range
  // all the workgroup's queries see (fewer instructions a tile: 2.9%
  // faster at token windows); frames of whole tiles, whose tiles are
  // interior but for the sequence's end, test it in 32 bits
  // (interiorTile32: 1-3% faster than the per-tile frame test on frames,
  // which was 1.5% faster than the 64-bit range; on token windows the
  // 32-bit test was 1.5% slower than the 64-bit one, H200,
  // docs/BENCHMARKS.md).
  auto interior = [&]() -> Value {
    return w.blockSize < blockN
               ? e.interiorTile(k0, blockN, tile.interior)
               : e.interiorTile32(tile.window.begin, j, blockN, tile.interior);
  };
  // The row maxima in both branches of the mask's test, the exponentials
  // after their merge. ptxas schedules within basic blocks: with the whole
  // softmax after the merge it moved the pipelined step's wait for
  // P_{j-1} V_{j-1} to the merge's top, so that none of the softmax ran
  // under that product; the maxima (a dependent chain of max and shuffle
  // steps) now do. With the exponentials in the branches too (twice the
  // softmax's code) the head-dim-64 kernels spilled or slowed by 6-10%.
  // Forward kernel times on an H200 (alternating, 12 rounds, median us,
  // docs/BENCHMARKS.md): token windows 1639 -> 1589 at 16k and 3665 ->
  // 3554 at 32k, frames of 1024 1216 -> 1174 and of 2048 4904 -> 4863;
  // the head-dim-64 bands within 1%.
  auto withMaxima = [&](ArrayRef<Value> masked) {
    SmallVector<Value> mx(rowMax);
    softmax.updateMaxima(masked, mx);
    SmallVector<Value> out(masked);
    out.append(mx);
    return out;
  };
  SmallVector<Value> out =
      interiorKnown ? withMaxima(s)
                    : e.maskScores(s, w, rows.rowBase, tile.q0, tile.q1,
                                   interior(), k0, k1, blockN, tile.posOffset,
                                   /*bitMask=*/smallHeads, withMaxima);
  SmallVector<Value> oldMax(rowMax);
  rowMax[0] = out[nS];
  rowMax[1] = out[nS + 1];
  return softmax.exponentiate(SmallVector<Value>(out.begin(), out.begin() + nS),
                              oldMax, rowMax, rowSum);
}

/// A persistent kernel's query tiles, claimed one at a time from the
/// launch's zeroed counter (`counter`, an i32 in global memory) by the
/// producer thread, so that a workgroup that finishes early takes the next
/// tile, as the hardware's scheduler does for a grid; tiles come in
/// QueryTile::decode's order (late tiles first). Iteration r uses Q's
/// buffer r % queryBuffers and its tile slot: the producer waits until the
/// consumers have released that buffer (in iteration r - queryBuffers),
/// claims a tile and writes its index, batch, head and query tile into the
/// slot before the buffer's
/// barrier completes (its arrival releases the write); with two buffers
/// that is while the consumers still run iteration r - 1's key tiles.
/// Past the last tile it arrives without loading Q, and the
/// consumers, reading an index past the count, stop. Iteration r is the
/// workgroup's r-th query tile (StageRing's `round`); `base` is the ring
/// position of its first key tile. `body` returns the tile's key tiles.
void ForwardKernel::forEachTile(ValueRange args, Value counter,
                                function_ref<Value(const QueryTile &)> body) {
  Type i32 = e.b.getI32Type();
  Value count = arith::IndexCastOp::create(
      e.b, i32, QueryTile::count(e, args[0], blockM));
  Type index = e.b.getIndexType();
  auto loop = scf::WhileOp::create(e.b, TypeRange{index, index},
                                   ValueRange{e.idx(0), e.idx(0)});
  OpBuilder::InsertionGuard guard(e.b);
  Block *before = e.b.createBlock(&loop.getBefore(), {}, {index, index},
                                  {e.b.getLoc(), e.b.getLoc()});
  ring.round = before->getArgument(0);
  Value slot = tileSlot();
  Value claimed;
  if (counter) {
    ring.waitOnceFree();
    claimed = memref::AtomicRMWOp::create(
        e.b, arith::AtomicRMWKind::addi, arith::ConstantIntOp::create(e.b, i32, 1),
        counter, ValueRange{e.idx(0)});
    memref::StoreOp::create(e.b, claimed, slot, ValueRange{e.idx(0)});
  } else {
    ring.waitOnce();
    claimed = memref::LoadOp::create(e.b, slot, ValueRange{e.idx(0)});
    // (Uniform where the tile is planned, as its words: claimedTile.)
    if (planned())
      claimed = e.warpUniform(claimed);
  }
  Value more = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, claimed,
                                     count);
  if (counter) {
    // The tile's batch, head and query tile, divided out here once for the
    // workgroup: each consumer warp read them where it divided them out
    // itself, twice a tile (45 instructions of a warp's ~1700 a tile on
    // the 128-token window, H200, docs/BENCHMARKS.md).
    e.when(more, [&] {
      WorkgroupTile t = QueryTile::decode(
          e, tiling.headsFastest, args[0], blockM,
          arith::IndexCastUIOp::create(e.b, e.b.getIndexType(), claimed));
      Value fields[] = {t.batch, t.head, t.qTile};
      for (int64_t i = 0; i < 3; ++i)
        memref::StoreOp::create(e.b, e.toI32(fields[i]), slot,
                                ValueRange{e.idx(i + 1)});
      if (planned())
        writePlan(args, slot, t);
    });
    e.when(arith::XOrIOp::create(e.b, more, e.i1(true)),
           [&] { e.arrive(ring.onceFullSlot()); });
  }
  scf::ConditionOp::create(e.b, more, before->getArguments());
  Block *after = e.b.createBlock(&loop.getAfter(), {}, {index, index},
                                 {e.b.getLoc(), e.b.getLoc()});
  ring.round = after->getArgument(0);
  ring.base = after->getArgument(1);
  // (The claimed index again, from the slot: a value carried by the loop
  // would live through the whole tile.)
  QueryTile t = claimedTile(args, /*consumer=*/!counter);
  Value used = body(t);
  scf::YieldOp::create(e.b, ValueRange{e.add(ring.round, e.idx(1)),
                                       e.add(ring.base, used)});
  ring.round = ring.base = Value();
}

/// The shared i32s that hold a persistent kernel's claimed query tile of
/// this round (a slot for each of Q's buffers): its index, then its batch,
/// head and query tile (QueryTile::decode).
Value ForwardKernel::tileSlot() {
  auto smemSpace = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  return memref::ViewOp::create(
      e.b,
      MemRefType::get({SharedLayout::kTileSlotWords}, e.b.getI32Type(),
                      MemRefLayoutAttrInterface(), smemSpace),
      e.buffer,
      e.add(e.idx(layout.tileSlotOffset()),
            e.mul(ring.onceBuffer(), SharedLayout::kTileSlotWords * 4)),
      ValueRange{});
}

/// The tile's plan, which the producer's thread works out once a tile
/// and writes into the tile slot beside its batch, head and query tile
/// (SharedLayout::kTilePlanWord): its rows [q0, q1), keys [begin, end) and
/// key tiles, and for each consumer c (kConsumerPlanWord + 4 c) its key
/// tiles [first, end) (QueryTile::consumerTiles) and the interior keys its
/// loops test (takeConsumerInterior where consumersOwnInterior, else the
/// workgroup's). Each consumer warp worked them out in 64-bit index
/// arithmetic once a tile, about 170 of its ~1400 instructions a tile on
/// the 128-token window (ncu, H200, docs/BENCHMARKS.md).
void ForwardKernel::writePlan(ValueRange args, Value slot,
                              const WorkgroupTile &t) {
  // In i32 where the window allows (the slot's type; in the producer's 32
  // registers 64-bit values spilled, 356 bytes on small frames).
  bool inI32 = HopperKernelBuilder::windowFitsI32(w);
  auto typed = [&](Value index) { return inI32 ? e.toI32(index) : index; };
  QueryTile tile;
  tile.queries = typed(e.dim(args[0], 2));
  tile.keys = typed(e.dim(args[1], 2));
  tile.posOffset = e.sub(tile.keys, tile.queries);
  tile.takeRows(e, w, typed(t.qTile), blockM, blockN);
  auto store = [&](Value v, int64_t word) {
    memref::StoreOp::create(e.b, inI32 ? v : e.toI32(v), slot,
                            ValueRange{e.idx(word)});
  };
  Value plan[] = {tile.q0, tile.q1, tile.window.begin, tile.window.end,
                  tile.numTiles};
  for (auto [i, v] : llvm::enumerate(plan))
    store(v, SharedLayout::kTilePlanWord + i);
  assert(tiling.consumers <= SharedLayout::kPlannedConsumers);
  for (int64_t c = 0; c < tiling.consumers; ++c) {
    QueryTile own = tile;
    Value consumer = e.constLike(tile.q0, c);
    if (consumersOwnInterior())
      own.takeConsumerInterior(e, w, consumer);
    auto [first, end] = own.consumerTiles(e, w, consumer, blockN);
    Value words[] = {first, end, own.interior.begin, own.interior.end};
    for (auto [i, v] : llvm::enumerate(words))
      store(v, SharedLayout::kConsumerPlanWord + 4 * c + i);
  }
}

/// The query tile whose batch, head and index the producer wrote into the
/// tile slot, its rows, keys and key tiles from the plan (writePlan) and,
/// for a `consumer`, its own key tiles and interior. A consumer's words
/// pass through warpUniform: read from shared memory they were values of
/// each thread to ptxas, and so were the ring positions and wgmma
/// descriptors made from them (an R2UR for each use in a wgmma, and
/// divergence checks at the warp's collectives): 2514 -> 2338
/// instructions in a consumer warp's SASS of the 128-token window. (The
/// planned kernels store O through TMA; with storeForwardRows's per-row
/// branches around global stores the same made 48 more.)
QueryTile ForwardKernel::claimedTile(ValueRange args, bool consumer) {
  Value slot = tileSlot();
  bool uniform = consumer && planned();
  auto word = [&](Value v) {
    return e.fromI32(uniform ? e.warpUniform(v) : v);
  };
  auto field = [&](int64_t i) {
    return word(memref::LoadOp::create(e.b, slot, ValueRange{e.idx(i)}));
  };
  WorkgroupTile t{field(1), field(2), field(3)};
  if (!planned())
    return QueryTile::of(e, t, args[0], args[1], w, blockM, blockN, Value());
  QueryTile tile = QueryTile::located(e, t, args[0], args[1]);
  // Four words a load (the slot and its plans are 16-byte aligned).
  auto words = [&](Value first) {
    auto type = VectorType::get({4}, e.b.getI32Type());
    Value v =
        vector::LoadOp::create(e.b, type, slot, ValueRange{first},
                               /*nontemporal=*/false, naturalAlignment(type));
    SmallVector<Value> out;
    for (int64_t i = 0; i < 4; ++i)
      out.push_back(word(vector::ExtractOp::create(e.b, v, i)));
    return out;
  };
  SmallVector<Value> plan = words(e.idx(SharedLayout::kTilePlanWord));
  tile.q0 = plan[0];
  tile.q1 = plan[1];
  tile.window = {plan[2], plan[3]};
  tile.numTiles = field(SharedLayout::kTilePlanWord + 4);
  if (!consumer)
    return tile;
  SmallVector<Value> own = words(
      e.add(e.idx(SharedLayout::kConsumerPlanWord), e.mul(rows.consumer, 4)));
  tile.ownFirst = own[0];
  tile.ownEnd = own[1];
  tile.interior = {own[2], own[3]};
  tile.consumerInterior = consumersOwnInterior();
  return tile;
}

/// O, the row maxima and the row sums after every tile.
SmallVector<Value> ForwardKernel::mainloop() {
  if (!onceAwaited)
    ring.waitOnce();
  SmallVector<Value> init(nO, e.f32(0.0));
  init.append({e.negInf(), e.negInf(), e.f32(0.0), e.f32(0.0)});
  if (!split)
    return loops(init);
  // A split past the last key tile (more splits than tiles) sees no key:
  // its rows keep max -inf and sum 0.
  auto some = scf::IfOp::create(
      e.b, TypeRange(ValueRange(init)),
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, tile.numTiles,
                            e.idx(0)),
      /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(some.thenBlock());
  scf::YieldOp::create(e.b, loops(init));
  e.b.setInsertionPointToStart(some.elseBlock());
  scf::YieldOp::create(e.b, init);
  return SmallVector<Value>(some.getResults());
}

/// The loops over the key tiles from `init` (O, row maxima, row sums):
/// the workgroup's, or where consumersTakeOwnTiles this consumer's rows'
/// [first, end), the others skipped.
SmallVector<Value> ForwardKernel::loops(SmallVector<Value> init) {
  // The consumers take turns at the tensor cores (pipelined schedule
  // only), so that one's softmax runs while the others' products keep the
  // tensor cores busy.
  std::optional<TurnTaking> own;
  if (!turnsAcrossTiles)
    own.emplace(e, rows.consumer, tiling.consumers,
                tiling.overlapSoftmax && tiling.pingPong);
  TurnTaking &turns = turnsAcrossTiles ? *turnsAcrossTiles : *own;
  // One loop on bands of at most 512 keys (pipelinedLoop), whose tiles
  // at head dim 64 test the consumer's own interior: on the 128-token
  // window a consumer's middle tile of three is seen whole by its 64 rows,
  // and by none of the workgroup's 192. (Its bounds, live across the loop,
  // made the kernels of head dims 128 and 256 spill 16-24 bytes more.)
  if (consumersOwnInterior())
    tile.takeConsumerInterior(e, w, rows.consumer);
  return overConsumerTiles(
      e, ring, turns, tile, rows, w, blockM, blockN, /*turnsPerTile=*/1,
      [&](Value first, Value end) {
        auto loop = [&] {
          return tiling.overlapSoftmax ? pipelinedLoop(turns, first, end, init)
                                       : plainLoop(first, end, init);
        };
        if (!bandTiles)
          return loop();
        // All of the band's tiles at once where the consumer sees that
        // many (not near the sequence's ends) and the workgroup's window
        // starts at its first row's first key (not cut off at key 0): then
        // the consumer's tiles start at its own first row's first key, and
        // the pass's masks are the same in every query tile (bandBits). No
        // online softmax. Both branches leave the rows' sums complete (the
        // one pass's come from the tensor cores).
        Value fromFirstKey = arith::CmpIOp::create(
            e.b, arith::CmpIPredicate::sge, e.add(tile.q0, tile.posOffset),
            e.constLike(tile.q0, w.window - 1));
        auto whole = scf::IfOp::create(
            e.b, TypeRange(ValueRange(init)),
            arith::AndIOp::create(e.b, e.eq(e.sub(end, first), bandTiles),
                                  fromFirstKey),
            /*withElseRegion=*/true);
        OpBuilder::InsertionGuard guard(e.b);
        e.b.setInsertionPointToStart(whole.thenBlock());
        scf::YieldOp::create(e.b, wholeBandPass(turns, first, init));
        e.b.setInsertionPointToStart(whole.elseBlock());
        SmallVector<Value> looped = loop();
        for (int64_t h = 0; h < 2; ++h)
          looped[nO + 2 + h] =
              e.quadReduce(looped[nO + 2 + h], /*isMax=*/false);
        scf::YieldOp::create(e.b, looped);
        return SmallVector<Value>(whole.getResults());
      });
}

/// The consumer's bandTiles key tiles from `first` in one pass: every S_j
/// in one group of products, the edge tiles masked, the row maxima and
/// sums of all of them at once, then every P_j V_j in one group, from
/// `init` (O zero, maxima -inf, sums 0: the state before any tile). Where
/// the pipelined loop ran the three tiles' softmaxes one after another,
/// each waiting for its S and rescaling O, this waits for the products
/// twice and rescales nothing.
SmallVector<Value> ForwardKernel::wholeBandPass(TurnTaking &turns, Value first,
                                                SmallVector<Value> init) {
  SmallVector<Value> js;
  for (int64_t t = 0; t < bandTiles; ++t)
    js.push_back(e.add(first, e.idx(t)));
  // Q's descriptors once for the band's S products (fenced apart, each
  // product's would hold registers of their own).
  SmallVector<Value> qSlices;
  for (int64_t kk = 0; kk < headDim / 16; ++kk)
    qSlices.push_back(qSlice(kk));
  qSlices = e.fenceRegisters(qSlices);
  SmallVector<SOperands> sOps;
  for (Value j : js) {
    ring.waitFull(0, j);
    sOps.push_back(prepareS(j, qSlices));
  }
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  SmallVector<Value> sAccs;
  for (const SOperands &ops : sOps)
    sAccs.push_back(issueS(ops));
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  SmallVector<std::optional<SmallVector<Value>>> bits = bandBits();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  for (Value j : js)
    ring.release(0, j, rows.isLane0);
  // The scores of every tile, masked where its rows do not see it whole.
  SmallVector<Value> all;
  for (int64_t t = 0; t < bandTiles; ++t) {
    SmallVector<Value> raw;
    for (int64_t i = 0; i < nS; ++i)
      raw.push_back(LLVM::ExtractValueOp::create(e.b, sAccs[t], i));
    all.append(bits[t] ? e.maskWithBits(e.fenceRegisters(raw), *bits[t]) : raw);
  }
  SmallVector<Value> rowMax(init.begin() + nO, init.begin() + nO + 2);
  SmallVector<Value> rowSum(init.begin() + nO + 2, init.begin() + nO + 4);
  SmallVector<Value> oldMax(rowMax);
  softmax.updateMaxima(all, rowMax);
  OnlineSoftmax::Tile sm = softmax.exponentiate(all, oldMax, rowMax, rowSum,
                                                /*sums=*/false);
  // P_j V_j of every tile into O (zero before them: no rescaling), and
  // P_j times a 64 x 8 B of ones (SharedLayout::rowSumOnes; every slice
  // reads the same rows) into 4 registers: each row's sum of P, in f32 from
  // the tensor cores, where the softmax summed its 96 probabilities a
  // thread and then the quad's (about 130 instructions a thread and query
  // tile). (Ones as 8 more columns of V's B, m64n72, made ptxas serialize
  // every wgmma of the kernel for want of registers.)
  SmallVector<Value> o(init.begin(), init.begin() + nO);
  SmallVector<Value> sums(4, e.f32(0.0));
  SmallVector<SmallVector<Value>> ps, vDescs;
  for (auto [t, j] : llvm::enumerate(js)) {
    ps.push_back(e.fenceRegisters(
        e.packAFragments(ArrayRef<Value>(sm.probs).slice(t * nS, nS), blockN)));
    ring.waitFull(1, j);
    vDescs.push_back(preparePV(j));
  }
  Value onesDesc = e.fenceRegisters(
      {arith::OrIOp::create(e.b, e.add(base, e.i64(layout.onesOffset() / 16)),
                            e.i64(descriptorHigh(0)))})[0];
  SmallVector<Value> onesDescs(blockN / 16, onesDesc);
  o = e.fenceRegisters(o);
  sums = e.fenceRegisters(sums);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  for (int64_t t = 0; t < bandTiles; ++t) {
    o = e.rsMmaSlices(o, ps[t], vDescs[t], valueDim);
    sums = e.rsMmaSlices(sums, ps[t], onesDescs, 8);
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  o = e.fenceRegisters(o);
  sums = e.fenceRegisters(sums);
  for (Value j : js)
    ring.release(1, j, rows.isLane0);
  // Register 2 h + c holds row 8 h, column 2 t + c: the row's sum.
  SmallVector<Value> results(o.begin(), o.begin() + nO);
  results.append(rowMax);
  results.append({sums[0], sums[2]});
  return results;
}

/// The bits of this thread's visible scores in each of the one pass's
/// tiles (HopperKernelBuilder::rowBits), or none for a tile that every
/// row sees whole. The pass runs where the consumer's first tile starts
/// at its first row's first key (loops()), so row i of its 64 sees
/// columns [i - 64 t, i + window - 64 t) of tile t in every query tile:
/// the bits depend on the thread alone, and LLVM makes them once, before
/// the tiles. (Made from each tile's keys while its S products ran, they
/// took about 130 instructions a thread and query tile, and the middle
/// tile an interior test and a branch.)
SmallVector<std::optional<SmallVector<Value>>> ForwardKernel::bandBits() {
  auto c = [&](int64_t v) { return e.constI32(v); };
  auto clamp = [&](Value v) {
    return arith::MaxSIOp::create(
        e.b, arith::MinSIOp::create(e.b, v, c(blockN)), c(0));
  };
  // Row h of the thread's two (accumulatorRow, in i32 from the lane ids:
  // its index form cast made the 129-key window's kernel spill 4 bytes),
  // relative to its first column in a tile.
  Value first = arith::SubIOp::create(
      e.b,
      arith::AddIOp::create(
          e.b, arith::MulIOp::create(e.b, e.toI32(e.rem(e.warpId, 4)), c(16)),
          e.toI32(e.g)),
      arith::MulIOp::create(e.b, e.toI32(e.t), c(2)));
  SmallVector<std::optional<SmallVector<Value>>> bits;
  for (int64_t t = 0; t < bandTiles; ++t) {
    // Seen whole by the first and the last row (so by all): no mask.
    if (kRowsPerConsumer - 1 - blockN * t <= 0 &&
        w.window - blockN * t >= blockN) {
      bits.push_back(std::nullopt);
      continue;
    }
    SmallVector<Value> words;
    for (int64_t h = 0; h < 2; ++h) {
      Value lo = arith::AddIOp::create(e.b, first, c(8 * h - blockN * t));
      Value hi = arith::AddIOp::create(e.b, lo, c(w.window));
      words.push_back(e.rowBits(clamp(lo), clamp(hi)));
    }
    bits.push_back(words);
  }
  return bits;
}

/// Each tile in turn: S_j, its softmax, then P_j V_j. Waits for K (operand
/// 0) or V (1) of tile j come before the wgmma fence: a wait is a loop, and
/// ptxas serializes wgmmas that have divergent code between them.
SmallVector<Value> ForwardKernel::plainLoop(Value first, Value end,
                                            SmallVector<Value> init) {
  auto loop = scf::ForOp::create(e.b, first, end, e.idx(1), init);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToEnd(loop.getBody());
  Value j = loop.getInductionVar();
  ValueRange iter = loop.getRegionIterArgs();
  SmallVector<Value> acc(iter.begin(), iter.begin() + nO);
  SmallVector<Value> rowMax(iter.begin() + nO, iter.begin() + nO + 2);
  SmallVector<Value> rowSum(iter.begin() + nO + 2, iter.begin() + nO + 4);
  ring.waitFull(0, j);
  SOperands sOps = prepareS(j);
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  Value sAcc = issueS(sOps);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  ring.release(0, j, rows.isLane0);
  OnlineSoftmax::Tile sm = softmaxOf(sAcc, j, rowMax, rowSum);
  acc = softmax.rescale(acc, sm.alpha);
  SmallVector<Value> p = e.packAFragments(sm.probs, blockN);
  ring.waitFull(1, j);
  SmallVector<Value> vDescs = preparePV(j);
  acc = e.fenceRegisters(acc);
  p = e.fenceRegisters(p);
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  acc = e.rsMmaSlices(acc, p, vDescs, valueDim);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  acc = e.fenceRegisters(acc);
  ring.release(1, j, rows.isLane0);
  SmallVector<Value> yielded(acc);
  yielded.append(rowMax);
  yielded.append(rowSum);
  scf::YieldOp::create(e.b, yielded);
  return SmallVector<Value>(loop.getResults());
}

/// Software-pipelined: iteration j issues S_j and then P_{j-1} V_{j-1},
/// waits for S_j only, and runs the softmax of S_j while P_{j-1} V_{j-1} is
/// still on the tensor cores; O is rescaled once that product has retired.
/// The first tile's S and softmax come before the loop, the last P V after
/// it.
SmallVector<Value> ForwardKernel::pipelinedLoop(TurnTaking &turns, Value first,
                                                Value end,
                                                SmallVector<Value> init) {
  SmallVector<Value> rowMax(init.begin() + nO, init.begin() + nO + 2);
  SmallVector<Value> rowSum(init.begin() + nO + 2, init.end());
  ring.waitFull(0, first);
  SOperands s0Ops = prepareS(first);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  Value s0 = issueS(s0Ops);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  ring.release(0, first, rows.isLane0);
  OnlineSoftmax::Tile sm0 = softmaxOf(s0, first, rowMax, rowSum);
  init.resize(nO);
  init.append(rowMax);
  init.append(rowSum);
  init.append(e.packAFragments(sm0.probs, blockN));
  // On bands of more than 512 keys, three loops: the tiles before the
  // interior ones, the interior ones (no test and no mask in their body),
  // the tiles after them. Forward 2% faster at token windows of 4096,
  // within 0.6% on frames; on narrower bands, whose query tiles see a few
  // key tiles, 1% slower than one loop (H200, docs/BENCHMARKS.md).
  SmallVector<Value> carried = e.keyTileLoops(
      e.add(first, e.idx(1)), end, init, splitInterior, tile.window.begin,
      tile.interior, blockN, [&](Value j, ValueRange iter, bool known) {
        return pipelinedStep(turns, j, iter, known);
      });

  // What the loops leave: O, the row maxima and sums, and the last P,
  // whose product with V is still to be added.
  ValueRange loopResults = carried;
  SmallVector<Value> results(loopResults.begin(), loopResults.begin() + nO + 4);
  Value last = e.sub(end, e.idx(1));
  SmallVector<Value> o(results.begin(), results.begin() + nO);
  SmallVector<Value> p(loopResults.begin() + nO + 4, loopResults.end());
  ring.waitFull(1, last);
  SmallVector<Value> vDescs = preparePV(last);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  o = e.rsMmaSlices(o, p, vDescs, valueDim);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  o = e.fenceRegisters(o);
  ring.release(1, last, rows.isLane0);
  std::copy(o.begin(), o.end(), results.begin());
  return results;
}

/// Iteration j of the pipelined loop: `iter` and the result are O, the row
/// maxima and sums, and P_{j-1} (P_j) as A fragments.
SmallVector<Value> ForwardKernel::pipelinedStep(TurnTaking &turns, Value j,
                                                ValueRange iter,
                                                bool interiorKnown) {
  Value prev = e.sub(j, e.idx(1));
  SmallVector<Value> o(iter.begin(), iter.begin() + nO);
  SmallVector<Value> mx(iter.begin() + nO, iter.begin() + nO + 2);
  SmallVector<Value> sum(iter.begin() + nO + 2, iter.begin() + nO + 4);
  SmallVector<Value> p(iter.begin() + nO + 4, iter.end());
  ring.waitFull(0, j);
  ring.waitFull(1, prev);
  SOperands sOps = prepareS(j);
  SmallVector<Value> vDescs = preparePV(prev);
  turns.take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  Value sAcc = issueS(sOps);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  o = e.rsMmaSlices(o, p, vDescs, valueDim);
  NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  turns.pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 1);
  ring.release(0, j, rows.isLane0);
  OnlineSoftmax::Tile sm = softmaxOf(sAcc, j, mx, sum, interiorKnown);
  // The softmax's results fenced before the wait: otherwise the compiler
  // may sink its arithmetic below the wait, after the P V product, which
  // is the overlap undone.
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
  ring.release(1, prev, rows.isLane0);
  // P_j is packed only now: the registers P_{j-1} V_{j-1} read are written
  // after it has retired (ptxas serializes every wgmma otherwise, as it
  // folds register copies).
  o = e.fenceRegisters(softmax.rescale(o, sm.alpha));
  SmallVector<Value> yielded(o);
  yielded.append(mx);
  yielded.append(sum);
  yielded.append(e.fenceRegisters(e.packAFragments(sm.probs, blockN)));
  return yielded;
}

void mlir::swba::gpu_kernels::buildForwardBody(
    OpBuilder &builder, Location loc, AttentionOp op,
    const HopperTiling &tiling, const SharedLayout &layout, ValueRange args,
    ArrayRef<Value> maps, Type elementType, int64_t headDim, int64_t valueDim,
    bool split, Value outMap) {
  assert(bool(outMap) == (layout.outStagingBytes > 0) &&
         "O is staged where the out tensor map is passed");
  Value bars = StageRing::createBarriers(
      builder, loc, tiling.stages, tiling.persistent, tiling.queryBuffers);
  HopperKernelBuilder e(builder, loc, elementType, bars);
  ForwardKernel kernel(e, op, tiling, layout, headDim, valueDim, split);
  // A persistent kernel's last memref is its tile counter.
  if (tiling.persistent) {
    kernel.counter = args.back();
    args = args.drop_back();
  }
  kernel.setUp(args, maps);
  if (tiling.persistent) {
    // Each query tile in turn: its key tiles (Q from this round's buffer),
    // Q's buffer released to the producer, then its rows stored.
    kernel.turnsAcrossTiles.emplace(e, kernel.rows.consumer, tiling.consumers,
                                    tiling.overlapSoftmax && tiling.pingPong);
    kernel.onceAwaited = true;
    Value firstQDesc = kernel.qDesc;
    kernel.forEachTile(args, Value(), [&](const QueryTile &t) {
      kernel.tile = t;
      kernel.rows = ConsumerRows::get(e, kernel.warpgroup, t.q0);
      kernel.qDesc = e.add(firstQDesc, kernel.ring.onceDescriptorOffset());
      SmallVector<Value> results = kernel.mainloop();
      // The epilogue's indices from the tile slot again (read before Q is
      // released, after which the producer writes the next tile's): values
      // carried through the mainloop would take its registers.
      QueryTile stored = kernel.claimedTile(args);
      ConsumerRows rows = ConsumerRows::get(e, kernel.warpgroup, stored.q0);
      kernel.ring.releaseOnce();
      Value lse = args.size() > 4 ? args[4] : Value();
      if (outMap) {
        OutStaging staging{
            outMap, layout.outStagingOffset(), rows.consumer,
            e.add(stored.q0, e.mul(rows.consumer, kRowsPerConsumer)),
            stored.qPlane};
        storeForwardTile(e, results, valueDim, rows.rowBase, stored.queries,
                         staging, lse, stored.batch, stored.head);
      } else {
        storeForwardRows(e, results, valueDim, rows.rowBase, stored.queries,
                         args[3], lse, stored.batch, stored.head,
                         /*sumsComplete=*/kernel.bandTiles > 0);
      }
      return t.numTiles;
    });
    // The TMA stores of O have completed before the workgroup exits.
    if (outMap)
      e.when(e.isWarpgroupLeader(),
             [&] { NVVM::CpAsyncBulkWaitGroupOp::create(e.b, 0, UnitAttr()); });
    return;
  }
  SmallVector<Value> results = kernel.mainloop();
  const QueryTile &tile = kernel.tile;
  if (split) {
    // Rows in the op's order: (batch, head, query row).
    Value firstRow = arith::MulIOp::create(
        e.b, e.add(arith::MulIOp::create(e.b, tile.batch, e.dim(args[0], 1)),
                   tile.head),
        tile.queries);
    storeSplitRows(e, results, valueDim, kernel.rows.rowBase, tile.queries,
                   args[3], args[4], firstRow, tile.split);
    return;
  }
  storeForwardRows(e, results, valueDim, kernel.rows.rowBase,
                   kernel.tile.queries, args[3],
                   args.size() > 4 ? args[4] : Value(), kernel.tile.batch,
                   kernel.tile.head, /*sumsComplete=*/kernel.bandTiles > 0);
}
