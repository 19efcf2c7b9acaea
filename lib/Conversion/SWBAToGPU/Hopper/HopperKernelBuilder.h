//===- HopperKernelBuilder.h - sm_90a building blocks ----------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: what the warp-specialized
// TMA + wgmma kernels (forward and backward) share: constants of the layout
// (128B-swizzled 64-column TMA boxes), wgmma descriptors, fragments and
// products, the register fences that keep ptxas from serializing wgmmas,
// mbarrier operations, the extern shared-memory buffer, and the kernel and
// host-side tensor maps. The barrier protocols built on it are in
// Producer.h (StageRing) and Consumer.h (TurnTaking). The layouts and the
// reasons are in docs/DESIGN.md
// (section 3).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_HOPPERKERNELBUILDER_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_HOPPERKERNELBUILDER_H

#include "../KernelBuilder.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

#include <optional>
#include <string>

namespace mlir::swba::gpu_kernels {

constexpr int64_t kWarpgroupThreads = 128;
/// Rows of a wgmma accumulator: one warpgroup's query rows.
constexpr int64_t kRowsPerConsumer = 64;
/// Columns of one TMA box: 64 16-bit elements = the 128-byte swizzle span.
constexpr int64_t kBoxCols = 64;
constexpr int64_t kBoxRowBytes = 128;
/// Bytes of one 8-row swizzle atom: the descriptors' stride byte offset.
constexpr int64_t kAtomBytes = 8 * kBoxRowBytes;
/// The H100's opt-in shared memory per workgroup, and what @swba_smem's
/// alignment and the mbarriers take of it as static shared memory.
constexpr int64_t kMaxSharedBytes = 232448;
constexpr int64_t kStaticSharedBytes = 1024 + 256;

/// Register budget (setmaxnreg): the launch gives every thread an equal
/// share of the SM's 64K registers (of its share of them, with `perSM`
/// workgroups resident); the producer drops to kProducerRegisters and the
/// consumers rise to what that leaves of the workgroup's own registers
/// (setmaxnreg.inc takes from what the workgroup's warps gave back; it
/// waits for ever for more), in multiples of 8: 168 and 240 with two
/// consumers, 128 and 160 with three; 80 and 104 with two consumers and
/// two workgroups an SM.
constexpr int64_t kProducerRegisters = 24;
constexpr int64_t kRegistersPerSM = 65536;
constexpr int64_t launchRegisters(int64_t warpgroups, int64_t perSM = 1) {
  return kRegistersPerSM / perSM / (warpgroups * kWarpgroupThreads) / 8 * 8;
}
constexpr int64_t consumerRegisters(int64_t consumers, int64_t perSM = 1) {
  return (launchRegisters(consumers + 1, perSM) * (consumers + 1) -
          kProducerRegisters) /
         consumers / 8 * 8;
}
/// What consumers of `consumer` registers each leave the producer: at
/// least kProducerRegisters with consumerRegisters (32 with three
/// consumers, whose 160 leave 32 of a thread's 128 at launch).
constexpr int64_t producerRegisters(int64_t consumers, int64_t perSM,
                                    int64_t consumer) {
  return launchRegisters(consumers + 1, perSM) * (consumers + 1) -
         consumer * consumers;
}
constexpr int64_t producerRegisters(int64_t consumers, int64_t perSM = 1) {
  return producerRegisters(consumers, perSM,
                           consumerRegisters(consumers, perSM));
}
static_assert(launchRegisters(3) == 168 && consumerRegisters(2) == 240 &&
              consumerRegisters(3) == 160 && producerRegisters(2) == 24 &&
              producerRegisters(3) == 32);
static_assert(launchRegisters(3, 2) == 80 && consumerRegisters(2, 2) == 104);

/// 64-bit wgmma shared-memory matrix descriptor bits above the start
/// address: 128B swizzle (1 << 62), stride byte offset 1024 (one 8-row
/// atom), and the leading byte offset `lbo` (ignored for K-major swizzled
/// operands; for an MN-major one the distance between 64-column blocks).
inline int64_t descriptorHigh(int64_t lbo) {
  return (int64_t(1) << 62) | ((kAtomBytes >> 4) << 32) | ((lbo >> 4) << 16);
}

class HopperKernelBuilder : public KernelBuilder {
public:
  HopperKernelBuilder(OpBuilder &builder, Location loc, Type elementType,
                      Value bars)
      : KernelBuilder(builder, loc, elementType), bars(bars) {}

  Value bars;
  Value buffer;

  Value i64(int64_t v) {
    return arith::ConstantIntOp::create(b, b.getI64Type(), v);
  }
  Value toI64(Value index) {
    return arith::IndexCastOp::create(b, b.getI64Type(), index);
  }
  Value eq(Value x, int64_t y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, idx(y));
  }
  /// x / y and x % y of indices that fit in 32 bits. Indices are 64-bit on
  /// the GPU, and ptxas turns a 64-bit division by a run-time value into a
  /// call; a 32-bit one is a dozen instructions.
  Value divU32(Value x, Value y) {
    return fromI32(arith::DivUIOp::create(b, toI32(x), toI32(y)));
  }
  Value remU32(Value x, Value y) {
    return fromI32(arith::RemUIOp::create(b, toI32(x), toI32(y)));
  }
  Value toI32(Value index) {
    return arith::IndexCastUIOp::create(b, b.getI32Type(), index);
  }
  Value fromI32(Value v) {
    return arith::IndexCastUIOp::create(b, b.getIndexType(), v);
  }
  /// threadIdx.x / 128, read from lane 0 of the warp: the same value, but
  /// one that ptxas knows is warp-uniform, so that what derives from it (a
  /// consumer's shared-memory descriptors) is computed and kept in uniform
  /// registers instead of being spilled and moved into them (R2UR) before
  /// every wgmma.
  Value warpgroupIndex() {
    Type i32 = b.getI32Type();
    Value broadcast = NVVM::ShflOp::create(
        b, i32, constI32(-1), toI32(div(threadId, kWarpgroupThreads)),
        constI32(0), constI32(0x1f), NVVM::ShflKind::idx, UnitAttr());
    return fromI32(broadcast);
  }
  /// An i32 that every lane of the warp holds alike (one read from shared
  /// memory), as the warp's minimum (redux.sync, every lane taking part):
  /// the same value, which ptxas holds in a uniform register, so that what
  /// is made from it (shared-memory addresses, wgmma descriptors) stays in
  /// the uniform datapath. (A shuffle from lane 0 did not: its result
  /// stays a per-thread register.)
  Value warpUniform(Value i32) {
    return NVVM::ReduxOp::create(b, i32.getType(), i32, NVVM::ReduxKind::UMIN,
                                 constI32(-1), /*abs=*/false, /*nan=*/false);
  }
  /// Whether this thread is its warpgroup's first (the one that issues a
  /// warpgroup's bulk copies and waits for them).
  Value isWarpgroupLeader() { return eq(rem(threadId, kWarpgroupThreads), 0); }
  /// This thread's first row of a warpgroup's 64-row wgmma accumulator
  /// (its second is 8 below): 16 rows a warp, g within them.
  Value accumulatorRow() { return add(mul(rem(warpId, 4), 16), g); }
  /// `body` under `if cond`.
  void when(Value cond, function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, cond, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    body();
  }

  /// The extern shared-memory buffer @swba_smem as `bytes` bytes.
  Value sharedBuffer(int64_t bytes) {
    auto space = gpu::AddressSpaceAttr::get(
        b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    auto globalType =
        MemRefType::get({0}, b.getI8Type(), MemRefLayoutAttrInterface(), space);
    Value global = memref::GetGlobalOp::create(b, globalType, "swba_smem");
    auto bufType = MemRefType::get({bytes}, b.getI8Type(),
                                   MemRefLayoutAttrInterface(), space);
    buffer = memref::ReinterpretCastOp::create(
        b, bufType, global, 0, ArrayRef<int64_t>{bytes}, ArrayRef<int64_t>{1});
    return buffer;
  }
  /// The 14-bit start-address field (address >> 4) of a wgmma descriptor
  /// at the start of the buffer.
  Value descriptorBase() {
    Value base =
        toI64(memref::ExtractAlignedPointerAsIndexOp::create(b, buffer));
    return arith::ShRUIOp::create(
        b, arith::AndIOp::create(b, base, i64(0x3FFFF)), i64(4));
  }
  /// A [1][rows][64] box of the buffer at `byteOffset`.
  Value boxView(Value byteOffset, int64_t rows) {
    auto space = gpu::AddressSpaceAttr::get(
        b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    auto type = MemRefType::get({1, rows, kBoxCols}, elementType,
                                MemRefLayoutAttrInterface(), space);
    return memref::ViewOp::create(b, type, buffer, byteOffset, ValueRange{});
  }
  /// TMA loads of rows [row, row + rows) x [0, width) of plane `plane` of
  /// `map` into consecutive boxes at `byteOffset`, completing on `slot`.
  void loadBoxes(Value map, Value slot, Value byteOffset, int64_t rows,
                 int64_t width, Value row, Value plane) {
    for (int64_t cb = 0; cb < width / kBoxCols; ++cb)
      nvgpu::TmaAsyncLoadOp::create(
          b, boxView(add(byteOffset, idx(cb * rows * kBoxRowBytes)), rows),
          bars, map, ValueRange{idx(cb * kBoxCols), row, plane}, slot,
          /*multicastMask=*/Value(), /*predicate=*/Value());
  }
  /// Initializes mbarrier `i` of the group for `count` arrivals (thread 0),
  /// then makes the initialization visible to the workgroup.
  void initBarriers(ArrayRef<int64_t> counts, Value isThread0) {
    // Behind one branch of thread 0: each init predicated on it was a few
    // instructions that every warp of the workgroup issued (a dQ workgroup
    // of one query tile runs them for each).
    when(isThread0, [&] {
      for (auto [i, count] : llvm::enumerate(counts))
        nvgpu::MBarrierInitOp::create(b, bars, idx(count), idx(i), Value());
    });
    NVVM::FenceMbarrierInitOp::create(b);
    gpu::BarrierOp::create(b);
  }
  Value i1(bool v) { return arith::ConstantIntOp::create(b, b.getI1Type(), v); }

  /// Splits the workgroup into roles: warpgroup 0, the producer, drops to
  /// kProducerRegisters and runs `produce` in its thread 0; the other
  /// `consumers` warpgroups rise to consumerRegisters(consumers, perSM) and
  /// continue where this leaves the insertion point.
  void splitRoles(Value warpgroup, Value isThread0,
                  function_ref<void()> produce, int64_t consumers = 2,
                  int64_t perSM = 1, int64_t producerAtLeast = 0) {
    // (A producer that asks for more registers than the consumers leave it
    // takes them from the consumers, 8 at a time.)
    int64_t consumer = consumerRegisters(consumers, perSM);
    while (producerRegisters(consumers, perSM, consumer) < producerAtLeast)
      consumer -= 8;
    int64_t producer = producerAtLeast
                           ? producerRegisters(consumers, perSM, consumer)
                           : kProducerRegisters;
    auto roles = scf::IfOp::create(b, eq(warpgroup, 0),
                                   /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(roles.thenBlock()->getTerminator());
      NVVM::SetMaxRegisterOp::create(b, producer / 8 * 8,
                                     NVVM::SetMaxRegisterAction::decrease);
      when(isThread0, produce);
    }
    b.setInsertionPoint(roles.elseBlock()->getTerminator());
    NVVM::SetMaxRegisterOp::create(b, consumer,
                                   NVVM::SetMaxRegisterAction::increase);
  }

  /// `s` as it is where `interior`, else with -inf where `visible(i)` is
  /// false: an scf.if whose else branch evaluates the mask element-wise.
  /// With `finish`, what it makes of the scores, made in both branches
  /// (the scf.if's results are then its values): the branches end the
  /// basic block of what they compute, which ptxas does not schedule past
  /// (a wgmma wait after the scores' use otherwise moves above it: see the
  /// forward's pipelined step).
  using Finish = function_ref<SmallVector<Value>(ArrayRef<Value>)>;
  SmallVector<Value> maskUnless(Value interior, ArrayRef<Value> s,
                                function_ref<Value(int64_t)> visible,
                                Finish finish = nullptr) {
    auto yield = [&](ArrayRef<Value> scores) {
      scf::YieldOp::create(b, finish ? finish(scores)
                                     : SmallVector<Value>(scores));
    };
    // The builder form infers the results from the branches' yields.
    auto maskIf = scf::IfOp::create(
        b, b.getLoc(), interior, [&](OpBuilder &, Location) { yield(s); },
        [&](OpBuilder &, Location) {
          SmallVector<Value> masked;
          for (auto [i, x] : llvm::enumerate(s))
            masked.push_back(select(visible(i), x, negInf()));
          yield(masked);
        });
    return SmallVector<Value>(maskIf.getResults().begin(),
                              maskIf.getResults().end());
  }

  /// An accumulator tile of `n` columns from column `c0` (register
  /// 4 jn + 2 h + c: row h of this thread's two, column c0 + 8 jn + 2 t +
  /// c) as it is where `interior`, else with -inf outside the columns
  /// [begin, end) that `columnsOf(h)` gives for row h. A row's bounds are
  /// taken relative to this thread's first column once a tile (clamped to
  /// [0, n] for bitMask, else [-1, n], as i32), where the frame arithmetic of
  /// isVisible per element kept the integer pipe busy (44% of its peak at a
  /// 128-token window, docs/BENCHMARKS.md). With `bitMask` (up to 128 columns:
  /// 32 elements a row) a row's bounds then become a bit an element (rowBits),
  /// and each element tests its bit: ptxas moves 2-6 bits at once into
  /// predicates (R2P), where comparing an offset with both bounds took two
  /// compares and two selects. Without, an element compares its offset with the
  /// bounds. The bits took the kernels of head dim 64 3-12% less time on
  /// narrow bands and small frames, and spilled 8 bytes more in those of
  /// head dim 128, 1-2% slower (H200, docs/BENCHMARKS.md).
  SmallVector<Value> maskColumns(Value interior, ArrayRef<Value> s, Value c0,
                                 int64_t n, bool bitMask,
                                 function_ref<RowRange(int64_t)> columnsOf,
                                 Finish finish = nullptr) {
    bitMask = bitMask && n <= 128;
    SmallVector<Value> lo, hi, bits;
    auto visible = [&](int64_t i) -> Value {
      if (lo.empty() && bits.empty()) {
        if (bitMask) {
          bits = columnBits(c0, n, columnsOf);
        } else {
          lo = relativeBounds(c0, n, /*bitMask=*/false, columnsOf);
          hi.assign({lo[2], lo[3]});
          lo.resize(2);
        }
      }
      if (!bits.empty())
        return bitVisible(bits, i);
      int64_t jn = i / 4, h = (i / 2) % 2, c = i % 2;
      Value offset = constI32(8 * jn + c);
      return arith::AndIOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::sle, lo[h], offset),
          arith::CmpIOp::create(b, arith::CmpIPredicate::slt, offset, hi[h]));
    };
    return maskUnless(interior, s, visible, finish);
  }

  /// The bounds that `columnsOf(h)` gives for this thread's rows h = 0, 1,
  /// relative to its first column c0 + 2 t, clamped to [0, n] for bitMask,
  /// else [-1, n], as i32: {lo 0, lo 1, hi 0, hi 1}, opaque (LLVM knows
  /// the clamped bounds' range and would compare the untruncated 64-bit
  /// values instead, two ISETPs a compare).
  SmallVector<Value> relativeBounds(Value c0, int64_t n, bool bitMask,
                                    function_ref<RowRange(int64_t)> columnsOf) {
    // Bounds as index values, or as i32 where columnsOf gives them so (i32
    // arithmetic: a 64-bit min or max is four instructions).
    Value first = add(c0, mul(t, 2)), first32;
    auto relative = [&](Value col) -> Value {
      if (!col.getType().isInteger(32)) {
        Value d = arith::MaxSIOp::create(
            b, arith::MinSIOp::create(b, sub(col, first), idx(n)),
            idx(bitMask ? 0 : -1));
        return arith::IndexCastOp::create(b, b.getI32Type(), d);
      }
      if (!first32)
        first32 = arith::AddIOp::create(
            b, toI32(c0), arith::ShLIOp::create(b, toI32(t), constI32(1)));
      return arith::MaxSIOp::create(
          b,
          arith::MinSIOp::create(b, arith::SubIOp::create(b, col, first32),
                                 constI32(n)),
          constI32(bitMask ? 0 : -1));
    };
    SmallVector<Value> lo, hi;
    for (int64_t h = 0; h < 2; ++h) {
      RowRange cols = columnsOf(h);
      lo.push_back(relative(cols.begin));
      hi.push_back(relative(cols.end));
    }
    if (bitMask)
      return {lo[0], lo[1], hi[0], hi[1]};
    return fenceRegisters({lo[0], lo[1], hi[0], hi[1]});
  }

  /// The bits of this thread's elements of its two rows (rowBits) that lie
  /// in the columns `columnsOf(h)` gives (up to n = 128 columns from c0),
  /// opaque; what bitVisible tests.
  SmallVector<Value> columnBits(Value c0, int64_t n,
                                function_ref<RowRange(int64_t)> columnsOf) {
    SmallVector<Value> r = relativeBounds(c0, n, /*bitMask=*/true, columnsOf);
    return fenceRegisters({rowBits(r[0], r[2]), rowBits(r[1], r[3])});
  }

  /// Whether element i of the accumulator (register 4 jn + 2 h + c) is
  /// visible by the bits of its row (columnBits).
  Value bitVisible(ArrayRef<Value> bits, int64_t i) {
    int64_t jn = i / 4, h = (i / 2) % 2, c = i % 2;
    return arith::CmpIOp::create(
        b, arith::CmpIPredicate::ne,
        arith::AndIOp::create(
            b, bits[h], constI32(static_cast<int32_t>(1u << (2 * jn + c)))),
        constI32(0));
  }

  /// Whether a window's bounds may be computed in i32: rows, keys and
  /// positions are below 2^30 (they are TMA coordinates, i32, and 2^30 keys
  /// would be 128 GiB of K a head at the narrowest TMA row), so no
  /// intermediate value of WindowBounds passes 2^31 when the window and the
  /// block size are below 2^30 too.
  static bool windowFitsI32(BlockWindow w) {
    return w.window < (int64_t{1} << 30) && w.blockSize < (int64_t{1} << 30);
  }

  /// Bit k (k < 32) set where this thread's element k of a row, at offset
  /// 8 (k / 2) + k % 2 from its first column, lies in [lo, hi) (i32, each
  /// in [0, 128]). The offsets grow with k, so the bits are those from the
  /// count of offsets below lo to the count below hi: 2 (L / 8) + min(L %
  /// 8, 2).
  Value rowBits(Value lo, Value hi) {
    Type i64 = b.getI64Type();
    auto below = [&](Value l) -> Value {
      Value pairs = arith::ShLIOp::create(
          b, arith::ShRUIOp::create(b, l, constI32(3)), constI32(1));
      Value rest = arith::MinSIOp::create(
          b, arith::AndIOp::create(b, l, constI32(7)), constI32(2));
      return arith::AddIOp::create(b, pairs, rest);
    };
    // The low `count` bits (count <= 32), shifted in 64 bits.
    auto low = [&](Value count) -> Value {
      Value one = arith::ConstantIntOp::create(b, i64, 1);
      Value shifted =
          arith::ShLIOp::create(b, one, arith::ExtUIOp::create(b, i64, count));
      return arith::TruncIOp::create(b, b.getI32Type(),
                                     arith::SubIOp::create(b, shifted, one));
    };
    Value notBelowLo = arith::XOrIOp::create(b, low(below(lo)), constI32(-1));
    return arith::AndIOp::create(b, low(below(hi)), notBelowLo);
  }

  /// The keys every query of [q0, q1) sees: from the last query's first
  /// key to the first query's last (its frame's end, at most `keys`).
  /// Block windows are contiguous and move forward with the query, so a key
  /// tile inside this range is seen whole by every query of the tile: the
  /// interior test of maskScores is then two compares of the tile's first
  /// key, made once a query tile, not the frame arithmetic of each key tile.
  /// Empty (begin >= end) when no key is seen by every query.
  RowRange interiorKeys(BlockWindow w, Value q0, Value q1, Value posOffset,
                        Value keys) {
    Location loc = b.getLoc();
    Value last = sub(q1, constLike(q1, 1));
    Value first = computeKeyWindow(b, loc, w, last, q1, posOffset, keys).begin;
    Value end = computeKeyWindow(b, loc, w, q0, add(q0, constLike(q0, 1)),
                                 posOffset, keys)
                    .end;
    return {first, end};
  }

  /// The queries that see every key of [k0, k1): from the first query that
  /// sees the last key to the end of those that see the first (at most
  /// `queries`); interiorKeys with keys and queries swapped. A query tile
  /// of whole rows inside this range sees the key tile whole. Empty (begin
  /// >= end) when no query sees every key.
  RowRange interiorQueries(BlockWindow w, Value k0, Value k1, Value posOffset,
                           Value queries) {
    Location loc = b.getLoc();
    Value last = sub(k1, idx(1));
    Value first =
        computeQueryWindow(b, loc, w, last, k1, posOffset, queries).begin;
    Value end =
        computeQueryWindow(b, loc, w, k0, add(k0, idx(1)), posOffset, queries)
            .end;
    return {first, end};
  }

  /// Whether the key tile [k0, k0 + blockN) lies inside `interior`
  /// (interiorKeys of its query tile): then every query of the tile sees it
  /// whole. Two compares of its first key, made once a query tile, instead
  /// of the frame arithmetic of each key tile.
  Value interiorTile(Value k0, int64_t blockN, RowRange interior) {
    return arith::AndIOp::create(
        b,
        arith::CmpIOp::create(b, arith::CmpIPredicate::uge, k0, interior.begin),
        arith::CmpIOp::create(b, arith::CmpIPredicate::ule,
                              add(k0, idx(blockN)), interior.end));
  }

  /// Loops over key tiles [first, end) from `init`: body(j, iter,
  /// interiorKnown) yields the next iter. With `splitInterior`, three loops
  /// (as FlashAttention-3 splits its own): the tiles before those inside
  /// `interior` (interiorKeys; tile j holds keys [origin + j blockN, +
  /// blockN)), the tiles inside it, whose body is built knowing so (no
  /// test and no mask), and the tiles after them. Tile j is inside when j
  /// blockN >= interior.begin - origin and (j + 1) blockN <= interior.end -
  /// origin.
  SmallVector<Value>
  keyTileLoops(Value first, Value end, ValueRange init, bool splitInterior,
               Value origin, RowRange interior, int64_t blockN,
               function_ref<SmallVector<Value>(Value, ValueRange, bool)> body) {
    SmallVector<std::tuple<Value, Value, bool>> parts{{first, end, false}};
    if (splitInterior) {
      auto max = [&](Value x, Value y) {
        return arith::MaxSIOp::create(b, x, y).getResult();
      };
      Value beginOffset = sub(max(interior.begin, origin), origin);
      Value endOffset = sub(max(interior.end, origin), origin);
      Value begin = arith::CeilDivUIOp::create(b, beginOffset, idx(blockN));
      Value stop = arith::DivUIOp::create(b, endOffset, idx(blockN));
      begin = min(max(begin, first), end);
      stop = min(max(stop, begin), end);
      parts = {{first, begin, false}, {begin, stop, true}, {stop, end, false}};
    }
    SmallVector<Value> carried(init);
    for (auto [lb, ub, known] : parts) {
      auto loop = scf::ForOp::create(b, lb, ub, idx(1), carried);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(loop.getBody());
      scf::YieldOp::create(
          b, body(loop.getInductionVar(), loop.getRegionIterArgs(), known));
      carried.assign(loop.getResults().begin(), loop.getResults().end());
    }
    return carried;
  }

  /// Whether key tile j of a query tile, keys [begin + j blockN, + blockN),
  /// lies inside `interior` (interiorKeys): interiorTile in 32
  /// bits (rows and keys are TMA coordinates), so that the loop holds two
  /// i32 bounds where the 64-bit range or the frame arithmetic of each
  /// tile held more.
  Value interiorTile32(Value begin, Value j, int64_t blockN,
                       RowRange interior) {
    Value k0 = arith::AddIOp::create(
        b, toI32(begin), arith::MulIOp::create(b, toI32(j), constI32(blockN)));
    Value last =
        arith::SubIOp::create(b, toI32(interior.end), constI32(blockN));
    return arith::AndIOp::create(
        b,
        arith::CmpIOp::create(b, arith::CmpIPredicate::sge, k0,
                              toI32(interior.begin)),
        arith::CmpIOp::create(b, arith::CmpIPredicate::sle, k0, last));
  }

  /// Scores of a tile in the accumulator layout (register 4 jn + 2 h + c:
  /// query rowBase + 8 h, key k0 + 8 jn + 2 t + c) over keys [k0, k1) of
  /// `blockN`, masked unless the tile is interior: `interior` where the
  /// caller tests it against a range (interiorTile, interiorTile32), else
  /// the tile is full and every query of [q0, q1) sees it whole
  /// (isTileFullyVisible on each key tile: kept where a range, held in
  /// registers across the loop, measured slower). Frames shorter than a tile
  /// put the band's edges inside tiles, and most tiles of a narrow band are
  /// masked: there a query's keys are its row's window, cut at k1
  /// (maskColumns). Frames of whole tiles mask the diagonal tiles only: there
  /// the rows' windows, which the compiler hoists out of the loop, made the
  /// head-dim-64 forward spill (24 bytes, 6% slower) where the per-element
  /// frame arithmetic does not. `bitMask` as maskColumns's.
  SmallVector<Value> maskScores(ArrayRef<Value> s, BlockWindow w, Value rowBase,
                                Value q0, Value q1, Value interior, Value k0,
                                Value k1, int64_t blockN, Value posOffset,
                                bool bitMask, Finish finish = nullptr) {
    Location loc = b.getLoc();
    if (!interior)
      interior = arith::AndIOp::create(
          b,
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, sub(k1, k0),
                                idx(blockN)),
          isTileFullyVisible(b, loc, w, q0, q1, k0, k1, posOffset));
    auto visible = [&](int64_t i) -> Value {
      int64_t jn = i / 4, h = (i / 2) % 2, c = i % 2;
      Value row = add(rowBase, idx(8 * h));
      Value col = add(k0, add(mul(t, 2), idx(8 * jn + c)));
      return arith::AndIOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::ult, col, k1),
          isVisible(b, loc, w, row, col, posOffset));
    };
    if (w.blockSize >= blockN)
      return maskUnless(interior, s, visible, finish);
    auto columns = [&](int64_t h) {
      return rowKeys(w, rowBase, h, k1, posOffset, bitMask);
    };
    return maskColumns(interior, s, k0, blockN, bitMask, columns, finish);
  }

  /// The keys before k1 that this thread's row h (rowBase + 8 h) sees.
  /// In i32 with bit masks (head dims up to 64): 5% less time in the
  /// forward and 3-4% in the dQ kernel on 128- and 256-token windows (H200,
  /// docs/BENCHMARKS.md); at head dim 128 the dQ kernel was 1.4-2.6% slower
  /// in i32, its spills unchanged.
  RowRange rowKeys(BlockWindow w, Value rowBase, int64_t h, Value k1,
                   Value posOffset, bool bitMask) {
    Location loc = b.getLoc();
    if (!bitMask || !windowFitsI32(w)) {
      Value row = add(rowBase, idx(8 * h));
      return computeKeyWindow(b, loc, w, row, add(row, idx(1)), posOffset, k1);
    }
    Value row = arith::AddIOp::create(b, toI32(rowBase), constI32(8 * h));
    return computeKeyWindow(b, loc, w, row,
                            arith::AddIOp::create(b, row, constI32(1)),
                            toI32(posOffset), toI32(k1));
  }

  /// `s` with -inf where `bits` (a word a row of the thread's two, as
  /// rowBits makes them) has no bit for the element.
  SmallVector<Value> maskWithBits(ArrayRef<Value> s, ArrayRef<Value> bits) {
    SmallVector<Value> masked;
    for (auto [i, x] : llvm::enumerate(s))
      masked.push_back(select(bitVisible(bits, i), x, negInf()));
    return masked;
  }

  void waitParity(Value slot, Value parity) {
    nvgpu::MBarrierTryWaitParityOp::create(b, bars, parity, idx(10000000),
                                           slot);
  }
  void arrive(Value slot) {
    nvgpu::MBarrierArriveOp::create(
        b, nvgpu::MBarrierTokenType::get(b.getContext()), bars, slot);
  }

  /// One shared-memory wgmma, D (a struct of n/2 f32) = A B (+ D unless
  /// `first`), both operands K-major unless `mnMajorA` / `mnMajorB` (the
  /// transposed layouts, 16-bit types only).
  Value ssMma(Value acc, Value descA, Value descB, int64_t n, bool first,
              bool mnMajorA = false, bool mnMajorB = false) {
    NVVM::WGMMATypes type =
        elementType.isBF16() ? NVVM::WGMMATypes::bf16 : NVVM::WGMMATypes::f16;
    return NVVM::WgmmaMmaAsyncOp::create(
        b, acc.getType(), acc, descA, descB,
        NVVM::MMAShapeAttr::get(b.getContext(), 64, n, 16), type, type,
        NVVM::WGMMATypes::f32,
        first ? NVVM::WGMMAScaleOut::zero : NVVM::WGMMAScaleOut::one,
        NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
        mnMajorA ? NVVM::MMALayout::col : NVVM::MMALayout::row,
        mnMajorB ? NVVM::MMALayout::row : NVVM::MMALayout::col,
        /*satfinite=*/nullptr);
  }

  /// An asm statement with side effects (so the compiler keeps it in
  /// program order with the wgmma fences and waits) that returns one value
  /// of each of `resultTypes`, as a struct the values are taken out of.
  SmallVector<Value> sideEffectAsm(TypeRange resultTypes, ValueRange operands,
                                   StringRef asmString, StringRef constraints) {
    auto type = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                                 llvm::to_vector(resultTypes));
    Value result =
        LLVM::InlineAsmOp::create(
            b, type, operands, asmString, constraints,
            /*has_side_effects=*/true, /*is_align_stack=*/false,
            LLVM::tailcallkind::TailCallKind::None,
            LLVM::AsmDialectAttr::get(b.getContext(), LLVM::AsmDialect::AD_ATT),
            /*operand_attrs=*/ArrayAttr())
            .getResult(0);
    SmallVector<Value> out;
    for (int64_t i = 0, e = resultTypes.size(); i < e; ++i)
      out.push_back(LLVM::ExtractValueOp::create(b, result, i));
    return out;
  }

  /// `values` (f32, i32 or i64) passed through an empty asm statement with
  /// side effects, which the compiler keeps in program order with the wgmma
  /// fence and waits: registers that an asynchronous wgmma writes are read
  /// only after the wait before this, and registers that a wgmma reads are
  /// final before the fence after this (otherwise ptxas inserts extra
  /// warpgroup syncs and serializes the wgmmas). Each output is tied to its
  /// input's register.
  SmallVector<Value> fenceRegisters(ArrayRef<Value> values) {
    int64_t n = values.size();
    if (n == 0)
      return {};
    std::string constraints;
    auto code = [](Value v) {
      return v.getType().isF32() ? "f" : v.getType().isInteger(64) ? "l" : "r";
    };
    for (Value v : values)
      constraints += std::string("=") + code(v) + ",";
    for (int64_t i = 0; i < n; ++i)
      constraints += std::to_string(i) + (i + 1 < n ? "," : "");
    return sideEffectAsm(ValueRange(values).getTypes(), values, "",
                         constraints);
  }

  /// Replaces each of `values` (index, i32, i64 or f32) by an opaque copy
  /// made where this stands (one asm statement with side effects): what is
  /// computed from the copies inside a loop stays in the loop, where LLVM
  /// would hoist it out and hold it in registers for the loop's length.
  /// OpaqueScope puts the originals back.
  void makeOpaque(ArrayRef<Value *> values) {
    SmallVector<Value> plain;
    for (Value *v : values)
      plain.push_back(v->getType().isIndex() ? toI64(*v) : *v);
    plain = fenceRegisters(plain);
    for (auto [v, copy] : llvm::zip(values, plain))
      *v = v->getType().isIndex()
               ? arith::IndexCastOp::create(b, b.getIndexType(), copy)
               : copy;
  }

  /// `n` f32 zeros made by one asm statement with side effects, where it
  /// stands: plain constants would be hoisted out of the loop and held in
  /// n registers for its whole length, to be copied into the accumulator
  /// that the wgmma overwrites.
  SmallVector<Value> zeroRegisters(int64_t n) {
    std::string constraints, asmString;
    for (int64_t i = 0; i < n; ++i) {
      constraints += i + 1 < n ? "=f," : "=f";
      asmString += "mov.b32 $" + std::to_string(i) + ", 0;";
    }
    return sideEffectAsm(SmallVector<Type>(n, b.getF32Type()), ValueRange(),
                         asmString, constraints);
  }

  /// One register-A wgmma, D (n/2 f32 per thread) += A (4 x 32-bit
  /// registers of element pairs) * B (descriptor, MN-major: trans-b 1).
  SmallVector<Value> rsMma(ArrayRef<Value> d, ArrayRef<Value> a, Value descB,
                           int64_t n) {
    int64_t nd = d.size();
    std::string dregs, constraints;
    for (int64_t i = 0; i < nd; ++i) {
      dregs += (i ? ", $" : "$") + std::to_string(i);
      constraints += "=f,";
    }
    for (int64_t i = 0; i < nd; ++i)
      constraints += std::to_string(i) + ",";
    constraints += "r,r,r,r,l";
    std::string type = elementType.isBF16() ? "bf16" : "f16";
    // Operands: nd outputs, nd inputs tied to them, then A, B and scale-d.
    auto op = [&](int64_t i) { return "$" + std::to_string(2 * nd + i); };
    // The scale-d operand is a predicate in PTX; it is always true here (O
    // accumulates; its first tile adds to zeros).
    std::string asmString = "{ .reg .pred p; setp.ne.b32 p, 1, 0; "
                            "wgmma.mma_async.sync.aligned.m64n" +
                            std::to_string(n) + "k16.f32." + type + "." + type +
                            " {" + dregs + "}, {" + op(0) + ", " + op(1) +
                            ", " + op(2) + ", " + op(3) + "}, " + op(4) +
                            ", p, 1, 1, 1; }";
    SmallVector<Value> operands(d);
    operands.append(a.begin(), a.end());
    operands.push_back(descB);
    return sideEffectAsm(SmallVector<Type>(nd, b.getF32Type()), operands,
                         asmString, constraints);
  }

  /// Two f32 as the 32-bit register of an element pair.
  Value packPair(Value lo, Value hi) {
    Value pair = vector::FromElementsOp::create(
        b, VectorType::get({2}, b.getF32Type()), ValueRange{lo, hi});
    pair = arith::TruncFOp::create(b, VectorType::get({2}, elementType), pair);
    Value reg = vector::BitCastOp::create(
        b, VectorType::get({1}, b.getI32Type()), pair);
    return vector::ExtractOp::create(b, reg, ArrayRef<int64_t>{0});
  }

  /// Offset, in the 16-byte units of a descriptor's start address, of k16
  /// slice `kk` of a K-major operand whose boxes have `rows` rows: slice kk
  /// lies in 64-column block kk / 4, 32 bytes further per slice inside a
  /// block.
  static int64_t kMajorSlice(int64_t rows, int64_t kk) {
    int64_t cb = kk / 4, within = (kk % 4) * 32;
    return (cb * rows * kBoxRowBytes + within) / 16;
  }
  /// The descriptors of the first `slices` k16 slices of an MN-major
  /// operand that `desc` describes: a k16 slice is 16 rows (2048 bytes);
  /// the operand's 64-column blocks are the descriptor's leading byte
  /// offset apart.
  SmallVector<Value> mnMajorSlices(Value desc, int64_t slices) {
    SmallVector<Value> descriptors;
    for (int64_t kk = 0; kk < slices; ++kk)
      descriptors.push_back(add(desc, i64(kk * 16 * kBoxRowBytes / 16)));
    return descriptors;
  }

  /// Values in the accumulator layout (register 4 jn + 2 h + c: row 8 h,
  /// column 8 jn + 2 t + c) of `columns` columns as register-A fragments,
  /// four 32-bit registers a k16 slice: slice kk takes n8 blocks 2 kk and
  /// 2 kk + 1 (the m16n8k16 A pairing per warp).
  SmallVector<Value> packAFragments(ArrayRef<Value> values, int64_t columns) {
    SmallVector<Value> frags;
    for (int64_t kk = 0; kk < columns / 16; ++kk) {
      int64_t j0 = 4 * (2 * kk), j1 = 4 * (2 * kk + 1);
      for (int64_t r : {j0, j0 + 2, j1, j1 + 2})
        frags.push_back(packPair(values[r], values[r + 1]));
    }
    return frags;
  }
  /// acc (n/2 f32 a thread) += A B, one register-A wgmma per k16 slice:
  /// A from `frags` (packAFragments), B from `descs` (one a slice).
  SmallVector<Value> rsMmaSlices(SmallVector<Value> acc, ArrayRef<Value> frags,
                                 ArrayRef<Value> descs, int64_t n) {
    for (int64_t kk = 0, e = descs.size(); kk < e; ++kk)
      acc = rsMma(acc, frags.slice(4 * kk, 4), descs[kk], n);
    return acc;
  }
  /// The struct of f32 that a shared-memory wgmma accumulates into, holding
  /// `values` (zeroRegisters' zeros).
  Value accumulatorOf(ArrayRef<Value> values) {
    int64_t n = values.size();
    auto type = LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(n, b.getF32Type()));
    Value acc = LLVM::PoisonOp::create(b, type);
    for (int64_t i = 0; i < n; ++i)
      acc = LLVM::InsertValueOp::create(b, acc, values[i], i);
    return acc;
  }
};

/// A TMA descriptor type of a rank-3 view: boxes of [outer][rows][128
/// bytes] (64 16-bit elements, 32 f32), 128B swizzle, zeros out of bounds.
inline nvgpu::TensorMapDescriptorType
tensorMapType(Type elementType, int64_t rows, int64_t outer = 1) {
  MLIRContext *ctx = elementType.getContext();
  auto smemSpace = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  int64_t cols = kBoxRowBytes * 8 / elementType.getIntOrFloatBitWidth();
  return nvgpu::TensorMapDescriptorType::get(
      ctx,
      MemRefType::get({outer, rows, cols}, elementType,
                      MemRefLayoutAttrInterface(), smemSpace),
      nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
      nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
      nvgpu::TensorMapOOBKind::OOB_ZERO,
      nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
}

/// Host side: the tensor map of a rank-4 memref with its two outer dims
/// merged ([B][H][N][D] as [B * H][N][D], or a paged cache [pages][page
/// size][Hkv][D] as [pages * page size][Hkv][D]) in boxes of `type`'s
/// shape, as the kernel's `!llvm.ptr` argument.
inline Value createTensorMap(LoopEmitter &e, Value tensor,
                             nvgpu::TensorMapDescriptorType type) {
  Type elementType = cast<MemRefType>(tensor.getType()).getElementType();
  Value flat = memref::CollapseShapeOp::create(
      e.b, tensor, SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
  Value unranked = memref::CastOp::create(
      e.b, UnrankedMemRefType::get(elementType, Attribute()), flat);
  SmallVector<Value> box = llvm::map_to_vector(
      type.getTensor().getShape(), [&](int64_t size) { return e.idx(size); });
  Value map = nvgpu::TmaCreateDescriptorOp::create(e.b, type, unranked, box);
  return UnrealizedConversionCastOp::create(
             e.b, LLVM::LLVMPointerType::get(e.b.getContext()), map)
      .getResult(0);
}

/// A kernel of `threads` threads in `gpuModule` with dynamic shared memory
/// (@swba_smem, declared once per module), `memrefs` parameters and then
/// `maps.size()` tensor-map pointers, its registers capped for `perSM`
/// workgroups an SM; returns it with the insertion point at the start of
/// its body and the maps cast to their descriptor types in `mapValues`.
inline gpu::GPUFuncOp
createHopperKernel(RewriterBase &rewriter, gpu::GPUModuleOp gpuModule,
                   Location loc, StringRef name, TypeRange memrefs,
                   ArrayRef<nvgpu::TensorMapDescriptorType> maps,
                   int64_t threads, SmallVectorImpl<Value> &mapValues,
                   int64_t perSM = 1) {
  MLIRContext *ctx = rewriter.getContext();
  if (!SymbolTable::lookupSymbolIn(gpuModule, "swba_smem")) {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(gpuModule.getBody());
    auto smemSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    memref::GlobalOp::create(
        rewriter, loc, "swba_smem", /*sym_visibility=*/StringAttr(),
        MemRefType::get({0}, rewriter.getI8Type(), MemRefLayoutAttrInterface(),
                        smemSpace),
        /*initial_value=*/Attribute(), /*constant=*/false,
        rewriter.getI64IntegerAttr(1024));
  }
  SmallVector<Type> argTypes(memrefs);
  argTypes.append(maps.size(), LLVM::LLVMPointerType::get(ctx));
  auto kernel =
      createKernel(rewriter, gpuModule, loc, name, argTypes, TypeRange());
  kernel.setKnownBlockSizeAttr(
      rewriter.getDenseI32ArrayAttr({(int32_t)threads, 1, 1}));
  kernel->setAttr("nvvm.maxntid",
                  rewriter.getDenseI32ArrayAttr({(int32_t)threads, 1, 1}));
  kernel->setAttr("nvvm.maxnreg",
                  rewriter.getI32IntegerAttr(
                      launchRegisters(threads / kWarpgroupThreads, perSM)));
  Block &entry = kernel.getBody().front();
  rewriter.setInsertionPointToStart(&entry);
  for (auto [i, type] : llvm::enumerate(maps))
    mapValues.push_back(
        UnrealizedConversionCastOp::create(
            rewriter, loc, type, entry.getArgument(memrefs.size() + i))
            .getResult(0));
  return kernel;
}

/// Opaque copies (HopperKernelBuilder::makeOpaque) of `values` while the
/// scope lasts, and with `laneIds` of the thread id too, with warpId,
/// laneId, g and t derived from that copy: what a loop body built in the
/// scope computes from them stays in the loop. The originals are put back
/// when the scope ends.
class OpaqueScope {
public:
  OpaqueScope(HopperKernelBuilder &e, ArrayRef<Value *> values,
              bool laneIds = false) {
    SmallVector<Value *> opaque;
    if (laneIds) {
      opaque.push_back(&e.threadId);
      for (Value *v : {&e.threadId, &e.warpId, &e.laneId, &e.g, &e.t})
        saved.emplace_back(v, *v);
    }
    opaque.append(values.begin(), values.end());
    for (Value *v : values)
      saved.emplace_back(v, *v);
    e.makeOpaque(opaque);
    if (laneIds)
      e.deriveLaneIds();
  }
  ~OpaqueScope() {
    for (auto [v, original] : saved)
      *v = original;
  }
  OpaqueScope(const OpaqueScope &) = delete;
  OpaqueScope &operator=(const OpaqueScope &) = delete;

private:
  SmallVector<std::pair<Value *, Value>> saved;
};

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_HOPPERKERNELBUILDER_H
