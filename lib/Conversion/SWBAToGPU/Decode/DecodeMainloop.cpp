//===- DecodeMainloop.cpp - The split-KV decode kernel --------------------===//
//
// The body of the decode kernel (Kernels.h has the overview): the split's
// key range from the rows' block window, Q into A fragments, the ring over
// the split's tiles (cp.async, or on sm_90a TMA boxes or bulk copies), per
// warp its 16-key chunks of each tile (S = Q K^T, mask on edge chunks,
// online softmax, O += P V), and the epilogue that merges the warps of a
// row tile and writes the split's partial out and lse.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// Keys per warp step: one k16 slice of P V.
constexpr int64_t kChunk = 16;
/// Columns of a TMA box: 128 bytes of 16-bit elements.
constexpr int64_t kBoxColumns = 64;

struct DecodeKernel {
  KernelBuilder &e;
  DecodeLayout layout;
  BlockWindow w;
  Value scale;
  DecodeOperands ops;
  int64_t dk, nAcc;

  Value split, kvHead, batch, queries, group, rows, posOffset, firstQuery;
  Value warpTile, keyGroup, keyGroups;
  /// The split's keys and the number of tiles they take.
  RowRange keys;
  Value numTiles;
  Value sK, sV, sPoison;
  Value numPages, pageSize, maxPages;
  SmallVector<Value> qFrag;
  /// The last cp.async group of the prologue: the waits name it (their
  /// lowering counts groups, the token only orders the IR).
  Value groupToken;
  /// sm_90a: the shared address of @swba_smem (i64); bulk copies: the byte
  /// address of element 0 and the strides (elements) of k and v.
  struct Rows {
    Value base;
    SmallVector<Value> strides;
  };
  Value smemAddress;
  Rows kRows, vRows;
  Value buffer;

  void setUp(Value buffer);
  void loadQuery();
  Value issueTile(Value tile);
  SmallVector<Value> mainloop();
  void writePartials(ValueRange state, Value buffer);

private:
  Value sequenceLength();
  void splitWindow();
  Value loadEntry(Value page);
  std::pair<SmallVector<Value>, Value> keyAddress(Value key);
  void copyRows(Value k0, Value slotRow, int64_t width, Value cache, Value smem,
                bool alsoV);
  void copyChunk(Value cache, Value smem, ArrayRef<Value> address, Value ok,
                 Value smemRow, Value col);
  Rows rowsOf(Value cache);
  std::pair<Value, Value> place(Value row, Value col, int64_t width);
  Value ld(Value view, Value row, Value col, int64_t width, int64_t tiles,
           bool transpose);
  void tmaTile(Value k0, Value slot);
  void pagedPoisonWords(Value k0, Value slot);
  void zeroTail(Value tile);
  Value sharedPointer(Value byteOffset);
  Value clusterPointer(Value byteOffset);
  Value barrier(Value slot);
  void bulkRows(Value k0, Value slot);
  void zeroRow(Value smem, Value row, int64_t width);
  void poisonWord(Value inSplit, Value valid, Value writer, Value row);
  SmallVector<Value> tileStep(Value tile, ValueRange state);
  SmallVector<Value> chunkStep(Value k0, Value chunkRow, ValueRange state);
  SmallVector<Value> scores(Value chunkRow);
  SmallVector<Value> mask(ArrayRef<Value> s, Value c0);
  SmallVector<Value> softmax(ArrayRef<Value> s, MutableArrayRef<Value> state);
  void combineRows(Value accS, Value statS);
};

} // namespace

static Value cmp(KernelBuilder &e, arith::CmpIPredicate p, Value x, Value y) {
  return arith::CmpIOp::create(e.b, p, x, y);
}
static Value andI(KernelBuilder &e, Value x, Value y) {
  return arith::AndIOp::create(e.b, x, y);
}
static Value maxIdx(KernelBuilder &e, Value x, Value y) {
  return arith::MaxSIOp::create(e.b, x, y);
}
static Value ceilDiv(KernelBuilder &e, Value x, int64_t y) {
  return arith::CeilDivUIOp::create(e.b, x, e.idx(y));
}
/// The extern shared-memory buffer @swba_smem as `bytes` bytes.
static Value sharedBytesBuffer(KernelBuilder &e, int64_t bytes) {
  auto space = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  auto globalType =
      MemRefType::get({0}, e.b.getI8Type(), MemRefLayoutAttrInterface(), space);
  Value global = memref::GetGlobalOp::create(e.b, globalType, "swba_smem");
  auto bufType = MemRefType::get({bytes}, e.b.getI8Type(),
                                 MemRefLayoutAttrInterface(), space);
  return memref::ReinterpretCastOp::create(
      e.b, bufType, global, 0, ArrayRef<int64_t>{bytes}, ArrayRef<int64_t>{1});
}
/// Fragment j (rows 2j, 2j + 1) of an ldmatrix result.
static Value halfOf(KernelBuilder &e, Value frags, int64_t j) {
  if (cast<VectorType>(frags.getType()).getDimSize(0) == 2)
    return frags;
  return vector::ShuffleOp::create(e.b, frags, frags,
                                   ArrayRef<int64_t>{2 * j, 2 * j + 1});
}
static Value workgroupView(KernelBuilder &e, Value buffer, int64_t offset,
                           ArrayRef<int64_t> shape, Type type) {
  auto space = gpu::AddressSpaceAttr::get(
      e.b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  auto viewType =
      MemRefType::get(shape, type, MemRefLayoutAttrInterface(), space);
  return memref::ViewOp::create(e.b, viewType, buffer, e.idx(offset),
                                ValueRange{});
}

/// Tokens in the sequence: Nk, or max(seq_lens[b], 0) of a paged cache.
Value DecodeKernel::sequenceLength() {
  if (!ops.paged())
    return e.dim(ops.k, 2);
  Value len = arith::IndexCastOp::create(e.b, e.b.getIndexType(),
                                         e.load(ops.seqLens, {batch}));
  return maxIdx(e, len, e.idx(0));
}

/// The workgroup's rows, their key window and the split's share of it:
/// whole tiles from the window's start, so that splits never share a tile.
void DecodeKernel::setUp(Value buffer) {
  e.setLaneIds();
  split = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
  kvHead = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
  batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);
  queries = e.dim(ops.q, 2);
  group =
      e.divIdx(e.dim(ops.q, 1), gpu::GridDimOp::create(e.b, gpu::Dimension::y));
  rows = arith::MulIOp::create(e.b, group, queries);
  Value len = sequenceLength();
  posOffset = e.sub(len, queries);
  // Rows before the sequence's start (a sequence shorter than Nq) see no
  // key: out 0 and lse -inf, as for a softmax over nothing.
  firstQuery = maxIdx(e, e.sub(queries, len), e.idx(0));
  Value none = cmp(e, arith::CmpIPredicate::sge, firstQuery, queries);
  Value q0 = e.min(firstQuery, e.sub(queries, e.idx(1)));
  RowRange all =
      computeKeyWindow(e.b, e.b.getLoc(), w, q0, queries, posOffset, len);
  keys = {e.select(none, e.idx(0), all.begin),
          e.select(none, e.idx(0), all.end)};
  splitWindow();

  // One m16 row tile per 1, 2 or 4 warps, by the rows at hand.
  Value oneTile = cmp(e, arith::CmpIPredicate::ule, rows, e.idx(16));
  Value twoTiles = cmp(e, arith::CmpIPredicate::ule, rows, e.idx(32));
  keyGroups =
      e.select(oneTile, e.idx(4), e.select(twoTiles, e.idx(2), e.idx(1)));
  warpTile = e.divIdx(e.warpId, keyGroups);
  keyGroup = arith::RemUIOp::create(e.b, e.warpId, keyGroups);

  this->buffer = buffer;
  if (layout.tma) {
    // Boxes of 64 columns: slot s, box cb at rows (s * width / 64 + cb) *
    // tile (place()).
    sK = workgroupView(
        e, buffer, 0,
        {layout.stages * layout.headDim / kBoxColumns * layout.tile,
         kBoxColumns},
        e.elementType);
    sV = workgroupView(
        e, buffer, layout.vOffset(),
        {layout.stages * layout.valueDim / kBoxColumns * layout.tile,
         kBoxColumns},
        e.elementType);
  } else {
    sK = workgroupView(e, buffer, 0,
                       {layout.stages * layout.tile, layout.headDim + kPad},
                       e.elementType);
    sV = workgroupView(e, buffer, layout.vOffset(),
                       {layout.stages * layout.tile, layout.valueDim + kPad},
                       e.elementType);
  }
  if (!layout.cpAsync()) {
    smemAddress = arith::IndexCastUIOp::create(
        e.b, e.b.getI64Type(),
        memref::ExtractAlignedPointerAsIndexOp::create(e.b, buffer));
    if (layout.bulk) {
      kRows = rowsOf(ops.k);
      vRows = rowsOf(ops.v);
    }
    // A slot's barrier completes a phase per tile it takes: on TMA thread
    // 0's arrive (which announces the tile's bytes), on bulk copies every
    // thread's.
    auto first = scf::IfOp::create(
        e.b, cmp(e, arith::CmpIPredicate::eq, e.threadId, e.idx(0)), false);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPoint(first.thenBlock()->getTerminator());
      for (int64_t s = 0; s < layout.stages; ++s)
        NVVM::MBarrierInitOp::create(
            e.b, barrier(e.idx(s)),
            arith::ConstantIntOp::create(e.b, e.b.getI32Type(),
                                         layout.tma ? 1 : kThreads),
            Value());
      NVVM::FenceMbarrierInitOp::create(e.b);
    }
    gpu::BarrierOp::create(e.b);
  }
  if (!ops.paged())
    return;
  sPoison = workgroupView(e, buffer, layout.poisonOffset(),
                          {layout.stages * layout.tile}, e.b.getF32Type());
  // A page size of 0 holds no key: no page is valid then, and the page
  // arithmetic divides by 1.
  Value size = e.dim(ops.k, 1);
  numPages = e.select(cmp(e, arith::CmpIPredicate::eq, size, e.idx(0)),
                      e.idx(0), e.dim(ops.k, 0));
  pageSize = maxIdx(e, size, e.idx(1));
  maxPages = e.dim(ops.pageTable, 1);
}

void DecodeKernel::splitWindow() {
  // Paged TMA: tiles start at multiples of the box rows, so that a box lies
  // in one page; the keys before the window are masked.
  if (layout.pagedTma())
    keys.begin = e.mul(e.div(keys.begin, layout.pageRows), layout.pageRows);
  Value splits = gpu::GridDimOp::create(e.b, gpu::Dimension::x);
  Value tiles = ceilDiv(e, e.sub(keys.end, keys.begin), layout.tile);
  Value perSplit = arith::CeilDivUIOp::create(e.b, tiles, splits);
  Value span = e.mul(perSplit, layout.tile);
  Value begin = e.min(
      e.add(keys.begin, arith::MulIOp::create(e.b, split, span)), keys.end);
  keys = {begin, e.min(e.add(begin, span), keys.end)};
  numTiles = ceilDiv(e, e.sub(keys.end, keys.begin), layout.tile);
}

/// Q's packed rows (row r: head kvHead * G + r / Nq, query r % Nq; rows
/// past R zero) staged through the last ring slot, which the prologue
/// leaves free, into A fragments of the warp's row tile.
void DecodeKernel::loadQuery() {
  int64_t d = layout.headDim, perRow = d / kVec;
  VectorType vecType = VectorType::get({kVec}, e.elementType);
  Value slotRow = e.idx((layout.stages - 1) * layout.tile);
  for (int64_t base = 0; base < kDecodeRows * perRow; base += kThreads) {
    Value chunk = e.add(e.threadId, e.idx(base));
    Value r = e.div(chunk, perRow), col = e.mul(e.rem(chunk, perRow), kVec);
    Value inRows = cmp(e, arith::CmpIPredicate::ult, r, rows);
    auto ifOp = scf::IfOp::create(e.b, TypeRange{vecType}, inRows, true);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToStart(ifOp.thenBlock());
      Value head = e.add(arith::MulIOp::create(e.b, kvHead, group),
                         e.divIdx(r, queries));
      Value row = arith::RemUIOp::create(e.b, r, queries);
      Value loaded = vector::LoadOp::create(
          e.b, vecType, ops.q, ValueRange{batch, head, row, col},
          /*nontemporal=*/false, naturalAlignment(vecType));
      scf::YieldOp::create(e.b, loaded);
      e.b.setInsertionPointToStart(ifOp.elseBlock());
      Value zero = arith::ConstantOp::create(
          e.b, vecType,
          DenseElementsAttr::get(vecType, e.b.getZeroAttr(e.elementType)));
      scf::YieldOp::create(e.b, zero);
    }
    auto [row, column] = place(e.add(slotRow, r), col, d);
    vector::StoreOp::create(e.b, ifOp.getResult(0), sK,
                            ValueRange{row, column});
  }
  // The slot's next writer is a bulk copy or TMA (the async proxy).
  if (!layout.cpAsync())
    e.fenceAsyncShared();
  gpu::BarrierOp::create(e.b);
  Value row = e.add(e.add(slotRow, e.mul(warpTile, 16)), e.rem(e.laneId, 16));
  Value col = e.mul(e.div(e.laneId, 16), 8);
  for (int64_t kk = 0; kk < d / 16; ++kk)
    qFrag.push_back(ld(sK, row, e.add(col, e.idx(kk * 16)), d, 4, false));
}

/// The sequence's page table entry of page `page` when the page is in
/// the table (the table is not read past its columns), else -1.
Value DecodeKernel::loadEntry(Value page) {
  Value needed = cmp(e, arith::CmpIPredicate::ult, page, maxPages);
  auto ifOp =
      scf::IfOp::create(e.b, TypeRange{e.b.getIndexType()}, needed, true);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToStart(ifOp.thenBlock());
  Value slot = arith::IndexCastOp::create(e.b, e.b.getIndexType(),
                                          e.load(ops.pageTable, {batch, page}));
  scf::YieldOp::create(e.b, slot);
  e.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(e.b, e.idx(-1));
  return ifOp.getResult(0);
}

/// The indices of key `key`'s row in k/v (the column left out) and whether
/// it may be read: a paged key's page table entry must be a page of the
/// cache. (Loading the entries a tile ahead, loop-carried, made the paged
/// kernel 25% slower: 238 registers a thread against the copies' latency.)
std::pair<SmallVector<Value>, Value> DecodeKernel::keyAddress(Value key) {
  if (!ops.paged())
    return {{batch, kvHead, key}, Value()};
  Value slot = loadEntry(e.divIdx(key, pageSize));
  Value valid = cmp(e, arith::CmpIPredicate::ult, slot, numPages);
  Value row = arith::RemUIOp::create(e.b, key, pageSize);
  return {{e.select(valid, slot, e.idx(0)), row, kvHead}, valid};
}

/// One 16-byte cp.async; `ok` false copies nothing and zero-fills, so keys
/// past the split and keys of invalid pages are finite zeros in shared
/// memory.
void DecodeKernel::copyChunk(Value cache, Value smem, ArrayRef<Value> address,
                             Value ok, Value smemRow, Value col) {
  SmallVector<Value> src(address);
  src.push_back(col);
  nvgpu::DeviceAsyncCopyOp::create(
      e.b, nvgpu::DeviceAsyncTokenType::get(e.b.getContext()), smem,
      ValueRange{smemRow, col}, cache, src, e.b.getIndexAttr(kVec),
      e.select(ok, e.idx(kVec), e.idx(0)), e.b.getUnitAttr());
}

/// Copies the tile's rows of `cache` (`width` columns) into `smem` from
/// `slotRow`: consecutive threads take consecutive 16-byte chunks, so that
/// a warp's copy reads whole lines. K and V of one width share the rows'
/// addresses (`alsoV`).
void DecodeKernel::copyRows(Value k0, Value slotRow, int64_t width, Value cache,
                            Value smem, bool alsoV) {
  int64_t perRow = width / kVec;
  for (int64_t base = 0; base < layout.tile * perRow; base += kThreads) {
    Value chunk = e.add(e.threadId, e.idx(base));
    Value r = e.div(chunk, perRow), col = e.mul(e.rem(chunk, perRow), kVec);
    Value key = e.add(k0, r);
    Value inSplit = cmp(e, arith::CmpIPredicate::ult, key, keys.end);
    auto [address, valid] = keyAddress(e.select(inSplit, key, keys.begin));
    Value ok = valid ? andI(e, inSplit, valid) : inSplit;
    copyChunk(cache, smem, address, ok, e.add(slotRow, r), col);
    if (alsoV)
      copyChunk(ops.v, sV, address, ok, e.add(slotRow, r), col);
    if (valid && smem == sK)
      poisonWord(inSplit, valid,
                 cmp(e, arith::CmpIPredicate::eq, col, e.idx(0)),
                 e.add(slotRow, r));
  }
}

/// A key of an invalid page poisons the rows that see it: the thread where
/// `writer` holds writes its word at `row` (NaN for a key in the split
/// whose page is not `valid`, else 0).
void DecodeKernel::poisonWord(Value inSplit, Value valid, Value writer,
                              Value row) {
  Value bad = andI(
      e, inSplit,
      arith::XOrIOp::create(
          e.b, valid, arith::ConstantIntOp::create(e.b, e.b.getI1Type(), 1)));
  Value word = e.select(bad, e.f32(std::nan("")), e.f32(0.0));
  auto store = scf::IfOp::create(e.b, writer, false);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(store.thenBlock()->getTerminator());
  e.store(word, sPoison, {row});
}

/// The byte address of element 0 of `cache` (i64) and its strides.
DecodeKernel::Rows DecodeKernel::rowsOf(Value cache) {
  auto meta = memref::ExtractStridedMetadataOp::create(e.b, cache);
  Value aligned = memref::ExtractAlignedPointerAsIndexOp::create(e.b, cache);
  Value base = e.add(aligned, e.mul(meta.getOffset(), 2));
  return {arith::IndexCastUIOp::create(e.b, e.b.getI64Type(), base),
          SmallVector<Value>(meta.getStrides())};
}

/// A shared-memory pointer `byteOffset` (index) bytes into @swba_smem.
Value DecodeKernel::sharedPointer(Value byteOffset) {
  Value address = arith::AddIOp::create(
      e.b, smemAddress,
      arith::IndexCastUIOp::create(e.b, e.b.getI64Type(), byteOffset));
  return LLVM::IntToPtrOp::create(
      e.b, LLVM::LLVMPointerType::get(e.b.getContext(), 3), address);
}

/// The same as a shared::cluster pointer, the destination of bulk copies
/// and TMA (their shared::cta forms need PTX 8.6; a CTA's own shared
/// addresses are its shared::cluster addresses).
Value DecodeKernel::clusterPointer(Value byteOffset) {
  return LLVM::AddrSpaceCastOp::create(
      e.b, LLVM::LLVMPointerType::get(e.b.getContext(), 7),
      sharedPointer(byteOffset));
}

/// The mbarrier of ring slot `slot`.
Value DecodeKernel::barrier(Value slot) {
  return sharedPointer(e.add(e.idx(layout.barrierOffset()), e.mul(slot, 8)));
}

/// Zeros in row `row` of `smem` (`width` columns): a key the split does
/// not have (or of an invalid page) is finite in shared memory, and the
/// fence orders these generic writes before the slot's next bulk copy.
void DecodeKernel::zeroRow(Value smem, Value row, int64_t width) {
  VectorType vecType = VectorType::get({kVec}, e.elementType);
  Value zero = arith::ConstantOp::create(
      e.b, vecType,
      DenseElementsAttr::get(vecType, e.b.getZeroAttr(e.elementType)));
  for (int64_t col = 0; col < width; col += kVec)
    vector::StoreOp::create(e.b, zero, smem, ValueRange{row, e.idx(col)});
  e.fenceAsyncShared();
}

/// Fills ring slot `slot` with keys [k0, k0 + tile) by bulk copies, one a
/// row of K or of V (thread j takes copies j, j + kThreads, ...: K rows,
/// then V rows), each announced to the slot's barrier before it is
/// issued; a row that is not copied gets zeros. Every thread then arrives
/// once. One look-up a thread of the page table and one copy instruction
/// stand where 16-byte cp.async took 16 a thread and a tile, whose
/// per-thread requests limited the rate at which an SM read (docs/
/// BENCHMARKS.md).
void DecodeKernel::bulkRows(Value k0, Value slot) {
  Value bar = barrier(slot);
  Value slotRow = e.mul(slot, layout.tile);
  const int64_t copies = 2 * layout.tile;
  for (int64_t base = 0; base < copies; base += kThreads) {
    Value j = e.add(e.threadId, e.idx(base));
    auto inRange = scf::IfOp::create(
        e.b, cmp(e, arith::CmpIPredicate::ult, j, e.idx(copies)), false);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    Value isV = cmp(e, arith::CmpIPredicate::uge, j, e.idx(layout.tile));
    Value r = e.select(isV, e.sub(j, e.idx(layout.tile)), j);
    Value key = e.add(k0, r);
    Value inSplit = cmp(e, arith::CmpIPredicate::ult, key, keys.end);
    auto [address, valid] = keyAddress(e.select(inSplit, key, keys.begin));
    Value ok = valid ? andI(e, inSplit, valid) : inSplit;
    Value row = e.add(slotRow, r);
    auto copy = scf::IfOp::create(e.b, ok, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard inner(e.b);
      e.b.setInsertionPoint(copy.thenBlock()->getTerminator());
      // Byte address of the row: element 0 + the indices times the strides.
      auto rowAddress = [&](const Rows &rows) {
        Value elements = e.idx(0);
        for (auto [index, stride] : llvm::zip(address, rows.strides))
          elements = e.add(elements, arith::MulIOp::create(e.b, index, stride));
        return arith::AddIOp::create(
            e.b, rows.base,
            arith::IndexCastUIOp::create(e.b, e.b.getI64Type(),
                                         e.mul(elements, 2)));
      };
      Value src = arith::SelectOp::create(e.b, isV, rowAddress(vRows),
                                          rowAddress(kRows));
      Value dstOffset =
          e.select(isV,
                   e.add(e.idx(layout.vOffset()),
                         e.mul(row, (layout.valueDim + kPad) * 2)),
                   e.mul(row, (layout.headDim + kPad) * 2));
      Value bytes = arith::IndexCastUIOp::create(
          e.b, e.b.getI32Type(),
          e.select(isV, e.idx(layout.valueDim * 2), e.idx(layout.headDim * 2)));
      NVVM::MBarrierExpectTxOp::create(
          e.b, bar, bytes,
          NVVM::MemScopeKindAttr::get(e.b.getContext(),
                                      NVVM::MemScopeKind::CTA));
      NVVM::CpAsyncBulkGlobalToSharedClusterOp::create(
          e.b, clusterPointer(dstOffset),
          LLVM::IntToPtrOp::create(
              e.b, LLVM::LLVMPointerType::get(e.b.getContext(), 1), src),
          bar, bytes, /*multicastMask=*/Value(), /*l2CacheHint=*/Value());
      e.b.setInsertionPoint(copy.elseBlock()->getTerminator());
      auto which = scf::IfOp::create(e.b, isV, /*withElseRegion=*/true);
      e.b.setInsertionPoint(which.thenBlock()->getTerminator());
      zeroRow(sV, row, layout.valueDim);
      e.b.setInsertionPoint(which.elseBlock()->getTerminator());
      zeroRow(sK, row, layout.headDim);
    }
    // The K row's copy writes the row's poison word.
    if (valid)
      poisonWord(
          inSplit, valid,
          arith::XOrIOp::create(
              e.b, isV, arith::ConstantIntOp::create(e.b, e.b.getI1Type(), 1)),
          row);
  }
  NVVM::MBarrierArriveOp::create(e.b, e.b.getI64Type(), bar, Value());
}

/// Where element (row, col) of a slot's rows (row = slot * tile + r) of
/// `width` columns lies in the K or V view: the same indices, or with TMA
/// box col / 64 of the slot, and the 16-byte chunk col % 64 / 8 XORed with
/// r % 8 (the 128B swizzle of a 1024-byte aligned box of 128-byte rows).
std::pair<Value, Value> DecodeKernel::place(Value row, Value col,
                                            int64_t width) {
  if (!layout.tma)
    return {row, col};
  Value slot = e.div(row, layout.tile), r = e.rem(row, layout.tile);
  Value box = e.add(e.mul(slot, width / kBoxColumns), e.div(col, kBoxColumns));
  Value chunk = arith::XOrIOp::create(e.b, e.div(e.rem(col, kBoxColumns), 8),
                                      e.rem(r, 8));
  return {e.add(e.mul(box, layout.tile), r),
          e.add(e.mul(chunk, 8), e.rem(col, 8))};
}

/// ldmatrix of `tiles` 8x8 tiles at (row, col) of the K or V view (each
/// lane's 16 bytes lie together in either layout).
Value DecodeKernel::ld(Value view, Value row, Value col, int64_t width,
                       int64_t tiles, bool transpose) {
  auto [r, c] = place(row, col, width);
  return e.ldmatrix(view, r, c, tiles, transpose);
}

/// TMA: thread 0 announces the tile's bytes to the slot's barrier (with
/// its arrive) and loads its 64 keys of K and V in boxes of 64 columns.
/// Dense caches: a box of the tile's rows (rows past Nk come as zeros;
/// rows past the split are finite and masked). Paged caches: a box a run
/// of pageRows keys from its page; a run past the split or of an invalid
/// page loads a box past the cache's last row, which TMA fills with zeros
/// (so the byte count stays the tile's). Rows are i32 coordinates: a cache
/// of 2^31 rows would be 256 GiB at the smallest TMA row (128 bytes).
void DecodeKernel::tmaTile(Value k0, Value slot) {
  if (ops.paged())
    pagedPoisonWords(k0, slot);
  // Paged: lane i of warp 0 looks up run i's page and issues its boxes
  // (the runs' look-ups and copies at once, not one after another in one
  // thread); dense: thread 0 issues the tile's boxes.
  int64_t runRows = ops.paged() ? layout.pageRows : layout.tile;
  int64_t issuers = ops.paged() ? layout.tile / runRows : 1;
  auto first = scf::IfOp::create(
      e.b, cmp(e, arith::CmpIPredicate::ult, e.threadId, e.idx(issuers)),
      false);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(first.thenBlock()->getTerminator());
  Type i32 = e.b.getI32Type();
  auto toI32 = [&](Value index) {
    return arith::IndexCastOp::create(e.b, i32, index).getResult();
  };
  Value bar = barrier(slot);
  int64_t bytes = layout.tile * (layout.headDim + layout.valueDim) * 2;
  // (A copy may complete before thread 0 announces the bytes: the phase
  // waits for its arrival too.)
  {
    auto announce = scf::IfOp::create(
        e.b, cmp(e, arith::CmpIPredicate::eq, e.threadId, e.idx(0)), false);
    OpBuilder::InsertionGuard inner(e.b);
    e.b.setInsertionPoint(announce.thenBlock()->getTerminator());
    NVVM::MBarrierArriveExpectTxOp::create(
        e.b, Type(), bar, arith::ConstantIntOp::create(e.b, i32, bytes),
        NVVM::MemScopeKind::CTA, /*relaxed=*/false, Value());
  }
  int64_t boxBytes = layout.tile * kBoxColumns * 2;
  // The run's coordinates of its first row after the column: dense (key,
  // B * Hkv plane), paged (kv head, cache row); and its bytes into a box.
  Value coordA, coordB, runOffset = e.idx(0);
  if (!ops.paged()) {
    Value plane =
        e.add(arith::MulIOp::create(
                  e.b, batch, gpu::GridDimOp::create(e.b, gpu::Dimension::y)),
              kvHead);
    coordA = toI32(k0);
    coordB = toI32(plane);
  } else {
    Value key = e.add(k0, e.mul(e.threadId, runRows));
    Value needed = cmp(e, arith::CmpIPredicate::ult, key, keys.end);
    // (loadEntry gives -1 for a page past the table.)
    Value entry =
        loadEntry(e.select(needed, e.divIdx(key, pageSize), maxPages));
    Value valid = cmp(e, arith::CmpIPredicate::ult, entry, numPages);
    Value row = e.select(valid,
                         e.add(arith::MulIOp::create(e.b, entry, pageSize),
                               arith::RemUIOp::create(e.b, key, pageSize)),
                         arith::MulIOp::create(e.b, numPages, pageSize));
    coordA = toI32(kvHead);
    coordB = toI32(row);
    runOffset = e.mul(e.threadId, runRows * kBoxColumns * 2);
  }
  auto load = [&](Value map, int64_t offset, int64_t width) {
    for (int64_t cb = 0; cb < width / kBoxColumns; ++cb) {
      Value box = e.add(e.idx(offset + cb * boxBytes),
                        e.mul(slot, width / kBoxColumns * boxBytes));
      Value col = arith::ConstantIntOp::create(e.b, i32, cb * kBoxColumns);
      // Innermost first: dense [D][Nk][B * Hkv], paged [D][Hkv][rows].
      SmallVector<Value> coords{col, coordA, coordB};
      NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
          e.b, clusterPointer(e.add(box, runOffset)), map, coords, bar,
          /*im2colOffsets=*/ValueRange{},
          /*multicastMask=*/Value(), /*l2CacheHint=*/Value(),
          NVVM::TMALoadMode::TILE, /*isCTAOnly=*/false,
          /*group=*/NVVM::CTAGroupKindAttr(), /*predicate=*/Value());
    }
  };
  load(ops.kMap, 0, layout.headDim);
  load(ops.vMap, layout.vOffset(), layout.valueDim);
}

/// Paged TMA: the poison words of the tile's keys (thread j < tile: key
/// k0 + j; NaN for a key in the split whose page is not in the cache).
void DecodeKernel::pagedPoisonWords(Value k0, Value slot) {
  auto mine = scf::IfOp::create(
      e.b, cmp(e, arith::CmpIPredicate::ult, e.threadId, e.idx(layout.tile)),
      false);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(mine.thenBlock()->getTerminator());
  Value key = e.add(k0, e.threadId);
  Value inSplit = cmp(e, arith::CmpIPredicate::ult, key, keys.end);
  auto [address, valid] = keyAddress(e.select(inSplit, key, keys.begin));
  (void)address;
  poisonWord(inSplit, valid,
             arith::ConstantIntOp::create(e.b, e.b.getI1Type(), 1),
             e.add(e.mul(slot, layout.tile), e.threadId));
}

/// Paged TMA, after tile `tile` landed: zeros in the V rows past the
/// split's end that its last box brought from a page (rows of the page
/// past the sequence's length need not be finite, and P V would turn them
/// into NaN), fenced before the slot's next TMA.
void DecodeKernel::zeroTail(Value tile) {
  Value k0 = e.add(keys.begin, e.mul(tile, layout.tile));
  Value lo = e.min(e.sub(keys.end, k0), e.idx(layout.tile));
  Value hi = e.min(e.mul(ceilDiv(e, lo, layout.pageRows), layout.pageRows),
                   e.idx(layout.tile));
  // (Only the split's last tile can have such rows.)
  auto tail = scf::IfOp::create(
      e.b, cmp(e, arith::CmpIPredicate::ult, lo, hi), false);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(tail.thenBlock()->getTerminator());
  int64_t perRow = layout.valueDim / kVec;
  Value slotRow = e.add(e.mul(e.rem(tile, layout.stages), layout.tile), lo);
  VectorType vecType = VectorType::get({kVec}, e.elementType);
  Value zero = arith::ConstantOp::create(
      e.b, vecType,
      DenseElementsAttr::get(vecType, e.b.getZeroAttr(e.elementType)));
  e.loop(e.threadId, e.mul(e.sub(hi, lo), perRow), e.idx(kThreads),
         [&](Value index) {
           auto [row, col] =
               place(e.add(slotRow, e.div(index, perRow)),
                     e.mul(e.rem(index, perRow), kVec), layout.valueDim);
           vector::StoreOp::create(e.b, zero, sV, ValueRange{row, col});
         });
  e.fenceAsyncShared();
}

/// Issues tile `tile` of the split into its ring slot (when the split has
/// it) and closes a cp.async group either way, so that every thread
/// counts the same groups; returns the group's token.
Value DecodeKernel::issueTile(Value tile) {
  Value has = cmp(e, arith::CmpIPredicate::ult, tile, numTiles);
  auto ifOp = scf::IfOp::create(e.b, has, /*withElseRegion=*/false);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    Value k0 = e.add(keys.begin, e.mul(tile, layout.tile));
    if (layout.bulk) {
      bulkRows(k0, e.rem(tile, layout.stages));
      return Value();
    }
    if (layout.tma) {
      tmaTile(k0, e.rem(tile, layout.stages));
      return Value();
    }
    Value slotRow = e.mul(e.rem(tile, layout.stages), layout.tile);
    bool sameWidth = layout.headDim == layout.valueDim;
    copyRows(k0, slotRow, layout.headDim, ops.k, sK, sameWidth);
    if (!sameWidth)
      copyRows(k0, slotRow, layout.valueDim, ops.v, sV, false);
  }
  if (!layout.cpAsync())
    return Value();
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      e.b, nvgpu::DeviceAsyncTokenType::get(e.b.getContext()), ValueRange{});
}

/// Loop-carried per warp: nAcc output tiles, then the max and the
/// (per-thread partial) sum of rows g and g + 8.
SmallVector<Value> DecodeKernel::mainloop() {
  for (int64_t s = 0; s + 1 < layout.stages; ++s)
    groupToken = issueTile(e.idx(s));
  loadQuery();
  SmallVector<Value> init;
  for (int64_t i = 0; i < nAcc; ++i)
    init.push_back(e.zeroAcc());
  init.append({e.negInf(), e.negInf(), e.f32(0.0), e.f32(0.0)});
  auto loop = scf::ForOp::create(e.b, e.idx(0), numTiles, e.idx(1), init);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToEnd(loop.getBody());
  scf::YieldOp::create(
      e.b, tileStep(loop.getInductionVar(), loop.getRegionIterArgs()));
  return SmallVector<Value>(loop.getResults());
}

/// Waits for tile `tile`, refills the slot the previous step used, and
/// runs the warp's chunks of the tile.
SmallVector<Value> DecodeKernel::tileStep(Value tile, ValueRange state) {
  if (!layout.cpAsync()) {
    // The tile's slot's barrier completes a phase per tile it takes.
    Value slot = e.rem(tile, layout.stages);
    Value parity = e.rem(e.div(tile, layout.stages), 2);
    Value phase = arith::IndexCastUIOp::create(e.b, e.b.getI32Type(), parity);
    Value ticks = arith::ConstantIntOp::create(e.b, e.b.getI32Type(), 10000000);
    NVVM::MBarrierTryWaitParityOp::create(e.b, barrier(slot), phase, ticks);
    if (layout.pagedTma())
      zeroTail(tile);
  } else {
    // Groups close in tile order, one per step: the stages - 2 after this
    // tile's may still be in flight.
    nvgpu::DeviceAsyncWaitOp::create(e.b, groupToken,
                                     e.b.getI32IntegerAttr(layout.stages - 2));
  }
  // Everyone's copies of this tile are visible, and everyone is done with
  // the slot that the next issue overwrites.
  gpu::BarrierOp::create(e.b);
  issueTile(e.add(tile, e.idx(layout.stages - 1)));
  Value k0 = e.add(keys.begin, e.mul(tile, layout.tile));
  Value slotRow = e.mul(e.rem(tile, layout.stages), layout.tile);
  auto chunks = scf::ForOp::create(e.b, keyGroup, e.idx(layout.tile / kChunk),
                                   keyGroups, state);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToEnd(chunks.getBody());
    Value c = chunks.getInductionVar();
    scf::YieldOp::create(e.b, chunkStep(e.add(k0, e.mul(c, kChunk)),
                                        e.add(slotRow, e.mul(c, kChunk)),
                                        chunks.getRegionIterArgs()));
  }
  return SmallVector<Value>(chunks.getResults());
}

/// Keys [c0, c0 + 16) at shared row `chunkRow`: scores, mask, softmax,
/// then O += P V with P's two C tiles as one A fragment.
SmallVector<Value> DecodeKernel::chunkStep(Value c0, Value chunkRow,
                                           ValueRange state) {
  SmallVector<Value> s = scores(chunkRow);
  Value interior =
      andI(e,
           andI(e,
                cmp(e, arith::CmpIPredicate::ule, e.add(c0, e.idx(kChunk)),
                    keys.end),
                cmp(e, arith::CmpIPredicate::eq, firstQuery, e.idx(0))),
           isTileFullyVisible(e.b, e.b.getLoc(), w, e.idx(0), queries, c0,
                              e.add(c0, e.idx(kChunk)), posOffset));
  auto maskIf =
      scf::IfOp::create(e.b, TypeRange(ValueRange(s)), interior, true);
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(maskIf.thenBlock());
    scf::YieldOp::create(e.b, s);
    e.b.setInsertionPointToStart(maskIf.elseBlock());
    scf::YieldOp::create(e.b, mask(s, c0));
  }
  SmallVector<Value> next(state);
  SmallVector<Value> masked(maskIf.getResults());
  SmallVector<Value> p = softmax(masked, next);
  Value aFrag = e.toAFragment(p[0], p[1]);
  // ldmatrix.x4 with transpose: the B fragments of n tiles dt and dt + 1.
  Value row = e.add(chunkRow, e.rem(e.laneId, 16));
  for (int64_t dt = 0; dt < nAcc; dt += 2) {
    int64_t tiles = dt + 1 < nAcc ? 4 : 2;
    Value col =
        e.add(e.mul(e.div(e.laneId, 16), 8 * (tiles / 4)), e.idx(dt * 8));
    Value frags = ld(sV, row, col, layout.valueDim, tiles, /*transpose=*/true);
    for (int64_t j = 0; j < tiles / 2; ++j)
      next[dt + j] = e.mma(aFrag, halfOf(e, frags, j), next[dt + j]);
  }
  return next;
}

/// S = Q K^T of the chunk (two n8 tiles), scaled into the log2 domain; on
/// a paged cache plus the keys' poison words (NaN for invalid pages).
SmallVector<Value> DecodeKernel::scores(Value chunkRow) {
  SmallVector<Value> s;
  for (int64_t nt = 0; nt < 2; ++nt) {
    // ldmatrix.x4 gives the B fragments of k slices kk and kk + 1; two
    // accumulators halve the chain of dependent mmas.
    Value c[2] = {e.zeroAcc(), e.zeroAcc()};
    Value row = e.add(chunkRow, e.add(e.rem(e.laneId, 8), e.idx(nt * 8)));
    for (int64_t kk = 0; kk < dk; kk += 2) {
      int64_t tiles = kk + 1 < dk ? 4 : 2;
      Value col = e.add(e.mul(e.rem(e.div(e.laneId, 8), tiles / 2 * 2), 8),
                        e.idx(kk * 16));
      Value frags = ld(sK, row, col, layout.headDim, tiles, false);
      for (int64_t j = 0; j < tiles / 2; ++j)
        c[j] = e.mma(qFrag[kk + j], halfOf(e, frags, j), c[j]);
    }
    Value sum = arith::AddFOp::create(e.b, c[0], c[1]);
    sum = arith::MulFOp::create(
        e.b, sum, vector::BroadcastOp::create(e.b, sum.getType(), scale));
    if (ops.paged()) {
      Value key = e.add(chunkRow, e.add(e.mul(e.t, 2), e.idx(nt * 8)));
      for (int64_t col = 0; col < 2; ++col) {
        Value poison = e.load(sPoison, {e.add(key, e.idx(col))});
        for (int64_t r = 0; r < 2; ++r)
          sum = e.insert(e.addf(e.extract(sum, r, col), poison), sum, r, col);
      }
    }
    s.push_back(sum);
  }
  return s;
}

/// Element mask of an edge chunk: keys past the split, rows past R or
/// before the sequence's start, and pairs outside the block window get
/// -inf.
SmallVector<Value> DecodeKernel::mask(ArrayRef<Value> s, Value c0) {
  SmallVector<Value> masked;
  for (int64_t nt = 0; nt < 2; ++nt) {
    Value tile = s[nt];
    for (int64_t r = 0; r < 2; ++r) {
      Value packed = e.add(e.mul(warpTile, 16), e.add(e.g, e.idx(8 * r)));
      Value i =
          arith::RemUIOp::create(e.b, packed, maxIdx(e, queries, e.idx(1)));
      Value rowOk = andI(e, cmp(e, arith::CmpIPredicate::ult, packed, rows),
                         cmp(e, arith::CmpIPredicate::sge, i, firstQuery));
      for (int64_t c = 0; c < 2; ++c) {
        Value col = e.add(c0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c)));
        Value visible = andI(
            e, andI(e, rowOk, cmp(e, arith::CmpIPredicate::ult, col, keys.end)),
            isVisible(e.b, e.b.getLoc(), w, i, col, posOffset));
        tile = e.insert(e.select(visible, e.extract(tile, r, c), e.negInf()),
                        tile, r, c);
      }
    }
    masked.push_back(tile);
  }
  return masked;
}

/// Online softmax of rows g (r = 0) and g + 8 (r = 1) over the chunk:
/// updates state's max and sum, rescales its O and returns P.
SmallVector<Value> DecodeKernel::softmax(ArrayRef<Value> s,
                                         MutableArrayRef<Value> state) {
  SmallVector<Value> p(s);
  for (int64_t r = 0; r < 2; ++r) {
    Value &mx = state[nAcc + r];
    Value old = mx;
    for (Value tile : s)
      mx = e.maxf(mx, e.maxf(e.extract(tile, r, 0), e.extract(tile, r, 1)));
    mx = e.quadReduce(mx, /*isMax=*/true);
    // A row that has seen only masked keys keeps max -inf; subtracting 0
    // keeps its exponentials at 0 instead of NaN.
    Value ref = e.select(
        arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, mx, e.negInf()),
        e.f32(0.0), mx);
    Value alpha = e.ex2(e.subf(old, ref));
    Value partial = e.f32(0.0);
    for (Value &tile : p)
      for (int64_t c = 0; c < 2; ++c) {
        Value x = e.ex2(e.subf(e.extract(tile, r, c), ref));
        partial = e.addf(partial, x);
        tile = e.insert(x, tile, r, c);
      }
    state[nAcc + 2 + r] = e.addf(e.mulf(state[nAcc + 2 + r], alpha), partial);
    for (int64_t dt = 0; dt < nAcc; ++dt)
      for (int64_t c = 0; c < 2; ++c)
        state[dt] = e.insert(e.mulf(e.extract(state[dt], r, c), alpha),
                             state[dt], r, c);
  }
  return p;
}

/// The warps' states into shared memory (the ring is free now), then the
/// merge of the warps of each row tile into the split's partials.
void DecodeKernel::writePartials(ValueRange state, Value buffer) {
  // (Bulk copies and TMA: the split's every tile was waited for, and none
  // past it was issued.)
  if (layout.cpAsync())
    nvgpu::DeviceAsyncWaitOp::create(e.b, groupToken, e.b.getI32IntegerAttr(0));
  gpu::BarrierOp::create(e.b);
  int64_t dv = layout.valueDim;
  Value accS = workgroupView(e, buffer, 0, {kWarps, 16, dv}, e.b.getF32Type());
  Value statS = workgroupView(e, buffer, kWarps * 16 * dv * 4, {kWarps, 2, 16},
                              e.b.getF32Type());
  for (int64_t r = 0; r < 2; ++r) {
    Value row = e.add(e.g, e.idx(8 * r));
    for (int64_t dt = 0; dt < nAcc; ++dt)
      for (int64_t c = 0; c < 2; ++c)
        e.store(e.extract(state[dt], r, c), accS,
                {e.warpId, row, e.add(e.mul(e.t, 2), e.idx(dt * 8 + c))});
    Value sum = e.quadReduce(state[nAcc + 2 + r], /*isMax=*/false);
    auto first = scf::IfOp::create(
        e.b, cmp(e, arith::CmpIPredicate::eq, e.t, e.idx(0)), false);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(first.thenBlock()->getTerminator());
    e.store(state[nAcc + r], statS, {e.warpId, e.idx(0), row});
    e.store(sum, statS, {e.warpId, e.idx(1), row});
  }
  gpu::BarrierOp::create(e.b);
  combineRows(accS, statS);
}

/// Element (r, d) of the packed rows: the warps of r's row tile merged by
/// their maxima; out normalized (0 where no key was seen), lse natural.
void DecodeKernel::combineRows(Value accS, Value statS) {
  int64_t dv = layout.valueDim;
  Value total = arith::MulIOp::create(e.b, rows, e.idx(dv));
  e.loop(e.threadId, total, e.idx(kThreads), [&](Value index) {
    Value r = e.div(index, dv), d = e.rem(index, dv);
    Value tileRow = e.rem(r, 16);
    Value firstWarp = arith::MulIOp::create(e.b, e.div(r, 16), keyGroups);
    auto warp = [&](Value k) { return e.add(firstWarp, k); };
    Value mx = e.reduce(keyGroups, e.negInf(), [&](Value k, Value m) {
      return e.maxf(m, e.load(statS, {warp(k), e.idx(0), tileRow}));
    });
    Value ref = e.select(
        arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, mx, e.negInf()),
        e.f32(0.0), mx);
    auto sums = scf::ForOp::create(e.b, e.idx(0), keyGroups, e.idx(1),
                                   ValueRange{e.f32(0.0), e.f32(0.0)});
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToEnd(sums.getBody());
      Value wk = warp(sums.getInductionVar());
      Value alpha = e.ex2(e.subf(e.load(statS, {wk, e.idx(0), tileRow}), ref));
      ValueRange acc = sums.getRegionIterArgs();
      scf::YieldOp::create(
          e.b,
          ValueRange{
              e.addf(acc[0],
                     e.mulf(alpha, e.load(statS, {wk, e.idx(1), tileRow}))),
              e.addf(acc[1], e.mulf(alpha, e.load(accS, {wk, tileRow, d})))});
    }
    Value l = sums.getResult(0), o = sums.getResult(1);
    Value noKeys =
        arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, l, e.f32(0.0));
    Value head =
        e.add(arith::MulIOp::create(e.b, kvHead, group), e.divIdx(r, queries));
    Value i = arith::RemUIOp::create(e.b, r, queries);
    // The partials' row of (batch, head, i): rows in the op's order.
    Value row = e.add(
        arith::MulIOp::create(
            e.b,
            e.add(arith::MulIOp::create(e.b, batch, e.dim(ops.q, 1)), head),
            queries),
        i);
    Value value = e.select(noKeys, e.f32(0.0), e.divf(o, l));
    Value lse = e.select(noKeys, e.negInf(),
                         e.mulf(e.addf(ref, e.lg2(l)), e.f32(std::log(2.0))));
    Value firstColumn = cmp(e, arith::CmpIPredicate::eq, d, e.idx(0));
    // One split: out and lse are this split's (what the combine would
    // make of them), written here; else the partials.
    auto single = scf::IfOp::create(
        e.b,
        cmp(e, arith::CmpIPredicate::eq,
            gpu::GridDimOp::create(e.b, gpu::Dimension::x), e.idx(1)),
        /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(single.thenBlock()->getTerminator());
    Type outType = cast<MemRefType>(ops.out.getType()).getElementType();
    e.store(outType == value.getType()
                ? value
                : Value(arith::TruncFOp::create(e.b, outType, value)),
            ops.out, {batch, head, i, d});
    if (ops.lse) {
      auto first = scf::IfOp::create(e.b, firstColumn, false);
      OpBuilder::InsertionGuard inner(e.b);
      e.b.setInsertionPoint(first.thenBlock()->getTerminator());
      e.store(lse, ops.lse, {batch, head, i});
    }
    e.b.setInsertionPoint(single.elseBlock()->getTerminator());
    e.store(value, ops.partialOut, {split, row, d});
    auto first = scf::IfOp::create(e.b, firstColumn, false);
    e.b.setInsertionPoint(first.thenBlock()->getTerminator());
    e.store(lse, ops.partialLse, {split, row});
  });
}

void mlir::swba::gpu_kernels::buildDecodeBody(OpBuilder &builder, Location loc,
                                              Type elementType,
                                              DecodeLayout layout,
                                              BlockWindow window, double scale,
                                              DecodeOperands operands) {
  KernelBuilder e(builder, loc, elementType);
  Value buffer = sharedBytesBuffer(e, layout.sharedBytes());
  // Scores are kept in the log2 domain: exp2 is one instruction.
  DecodeKernel kernel{e,
                      layout,
                      window,
                      e.f32(scale / std::log(2.0)),
                      operands,
                      layout.headDim / 16,
                      layout.valueDim / 8};
  kernel.setUp(buffer);
  SmallVector<Value> state = kernel.mainloop();
  kernel.writePartials(state, buffer);
}
