//===- Kernels.h - The split-KV decode kernels ------------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the bodies of the decode kernels
// (SWBADecodeToGPU.cpp makes the kernels and their launches).
//
// The decode kernel serves few query rows per kv head (decode: one query a
// sequence, or a few). A workgroup takes the G = Hq / Hkv query heads of one
// kv head times the Nq queries, R = G * Nq <= kDecodeRows rows packed (row
// r = g * Nq + i, contiguous in q for a fixed (b, kv head)), so each K/V
// tile is read once per kv head. The rows' key window is cut into `splits`
// runs of whole tiles, one per workgroup: grid (splits, Hkv, B). A split
// writes its normalized partial out and lse into the split-KV forward's
// partial buffers (f32 [splits, B * Hq * Nq, Dv] and [splits, B * Hq * Nq],
// SplitCombine.h), whose combine kernel merges the splits. An empty split
// writes out 0 and lse -inf, which the combination ignores. With one split
// the kernel writes out and lse itself, and the combine is not launched.
//
// Inside a workgroup, K/V tiles of 64 keys stream through a ring of 3
// shared-memory slots (DecodeLayout), filled by cp.async (16 bytes a thread
// and copy) or on sm_90a by TMA boxes (dense caches: 41 -> 39 us at the
// serving bar's shape; paged caches of a static page size that boxes of
// min(page size, 64) rows tile) or else one bulk copy a key row (paged
// caches: a thread looks up one page a tile instead of eight, 50 -> 45
// us), completing on the slot's mbarrier. The 4 warps divide the m16 row tiles
// and each tile's four 16-key chunks among them (R <= 16: all warps on one row
// tile, a chunk each; R <= 32: two warps a row tile, two chunks each; else a
// warp a row tile, all chunks), run S = Q K^T and O += P V on mma.sync m16n8k16
// with the online softmax in registers, and the warps of one row tile merge
// their states through shared memory at the end.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_DECODE_KERNELS_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_DECODE_KERNELS_H

#include "../KernelBuilder.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"

namespace mlir::swba::gpu_kernels {

/// Packed query rows a workgroup holds at most (one m16 tile a warp).
constexpr int64_t kDecodeRows = 64;
/// Head dims (of q/k and of v) the kernel takes at most.
constexpr int64_t kDecodeMaxHeadDim = 128;

/// The shared memory of a decode kernel, in bytes from @swba_smem: the
/// ring's `stages` K slots of `tile` keys, then its V slots, then (paged
/// caches) a NaN-or-zero word per key of each slot that marks keys of
/// invalid pages. Q is staged through the last slot, which the prologue
/// leaves free: a tile holds at least kDecodeRows keys.
/// On sm_90a the ring's copies complete on an mbarrier a slot (8 bytes
/// each, after the poison words). With `bulk`, a bulk copy
/// (cp.async.bulk) a key row fills the ring. With `tma`, TMA loads boxes of
/// 64 columns (128B-swizzled, unpadded rows, 1024-byte aligned): of a
/// tile's 64 keys from a dense cache, or of `pageRows` keys of one page
/// from a paged cache, whose tiles then start at multiples of `pageRows`
/// (a box never crosses a page).
struct DecodeLayout {
  int64_t headDim, valueDim;
  bool paged;
  bool bulk = false;
  bool tma = false;
  /// pagedTma(): rows a box (divides the tile and the static page size);
  /// else 0.
  int64_t pageRows = 0;
  int64_t tile = 64, stages = 3;

  /// 16-byte cp.async fills the ring (no mbarriers).
  bool cpAsync() const { return !bulk && !tma; }
  /// TMA boxes of pageRows keys of one page fill the ring.
  bool pagedTma() const { return tma && paged; }
  int64_t pad() const { return tma ? 0 : kPad; }
  int64_t kSlotBytes() const { return tile * (headDim + pad()) * 2; }
  int64_t vSlotBytes() const { return tile * (valueDim + pad()) * 2; }
  int64_t vOffset() const { return stages * kSlotBytes(); }
  int64_t poisonOffset() const { return vOffset() + stages * vSlotBytes(); }
  int64_t barrierOffset() const {
    return (poisonOffset() + (paged ? stages * tile * 4 : 0) + 7) / 8 * 8;
  }
  int64_t sharedBytes() const {
    return barrierOffset() + (cpAsync() ? 0 : stages * 8);
  }
};

/// Where the keys come from: a dense [B, Hkv, Nk, D] k and v, or paged
/// caches [pages, page size, Hkv, D] with a page table [B, max pages] and
/// the sequences' lengths [B] (i32).
struct DecodeOperands {
  Value q, k, v, pageTable, seqLens, partialOut, partialLse;
  /// The op's out [B, Hq, Nq, Dv] and lse [B, Hq, Nq] (or null), which a
  /// single split writes itself (the launcher skips the combine then).
  Value out = {}, lse = {};
  /// TMA: pointers to the tensor maps of k and v (dense: [B * Hkv][Nk][D]
  /// in 64 x 64 boxes; paged: [pages * page size][Hkv][D] in boxes of
  /// pageRows x 1 x 64).
  Value kMap = {}, vMap = {};
  bool paged() const { return static_cast<bool>(pageTable); }
};

/// The split-KV decode kernel's body (grid (splits, Hkv, B), kThreads).
void buildDecodeBody(OpBuilder &builder, Location loc, Type elementType,
                     DecodeLayout layout, BlockWindow window, double scale,
                     DecodeOperands operands);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_DECODE_KERNELS_H
