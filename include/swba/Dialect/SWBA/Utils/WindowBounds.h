//===- WindowBounds.h - Block-window loop bounds ----------------*- C++ -*-===//
//
// The index arithmetic that makes SWBA kernels visit only the tiles a window
// touches. Every lowering (CPU loops, GPU kernels) builds its loop bounds and
// its interior/edge tile test from these functions, so they agree by
// construction.
//
// Positions are bottom-right aligned: query row i sits at position
// i + posOffset with posOffset = Nk - Nq, key row j at position j, and
// frame(p) = p floordiv blockSize. Key j is visible to query i iff
// frame(kpos) <= frame(qpos) and frame(qpos) - frame(kpos) < window.
//
// An optional keyPhase (in [0, blockSize)) moves key row j to position
// j + keyPhase (posOffset then includes it too): the op's key_offset modulo
// the block size, which keeps the frames of a shard's rows those of the
// whole sequence. A null keyPhase emits no arithmetic for it.
//
// Block sizes and windows may be anything up to 2^63 - 1: no intermediate
// value exceeds max(2 (Nk + keyPhase), block size), so the index arithmetic
// never wraps. The functions compute in the type of their row operands:
// index, or i32 where the caller knows rows, positions, the block size and
// the window to be below 2^30 (the GPU kernels' masks, whose rows are TMA
// coordinates); every operand then has that type.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_DIALECT_SWBA_UTILS_WINDOWBOUNDS_H
#define SWBA_DIALECT_SWBA_UTILS_WINDOWBOUNDS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"

namespace mlir::swba {

/// A half-open range of rows [begin, end) as index values.
struct RowRange {
  Value begin, end;
};

/// The block window of attention: frame size and frames seen.
struct BlockWindow {
  int64_t blockSize;
  int64_t window;
};

/// Keys that some query of the query rows [q0, q1) can see: the frames
/// frame(first query) - window + 1 .. frame(last query), clipped to [0, nk).
/// Requires q0 < q1 <= Nq.
RowRange computeKeyWindow(OpBuilder &b, Location loc, BlockWindow w, Value q0,
                          Value q1, Value posOffset, Value nk,
                          Value keyPhase = {});

/// Queries that some key of the key rows [k0, k1) is seen by (the reverse
/// window): the query frames frame(k0) .. frame(k1 - 1) + window - 1, clipped
/// to [0, nq). Requires k0 < k1 <= Nk; the range may be empty.
RowRange computeQueryWindow(OpBuilder &b, Location loc, BlockWindow w, Value k0,
                            Value k1, Value posOffset, Value nq,
                            Value keyPhase = {});

/// An i1 that is true iff every key of [k0, k1) is visible to every query of
/// [q0, q1): such a tile needs no element mask. Requires non-empty ranges.
Value isTileFullyVisible(OpBuilder &b, Location loc, BlockWindow w, Value q0,
                         Value q1, Value k0, Value k1, Value posOffset,
                         Value keyPhase = {});

/// An i1 that is true iff key row `k` is visible to query row `q`.
Value isVisible(OpBuilder &b, Location loc, BlockWindow w, Value q, Value k,
                Value posOffset, Value keyPhase = {});

} // namespace mlir::swba

#endif // SWBA_DIALECT_SWBA_UTILS_WINDOWBOUNDS_H
