//===- KeyValueGradMainloop.cpp - The sm_90a dK/dV kernel -----------------===//
//
// The body of the sm_90a dK/dV kernel (SWBAGradToGPUHopper.cpp has the
// kernel, its launch and the overview of the backward): 3 warpgroups. The
// producer loads the workgroup's 128 keys of K and V once and a ring of
// Q/dO tiles: for each query head of the GQA group, the query tiles of the
// keys' reverse window. Each consumer owns 64 keys and, per query tile,
//   S^T = K Q^T   and   dP^T = V dO^T   (SS wgmma, keys as rows)
//   P^T = exp(S^T scale - lse)          (lse, delta per column: a query)
//   dS^T = P^T (dP^T - delta)
//   dV += P^T dO   and   dK += dS^T Q   (RS wgmma, dO and Q MN-major)
// then stores dK * scale and dV: the group's sum, without atomics. With
// grad-fused-dq it also adds dQ up (FusedQueryGrad.cpp).
//
//===----------------------------------------------------------------------===//

#include "Epilogue.h"
#include "Kernels.h"
#include "KeyValueGradKernel.h"
#include "Softmax.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

KeyValueGradKernel::KeyValueGradKernel(HopperKernelBuilder &e,
                                       AttentionGradOp op,
                                       const KeyValueGradLayout &layout,
                                       int64_t headDim, int64_t valueDim,
                                       Value dqAccumMap)
    : BackwardKernel(e, op, layout.stages), layout(layout), headDim(headDim),
      valueDim(valueDim), blockM(layout.blockM), blockN(layout.blockN()),
      tensorHeadDim(cast<ShapedType>(op.getQuery().getType()).getDimSize(3)),
      statsPerThread(llvm::divideCeil(2 * blockM, kWarpgroupThreads)),
      statsBeforeKeys(keySpan(w.blockSize, w.window) <= 512),
      dqAccumMap(dqAccumMap) {}

/// The workgroup's tile (of one key tile a workgroup), the shared buffer
/// and its mbarriers, the producer (warpgroup 0); setUpTile does the rest.
/// `args`: q, k, v, dout, lse, delta, dk, dv.
void KeyValueGradKernel::setUp(ValueRange args, ArrayRef<Value> maps) {
  e.setLaneIds();
  warpgroup = e.warpgroupIndex();
  const int64_t keyTiles = layout.keyTiles;
  if (keyTiles == 1)
    tile = KeyTile::get(e, args[0], args[1], w, blockM, blockN);
  e.sharedBuffer(layout.total());
  base = e.descriptorBase();
  Value isThread0 = e.eq(e.threadId, 0);
  if (keyTiles > 1) {
    ring.reusesOnce = true;
    ring.onceBuffers = layout.onceBuffers();
    ring.onceStride = layout.onceBytes();
  }
  ring.init(layout.consumers * kWarpgroupThreads / 32, isThread0);
  // Operand 0 of the ring is Q, operand 1 dO; the dV part loads no V.
  SmallVector<TmaOperand> once{TmaOperand{maps[1], 0, headDim}};
  if (layout.part != KeyValueGradPart::Value)
    once.push_back(TmaOperand{maps[2], layout.vOffset(), valueDim});
  // The producer's loads of key tile `t`; returns its query tiles.
  auto produce = [&](const KeyTile &t) {
    produceTiles(
        e, ring, once, blockN, t.k0, t.kvPlane, t.numTiles,
        {TmaOperand{maps[0], layout.qOffset(), headDim, layout.qStageBytes},
         TmaOperand{maps[3], layout.doOffset(), valueDim, layout.doStageBytes}},
        blockM, [&](Value j) {
          Value row = t.queryRow(e, j, blockM);
          Value plane = e.add(arith::MulIOp::create(e.b, t.batch, t.heads),
                              t.queryHead(e, j));
          return std::make_pair(row, plane);
        });
    return t.numTiles;
  };
  e.splitRoles(
      warpgroup, isThread0,
      [&] {
        if (keyTiles == 1) {
          produce(tile);
          return;
        }
        // Each key tile's K and V into buffer round % 2 once the consumers
        // are done with the tile two rounds back, then its Q/dO tiles.
        forEachKeyTile(args, [&](const KeyTile &t) {
          ring.waitOnceFree();
          return produce(t);
        });
      },
      layout.consumers, layout.perSM());
}

void KeyValueGradKernel::forEachKeyTile(
    ValueRange args, function_ref<Value(const KeyTile &)> body) {
  Type index = e.b.getIndexType();
  // The workgroup's share of the key tiles: the launcher picks how many
  // workgroups run them (at most layout.keyTiles each; see GridDim).
  Value keyTiles =
      arith::CeilDivUIOp::create(e.b, e.dim(args[1], 2), e.idx(blockN));
  Value perWorkgroup = arith::CeilDivUIOp::create(
      e.b, keyTiles, gpu::GridDimOp::create(e.b, gpu::Dimension::y));
  auto loop = scf::ForOp::create(e.b, e.idx(0), perWorkgroup, e.idx(1),
                                 ValueRange{e.idx(0)});
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(loop.getBody());
  ring.round = loop.getInductionVar();
  ring.base = loop.getRegionIterArgs()[0];
  KeyTile t = KeyTile::get(e, args[0], args[1], w, blockM, blockN, perWorkgroup,
                           ring.round);
  // (The last workgroup's last rounds may lie past the keys.)
  auto ifOp = scf::IfOp::create(
      e.b, TypeRange{index},
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, t.k0, t.keys),
      /*withElseRegion=*/true);
  e.b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(e.b, body(t));
  e.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(e.b, e.idx(0));
  e.b.setInsertionPointAfter(ifOp);
  scf::YieldOp::create(e.b, e.add(ring.base, ifOp.getResult(0)));
  ring.round = ring.base = Value();
}

/// The consumers' rows of `tile`, K and V descriptors, turns and
/// row-statistics factors.
void KeyValueGradKernel::setUpTile(bool pingPong) {
  // This thread's key rows: rowBase + 8h; K and V rows of this consumer:
  // the A operands (K-major), in this round's buffer.
  rows = ConsumerRows::get(e, warpgroup, tile.k0);
  Value onceBase = base;
  if (layout.onceBuffers() > 1)
    onceBase = e.add(base, ring.onceDescriptorOffset());
  std::tie(kDesc, vDesc) =
      onceDescriptors(e, onceBase, rows.consumer, layout.vOffset());
  if (!statsBeforeKeys)
    ring.waitOnce();
  // The fused kernel takes no turns: a barrier of both consumers in each
  // tile orders its dS^T slots (accumulate).
  turns.emplace(e, rows.consumer, layout.consumers, pingPong && !dqAccumMap);
  valueFirst = headDim <= 64 && layout.part == KeyValueGradPart::Both &&
               !pingPong && !dqAccumMap;
  std::optional<RowRange> ownKeys;
  if (dqAccumMap)
    setUpQueryGrad();
  else if (!pingPong && keyConsumersTakeOwnTiles(w, blockM, blockN)) {
    Value k0 =
        e.min(e.add(tile.k0, e.mul(rows.consumer, kRowsPerConsumer)), tile.k1);
    Value k1 = e.min(e.add(k0, e.idx(kRowsPerConsumer)), tile.k1);
    ownKeys = RowRange{k0, k1};
    RowRange seen = computeQueryWindow(e.b, e.b.getLoc(), w, k0, k1,
                                       tile.posOffset, tile.queries);
    Value hasKeys =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, k0, k1);
    ownRows = RowRange{seen.begin, e.select(hasKeys, seen.end, seen.begin)};
  }
  // The interior test from the rows that see the workgroup's keys whole,
  // computed once: two compares of a tile's first row, where the frame
  // arithmetic of each tile held k0, k1 and the position offset across the
  // loop (ptxas spills 176 -> 132 bytes of loads at frames of 1024, dK/dV
  // kernel 4-5% faster on frames of head dim 128, 3% at 64:
  // docs/BENCHMARKS.md). The fused kernel, which builds each tile from
  // opaque copies (step), keeps the per-tile test.
  //
  // A consumer that takes its own tiles tests them against its own keys at
  // head dims up to 64: a narrow band's query tiles see no workgroup's 128
  // keys whole, but the middle one of a consumer's three sees its 64.
  if (!dqAccumMap) {
    RowRange keys{tile.k0, tile.k1};
    int64_t keyCount = blockN;
    if (ownKeys && std::max(headDim, valueDim) <= 64) {
      keys = *ownKeys;
      keyCount = kRowsPerConsumer;
    }
    RowRange seenWhole = e.interiorQueries(w, keys.begin, keys.end,
                                           tile.posOffset, tile.queries);
    Value wholeKeys =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                              e.sub(keys.end, keys.begin), e.idx(keyCount));
    // First rows r0 with [r0, r0 + blockM) inside the range: r0 <= end -
    // blockM (signed: the range may be shorter than a tile).
    Value lastStart = e.sub(seenWhole.end, e.idx(blockM));
    interiorStarts =
        RowRange{e.toI32(seenWhole.begin),
                 e.toI32(e.select(wholeKeys, lastStart,
                                  e.sub(seenWhole.begin, e.idx(1))))};
  }
  for (int64_t i = 0; i < statsPerThread; ++i)
    statsFactor.push_back(
        e.select(isLseEntry(i), arith::NegFOp::create(e.b, log2e), e.f32(1.0)));
}

// A query tile's row statistics, -lse log2(e) then delta (2 blockM f32), go
// through shared memory (loaded from global memory next to their use, all
// 32 of a thread's values were hoisted and spilled). Each thread loads
// statsPerThread of them, entry `local` = its lane in the warpgroup + 128 i
// (columns clamped into the queries; a clamped column is masked), one tile
// ahead, and scales them as it stores them: loaded at the top of the tile
// that uses them, the L2 latency stood between the previous tile's
// products and this one's (docs/BENCHMARKS.md).

Value KeyValueGradKernel::statsEntry(int64_t i) {
  return e.add(e.rem(e.threadId, kWarpgroupThreads),
               e.idx(i * kWarpgroupThreads));
}

Value KeyValueGradKernel::isLseEntry(int64_t i) {
  return arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, statsEntry(i),
                               e.idx(blockM));
}

/// Raw lse or delta of this thread's entries of the tile at query head
/// `qHead`, rows from `r0`, if `cond` (zeros otherwise).
SmallVector<Value> KeyValueGradKernel::loadStats(Value lse, Value delta,
                                                 Value cond, Value qHead,
                                                 Value r0) {
  SmallVector<Type> types(statsPerThread, e.b.getF32Type());
  auto ifOp = scf::IfOp::create(e.b, types, cond, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(ifOp.thenBlock());
  SmallVector<Value> values;
  for (int64_t i = 0; i < statsPerThread; ++i) {
    Value query = e.min(e.add(r0, e.rem(statsEntry(i), blockM)),
                        e.sub(tile.queries, e.idx(1)));
    auto pick = scf::IfOp::create(e.b, TypeRange{e.b.getF32Type()},
                                  isLseEntry(i), /*withElseRegion=*/true);
    OpBuilder::InsertionGuard inner(e.b);
    e.b.setInsertionPointToStart(pick.thenBlock());
    scf::YieldOp::create(e.b, e.load(lse, {tile.batch, qHead, query}));
    e.b.setInsertionPointToStart(pick.elseBlock());
    scf::YieldOp::create(e.b, e.load(delta, {tile.batch, qHead, query}));
    values.push_back(pick.getResult(0));
  }
  scf::YieldOp::create(e.b, values);
  e.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(e.b, SmallVector<Value>(statsPerThread, e.f32(0.0)));
  return SmallVector<Value>(ifOp.getResults());
}

/// The tile's statistics into this consumer's slot j % 2, read back where
/// they are used. One named barrier per warpgroup and tile: a thread that
/// writes slot j % 2 again has passed this barrier of tile j + 1, so every
/// thread is done reading tile j - 1's.
Value KeyValueGradKernel::storeStats(Value j, ValueRange tileStats) {
  Value statsSlot = e.add(e.idx(layout.rowStatsOffset()),
                          e.mul(e.add(e.mul(rows.consumer, 2),
                                      arith::RemUIOp::create(e.b, j, e.idx(2))),
                                layout.rowStatsSlotBytes()));
  auto smemSpace = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  auto statsType = MemRefType::get({2 * blockM}, e.b.getF32Type(),
                                   MemRefLayoutAttrInterface(), smemSpace);
  Value stats =
      memref::ViewOp::create(e.b, statsType, e.buffer, statsSlot, ValueRange{});
  for (int64_t i = 0; i < statsPerThread; ++i) {
    Value value = e.mulf(tileStats[i], statsFactor[i]);
    // With 32-row query tiles half the warpgroup has no entry.
    if (kWarpgroupThreads * (i + 1) > 2 * blockM)
      e.when(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                   statsEntry(i), e.idx(2 * blockM)),
             [&] { e.store(value, stats, {statsEntry(i)}); });
    else
      e.store(value, stats, {statsEntry(i)});
  }
  syncWarpgroup(3);
  return stats;
}

/// Named barrier `id` (i32) of `threads` threads.
void KeyValueGradKernel::namedBarrier(Value id, int64_t threads) {
  NVVM::BarrierOp::create(e.b, e.b.getLoc(), Type(), id, e.constI32(threads),
                          NVVM::BarrierReductionAttr(), Value());
}

/// A barrier of the consumer warpgroup alone (named barrier `barrier` +
/// consumer: 3 and 4 for the row statistics, 5 and 6 for dQ's staging).
void KeyValueGradKernel::syncWarpgroup(int64_t barrier) {
  namedBarrier(arith::IndexCastOp::create(e.b, e.b.getI32Type(),
                                          e.add(rows.consumer, e.idx(barrier))),
               kWarpgroupThreads);
}

/// A barrier of both consumers (named barrier 7).
void KeyValueGradKernel::syncConsumers() {
  namedBarrier(e.constI32(7), layout.consumers * kWarpgroupThreads);
}

/// The query head and first row of the tile after the one at (qHead, r0):
/// the next query tile of the head, or the first of the next head. (The
/// loop carries them, which saves two divisions by qTiles a tile, as i32:
/// rows and heads are TMA coordinates, and 64-bit ones held twice the
/// registers across the loop and spilled.)
std::pair<Value, Value> KeyValueGradKernel::nextTile(Value qHead, Value r0) {
  Value row = arith::AddIOp::create(e.b, r0, e.constI32(blockM));
  Value wrap = arith::CmpIOp::create(e.b, arith::CmpIPredicate::uge, row,
                                     e.toI32(rowLimit));
  return std::make_pair(
      e.select(wrap, arith::AddIOp::create(e.b, qHead, e.constI32(1)), qHead),
      e.select(wrap, e.toI32(tile.window.begin), row));
}

/// S^T masked where the tile is not interior (interiorStarts, or the frame
/// test of the tile where the kernel adds dQ up): register 4 * jn + 2 * h + c
/// is key rowBase + 8h, query r0 + 8 * jn + 2 * t + c; a key's queries are
/// the queries that see it, cut at r1 (none for keys past the end).
SmallVector<Value>
KeyValueGradKernel::maskScores(ArrayRef<Value> s, Value r0, Value r1,
                               HopperKernelBuilder::Finish finish) {
  Value interior =
      interiorStarts
          ? arith::AndIOp::create(
                e.b,
                arith::CmpIOp::create(e.b, arith::CmpIPredicate::sge,
                                      e.toI32(r0), interiorStarts->begin),
                arith::CmpIOp::create(e.b, arith::CmpIPredicate::sle,
                                      e.toI32(r0), interiorStarts->end))
          : arith::AndIOp::create(
                e.b,
                arith::AndIOp::create(
                    e.b,
                    arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                          e.sub(r1, r0), e.idx(blockM)),
                    arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                          e.sub(tile.k1, tile.k0),
                                          e.idx(blockN))),
                isTileFullyVisible(e.b, e.b.getLoc(), w, r0, r1, tile.k0,
                                   tile.k1, tile.posOffset));
  return e.maskColumns(
      // Compares, not bits: with bits the kernel took as long on narrow
      // bands and small frames and spilled 8 bytes more on frames of 256
      // at head dim 64 (H200, docs/BENCHMARKS.md).
      interior, s, r0, blockM, /*bitMask=*/false,
      [&](int64_t h) {
        // The rows' windows in i32 at head dims up to 64 (1-2% less time on
        // narrow bands); at 128 the fused kernel spilled 8 bytes more and
        // was 2% slower (H200, docs/BENCHMARKS.md).
        if (headDim > 64 || valueDim > 64 ||
            !HopperKernelBuilder::windowFitsI32(w)) {
          Value key = e.add(rows.rowBase, e.idx(8 * h));
          RowRange seen = computeQueryWindow(e.b, e.b.getLoc(), w, key,
                                             e.add(key, e.idx(1)),
                                             tile.posOffset, tile.queries);
          Value end =
              e.select(arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                             key, tile.keys),
                       e.min(seen.end, r1), seen.begin);
          return RowRange{seen.begin, end};
        }
        Value key = arith::AddIOp::create(e.b, e.toI32(rows.rowBase),
                                          e.constI32(8 * h));
        RowRange seen =
            computeQueryWindow(e.b, e.b.getLoc(), w, key,
                               arith::AddIOp::create(e.b, key, e.constI32(1)),
                               e.toI32(tile.posOffset), e.toI32(tile.queries));
        Value end = e.select(
            arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, key,
                                  e.toI32(tile.keys)),
            arith::MinSIOp::create(e.b, seen.end, e.toI32(r1)), seen.begin);
        return RowRange{seen.begin, end};
      },
      finish);
}

/// Entries `at` and `at` + 1 of a tile's row statistics: one 8-byte load.
std::array<Value, 2> KeyValueGradKernel::statsPair(Value stats, Value at) {
  Value pair = vector::LoadOp::create(
      e.b, VectorType::get({2}, e.b.getF32Type()), stats, ValueRange{at});
  return {vector::ExtractOp::create(e.b, pair, 0).getResult(),
          vector::ExtractOp::create(e.b, pair, 1).getResult()};
}

/// P^T and dS^T, packed into A fragments pair by pair as they are made (64
/// f32 of them alive at once would not fit next to dK and dV): k16 slice
/// kk takes n8 blocks 2kk and 2kk + 1, in the order (jn = 2kk, h = 0),
/// (2kk, 1), (2kk + 1, 0), (2kk + 1, 1). lse and delta of a column (query)
/// serve both of the thread's rows.
std::pair<SmallVector<Value>, SmallVector<Value>>
KeyValueGradKernel::probabilityFragments(ArrayRef<Value> s, ArrayRef<Value> dp,
                                         Value stats) {
  SmallVector<Value> ptFrags, dsFrags;
  for (int64_t jn = 0; jn < blockM / 8; ++jn) {
    // The pair of columns 8 jn + 2t, + 1: one 8-byte load each.
    Value column = e.add(e.mul(e.t, 2), e.idx(8 * jn));
    std::array<Value, 2> negLse = statsPair(stats, column), dlt;
    if (wantsKey())
      dlt = statsPair(stats, e.add(column, e.idx(blockM)));
    for (int64_t h = 0; h < 2; ++h) {
      Value p[2], ds[2];
      for (int64_t c = 0; c < 2; ++c) {
        int64_t i = 4 * jn + 2 * h + c;
        p[c] =
            recomputeProbability(e, s[i], scaleLog2, negLse[c], positiveScale);
        if (wantsKey())
          ds[c] = e.mulf(p[c], e.subf(dp[i], dlt[c]));
      }
      if (wantsValue())
        ptFrags.push_back(e.packPair(p[0], p[1]));
      if (wantsKey())
        dsFrags.push_back(e.packPair(ds[0], ds[1]));
    }
  }
  return {ptFrags, dsFrags};
}

/// Query tile j: `iter` and the result are dK, dV, the tile's query head
/// and first row (i32), and its row statistics. The fused kernel on windows of
/// more than 512 keys builds the tile from opaque copies of what its index
/// arithmetic and descriptors start from, so that what is computed from
/// them is computed again in each tile: hoisted out of the loop (K's and
/// V's k16-slice descriptors, dQ's, the masks' and the dS^T and staging
/// addresses of each thread), they held registers for the loop's length,
/// and ptxas spilled 416 bytes at head dim 128 (148 after). The kernel is
/// 4-9% faster on such windows (H200, docs/BENCHMARKS.md); on narrower
/// bands, whose loops run a few tiles, and in the separate dK/dV kernel,
/// the recomputation costs more than the spills did.
SmallVector<Value> KeyValueGradKernel::step(Value lse, Value delta, Value j,
                                            ValueRange iter) {
  if (!dqAccumMap || keySpan(w.blockSize, w.window) <= 512)
    return tileStep(lse, delta, j, iter);
  OpaqueScope opaque(e,
                     {&rows.rowBase, &rows.consumer, &base, &kDesc, &vDesc,
                      &tile.k0, &tile.k1, &tile.window.begin, &tile.window.end,
                      &tile.queries, &tile.keys, &tile.posOffset, &tile.batch,
                      &tile.heads, &tile.numTiles, &rowLimit},
                     /*laneIds=*/true);
  return tileStep(lse, delta, j, iter);
}

SmallVector<Value> KeyValueGradKernel::tileStep(Value lse, Value delta, Value j,
                                                ValueRange iter) {
  int64_t nK = keyRegisters(), nV = valueRegisters();
  SmallVector<Value> dkAcc(iter.begin(), iter.begin() + nK);
  SmallVector<Value> dvAcc(iter.begin() + nK, iter.begin() + nK + nV);
  Value qHead32 = iter[nK + nV], r032 = iter[nK + nV + 1];
  Value r0 = e.fromI32(r032);
  // The tile's statistics go to shared memory, and the next tile's are
  // loaded: at head dim 64 (valueFirst) while the score products run,
  // where ptxas then spills none of the 160 bytes it did on frames of 256
  // (dK/dV kernel 9% faster); at 128 at the top of the tile, as under the
  // products the kernel was 5-6% slower (H200, docs/BENCHMARKS.md).
  // (Slots alternate along the ring, across a workgroup's key tiles.)
  auto storeTileStats = [&] {
    return storeStats(ring.at(j), iter.drop_front(nK + nV + 2));
  };
  Value stats = valueFirst ? Value() : storeTileStats();
  Value nextHead, nextRow;
  std::tie(nextHead, nextRow) = nextTile(qHead32, r032);
  SmallVector<Value> nextStats;
  auto loadNextStats = [&] {
    nextStats =
        loadStats(lse, delta,
                  arith::CmpIOp::create(
                      e.b, arith::CmpIPredicate::ult,
                      arith::AddIOp::create(e.b, e.toI32(j), e.constI32(1)),
                      e.toI32(tile.numTiles)),
                  e.fromI32(nextHead), e.fromI32(nextRow));
  };
  if (!valueFirst)
    loadNextStats();
  auto publishStats = [&] {
    Value stats = storeTileStats();
    loadNextStats();
    return stats;
  };
  Value r1 = e.min(e.add(r0, e.idx(blockM)), tile.window.end);

  ring.waitFull(0, j);
  ring.waitFull(1, j);
  Value qBase =
      ring.stageAddress(base, j, layout.qOffset(), layout.qStageBytes);
  Value doBase =
      ring.stageAddress(base, j, layout.doOffset(), layout.doStageBytes);
  Value qDescK = arith::OrIOp::create(e.b, qBase, e.i64(descriptorHigh(16)));
  Value doDescK = arith::OrIOp::create(e.b, doBase, e.i64(descriptorHigh(16)));
  // The tile's products: S^T and dP^T (the dV part needs no dP^T), the
  // masks and probabilities, dV and dK (and dQ).
  auto products = [&] {
    if (valueFirst)
      return valueFirstProducts(qBase, doBase, qDescK, doDescK, r0, r1,
                                publishStats, dkAcc, dvAcc);
    auto [sAcc, dpAcc] =
        issueScoreProducts(e, *turns, kDesc, qDescK, vDesc, doDescK, blockN,
                           blockM, headDim, wantsKey() ? valueDim : 0, blockM);
    auto [s, dp] =
        unpackScores(e, sAcc, dpAcc, blockM, positiveScale, scaleLog2);
    s = maskScores(s, r0, r1);
    auto [ptFrags, dsFrags] = probabilityFragments(s, dp, stats);
    if (dqAccumMap)
      writeScoreGrad(j, dsFrags);
    ptFrags = e.fenceRegisters(ptFrags);
    dsFrags = e.fenceRegisters(dsFrags);
    accumulate(j, qBase, doBase, ptFrags, dsFrags, dkAcc, dvAcc);
  };
  if (!ownRows) {
    products();
  } else {
    // Only where this consumer's keys are seen by a row of the tile; the
    // tile's stages are released either way. (No turns to keep: the
    // consumers take turns only with grad-ping-pong, and then keep to the
    // workgroup's tiles, as the fused kernel does.)
    Value seen = arith::AndIOp::create(
        e.b,
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::slt, r0, ownRows->end),
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::sgt, r1,
                              ownRows->begin));
    SmallVector<Value> accs(dkAcc);
    accs.append(dvAcc);
    // (Statistics published in the branches come out of them.)
    int64_t nStats = valueFirst ? statsPerThread : 0;
    SmallVector<Type> types = llvm::to_vector(ValueRange(accs).getTypes());
    types.append(nStats, e.b.getF32Type());
    auto ifOp = scf::IfOp::create(e.b, types, seen, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToStart(ifOp.thenBlock());
      products();
      SmallVector<Value> updated(dkAcc);
      updated.append(dvAcc);
      if (valueFirst)
        updated.append(nextStats);
      scf::YieldOp::create(e.b, updated);
      e.b.setInsertionPointToStart(ifOp.elseBlock());
      if (valueFirst) {
        publishStats();
        accs.append(nextStats);
      }
      scf::YieldOp::create(e.b, accs);
    }
    ValueRange results = ifOp.getResults();
    dkAcc.assign(results.begin(), results.begin() + nK);
    dvAcc.assign(results.begin() + nK, results.begin() + nK + nV);
    if (valueFirst)
      nextStats.assign(results.begin() + nK + nV, results.end());
  }
  ring.release(0, j, rows.isLane0);
  ring.release(1, j, rows.isLane0);
  SmallVector<Value> yielded(dkAcc);
  yielded.append(dvAcc);
  yielded.append({nextHead, nextRow});
  yielded.append(nextStats);
  return yielded;
}

/// dV += P^T dO and dK += dS^T Q in one turn. With grad-fused-dq, also the
/// tile's dQ: dV is issued, the consumers meet at a barrier (each has
/// written its keys' dS^T of the tile into slot j % 3 before it arrives),
/// dQ's product reads the whole slot, dK's follows as a group of its own,
/// and the consumer reduce-adds its dQ (reduceQueryGrad) while dK's runs.
/// dO [queries][Dv] and Q [queries][D] are MN-major B operands; 64-column
/// blocks are blockM rows apart.
void KeyValueGradKernel::accumulate(Value j, Value qBase, Value doBase,
                                    ArrayRef<Value> ptFrags,
                                    ArrayRef<Value> dsFrags,
                                    SmallVector<Value> &dkAcc,
                                    SmallVector<Value> &dvAcc) {
  Value doDescMN = arith::OrIOp::create(
      e.b, doBase, e.i64(descriptorHigh(blockM * kBoxRowBytes)));
  Value qDescMN = arith::OrIOp::create(
      e.b, qBase, e.i64(descriptorHigh(blockM * kBoxRowBytes)));
  SmallVector<Value> bDescs;
  if (wantsValue())
    bDescs.append(e.mnMajorSlices(doDescMN, blockM / 16));
  if (wantsKey())
    bDescs.append(e.mnMajorSlices(qDescMN, blockM / 16));
  bDescs = e.fenceRegisters(bDescs);
  if (wantsValue())
    dvAcc = e.fenceRegisters(dvAcc);
  if (wantsKey())
    dkAcc = e.fenceRegisters(dkAcc);
  turns->take();
  NVVM::WgmmaFenceAlignedOp::create(e.b);
  ArrayRef<Value> descs(bDescs);
  if (wantsValue()) {
    dvAcc =
        e.rsMmaSlices(dvAcc, ptFrags, descs.take_front(blockM / 16), valueDim);
    descs = descs.drop_front(blockM / 16);
  }
  if (dqAccumMap) {
    // dV runs while the consumers wait for each other; then dQ, and dK
    // as a group of its own, under which the consumer stages its dQ.
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    // The last reduce (tile j - 1's) has read its staging before the
    // barrier: this tile's staging may reuse it.
    waitStagingRead();
    syncConsumers();
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    Value dqAcc = issueQueryGrad(dsSlot(j));
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    dkAcc = e.rsMmaSlices(dkAcc, dsFrags, descs, headDim);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
    NVVM::WgmmaWaitGroupSyncOp::create(e.b, 1);
    reduceQueryGrad(dqAcc, j);
  } else {
    if (wantsKey())
      dkAcc = e.rsMmaSlices(dkAcc, dsFrags, descs, headDim);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  }
  turns->pass();
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  if (wantsValue())
    dvAcc = e.fenceRegisters(dvAcc);
  if (wantsKey())
    dkAcc = e.fenceRegisters(dkAcc);
}

/// A tile's products with the exponentials under dP^T's product and dS^T
/// under dV's: S^T and dP^T as two groups; once S^T's has completed, P^T
/// in the mask's branches (so that ptxas does not move the wait for dP^T
/// above them: maskUnless); dV += P^T dO issued; once dP^T's group has
/// completed (dV's still in flight), dS^T, then dK += dS^T Q. At head dim
/// 64 the dK/dV kernel takes 2-5% less time than with the tile's products
/// one after the other (docs/BENCHMARKS.md); at 128, where the kernel
/// spills, 3-4% more.
void KeyValueGradKernel::valueFirstProducts(Value qBase, Value doBase,
                                            Value qDescK, Value doDescK,
                                            Value r0, Value r1,
                                            function_ref<Value()> publishStats,
                                            SmallVector<Value> &dkAcc,
                                            SmallVector<Value> &dvAcc) {
  Value stats;
  auto [sAcc, dpAcc] =
      issueScoreProducts(e, *turns, kDesc, qDescK, vDesc, doDescK, blockN,
                         blockM, headDim, valueDim, blockM,
                         /*scoresFirst=*/true, [&] { stats = publishStats(); });
  SmallVector<Value> s =
      unpackScores(e, sAcc, Value(), blockM, positiveScale, scaleLog2).first;
  SmallVector<Value> p = maskScores(s, r0, r1, [&](ArrayRef<Value> scores) {
    SmallVector<Value> probs;
    for (int64_t jn = 0; jn < blockM / 8; ++jn) {
      std::array<Value, 2> negLse =
          statsPair(stats, e.add(e.mul(e.t, 2), e.idx(8 * jn)));
      for (int64_t i = 4 * jn; i < 4 * jn + 4; ++i)
        probs.push_back(recomputeProbability(e, scores[i], scaleLog2,
                                             negLse[i % 2], positiveScale));
    }
    return probs;
  });
  auto issue = [&](SmallVector<Value> &acc, SmallVector<Value> frags,
                   Value stage, int64_t n) {
    Value descMN = arith::OrIOp::create(
        e.b, stage, e.i64(descriptorHigh(blockM * kBoxRowBytes)));
    SmallVector<Value> descs =
        e.fenceRegisters(e.mnMajorSlices(descMN, blockM / 16));
    frags = e.fenceRegisters(frags);
    acc = e.fenceRegisters(acc);
    NVVM::WgmmaFenceAlignedOp::create(e.b);
    acc = e.rsMmaSlices(acc, frags, descs, n);
    NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
  };
  issue(dvAcc, e.packAFragments(p, blockM), doBase, valueDim);
  SmallVector<Value> dp = scoreGradRegisters(e, dpAcc, blockM, /*pending=*/1);
  // dS^T packed pair by pair as it is made (packAFragments' order).
  SmallVector<Value> dsFrags;
  for (int64_t jn = 0; jn < blockM / 8; ++jn) {
    std::array<Value, 2> dlt =
        statsPair(stats, e.add(e.mul(e.t, 2), e.idx(8 * jn + blockM)));
    for (int64_t i = 4 * jn; i < 4 * jn + 4; i += 2)
      dsFrags.push_back(
          e.packPair(e.mulf(p[i], e.subf(dp[i], dlt[0])),
                     e.mulf(p[i + 1], e.subf(dp[i + 1], dlt[1]))));
  }
  issue(dkAcc, dsFrags, qBase, headDim);
  NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
  dvAcc = e.fenceRegisters(dvAcc);
  dkAcc = e.fenceRegisters(dkAcc);
}

SmallVector<Value> KeyValueGradKernel::mainloop(Value lse, Value delta) {
  firstHead = arith::MulIOp::create(e.b, tile.kvHead, tile.group);
  rowLimit = e.add(tile.window.begin, e.mul(tile.qTiles, blockM));
  int64_t nKV = keyRegisters() + valueRegisters();
  SmallVector<Value> init(nKV, e.f32(0.0));
  init.append({e.toI32(firstHead), e.toI32(tile.window.begin)});
  init.append(loadStats(lse, delta,
                        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt,
                                              tile.numTiles, e.idx(0)),
                        firstHead, tile.window.begin));
  // On narrow bands, K and V after the first tile's statistics went out:
  // their loads' latency under the wait for K and V, where it stood
  // between the wait and the first of a workgroup's few tiles. dK/dV
  // kernel on an H200 (bf16, kernel_times.py, 2026-12-04): 128-token
  // windows 197 -> 176 us, small frames 167 -> 163; wider bands, whose
  // workgroups run many tiles, within 1% either way (they keep the order).
  if (statsBeforeKeys)
    ring.waitOnce();
  auto loop = scf::ForOp::create(e.b, e.idx(0), tile.numTiles, e.idx(1), init);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToEnd(loop.getBody());
    scf::YieldOp::create(e.b, step(lse, delta, loop.getInductionVar(),
                                   loop.getRegionIterArgs()));
  }
  // The last reduce-add's staging stays until its TMA has read it.
  if (dqAccumMap)
    waitStagingRead();
  return SmallVector<Value>(loop.getResults().take_front(nKV));
}

void mlir::swba::gpu_kernels::buildKeyValueGradBody(
    OpBuilder &builder, Location loc, AttentionGradOp op,
    const KeyValueGradLayout &layout, ValueRange args, ArrayRef<Value> maps,
    Type elementType, int64_t headDim, int64_t valueDim, Value dqAccumMap,
    bool pingPong, bool earlyStart) {
  const bool reusesOnce = layout.keyTiles > 1;
  Value bars = StageRing::createBarriers(builder, loc, layout.stages,
                                         reusesOnce, layout.onceBuffers());
  HopperKernelBuilder e(builder, loc, elementType, bars);
  KeyValueGradKernel kernel(e, op, layout, headDim, valueDim, dqAccumMap);
  kernel.setUp(args, maps);
  // (The consumers from here: the producer has its loads of the op's
  // inputs in flight.)
  if (earlyStart)
    NVVM::GriddepcontrolOp::create(e.b, loc, NVVM::GridDepActionKind::wait);
  // The tile's products, then its dK and dV: dK = scale * sum dS^T Q, dV =
  // sum P^T dO, what this part made. 8-byte stores on bands of at most 512
  // keys, whose loops run a few query tiles (dK/dV kernel 10% faster on the
  // 128-token window and small frames); on wider bands, a row's values made
  // before its stores (as the pairing needs, outside the row's test) made
  // ptxas spill more in the loop (frames of 256 at head dim 64 5% slower;
  // docs/BENCHMARKS.md).
  auto run = [&] {
    kernel.setUpTile(pingPong);
    SmallVector<Value> grads = kernel.mainloop(args[4], args[5]);
    // (K and V of this round are read no more: every product has completed.)
    kernel.ring.releaseOnce();
    storeKeyValueGradRows(
        e, grads, kernel.wantsKey() ? headDim : 0,
        kernel.wantsValue() ? valueDim : 0, kernel.scale, kernel.rows.rowBase,
        kernel.tile.keys, args[6], args[7], kernel.tile.batch,
        kernel.tile.kvHead,
        /*paired=*/keySpan(kernel.w.blockSize, kernel.w.window) <= 512);
    return kernel.tile.numTiles;
  };
  if (!reusesOnce) {
    run();
    return;
  }
  kernel.forEachKeyTile(args, [&](const KeyTile &t) {
    kernel.tile = t;
    return run();
  });
}
