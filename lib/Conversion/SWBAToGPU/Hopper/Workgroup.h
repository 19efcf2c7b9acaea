//===- Workgroup.h - A workgroup's tile in the sm_90a kernels --*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: the workgroup-to-tile
// mapping of the forward and dQ kernels (a tile of query rows and the key
// window it sees) and of the dK/dV kernel (a tile of key rows and the query
// tiles of its GQA group that see them), with the TMA planes they read.
// The grids that go with them are made where the kernels are launched
// (SWBAToGPUHopper.cpp, SWBAGradToGPUHopper.cpp): (query heads, query
// tiles, batch) and (key heads, key tiles, batch).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_WORKGROUP_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_WORKGROUP_H

#include "HopperKernelBuilder.h"

namespace mlir::swba::gpu_kernels {

/// A forward or dQ workgroup: query rows [q0, q1) of (batch, head), at most
/// `blockM` (mapWorkgroup: late tiles first), the keys [window.begin,
/// window.end) they see in `numTiles` tiles of `blockN`, and the TMA planes
/// (batch * heads + head) of the queries and of their key head.
///
/// With `splits` (the split-KV forward: grid z = splits x batch, batch
/// fastest) the workgroup is split `split` of the query tile's key tiles:
/// tiles [split n / splits, (split + 1) n / splits) of the n of the window,
/// which `window.begin` and `numTiles` then describe (none when there are
/// more splits than tiles); `window.end` stays the window's.
struct QueryTile {
  Value batch, head, split;
  Value queries, keys, posOffset, kvHeads, kvHead, q0, q1;
  RowRange window;
  /// The keys every query of [q0, q1) sees (interiorKeys); a consumer's
  /// own where `consumerInterior` (takeConsumerInterior).
  RowRange interior;
  Value numTiles, qPlane, kvPlane;
  bool consumerInterior = false;
  /// A consumer's key tiles (consumerTiles) where already known: a
  /// persistent forward's, planned by its producer.
  Value ownFirst, ownEnd;

  static QueryTile get(HopperKernelBuilder &e, bool headsFastest, Value q,
                       Value k, BlockWindow w, int64_t blockM, int64_t blockN,
                       Value splits = Value()) {
    return of(e, mapWorkgroup(e, headsFastest), q, k, w, blockM, blockN,
              splits);
  }

  /// The query tiles of a persistent kernel (one workgroup an SM), and
  /// (decode) the batch, head and query tile of tile `linear` of them:
  /// batch slowest, in mapWorkgroup's order within a batch entry (late
  /// tiles first).
  static Value count(HopperKernelBuilder &e, Value q, int64_t blockM) {
    return arith::MulIOp::create(
        e.b, arith::MulIOp::create(e.b, e.dim(q, 0), e.dim(q, 1)),
        arith::CeilDivUIOp::create(e.b, e.dim(q, 2), e.idx(blockM)));
  }
  static WorkgroupTile decode(HopperKernelBuilder &e, bool headsFastest,
                              Value q, int64_t blockM, Value linear) {
    Value heads = e.dim(q, 1);
    Value tiles = arith::CeilDivUIOp::create(e.b, e.dim(q, 2), e.idx(blockM));
    Value perBatch = arith::MulIOp::create(e.b, heads, tiles);
    Value within = e.remU32(linear, perBatch);
    WorkgroupTile tile;
    tile.batch = e.divU32(linear, perBatch);
    std::tie(tile.head, tile.qTile) = headAndTile(
        e, within, heads, tiles, headsFastest, /*lastFirst=*/true,
        [&](Value a, Value b) { return e.divU32(a, b); },
        [&](Value a, Value b) { return e.remU32(a, b); });
    return tile;
  }

  static QueryTile of(HopperKernelBuilder &e, WorkgroupTile tile, Value q,
                      Value k, BlockWindow w, int64_t blockM, int64_t blockN,
                      Value splits) {
    QueryTile t = located(e, tile, q, k, splits);
    t.takeRows(e, w, tile.qTile, blockM, blockN);
    if (splits)
      t.takeSplit(e, splits, blockN);
    return t;
  }

  /// Rows [q0, q1) of query tile `qTile`, the keys they see, their
  /// interior keys and key tiles, from `queries`, `keys` and `posOffset`;
  /// in `qTile`'s type (index, or i32 where the window fits:
  /// windowFitsI32).
  void takeRows(HopperKernelBuilder &e, BlockWindow w, Value qTile,
                int64_t blockM, int64_t blockN) {
    q0 = e.mulBy(qTile, blockM);
    q1 = e.min(e.add(q0, e.constLike(q0, blockM)), queries);
    window = computeKeyWindow(e.b, e.b.getLoc(), w, q0, q1, posOffset, keys);
    interior = e.interiorKeys(w, q0, q1, posOffset, keys);
    numTiles = arith::CeilDivUIOp::create(e.b, e.sub(window.end, window.begin),
                                          e.constLike(q0, blockN));
  }

  /// The tile's batch, head, sizes and TMA planes, without its rows and
  /// keys (a persistent forward's consumers read those from the
  /// producer's plan).
  static QueryTile located(HopperKernelBuilder &e, WorkgroupTile tile, Value q,
                           Value k, Value splits = Value()) {
    QueryTile t;
    t.batch = tile.batch;
    if (splits) {
      Value batches = e.dim(q, 0);
      t.batch = e.remU32(tile.batch, batches);
      t.split = e.divU32(tile.batch, batches);
    }
    t.head = tile.head;
    t.queries = e.dim(q, 2);
    t.keys = e.dim(k, 2);
    t.posOffset = e.sub(t.keys, t.queries);
    t.kvHeads = e.dim(k, 1);
    t.kvHead = e.divIdx(t.head, e.divIdx(e.dim(q, 1), t.kvHeads));
    // TMA coordinates, innermost first: (column, row, batch * heads + head).
    t.qPlane = e.add(arith::MulIOp::create(e.b, t.batch, e.dim(q, 1)), t.head);
    t.kvPlane = e.add(arith::MulIOp::create(e.b, t.batch, t.kvHeads), t.kvHead);
    return t;
  }

  /// The rows [r0, r1) of consumer `consumer`: its 64 of [q0, q1), or the
  /// last row where none of its rows is a query.
  RowRange consumerRows(HopperKernelBuilder &e, Value consumer) const {
    Value r0 = e.min(e.add(q0, e.mulBy(consumer, kRowsPerConsumer)),
                     e.sub(q1, e.constLike(q1, 1)));
    return {r0, e.min(e.add(r0, e.constLike(r0, kRowsPerConsumer)), q1)};
  }

  /// Makes `interior` the keys every row of consumer `consumer` sees
  /// (interiorKeys of its rows), which holds the workgroup's: on narrow
  /// bands, where no key is seen by all of the workgroup's rows, a
  /// consumer's middle tiles are seen whole by its own.
  void takeConsumerInterior(HopperKernelBuilder &e, BlockWindow w,
                            Value consumer) {
    if (consumerInterior)
      return;
    RowRange rows = consumerRows(e, consumer);
    interior = e.interiorKeys(w, rows.begin, rows.end, posOffset, keys);
    consumerInterior = true;
  }

  /// The key tiles [first, end) of the workgroup's `numTiles` that the 64
  /// rows of consumer `consumer` see: fewer than the workgroup's where the
  /// band's edges cut the tiles (frames shorter than the workgroup's rows).
  /// Never empty where the workgroup has a tile, so that every consumer has
  /// a first tile (rows past the queries take the last row's; a split that
  /// this consumer's rows do not reach, its first tile, masked).
  std::pair<Value, Value> consumerTiles(HopperKernelBuilder &e, BlockWindow w,
                                        Value consumer, int64_t blockN) const {
    if (ownFirst)
      return {ownFirst, ownEnd};
    Value one = e.constLike(q0, 1);
    RowRange rows = consumerRows(e, consumer);
    RowRange seen = computeKeyWindow(e.b, e.b.getLoc(), w, rows.begin, rows.end,
                                     posOffset, keys);
    // Tiles of the workgroup's window before `key` (rounded up or down),
    // within [0, numTiles].
    Value zero = e.constLike(q0, 0), tileKeys = e.constLike(q0, blockN);
    auto tilesBefore = [&](Value key, bool roundUp) -> Value {
      Value offset =
          arith::MaxSIOp::create(e.b, e.sub(key, window.begin), zero);
      Value n = roundUp
                    ? Value(arith::CeilDivUIOp::create(e.b, offset, tileKeys))
                    : e.divIdx(offset, tileKeys);
      return e.min(n, numTiles);
    };
    Value lastTile = arith::MaxSIOp::create(e.b, e.sub(numTiles, one), zero);
    Value first = e.min(tilesBefore(seen.begin, false), lastTile);
    Value end = arith::MaxSIOp::create(e.b, tilesBefore(seen.end, true),
                                       e.min(e.add(first, one), numTiles));
    return {first, end};
  }

private:
  void takeSplit(HopperKernelBuilder &e, Value splits, int64_t blockN) {
    auto bound = [&](Value s) {
      return e.divU32(arith::MulIOp::create(e.b, s, numTiles), splits);
    };
    Value first = bound(split), last = bound(e.add(split, e.idx(1)));
    window.begin = e.add(window.begin, e.mul(first, blockN));
    numTiles = e.sub(last, first);
  }
};

/// A dK/dV workgroup: key rows [k0, k1) of (batch, kvHead), at most
/// `blockN` (early tiles first: early keys are seen by the most queries),
/// the query rows [window.begin, window.end) that see them in `qTiles`
/// tiles of `blockM`, for each of the `group` query heads of the key head:
/// `numTiles` tiles in all. Tile j is query head kvHead * group + j /
/// qTiles, rows from window.begin + (j % qTiles) * blockM.
struct KeyTile {
  Value batch, kvHead;
  Value queries, keys, posOffset, heads, kvHeads, group, k0, k1;
  RowRange window;
  Value qTiles, numTiles, kvPlane;

  /// With `round` (a workgroup of `perWorkgroup` key tiles, a value the
  /// kernel derives from its grid), its tile `round`: key tile qTile *
  /// perWorkgroup + round of the grid's.
  static KeyTile get(HopperKernelBuilder &e, Value q, Value k, BlockWindow w,
                     int64_t blockM, int64_t blockN,
                     Value perWorkgroup = Value(), Value round = Value()) {
    // Grid (key heads, key tiles, batch).
    WorkgroupTile tile =
        mapWorkgroup(e, /*headsFastest=*/false, /*lastFirst=*/false);
    KeyTile t;
    t.batch = tile.batch;
    t.kvHead = tile.head;
    t.queries = e.dim(q, 2);
    t.keys = e.dim(k, 2);
    t.posOffset = e.sub(t.keys, t.queries);
    t.heads = e.dim(q, 1);
    t.kvHeads = e.dim(k, 1);
    t.group = e.divIdx(t.heads, t.kvHeads);
    Value keyTile = tile.qTile;
    if (round)
      keyTile = e.add(arith::MulIOp::create(e.b, keyTile, perWorkgroup), round);
    t.k0 = e.mul(keyTile, blockN);
    t.k1 = e.min(e.add(t.k0, e.idx(blockN)), t.keys);
    t.window = computeQueryWindow(e.b, e.b.getLoc(), w, t.k0, t.k1, t.posOffset,
                                  t.queries);
    Value span = e.sub(t.window.end, t.window.begin);
    Value nonEmpty =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::sgt, span, e.idx(0));
    t.qTiles =
        e.select(nonEmpty, arith::CeilDivUIOp::create(e.b, span, e.idx(blockM)),
                 e.idx(0));
    t.numTiles = arith::MulIOp::create(e.b, t.qTiles, t.group);
    t.kvPlane = e.add(arith::MulIOp::create(e.b, t.batch, t.kvHeads), t.kvHead);
    return t;
  }
  Value queryHead(HopperKernelBuilder &e, Value j) const {
    return e.add(arith::MulIOp::create(e.b, kvHead, group),
                 e.divU32(j, qTiles));
  }
  Value queryRow(HopperKernelBuilder &e, Value j, int64_t blockM) const {
    return e.add(window.begin, e.mul(e.remU32(j, qTiles), blockM));
  }
};

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_WORKGROUP_H
