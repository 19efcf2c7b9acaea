//===- SWBAToGPU.cpp - swba.attention to a tensor-core GPU kernel ---------===//
//
// Lowers memref-form swba.attention to a gpu.launch_func of a kernel in a
// gpu.module. One workgroup of 4 warps owns 64 query rows (16 per warp) of
// one (batch, head); its KV loop runs over the tiles of the rows' block
// window only (computeKeyWindow). K and V tiles are staged in shared memory;
// both products run on tensor cores through nvgpu.ldmatrix + nvgpu.mma.sync
// (m16n8k16, f16/bf16 in, f32 accumulate); the online softmax lives in the
// mma accumulator registers. A tile that every row of the workgroup sees
// whole skips the element mask (isTileFullyVisible).
//
// Register fragments of m16n8k16 for lane l, g = l / 4, t = l % 4:
//   A (16x16, vector<4x2>): rows g, g+8 at cols 2t..2t+1, then the same rows
//     at cols 2t+8..2t+9;
//   B (16x8, vector<2x2>):  k rows 2t..2t+1 and 2t+8..2t+9 of column g;
//   C (16x8, vector<2x2>):  rows g and g+8, cols 2t..2t+1.
// Two adjacent C tiles of P are therefore exactly the A fragment of P for
// the second product: the probabilities never leave registers.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "../LoopEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;

namespace {

constexpr int64_t kWarps = 4;
constexpr int64_t kThreads = 32 * kWarps;
/// Query rows per workgroup: 16 per warp, the M of one mma.
constexpr int64_t kBlockM = 16 * kWarps;
/// Key rows per KV tile.
constexpr int64_t kBlockN = 64;
/// Elements of padding per shared-memory row: shifts consecutive rows by 16
/// bytes, so that the 8 row addresses of one ldmatrix phase fall into
/// distinct bank groups instead of one.
constexpr int64_t kPad = 8;
/// Elements per 16-byte global/shared access.
constexpr int64_t kVec = 8;

/// Builds the kernel body. All fragments are SSA values; the C++ loops here
/// unroll at compile time so that they stay in registers.
class KernelBuilder : public LoopEmitter {
public:
  KernelBuilder(OpBuilder &builder, Location loc, Type elementType)
      : LoopEmitter(builder, loc), elementType(elementType) {}

  Type elementType;

  Value laneId, warpId, g, t;

  Value constI32(int32_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }
  Value mul(Value x, int64_t y) { return arith::MulIOp::create(b, x, idx(y)); }
  Value rem(Value x, int64_t y) { return arith::RemUIOp::create(b, x, idx(y)); }
  Value div(Value x, int64_t y) { return divIdx(x, idx(y)); }

  /// Copies rows [row0, row0 + kRows) x [0, width) of `src[batch, head]` into
  /// shared `dst`, 16 bytes per access; rows at or past `rowEnd` read zeros.
  void copyTile(Value src, Value batch, Value head, Value row0, Value rowEnd,
                Value dst, int64_t rows, int64_t width) {
    VectorType vecType = VectorType::get({kVec}, elementType);
    int64_t chunksPerRow = width / kVec;
    int64_t chunks = rows * chunksPerRow;
    Value tid = add(mul(warpId, 32), laneId);
    for (int64_t base = 0; base < chunks; base += kThreads) {
      Value chunk = add(tid, idx(base));
      Value r = div(chunk, chunksPerRow);
      Value col = mul(rem(chunk, chunksPerRow), kVec);
      Value row = add(row0, r);
      Value inBounds = arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                             row, rowEnd);
      auto ifOp = scf::IfOp::create(b, TypeRange{vecType}, inBounds,
                                    /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        Value v = vector::LoadOp::create(b, vecType, src,
                                         ValueRange{batch, head, row, col},
                                         /*nontemporal=*/false,
                                         llvm::MaybeAlign(16));
        scf::YieldOp::create(b, v);
        b.setInsertionPointToStart(ifOp.elseBlock());
        Value zero = arith::ConstantOp::create(
            b, vecType, DenseElementsAttr::get(vecType, b.getZeroAttr(elementType)));
        scf::YieldOp::create(b, zero);
      }
      if (chunks - base < kThreads) {
        // The last round has fewer chunks than threads.
        Value active = arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                             chunk, idx(chunks));
        auto guardIf = scf::IfOp::create(b, active, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(guardIf.thenBlock()->getTerminator());
        vector::StoreOp::create(b, ifOp.getResult(0), dst, ValueRange{r, col},
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
      } else {
        vector::StoreOp::create(b, ifOp.getResult(0), dst, ValueRange{r, col},
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
      }
    }
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

  Value mma(Value a, Value bFrag, Value c) {
    return nvgpu::MmaSyncOp::create(b, a, bFrag, c,
                                    ArrayRef<int64_t>{16, 8, 16});
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

struct AttentionOpToGPU : public OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    auto module = op->getParentOfType<ModuleOp>();
    if (!module)
      return rewriter.notifyMatchFailure(op, "expected an enclosing module");

    auto qType = cast<MemRefType>(op.getQuery().getType());
    auto vType = cast<MemRefType>(op.getValue().getType());
    Type elementType = qType.getElementType();
    int64_t headDim = qType.getDimSize(3), valueDim = vType.getDimSize(3);

    // The kernel: one gpu.module per op, named uniquely in the module.
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    SmallVector<Value> args{op.getQuery(), op.getKey(), op.getValue(),
                            op.getOut()};
    if (op.getLse())
      args.push_back(op.getLse());

    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToEnd(module.getBody());
    auto gpuModule =
        gpu::GPUModuleOp::create(rewriter, loc, "swba_attention_kernels");
    SymbolTable(module).insert(gpuModule);

    auto smemSpace = gpu::AddressSpaceAttr::get(
        ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
    auto kSmemType =
        MemRefType::get({kBlockN, headDim + kPad}, elementType,
                        MemRefLayoutAttrInterface(), smemSpace);
    auto vSmemType =
        MemRefType::get({kBlockN, valueDim + kPad}, elementType,
                        MemRefLayoutAttrInterface(), smemSpace);
    rewriter.setInsertionPointToStart(gpuModule.getBody());
    auto funcType = FunctionType::get(ctx, TypeRange(ValueRange(args)), {});
    auto kernel = gpu::GPUFuncOp::create(rewriter, loc, "swba_attention_fwd",
                                         funcType,
                                         TypeRange{kSmemType, vSmemType});
    kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                    UnitAttr::get(ctx));
    kernel.setKnownBlockSizeAttr(
        rewriter.getDenseI32ArrayAttr({(int32_t)kThreads, 1, 1}));
    Block &entry = kernel.getBody().front();
    rewriter.setInsertionPointToStart(&entry);
    buildKernelBody(rewriter, loc, op, entry.getArguments().take_front(
                                           args.size()),
                    kernel.getWorkgroupAttributions()[0],
                    kernel.getWorkgroupAttributions()[1], elementType, headDim,
                    valueDim);
    gpu::ReturnOp::create(rewriter, loc);

    // The launch: a grid of (query tiles, query heads, batch).
    rewriter.setInsertionPoint(op);
    LoopEmitter e(rewriter, loc);
    Value queries = e.dim(op.getQuery(), 2);
    Value tiles = arith::CeilDivUIOp::create(e.b, queries, e.idx(kBlockM));
    gpu::KernelDim3 grid{tiles, e.dim(op.getQuery(), 1),
                         e.dim(op.getQuery(), 0)};
    gpu::KernelDim3 block{e.idx(kThreads), e.idx(1), e.idx(1)};
    gpu::LaunchFuncOp::create(e.b, kernel, grid, block,
                              /*dynamicSharedMemorySize=*/Value(), args);
    rewriter.eraseOp(op);
    return success();
  }

private:
  static void buildKernelBody(OpBuilder &builder, Location loc, AttentionOp op,
                              ValueRange args, Value sK, Value sV,
                              Type elementType, int64_t headDim,
                              int64_t valueDim) {
    KernelBuilder e(builder, loc, elementType);
    Value q = args[0], k = args[1], v = args[2], out = args[3];
    Value lse = args.size() > 4 ? args[4] : Value();
    BlockWindow w{static_cast<int64_t>(op.getBlockSize()),
                  static_cast<int64_t>(op.getWindow())};
    // Scores are kept in the log2 domain: exp2 is one instruction.
    double log2e = 1.0 / std::log(2.0);
    Value scale = e.f32(op.getEffectiveScale() * log2e);

    Value tid = gpu::ThreadIdOp::create(e.b, gpu::Dimension::x);
    e.warpId = e.div(tid, 32);
    e.laneId = e.rem(tid, 32);
    e.g = e.div(e.laneId, 4);
    e.t = e.rem(e.laneId, 4);
    Value qTile = gpu::BlockIdOp::create(e.b, gpu::Dimension::x);
    Value head = gpu::BlockIdOp::create(e.b, gpu::Dimension::y);
    Value batch = gpu::BlockIdOp::create(e.b, gpu::Dimension::z);

    Value queries = e.dim(q, 2), keys = e.dim(k, 2);
    Value posOffset = e.sub(keys, queries);
    Value group = e.divIdx(e.dim(q, 1), e.dim(k, 1));
    Value kvHead = e.divIdx(head, group);
    Value q0 = e.mul(qTile, kBlockM);
    Value q1 = e.min(e.add(q0, e.idx(kBlockM)), queries);

    // Q: staged through sK, then held as A fragments for the whole loop.
    e.copyTile(q, batch, head, q0, queries, sK, kBlockM, headDim);
    gpu::BarrierOp::create(e.b);
    Value warpRow = e.mul(e.warpId, 16);
    Value ldRowA = e.add(warpRow, e.rem(e.laneId, 16));
    Value ldColA = e.mul(e.div(e.laneId, 16), 8);
    SmallVector<Value> qFrag;
    for (int64_t kk = 0; kk < headDim / 16; ++kk)
      qFrag.push_back(e.ldmatrix(sK, ldRowA, e.add(ldColA, e.idx(kk * 16)), 4,
                                 /*transpose=*/false));

    RowRange window =
        computeKeyWindow(e.b, loc, w, q0, q1, posOffset, keys);

    // Loop-carried: output accumulators, then max and sum of rows g, g+8.
    int64_t nAccTiles = valueDim / 8;
    SmallVector<Value> init;
    for (int64_t i = 0; i < nAccTiles; ++i)
      init.push_back(e.zeroAcc());
    init.append({e.negInf(), e.negInf(), e.f32(0.0), e.f32(0.0)});

    auto loop = scf::ForOp::create(e.b, window.begin, window.end,
                                   e.idx(kBlockN), init);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToEnd(loop.getBody());
      Value k0 = loop.getInductionVar();
      ValueRange iter = loop.getRegionIterArgs();
      SmallVector<Value> acc(iter.take_front(nAccTiles));
      Value rowMax[2] = {iter[nAccTiles], iter[nAccTiles + 1]};
      Value rowSum[2] = {iter[nAccTiles + 2], iter[nAccTiles + 3]};

      // The previous tile's ldmatrix reads (and the Q fragments on the
      // first trip) must finish before the tiles are overwritten.
      gpu::BarrierOp::create(e.b);
      e.copyTile(k, batch, kvHead, k0, keys, sK, kBlockN, headDim);
      e.copyTile(v, batch, kvHead, k0, keys, sV, kBlockN, valueDim);
      gpu::BarrierOp::create(e.b);

      // S = Q K^T: B fragments are K rows read without transpose.
      Value ldRowB = e.rem(e.laneId, 8);
      Value ldColB = e.mul(e.rem(e.div(e.laneId, 8), 2), 8);
      SmallVector<Value> s;
      for (int64_t nt = 0; nt < kBlockN / 8; ++nt) {
        Value c = e.zeroAcc();
        for (int64_t kk = 0; kk < headDim / 16; ++kk) {
          Value bFrag = e.ldmatrix(sK, e.add(ldRowB, e.idx(nt * 8)),
                                   e.add(ldColB, e.idx(kk * 16)), 2, false);
          c = e.mma(qFrag[kk], bFrag, c);
        }
        s.push_back(arith::MulFOp::create(
            e.b, c,
            vector::BroadcastOp::create(e.b, c.getType(), scale)));
      }

      // Edge tiles mask element-wise; interior tiles pass through untouched.
      Value k1 = e.min(e.add(k0, e.idx(kBlockN)), window.end);
      Value fullTile =
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                e.sub(k1, k0), e.idx(kBlockN));
      Value interior = arith::AndIOp::create(
          e.b, fullTile,
          isTileFullyVisible(e.b, loc, w, q0, q1, k0, k1, posOffset));
      auto maskIf = scf::IfOp::create(e.b, TypeRange(ValueRange(s)), interior,
                                      /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard g2(e.b);
        e.b.setInsertionPointToStart(maskIf.thenBlock());
        scf::YieldOp::create(e.b, s);
        e.b.setInsertionPointToStart(maskIf.elseBlock());
        SmallVector<Value> masked;
        for (int64_t nt = 0; nt < kBlockN / 8; ++nt) {
          Value tile = s[nt];
          for (int64_t r = 0; r < 2; ++r) {
            Value row = e.add(e.add(q0, warpRow), e.add(e.g, e.idx(8 * r)));
            for (int64_t c = 0; c < 2; ++c) {
              Value col = e.add(k0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c)));
              Value inRange = arith::CmpIOp::create(
                  e.b, arith::CmpIPredicate::ult, col, k1);
              Value visible = arith::AndIOp::create(
                  e.b, inRange, isVisible(e.b, loc, w, row, col, posOffset));
              tile = e.insert(
                  e.select(visible, e.extract(tile, r, c), e.negInf()), tile,
                  r, c);
            }
          }
          masked.push_back(tile);
        }
        scf::YieldOp::create(e.b, masked);
      }
      s.assign(maskIf.getResults().begin(), maskIf.getResults().end());

      // Online softmax on rows g (r = 0) and g + 8 (r = 1).
      Value ref[2], alpha[2];
      for (int64_t r = 0; r < 2; ++r) {
        Value mx = rowMax[r];
        for (Value tile : s)
          mx = e.maxf(mx, e.maxf(e.extract(tile, r, 0), e.extract(tile, r, 1)));
        mx = e.quadReduce(mx, /*isMax=*/true);
        // A row that has seen only masked keys keeps max -inf; subtracting 0
        // keeps its exponentials at 0 instead of NaN.
        Value noneSeen = arith::CmpFOp::create(
            e.b, arith::CmpFPredicate::OEQ, mx, e.negInf());
        ref[r] = e.select(noneSeen, e.f32(0.0), mx);
        alpha[r] = e.ex2(e.subf(rowMax[r], ref[r]));
        rowMax[r] = mx;
      }
      SmallVector<Value> p;
      Value partial[2] = {e.f32(0.0), e.f32(0.0)};
      for (Value tile : s) {
        Value prob = tile;
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t c = 0; c < 2; ++c) {
            Value x = e.ex2(
                e.subf(e.extract(tile, r, c), ref[r]));
            partial[r] = e.addf(partial[r], x);
            prob = e.insert(x, prob, r, c);
          }
        p.push_back(prob);
      }
      for (int64_t r = 0; r < 2; ++r)
        rowSum[r] = e.addf(e.mulf(rowSum[r], alpha[r]), partial[r]);
      for (Value &tile : acc)
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t c = 0; c < 2; ++c)
            tile = e.insert(e.mulf(e.extract(tile, r, c), alpha[r]), tile, r,
                            c);

      // O += P V: P's C tiles pair up into A fragments; V is read with
      // transpose so that its key rows become the k dimension.
      auto halfPair = VectorType::get({2, 2}, elementType);
      Value ldRowV = e.rem(e.laneId, 16);
      for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
        Value lo = arith::TruncFOp::create(e.b, halfPair, p[2 * kk]);
        Value hi = arith::TruncFOp::create(e.b, halfPair, p[2 * kk + 1]);
        Value aFrag = vector::ShuffleOp::create(e.b, lo, hi,
                                                ArrayRef<int64_t>{0, 1, 2, 3});
        for (int64_t dt = 0; dt < nAccTiles; ++dt) {
          Value bFrag = e.ldmatrix(sV, e.add(ldRowV, e.idx(kk * 16)),
                                   e.idx(dt * 8), 2, /*transpose=*/true);
          acc[dt] = e.mma(aFrag, bFrag, acc[dt]);
        }
      }

      SmallVector<Value> next(acc);
      next.append({rowMax[0], rowMax[1], rowSum[0], rowSum[1]});
      scf::YieldOp::create(e.b, next);
    }

    // Epilogue: complete the row sums over the quad, normalize, store.
    ValueRange results = loop.getResults();
    for (int64_t r = 0; r < 2; ++r) {
      Value sum = e.quadReduce(results[nAccTiles + 2 + r], /*isMax=*/false);
      Value inv = e.divf(e.f32(1.0), sum);
      Value row = e.add(e.add(q0, warpRow), e.add(e.g, e.idx(8 * r)));
      Value inBounds =
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, row, queries);
      auto ifOp = scf::IfOp::create(e.b, inBounds, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      auto pairType = VectorType::get({2}, elementType);
      for (int64_t dt = 0; dt < nAccTiles; ++dt) {
        Value tile = results[dt];
        Value x0 = e.mulf(e.extract(tile, r, 0), inv);
        Value x1 = e.mulf(e.extract(tile, r, 1), inv);
        Value pair = vector::FromElementsOp::create(
            e.b, VectorType::get({2}, e.b.getF32Type()), ValueRange{x0, x1});
        pair = arith::TruncFOp::create(e.b, pairType, pair);
        Value col = e.add(e.mul(e.t, 2), e.idx(dt * 8));
        vector::StoreOp::create(e.b, pair, out,
                                ValueRange{batch, head, row, col});
      }
      if (lse) {
        Value first = arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
                                            e.t, e.idx(0));
        auto lseIf = scf::IfOp::create(e.b, first, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard g2(e.b);
        e.b.setInsertionPoint(lseIf.thenBlock()->getTerminator());
        // Back from the log2 domain: lse = (max + log2(sum)) * ln 2.
        Value log2Sum = e.lg2(sum);
        Value value = e.mulf(e.addf(results[nAccTiles + r], log2Sum),
                             e.f32(std::log(2.0)));
        e.store(value, lse, {batch, head, row});
      }
    }
  }
};

} // namespace

LogicalResult mlir::swba::checkGPULowerable(AttentionOp op) {
  auto qType = cast<ShapedType>(op.getQuery().getType());
  auto vType = cast<ShapedType>(op.getValue().getType());
  Type elementType = qType.getElementType();
  if (!elementType.isF16() && !elementType.isBF16())
    return op.emitOpError() << "target=gpu supports f16 and bf16, got "
                            << elementType;
  for (int64_t d : {qType.getDimSize(3), vType.getDimSize(3)})
    if (d % 16 != 0 || d > 128)
      return op.emitOpError()
             << "target=gpu supports head dims that are multiples of 16 up "
                "to 128 (64 and 128 are the tuned ones), got "
             << qType.getDimSize(3) << " and " << vType.getDimSize(3);
  for (Value operand : op->getOperands()) {
    auto memref = dyn_cast<MemRefType>(operand.getType());
    if (memref && !memref.getLayout().isIdentity())
      return op.emitOpError()
             << "target=gpu needs contiguous (identity-layout) memrefs, got "
             << memref;
  }
  return success();
}

void mlir::swba::populateSWBAToGPUPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionOpToGPU>(patterns.getContext());
}
