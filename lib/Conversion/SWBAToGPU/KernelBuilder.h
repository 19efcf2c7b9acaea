//===- KernelBuilder.h - Building blocks of the swba GPU kernels -*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the constants, memory movement and
// tensor-core fragment helpers the forward and backward kernels share.
//
// Register fragments of m16n8k16 for lane l, g = l / 4, t = l % 4:
//   A (16x16, vector<4x2>): rows g, g+8 at cols 2t..2t+1, then the same rows
//     at cols 2t+8..2t+9;
//   B (16x8, vector<2x2>):  k rows 2t..2t+1 and 2t+8..2t+9 of column g;
//   C (16x8, vector<2x2>):  rows g and g+8, cols 2t..2t+1.
// Two adjacent C tiles are therefore exactly one A fragment (toAFragment):
// probabilities and score gradients never leave registers.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_KERNELBUILDER_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_KERNELBUILDER_H

#include "../LoopEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::swba::gpu_kernels {


constexpr int64_t kWarps = 4;
constexpr int64_t kThreads = 32 * kWarps;
/// Key rows per KV tile.
constexpr int64_t kBlockN = 64;
/// Elements of padding per shared-memory row: shifts consecutive rows by 16
/// bytes, so that the 8 row addresses of one ldmatrix phase fall into
/// distinct bank groups instead of one.
constexpr int64_t kPad = 8;
/// Elements per 16-byte global/shared access.
constexpr int64_t kVec = 8;

/// A vector's natural alignment, its size in bytes, for loads and stores
/// whose innermost index is a multiple of its length: rows are whole
/// multiples of it and buffers 16-byte aligned (as TMA needs them, and the
/// runtime ensures), so one access moves the vector (without, the NVPTX
/// backend splits it into an access an element).
inline llvm::MaybeAlign naturalAlignment(Type vectorType) {
  auto type = cast<VectorType>(vectorType);
  return llvm::MaybeAlign(type.getNumElements() *
                          type.getElementTypeBitWidth() / 8);
}

/// Builds the kernel body. All fragments are SSA values; the C++ loops here
/// unroll at compile time so that they stay in registers.
class KernelBuilder : public LoopEmitter {
public:
  KernelBuilder(OpBuilder &builder, Location loc, Type elementType)
      : LoopEmitter(builder, loc), elementType(elementType) {}

  Type elementType;

  Value threadId, laneId, warpId, g, t;

  Value constI32(int32_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }
  /// Sets threadId, warpId, laneId, g = lane / 4 and t = lane % 4.
  void setLaneIds() {
    threadId = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    deriveLaneIds();
  }
  /// warpId, laneId, g and t from threadId.
  void deriveLaneIds() {
    warpId = div(threadId, 32);
    laneId = rem(threadId, 32);
    g = div(laneId, 4);
    t = rem(laneId, 4);
  }

  /// The A fragment (vector<4x2>, element type) of two adjacent C tiles
  /// (vector<2x2xf32>) covering 16 columns.
  Value toAFragment(Value lo, Value hi) {
    auto pair = VectorType::get({2, 2}, elementType);
    return vector::ShuffleOp::create(b, arith::TruncFOp::create(b, pair, lo),
                                     arith::TruncFOp::create(b, pair, hi),
                                     ArrayRef<int64_t>{0, 1, 2, 3});
  }

  /// A fragments of rows [row0, row0 + 16) of `smem`, one per 16 columns of
  /// `width`: ldmatrix.x4, lanes 0-15 address rows at column 0, lanes 16-31
  /// the same rows at column 8.
  SmallVector<Value> loadAFragments(Value smem, Value row0, int64_t width) {
    Value row = add(row0, rem(laneId, 16));
    Value col = mul(div(laneId, 16), 8);
    SmallVector<Value> frags;
    for (int64_t kk = 0; kk < width / 16; ++kk)
      frags.push_back(ldmatrix(smem, row, add(col, idx(kk * 16)), 4,
                               /*transpose=*/false));
    return frags;
  }

  /// B fragment for k slice `kk` and n tile `nt` of a B = X^T whose rows of
  /// X are stored in `smem` ([n][k]): ldmatrix.x2 without transpose.
  Value loadBFragment(Value smem, int64_t nt, int64_t kk) {
    Value row = add(rem(laneId, 8), idx(nt * 8));
    Value col = add(mul(rem(div(laneId, 8), 2), 8), idx(kk * 16));
    return ldmatrix(smem, row, col, 2, /*transpose=*/false);
  }

  /// B fragment for k slice `kk` and n tile `nt` of a B stored row-major in
  /// `smem` ([k][n]): ldmatrix.x2 with transpose.
  Value loadBFragmentTransposed(Value smem, int64_t kk, int64_t nt) {
    return ldmatrix(smem, add(rem(laneId, 16), idx(kk * 16)), idx(nt * 8), 2,
                    /*transpose=*/true);
  }

  Value mul(Value x, int64_t y) { return arith::MulIOp::create(b, x, idx(y)); }
  Value rem(Value x, int64_t y) { return arith::RemUIOp::create(b, x, idx(y)); }
  Value div(Value x, int64_t y) { return divIdx(x, idx(y)); }

  /// Loads rows [row0, row0 + rows) x [0, width) of `src[batch, head]`,
  /// 16 bytes per access, spread over the workgroup's threads; rows at or
  /// past `rowEnd` read zeros. Returns this thread's chunks, in registers.
  SmallVector<Value> loadTile(Value src, Value batch, Value head, Value row0,
                              Value rowEnd, int64_t rows, int64_t width) {
    VectorType vecType = VectorType::get({kVec}, elementType);
    SmallVector<Value> chunks;
    for (int64_t base = 0; base < rows * width / kVec; base += kThreads) {
      auto [r, col] = chunkPosition(base, width);
      Value row = add(row0, r);
      Value inBounds = arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                             row, rowEnd);
      auto ifOp = scf::IfOp::create(b, TypeRange{vecType}, inBounds,
                                    /*withElseRegion=*/true);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      Value v = vector::LoadOp::create(b, vecType, src,
                                       ValueRange{batch, head, row, col},
                                       /*nontemporal=*/false,
                                       llvm::MaybeAlign(16));
      scf::YieldOp::create(b, v);
      b.setInsertionPointToStart(ifOp.elseBlock());
      Value zero = arith::ConstantOp::create(
          b, vecType,
          DenseElementsAttr::get(vecType, b.getZeroAttr(elementType)));
      scf::YieldOp::create(b, zero);
      chunks.push_back(ifOp.getResult(0));
    }
    return chunks;
  }

  /// Stores chunks from loadTile into shared `dst` at the same positions.
  void storeTile(ArrayRef<Value> chunks, Value dst, int64_t rows,
                 int64_t width) {
    int64_t total = rows * width / kVec;
    for (auto [i, chunk] : llvm::enumerate(chunks)) {
      int64_t base = i * kThreads;
      auto [r, col] = chunkPosition(base, width);
      auto store = [&] {
        vector::StoreOp::create(b, chunk, dst, ValueRange{r, col},
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
      };
      if (total - base >= kThreads) {
        store();
        continue;
      }
      // The last round has fewer chunks than threads.
      Value active = arith::CmpIOp::create(
          b, arith::CmpIPredicate::ult, add(threadId, idx(base)), idx(total));
      auto guardIf = scf::IfOp::create(b, active, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(guardIf.thenBlock()->getTerminator());
      store();
    }
  }

  /// Row and column of this thread's chunk in round `base`.
  std::pair<Value, Value> chunkPosition(int64_t base, int64_t width) {
    int64_t chunksPerRow = width / kVec;
    Value chunk = add(threadId, idx(base));
    return {div(chunk, chunksPerRow), mul(rem(chunk, chunksPerRow), kVec)};
  }

  Value ldmatrix(Value smem, Value row, Value col, int64_t tiles,
                 bool transpose) {
    auto type = VectorType::get({tiles, 2}, elementType);
    return nvgpu::LdMatrixOp::create(b, type, smem, ValueRange{row, col},
                                     transpose, static_cast<uint32_t>(tiles));
  }

  /// 2^x and log2(x) as single PTX instructions. math.exp2/log2 would
  /// become libdevice calls, which need libdevice when the kernel is linked.
  Value ex2(Value x) { return approx("ex2.approx.ftz.f32 $0, $1;", x); }
  Value lg2(Value x) { return approx("lg2.approx.ftz.f32 $0, $1;", x); }
  Value approx(StringRef ptx, Value x) {
    return NVVM::InlinePtxOp::create(b, TypeRange{x.getType()}, ValueRange{x},
                                     ValueRange{}, ptx, Value())
        .getResult(0);
  }

  /// D = A B + C on m16n8k16. nvgpu.mma.sync carries f16; MLIR 22's
  /// nvgpu-to-nvvm cannot type bf16 operands, so bf16 goes to nvvm.mma.sync
  /// directly, with each pair of bf16 packed in the i32 register PTX wants.
  Value mma(Value a, Value bFrag, Value c) {
    if (!elementType.isBF16())
      return nvgpu::MmaSyncOp::create(b, a, bFrag, c,
                                      ArrayRef<int64_t>{16, 8, 16});
    auto packed = [&](Value frag) {
      SmallVector<Value> regs;
      auto regType = VectorType::get({1}, b.getI32Type());
      for (int64_t r = 0, e = cast<VectorType>(frag.getType()).getDimSize(0);
           r < e; ++r) {
        // Each row is one register's pair of elements.
        Value pair = vector::ExtractOp::create(b, frag, ArrayRef<int64_t>{r});
        Value reg = vector::BitCastOp::create(b, regType, pair);
        regs.push_back(vector::ExtractOp::create(b, reg, ArrayRef<int64_t>{0}));
      }
      return regs;
    };
    SmallVector<Value> acc;
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t col = 0; col < 2; ++col)
        acc.push_back(extract(c, r, col));
    Type f32 = b.getF32Type();
    auto resultType = LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(4, f32));
    Value d = NVVM::MmaOp::create(
        b, resultType, packed(a), packed(bFrag), acc,
        ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                      NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    SmallVector<Value> elements;
    for (int64_t i = 0; i < 4; ++i)
      elements.push_back(LLVM::ExtractValueOp::create(b, d, i));
    return vector::FromElementsOp::create(
        b, VectorType::get({2, 2}, f32), elements);
  }

  /// Orders this thread's generic-proxy writes to shared memory before
  /// later async-proxy accesses of it (wgmma operands, TMA and bulk copies).
  void fenceAsyncShared() {
    NVVM::FenceProxyOp::create(
        b, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(b.getContext(),
                                   NVVM::SharedSpace::shared_cta));
  }

  Value zeroAcc() {
    auto type = VectorType::get({2, 2}, b.getF32Type());
    return arith::ConstantOp::create(
        b, type, DenseElementsAttr::get(type, b.getF32FloatAttr(0.0f)));
  }

  Value extract(Value v, int64_t i, int64_t j) {
    return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{i, j});
  }
  Value insert(Value s, Value v, int64_t i, int64_t j) {
    return vector::InsertOp::create(b, s, v, ArrayRef<int64_t>{i, j});
  }

  /// Combines `x` over the 4 lanes of a quad (the lanes that share a row).
  Value quadReduce(Value x, bool isMax) {
    for (int32_t offset : {1, 2}) {
      Value other = gpu::ShuffleOp::create(b, x, offset, 32,
                                           gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      x = isMax ? maxf(x, other) : addf(x, other);
    }
    return x;
  }
};

/// The (batch, query head, query tile) a workgroup of the grid (query
/// heads, query tiles, batch) computes. Query tiles late in the sequence see
/// the most keys (up to a full window), so they run first, last to first,
/// and light ones fill the tail. `headsFastest`: consecutive workgroups take
/// the same query tile of successive heads (every head's heaviest tiles in
/// the first wave: short sequences, few workgroups) rather than successive
/// query tiles of one head (neighbours share K/V in L2).
/// `lastFirst`: late tiles first (query tiles: late queries see the most
/// keys); otherwise early tiles first (key tiles: early keys are seen by the
/// most queries).
struct WorkgroupTile {
  Value batch, head, qTile;
};
/// The head and tile of workgroup `linear` of one batch entry's heads x
/// tiles, heads or tiles fastest, late tiles first with `lastFirst`; `div`
/// and `rem` divide (a grid's index ops, or a persistent kernel's 32-bit
/// ones).
inline std::pair<Value, Value>
headAndTile(LoopEmitter &e, Value linear, Value heads, Value tiles,
            bool headsFastest, bool lastFirst,
            function_ref<Value(Value, Value)> div,
            function_ref<Value(Value, Value)> rem) {
  Value head, tile;
  if (headsFastest) {
    head = rem(linear, heads);
    tile = div(linear, heads);
  } else {
    head = div(linear, tiles);
    tile = rem(linear, tiles);
  }
  return {head, lastFirst ? e.sub(e.sub(tiles, e.idx(1)), tile) : tile};
}
inline WorkgroupTile mapWorkgroup(LoopEmitter &e, bool headsFastest,
                                  bool lastFirst = true) {
  Value heads = gpu::GridDimOp::create(e.b, gpu::Dimension::x);
  Value tiles = gpu::GridDimOp::create(e.b, gpu::Dimension::y);
  Value linear =
      e.add(gpu::BlockIdOp::create(e.b, gpu::Dimension::x),
            arith::MulIOp::create(
                e.b, gpu::BlockIdOp::create(e.b, gpu::Dimension::y), heads));
  auto [head, qTile] = headAndTile(
      e, linear, heads, tiles, headsFastest, lastFirst,
      [&](Value a, Value b) { return e.divIdx(a, b); },
      [&](Value a, Value b) -> Value {
        return arith::RemUIOp::create(e.b, a, b);
      });
  return {gpu::BlockIdOp::create(e.b, gpu::Dimension::z), head, qTile};
}

/// A new `gpu.module` at the end of `module`, named `name` or, if that is
/// taken, a unique variant of it; marks `module` as a GPU container.
inline gpu::GPUModuleOp createKernelModule(RewriterBase &rewriter,
                                           ModuleOp module, Location loc,
                                           StringRef name) {
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  rewriter.getUnitAttr());
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToEnd(module.getBody());
  auto gpuModule = gpu::GPUModuleOp::create(rewriter, loc, name);
  SymbolTable(module).insert(gpuModule);
  return gpuModule;
}

/// An empty kernel of kThreads threads in `gpuModule` taking `args` and the
/// shared-memory buffers `smem`; the rewriter's insertion point is left at
/// the start of its body.
inline gpu::GPUFuncOp createKernel(RewriterBase &rewriter,
                                   gpu::GPUModuleOp gpuModule, Location loc,
                                   StringRef name, TypeRange args,
                                   TypeRange smem) {
  rewriter.setInsertionPointToEnd(gpuModule.getBody());
  auto kernel = gpu::GPUFuncOp::create(
      rewriter, loc, name, FunctionType::get(rewriter.getContext(), args, {}),
      smem);
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                  rewriter.getUnitAttr());
  kernel.setKnownBlockSizeAttr(
      rewriter.getDenseI32ArrayAttr({(int32_t)kThreads, 1, 1}));
  rewriter.setInsertionPointToStart(&kernel.getBody().front());
  return kernel;
}

/// A shared-memory tile type of `rows` x (`width` + kPad) elements.
inline MemRefType sharedTileType(Type elementType, int64_t rows,
                                 int64_t width) {
  auto space = gpu::AddressSpaceAttr::get(
      elementType.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
  return MemRefType::get({rows, width + kPad}, elementType,
                         MemRefLayoutAttrInterface(), space);
}

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_KERNELBUILDER_H
