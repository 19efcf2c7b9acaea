//===- SWBAToGPU.cpp - swba.attention to a tensor-core GPU kernel ---------===//
//
// Lowers memref-form swba.attention to a gpu.launch_func of a kernel in a
// gpu.module. One workgroup of 4 warps owns 64 or 128 query rows (one or two
// m16 tiles per warp, see KernelTiling) of one (batch, head); its KV loop
// runs over the tiles of the rows' block window only (computeKeyWindow). K
// and V tiles are staged in shared memory, the next one loaded into
// registers while the current one is consumed;
// both products run on tensor cores through nvgpu.ldmatrix + nvgpu.mma.sync
// (m16n8k16, f16/bf16 in, f32 accumulate); the online softmax lives in the
// mma accumulator registers (fragment layouts: KernelBuilder.h). A tile
// that every row of the workgroup sees whole skips the element mask
// (isTileFullyVisible).
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Utils/WindowBounds.h"
#include "KernelBuilder.h"
#include "LaunchContract.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// How the kernel for one op is tiled.
struct KernelTiling {
  /// m16 row tiles per warp. Two tiles share every K and V fragment read from
  /// shared memory, halving that traffic per FLOP, which bounds an
  /// mma.sync kernel; at head dim 128 the accumulators of two tiles would
  /// not fit the 255 registers of a thread.
  int64_t mTiles;
  /// Whether consecutive workgroups take the same query tile of successive
  /// heads (every head's heaviest tiles in the first wave: short sequences,
  /// few workgroups) or successive query tiles of one head (neighbours share
  /// K/V in L2: long sequences, many 64-row workgroups at head dim 128).
  bool headsFastest;
  int64_t blockM() const { return 16 * kWarps * mTiles; }

  static KernelTiling get(int64_t headDim, int64_t valueDim) {
    bool small = headDim <= 64 && valueDim <= 64;
    return {small ? 2 : 1, small};
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
    KernelTiling tiling = KernelTiling::get(headDim, valueDim);

    // The kernel: one gpu.module per op, named uniquely in the module.
    Location loc = op.getLoc();
    SmallVector<Value> args{op.getQuery(), op.getKey(), op.getValue(),
                            op.getOut()};
    if (op.getLse())
      args.push_back(op.getLse());
    OpBuilder::InsertionGuard guard(rewriter);
    auto gpuModule = createKernelModule(rewriter, module, loc,
                                        "swba_attention_kernels");

    // Shared memory: a K tile and a V tile; Q is staged through the K tile,
    // or through a buffer of its own when a workgroup has more query rows
    // than a K tile.
    SmallVector<Type> smemTypes{sharedTileType(elementType, kBlockN, headDim),
                                sharedTileType(elementType, kBlockN, valueDim)};
    if (tiling.blockM() > kBlockN)
      smemTypes.push_back(
          sharedTileType(elementType, tiling.blockM(), headDim));
    auto kernel = createKernel(rewriter, gpuModule, loc, "swba_fwd",
                               TypeRange(ValueRange(args)), smemTypes);
    Block &entry = kernel.getBody().front();
    rewriter.setInsertionPointToStart(&entry);
    ArrayRef<BlockArgument> smem = kernel.getWorkgroupAttributions();
    buildKernelBody(rewriter, loc, op, tiling,
                    entry.getArguments().take_front(args.size()), smem[0],
                    smem[1], smem.size() > 2 ? smem[2] : smem[0], elementType,
                    headDim, valueDim);
    gpu::ReturnOp::create(rewriter, loc);

    LaunchContract launch{tileGrid("q", tiling.blockM()), kThreads};
    for (auto [name, value] : namedOperands(op))
      launch.params.push_back({name});
    emitLaunches(rewriter, op, {}, {{kernel, launch}});
    return success();
  }

private:
  static void buildKernelBody(OpBuilder &builder, Location loc, AttentionOp op,
                              KernelTiling tiling, ValueRange args, Value sK,
                              Value sV, Value sQ, Type elementType,
                              int64_t headDim, int64_t valueDim) {
    KernelBuilder e(builder, loc, elementType);
    const int64_t mTiles = tiling.mTiles, blockM = tiling.blockM();
    Value q = args[0], k = args[1], v = args[2], out = args[3];
    Value lse = args.size() > 4 ? args[4] : Value();
    BlockWindow w{static_cast<int64_t>(op.getBlockSize()),
                  static_cast<int64_t>(op.getWindow())};
    // Scores are kept in the log2 domain: exp2 is one instruction.
    double log2e = 1.0 / std::log(2.0);
    Value scale = e.f32(op.getEffectiveScale() * log2e);

    e.setLaneIds();
    auto [batch, head, qTile] = mapWorkgroup(e, tiling.headsFastest);

    Value queries = e.dim(q, 2), keys = e.dim(k, 2);
    Value posOffset = e.sub(keys, queries);
    Value group = e.divIdx(e.dim(q, 1), e.dim(k, 1));
    Value kvHead = e.divIdx(head, group);
    Value q0 = e.mul(qTile, blockM);
    Value q1 = e.min(e.add(q0, e.idx(blockM)), queries);
    RowRange window = computeKeyWindow(e.b, loc, w, q0, q1, posOffset, keys);

    // Q: staged through shared memory, then held as A fragments for the
    // whole loop; the first K/V tile is loaded meanwhile.
    e.storeTile(e.loadTile(q, batch, head, q0, queries, blockM, headDim), sQ,
                blockM, headDim);
    SmallVector<Value> firstK =
        e.loadTile(k, batch, kvHead, window.begin, keys, kBlockN, headDim);
    SmallVector<Value> firstV =
        e.loadTile(v, batch, kvHead, window.begin, keys, kBlockN, valueDim);
    gpu::BarrierOp::create(e.b);
    Value warpRow = e.mul(e.warpId, 16 * mTiles);
    // qFrag[m * dk + kk]: m16 tile m of this warp, k slice kk.
    SmallVector<Value> qFrag;
    int64_t dk = headDim / 16;
    for (int64_t m = 0; m < mTiles; ++m)
      qFrag.append(
          e.loadAFragments(sQ, e.add(warpRow, e.idx(16 * m)), headDim));
    gpu::BarrierOp::create(e.b);
    e.storeTile(firstK, sK, kBlockN, headDim);
    e.storeTile(firstV, sV, kBlockN, valueDim);

    // Loop-carried, per m tile: output accumulators, then the max and sum
    // of rows g and g + 8.
    int64_t nAcc = valueDim / 8;
    SmallVector<Value> init;
    for (int64_t i = 0; i < mTiles * nAcc; ++i)
      init.push_back(e.zeroAcc());
    for (int64_t i = 0; i < 2 * mTiles; ++i)
      init.push_back(e.negInf());
    for (int64_t i = 0; i < 2 * mTiles; ++i)
      init.push_back(e.f32(0.0));

    auto loop = scf::ForOp::create(e.b, window.begin, window.end,
                                   e.idx(kBlockN), init);
    {
      OpBuilder::InsertionGuard guard(e.b);
      e.b.setInsertionPointToEnd(loop.getBody());
      Value k0 = loop.getInductionVar();
      ValueRange iter = loop.getRegionIterArgs();
      SmallVector<Value> acc(iter.take_front(mTiles * nAcc));
      SmallVector<Value> rowMax(iter.slice(mTiles * nAcc, 2 * mTiles));
      SmallVector<Value> rowSum(iter.slice(mTiles * nAcc + 2 * mTiles,
                                           2 * mTiles));

      // This tile's stores are visible; start loading the next tile into
      // registers, so that its latency hides behind this tile's math.
      gpu::BarrierOp::create(e.b);
      Value next = e.add(k0, e.idx(kBlockN));
      Value hasNext = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                            next, window.end);
      Value nextEnd = e.select(hasNext, keys, e.idx(0));
      SmallVector<Value> nextK =
          e.loadTile(k, batch, kvHead, next, nextEnd, kBlockN, headDim);
      SmallVector<Value> nextV =
          e.loadTile(v, batch, kvHead, next, nextEnd, kBlockN, valueDim);

      // S = Q K^T: B fragments are K rows read without transpose, each read
      // once and used by every m tile.
      int64_t nTiles = kBlockN / 8;
      // s[m * nTiles + nt]
      SmallVector<Value> s(mTiles * nTiles);
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        SmallVector<Value> c(mTiles, Value());
        for (int64_t m = 0; m < mTiles; ++m)
          c[m] = e.zeroAcc();
        for (int64_t kk = 0; kk < dk; ++kk) {
          Value bFrag = e.loadBFragment(sK, nt, kk);
          for (int64_t m = 0; m < mTiles; ++m)
            c[m] = e.mma(qFrag[m * dk + kk], bFrag, c[m]);
        }
        for (int64_t m = 0; m < mTiles; ++m)
          s[m * nTiles + nt] = arith::MulFOp::create(
              e.b, c[m],
              vector::BroadcastOp::create(e.b, c[m].getType(), scale));
      }

      // Edge tiles mask element-wise; interior tiles pass through untouched.
      Value k1 = e.min(next, window.end);
      Value fullTile = arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq,
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
        for (int64_t m = 0; m < mTiles; ++m) {
          for (int64_t nt = 0; nt < nTiles; ++nt) {
            Value tile = s[m * nTiles + nt];
            for (int64_t r = 0; r < 2; ++r) {
              Value row = e.add(e.add(q0, warpRow),
                                e.add(e.g, e.idx(16 * m + 8 * r)));
              for (int64_t c = 0; c < 2; ++c) {
                Value col =
                    e.add(k0, e.add(e.mul(e.t, 2), e.idx(nt * 8 + c)));
                Value inRange = arith::CmpIOp::create(
                    e.b, arith::CmpIPredicate::ult, col, k1);
                Value visible = arith::AndIOp::create(
                    e.b, inRange,
                    isVisible(e.b, loc, w, row, col, posOffset));
                tile = e.insert(
                    e.select(visible, e.extract(tile, r, c), e.negInf()),
                    tile, r, c);
              }
            }
            masked.push_back(tile);
          }
        }
        scf::YieldOp::create(e.b, masked);
      }
      s.assign(maskIf.getResults().begin(), maskIf.getResults().end());

      // Online softmax on rows g (r = 0) and g + 8 (r = 1) of each m tile.
      SmallVector<Value> p(s.size());
      for (int64_t m = 0; m < mTiles; ++m) {
        ArrayRef<Value> sm = ArrayRef<Value>(s).slice(m * nTiles, nTiles);
        Value ref[2], alpha[2], partial[2];
        for (int64_t r = 0; r < 2; ++r) {
          Value &mx = rowMax[2 * m + r];
          Value old = mx;
          for (Value tile : sm)
            mx = e.maxf(mx,
                        e.maxf(e.extract(tile, r, 0), e.extract(tile, r, 1)));
          mx = e.quadReduce(mx, /*isMax=*/true);
          // A row that has seen only masked keys keeps max -inf;
          // subtracting 0 keeps its exponentials at 0 instead of NaN.
          Value noneSeen = arith::CmpFOp::create(
              e.b, arith::CmpFPredicate::OEQ, mx, e.negInf());
          ref[r] = e.select(noneSeen, e.f32(0.0), mx);
          alpha[r] = e.ex2(e.subf(old, ref[r]));
          partial[r] = e.f32(0.0);
        }
        for (int64_t nt = 0; nt < nTiles; ++nt) {
          Value prob = sm[nt];
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t c = 0; c < 2; ++c) {
              Value x = e.ex2(e.subf(e.extract(sm[nt], r, c), ref[r]));
              partial[r] = e.addf(partial[r], x);
              prob = e.insert(x, prob, r, c);
            }
          p[m * nTiles + nt] = prob;
        }
        for (int64_t r = 0; r < 2; ++r)
          rowSum[2 * m + r] =
              e.addf(e.mulf(rowSum[2 * m + r], alpha[r]), partial[r]);
        for (int64_t dt = 0; dt < nAcc; ++dt) {
          Value &tile = acc[m * nAcc + dt];
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t c = 0; c < 2; ++c)
              tile = e.insert(e.mulf(e.extract(tile, r, c), alpha[r]), tile,
                              r, c);
        }
      }

      // O += P V: P's C tiles pair up into A fragments; V is read with
      // transpose so that its key rows become the k dimension, each V
      // fragment once for every m tile.
      for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
        SmallVector<Value> aFrag;
        for (int64_t m = 0; m < mTiles; ++m)
          aFrag.push_back(e.toAFragment(p[m * nTiles + 2 * kk],
                                        p[m * nTiles + 2 * kk + 1]));
        for (int64_t dt = 0; dt < nAcc; ++dt) {
          Value bFrag = e.loadBFragmentTransposed(sV, kk, dt);
          for (int64_t m = 0; m < mTiles; ++m)
            acc[m * nAcc + dt] = e.mma(aFrag[m], bFrag, acc[m * nAcc + dt]);
        }
      }

      // Everyone is done reading this tile: publish the next one.
      gpu::BarrierOp::create(e.b);
      e.storeTile(nextK, sK, kBlockN, headDim);
      e.storeTile(nextV, sV, kBlockN, valueDim);

      SmallVector<Value> yielded(acc);
      yielded.append(rowMax);
      yielded.append(rowSum);
      scf::YieldOp::create(e.b, yielded);
    }

    // Epilogue: complete the row sums over the quad, normalize, store.
    ValueRange results = loop.getResults();
    auto pairType = VectorType::get({2}, elementType);
    for (int64_t m = 0; m < mTiles; ++m) {
      for (int64_t r = 0; r < 2; ++r) {
        Value sum = e.quadReduce(results[mTiles * nAcc + 2 * mTiles + 2 * m + r],
                                 /*isMax=*/false);
        Value inv = e.divf(e.f32(1.0), sum);
        Value row =
            e.add(e.add(q0, warpRow), e.add(e.g, e.idx(16 * m + 8 * r)));
        Value inBounds = arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                               row, queries);
        auto ifOp = scf::IfOp::create(e.b, inBounds, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard guard(e.b);
        e.b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
        for (int64_t dt = 0; dt < nAcc; ++dt) {
          Value tile = results[m * nAcc + dt];
          Value x0 = e.mulf(e.extract(tile, r, 0), inv);
          Value x1 = e.mulf(e.extract(tile, r, 1), inv);
          Value pair = vector::FromElementsOp::create(
              e.b, VectorType::get({2}, e.b.getF32Type()), ValueRange{x0, x1});
          pair = arith::TruncFOp::create(e.b, pairType, pair);
          Value col = e.add(e.mul(e.t, 2), e.idx(dt * 8));
          vector::StoreOp::create(e.b, pair, out,
                                  ValueRange{batch, head, row, col});
        }
        if (!lse)
          continue;
        Value first = arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq, e.t,
                                            e.idx(0));
        auto lseIf = scf::IfOp::create(e.b, first, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard g2(e.b);
        e.b.setInsertionPoint(lseIf.thenBlock()->getTerminator());
        // Back from the log2 domain: lse = (max + log2(sum)) * ln 2.
        Value value = e.mulf(
            e.addf(results[mTiles * nAcc + 2 * m + r], e.lg2(sum)),
            e.f32(std::log(2.0)));
        e.store(value, lse, {batch, head, row});
      }
    }
  }
};

} // namespace

LogicalResult mlir::swba::checkGPULowerable(Operation *op) {
  // Both ops start with q, k, v.
  auto qType = cast<ShapedType>(op->getOperand(0).getType());
  auto vType = cast<ShapedType>(op->getOperand(2).getType());
  Type elementType = qType.getElementType();
  if (!elementType.isF16() && !elementType.isBF16())
    return op->emitOpError() << "target=gpu supports f16 and bf16, got "
                             << elementType;
  for (int64_t d : {qType.getDimSize(3), vType.getDimSize(3)})
    if (d % 16 != 0 || d < 16 || d > 128)
      return op->emitOpError()
             << "target=gpu supports head dims that are multiples of 16 "
                "from 16 to 128 (64 and 128 are the tuned ones), got "
             << qType.getDimSize(3) << " and " << vType.getDimSize(3);
  for (Value operand : op->getOperands()) {
    auto memref = dyn_cast<MemRefType>(operand.getType());
    if (memref && !memref.getLayout().isIdentity())
      return op->emitOpError()
             << "target=gpu needs contiguous (identity-layout) memrefs, got "
             << memref;
  }
  return success();
}

void mlir::swba::populateSWBAToGPUPatterns(RewritePatternSet &patterns) {
  patterns.add<AttentionOpToGPU>(patterns.getContext());
}
