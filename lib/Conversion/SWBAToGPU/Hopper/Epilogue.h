//===- Epilogue.h - Epilogues of the sm_90a kernels -------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: what the consumers store
// after their mainloop: the forward's normalized O and lse, the dQ
// kernel's dQ, the dK/dV kernel's dK and dV, all from wgmma accumulators
// (register 4 jn + 2 h + c: row rowBase + 8 h, column 8 jn + 2 t + c) as
// pairs of elements a store.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_EPILOGUE_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_EPILOGUE_H

#include "HopperKernelBuilder.h"

namespace mlir::swba::gpu_kernels {

/// Row h of an accumulator as stores: `values[i]` at column `columns[i]`.
struct RowStores {
  SmallVector<Value> values, columns;
};

/// Row h of the accumulator `acc` of `width` columns, each value times
/// factor(), converted to the element type and arranged for 8-byte stores:
/// a quad's lanes trade halves of two column blocks (one shuffle a pair of
/// blocks), so that each lane stores four adjacent columns and a warp's
/// store fills whole 32-byte sectors (4-byte stores of one block a store
/// filled half of each). Every lane of the warp must run it (the
/// shuffles); the stores may then be predicated by row.
RowStores packAccumulatorRow(HopperKernelBuilder &e, ValueRange acc, int64_t h,
                             int64_t width, function_ref<Value()> factor,
                             Value dst);

/// Row h of `acc` stored as it is made, one 4-byte store a column block, at
/// dst[batch, head, row, column].
void storeAccumulatorRow(HopperKernelBuilder &e, ValueRange acc, int64_t h,
                         int64_t width, function_ref<Value()> factor, Value dst,
                         Value batch, Value head, Value row);

/// The stores of `stores` at dst[batch, head, row, column] (rows 8-byte
/// aligned: the runtime passes contiguous outputs 16-byte aligned).
void storeRow(HopperKernelBuilder &e, const RowStores &stores, Value dst,
              Value batch, Value head, Value row);

/// The forward: `results` holds O (valueDim / 2 registers), the row maxima
/// and the row sums (two each); completes the sums over the quad (unless
/// `sumsComplete`) and stores O / sum into out and, with `lse`, the rows'
/// log-sum-exp; rows rowBase + 8 h below `queries` only.
void storeForwardRows(HopperKernelBuilder &e, ValueRange results,
                      int64_t valueDim, Value rowBase, Value queries, Value out,
                      Value lse, Value batch, Value head,
                      bool sumsComplete = false);

/// Where the persistent one pass stores O through shared memory and TMA
/// (SharedLayout::outStagingBytes): the `out` tensor map (the kernel's
/// pointer), the staging's byte offset in the shared buffer, and this
/// consumer's index, first row and TMA plane (batch * heads + head).
struct OutStaging {
  Value map;
  int64_t offset;
  Value consumer, firstRow, plane;
};

/// storeForwardRows through `staging`, sums complete: the consumer
/// warpgroup writes O / sum into its staging boxes (16-bit, 128B
/// swizzle), fences them for the async proxy and syncs (named barrier
/// kOutStagingBarrier + consumer), and its first thread stores the boxes
/// with TMA (rows past the queries fall outside the map) as a bulk group,
/// whose reads it waits for before the next tile's staging. The lse as
/// storeForwardRows's.
void storeForwardTile(HopperKernelBuilder &e, ValueRange results,
                      int64_t valueDim, Value rowBase, Value queries,
                      const OutStaging &staging, Value lse, Value batch,
                      Value head);
/// The first of the named barriers of storeForwardTile (after the turns'
/// 1 to 3).
constexpr int64_t kOutStagingBarrier = 4;

/// The split-KV forward: like storeForwardRows, O / sum into
/// splitOut[split, firstRow + row] and the lse into splitLse[split,
/// firstRow + row], in f32; a row that saw no key of this split gets 0 and
/// -inf.
void storeSplitRows(HopperKernelBuilder &e, ValueRange results,
                    int64_t valueDim, Value rowBase, Value queries,
                    Value splitOut, Value splitLse, Value firstRow,
                    Value split);

/// The dQ kernel: scale * dQ into dq, rows rowBase + 8 h below `queries`.
void storeQueryGradRows(HopperKernelBuilder &e, ValueRange results,
                        int64_t headDim, double scale, Value rowBase,
                        Value queries, Value dq, Value batch, Value head);

/// The dK/dV kernel: `results` holds dK (headDim / 2 registers) then dV;
/// stores scale * dK and dV, key rows keyBase + 8 h below `keys`. A head
/// dim of 0 stands for a gradient the kernel does not make (a split part).
/// `paired`: packAccumulatorRow's 8-byte stores, else storeAccumulatorRow's.
void storeKeyValueGradRows(HopperKernelBuilder &e, ValueRange results,
                           int64_t headDim, int64_t valueDim, double scale,
                           Value keyBase, Value keys, Value dk, Value dv,
                           Value batch, Value kvHead, bool paired);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_EPILOGUE_H
