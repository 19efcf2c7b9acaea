//===- SplitCombine.cpp - Merge split-KV partial results ------------------===//
//
// The combine kernel of the split-KV forward (SplitCombine.h).
//
//===----------------------------------------------------------------------===//

#include "SplitCombine.h"
#include "KernelBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

/// Rows a combine workgroup merges: one a warp.
static constexpr int64_t kCombineRows = kWarps;

/// Elements a lane loads at once: the widest vector that still gives each
/// of the warp's 32 lanes a chunk of the row (a row of 128 f32 is one
/// 16-byte load a lane).
static int64_t combineVector(int64_t valueDim) {
  for (int64_t vec : {4, 2})
    if (valueDim % vec == 0 && valueDim / vec >= 32)
      return vec;
  return 1;
}

MemRefType gpu_kernels::splitOutType(MLIRContext *context, int64_t valueDim) {
  return MemRefType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, valueDim},
      Float32Type::get(context));
}

MemRefType gpu_kernels::splitLseType(MLIRContext *context) {
  return MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                         Float32Type::get(context));
}

SmallVector<LaunchBuffer> gpu_kernels::splitBuffers(MLIRContext *context,
                                                    int64_t valueDim,
                                                    Size rows) {
  Size splits(SizeRef::scalar(kSplitsScalar));
  return {{kSplitOutBuffer, splitOutType(context, valueDim), {splits, rows}},
          {kSplitLseBuffer, splitLseType(context), {splits, rows}}};
}

namespace {

/// The merge of one row by one warp: each lane owns `perLane` chunks of
/// `vec` columns, lane + 32 c for c < perLane (the last ones may fall past
/// the row: loaded clamped, never stored).
struct RowCombiner {
  KernelBuilder &e;
  Value partOut, partLse, out, lse, row;
  int64_t valueDim, vec, chunks, perLane;

  Value column(int64_t c) { return e.mul(e.add(e.laneId, e.idx(32 * c)), vec); }
  Value maxLse(Value splits);
  /// The weighted sums of the partial rows and of the weights.
  SmallVector<Value> accumulate(Value splits, Value ref);
  void build();
};

} // namespace

Value RowCombiner::maxLse(Value splits) {
  return e.reduce(splits, e.negInf(), [&](Value s, Value acc) -> Value {
    return e.maxf(acc, e.load(partLse, {s, row}));
  });
}

SmallVector<Value> RowCombiner::accumulate(Value splits, Value ref) {
  auto vecType = VectorType::get({vec}, e.b.getF32Type());
  Value zero = arith::ConstantOp::create(
      e.b, vecType, DenseElementsAttr::get(vecType, e.b.getF32FloatAttr(0)));
  SmallVector<Value> init(perLane, zero);
  init.push_back(e.f32(0.0));
  auto loop = scf::ForOp::create(e.b, e.idx(0), splits, e.idx(1), init);
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPointToEnd(loop.getBody());
  Value s = loop.getInductionVar();
  ValueRange iter = loop.getRegionIterArgs();
  Value l = e.load(partLse, {s, row});
  // A split that saw no key has lse -inf; its partial row is not read into
  // the sums at all (whatever it holds). A NaN lse (a split that saw a NaN
  // key, as of an invalid page) is read: the row stays NaN, as unsplit.
  Value seen = arith::CmpFOp::create(e.b, arith::CmpFPredicate::UNE, l,
                                     e.negInf());
  Value w = e.ex2(e.mulf(e.subf(l, ref), e.f32(1.0 / std::log(2.0))));
  Value wide = vector::BroadcastOp::create(e.b, vecType, w);
  SmallVector<Value> next;
  Value lastColumn = e.idx(valueDim - vec);
  for (int64_t c = 0; c < perLane; ++c) {
    Value col = e.min(column(c), lastColumn);
    Value part = vector::LoadOp::create(
        e.b, vecType, partOut, ValueRange{s, row, col},
        /*nontemporal=*/false, naturalAlignment(vecType));
    next.push_back(
        e.select(seen, e.addf(iter[c], e.mulf(wide, part)), iter[c]));
  }
  next.push_back(e.select(seen, e.addf(iter[perLane], w), iter[perLane]));
  scf::YieldOp::create(e.b, next);
  return SmallVector<Value>(loop.getResults());
}

void RowCombiner::build() {
  Value splits = e.dim(partLse, 0);
  Value m = maxLse(splits);
  // No split saw a key: weights relative to 0 (all of them 0) instead of
  // exp(-inf - -inf).
  Value none =
      arith::CmpFOp::create(e.b, arith::CmpFPredicate::OEQ, m, e.negInf());
  SmallVector<Value> sums = accumulate(splits, e.select(none, e.f32(0.0), m));
  Value sum = sums.back();
  Value positive = arith::CmpFOp::create(e.b, arith::CmpFPredicate::OGT, sum,
                                         e.f32(0.0));
  Value inv = e.select(positive, e.divf(e.f32(1.0), sum), e.f32(0.0));
  auto vecType = VectorType::get({vec}, e.b.getF32Type());
  auto outType = VectorType::get({vec}, e.elementType);
  Value wideInv = vector::BroadcastOp::create(e.b, vecType, inv);
  for (int64_t c = 0; c < perLane; ++c) {
    auto store = [&] {
      Value value = e.mulf(sums[c], wideInv);
      if (outType != vecType)
        value = arith::TruncFOp::create(e.b, outType, value);
      vector::StoreOp::create(e.b, value, out, ValueRange{row, column(c)},
                              /*nontemporal=*/false,
                              naturalAlignment(value.getType()));
    };
    if ((c + 1) * 32 <= chunks) {
      store();
      continue;
    }
    auto inside = scf::IfOp::create(
        e.b, arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult,
                                   e.add(e.laneId, e.idx(32 * c)),
                                   e.idx(chunks)));
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(inside.thenBlock()->getTerminator());
    store();
  }
  if (!lse)
    return;
  auto lane0 = scf::IfOp::create(
      e.b, arith::CmpIOp::create(e.b, arith::CmpIPredicate::eq, e.laneId,
                                 e.idx(0)));
  OpBuilder::InsertionGuard guard(e.b);
  e.b.setInsertionPoint(lane0.thenBlock()->getTerminator());
  // m + ln(sum); no key at all: -inf + ln(0) = -inf.
  e.store(e.addf(m, e.mulf(e.lg2(sum), e.f32(std::log(2.0)))), lse, {row});
}

gpu::GPUFuncOp gpu_kernels::createSplitCombineKernel(
    RewriterBase &rewriter, gpu::GPUModuleOp gpuModule, Location loc,
    Type outElementType, int64_t valueDim, bool withLse, bool earlyStart) {
  MLIRContext *context = rewriter.getContext();
  SmallVector<Type> args{
      splitOutType(context, valueDim), splitLseType(context),
      MemRefType::get({ShapedType::kDynamic, valueDim}, outElementType)};
  if (withLse)
    args.push_back(
        MemRefType::get({ShapedType::kDynamic}, Float32Type::get(context)));
  auto kernel = createKernel(rewriter, gpuModule, loc, "swba_split_combine",
                             args, {});
  // Everything it reads is the split kernel's.
  if (earlyStart)
    NVVM::GriddepcontrolOp::create(rewriter, loc,
                                   NVVM::GridDepActionKind::wait);
  KernelBuilder e(rewriter, loc, outElementType);
  e.setLaneIds();
  int64_t vec = combineVector(valueDim);
  RowCombiner combiner{e,
                       kernel.getArgument(0),
                       kernel.getArgument(1),
                       kernel.getArgument(2),
                       withLse ? kernel.getArgument(3) : Value(),
                       e.add(e.mul(gpu::BlockIdOp::create(
                                       e.b, gpu::Dimension::x),
                                   kCombineRows),
                             e.warpId),
                       valueDim,
                       vec,
                       valueDim / vec,
                       static_cast<int64_t>(llvm::divideCeil(valueDim / vec, 32))};
  auto inside = scf::IfOp::create(
      e.b, arith::CmpIOp::create(e.b, arith::CmpIPredicate::ult, combiner.row,
                                 e.dim(combiner.partLse, 1)));
  {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPoint(inside.thenBlock()->getTerminator());
    combiner.build();
  }
  gpu::ReturnOp::create(rewriter, loc);
  return kernel;
}

LaunchContract gpu_kernels::splitCombineLaunch(StringRef out, int64_t outRank,
                                               StringRef lse) {
  ReassociationIndices rows = llvm::to_vector<2>(llvm::seq<int64_t>(0, outRank - 1));
  LaunchContract launch{{GridDim{Size(kSplitLseBuffer, 1), kCombineRows},
                         GridDim{Size::one()}, GridDim{Size::one()}},
                        kThreads};
  launch.params = {{kSplitOutBuffer}, {kSplitLseBuffer}};
  launch.params.push_back({out, nullptr, {rows, {outRank - 1}}});
  if (!lse.empty())
    launch.params.push_back({lse, nullptr, {rows}});
  return launch;
}
