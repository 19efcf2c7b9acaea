//===- RaiseMaskedAttention.cpp - The --raise-swba pass -------------------===//
//
// Raises `softmax(scale * Q.K^T + mask) . V` written in linalg/tensor/arith/
// math to `swba.attention`. The pattern is rooted at the second contraction:
// its probability operand is traced back (ScoreTrace) to an expression for
// one element, the expression is matched against softmax over the key axis
// of scaled and masked scores, and the mask is evaluated on every (query,
// key) pair and proven to be an SWBA mask (MaskAnalysis). Anything not
// proven is left alone with a missed-optimization remark.
//
//===----------------------------------------------------------------------===//

#include "MaskAnalysis.h"
#include "ScoreTrace.h"

#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/Remarks.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Debug.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

#define DEBUG_TYPE "raise-swba"

namespace mlir::swba {
#define GEN_PASS_DEF_RAISESWBA
#include "swba/Dialect/SWBA/Transforms/Passes.h.inc"
} // namespace mlir::swba

using namespace mlir;
using namespace mlir::swba;

namespace {

/// One of q, k, v as the op needs it: `value` read through `perm` (canonical
/// dimension c is dimension perm[c] of `value`) is [batch..., seq, feature].
struct OperandPlan {
  Value value;
  SmallVector<int64_t> perm;
  double scale = 1.0;
};

/// A proven masked attention.
struct AttentionMatch {
  OperandPlan q, k, v;
  double scale = 1.0;
  SWBAMaskParams params;
};

/// Either a mask term `scores + value` or `select(cond, scores, value)` (or
/// with the branches swapped: `keepIfTrue` false).
struct MaskTerm {
  Expr *value;
  Expr *cond = nullptr;
  bool keepIfTrue = true;
};

/// The loops of a contraction `out[batch..., row, col] += a * b`.
struct ContractionLoops {
  SmallVector<unsigned> batch;
  unsigned row, col, reduction;
};

} // namespace

static FailureOr<ContractionLoops> getContractionLoops(linalg::LinalgOp op) {
  AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  unsigned rank = outMap.getNumResults();
  if (rank < 2)
    return failure();
  ContractionLoops loops;
  for (unsigned k = 0; k < rank; ++k) {
    unsigned d = outMap.getDimPosition(k);
    if (k + 2 < rank)
      loops.batch.push_back(d);
    else if (k + 2 == rank)
      loops.row = d;
    else
      loops.col = d;
  }
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  for (unsigned d = 0; d < iterators.size(); ++d)
    if (iterators[d] == utils::IteratorType::reduction)
      loops.reduction = d;
  return loops;
}

static bool uses(AffineMap map, unsigned loop) {
  return map.isFunctionOfDim(loop);
}

/// Whether a contraction accumulates into zeros.
static bool hasZeroInit(linalg::LinalgOp op) {
  Value init = op.getDpsInits()[0];
  Attribute value;
  if (auto fill = init.getDefiningOp<linalg::FillOp>()) {
    if (!matchPattern(fill.getInputs()[0], m_Constant(&value)))
      return false;
  } else if (!matchPattern(init, m_Constant(&value))) {
    return false;
  }
  if (auto f = dyn_cast<FloatAttr>(value))
    return f.getValue().isZero();
  if (auto dense = dyn_cast<DenseFPElementsAttr>(value))
    return dense.isSplat() && dense.getSplatValue<APFloat>().isZero();
  return false;
}

/// The positive constant that the single-input elementwise op `op` scales
/// its input by (1 for pure casts), or failure.
static FailureOr<double> matchScaleOrCast(linalg::LinalgOp op) {
  if (op.getNumDpsInputs() != 1 || op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !op.hasPureTensorSemantics() ||
      !isa<RankedTensorType>(op.getDpsInputs()[0].getType()))
    return failure();
  for (AffineMap map : op.getIndexingMapsArray())
    if (!map.isIdentity())
      return failure();
  Block *body = op.getBlock();
  Value v = body->getTerminator()->getOperand(0);
  double scale = 1.0;
  auto constantOf = [](Value c) -> std::optional<double> {
    FloatAttr attr;
    if (matchPattern(c, m_Constant(&attr)))
      return attr.getValueAsDouble();
    return std::nullopt;
  };
  while (v != body->getArgument(0)) {
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != body)
      return failure();
    if (isa<arith::ExtFOp, arith::TruncFOp>(def)) {
      v = def->getOperand(0);
    } else if (isa<arith::MulFOp>(def)) {
      if (auto c = constantOf(def->getOperand(1))) {
        scale *= *c;
        v = def->getOperand(0);
      } else if (auto c = constantOf(def->getOperand(0))) {
        scale *= *c;
        v = def->getOperand(1);
      } else {
        return failure();
      }
    } else if (isa<arith::DivFOp>(def)) {
      auto c = constantOf(def->getOperand(1));
      if (!c)
        return failure();
      scale /= *c;
      v = def->getOperand(0);
    } else {
      return failure();
    }
  }
  return scale;
}

/// Plans how to read operand `operand` of contraction `op` as
/// [batch..., seq, feature], looking through transposes, batch reshapes,
/// casts and (when `allowScale`) scaling by a constant.
static FailureOr<OperandPlan> planOperand(linalg::LinalgOp op,
                                          OpOperand *operand,
                                          ArrayRef<unsigned> batchLoops,
                                          unsigned seqLoop, unsigned featLoop,
                                          bool allowScale, std::string &why) {
  AffineMap map = op.getMatchingIndexingMap(operand);
  SmallVector<unsigned> wanted(batchLoops);
  wanted.push_back(seqLoop);
  wanted.push_back(featLoop);
  if (map.getNumResults() != wanted.size()) {
    why = "an operand of a contraction is broadcast over batch/heads "
          "(grouped-query attention through broadcasts is not recognized)";
    return failure();
  }
  OperandPlan plan;
  plan.value = operand->get();
  for (unsigned loop : wanted) {
    std::optional<unsigned> pos = map.getResultPosition(
        getAffineDimExpr(loop, op->getContext()));
    if (!pos) {
      why = "an operand of a contraction does not index a batch/head loop";
      return failure();
    }
    plan.perm.push_back(*pos);
  }

  while (Operation *def = plan.value.getDefiningOp()) {
    if (auto transpose = dyn_cast<linalg::TransposeOp>(def)) {
      if (!transpose.hasPureTensorSemantics())
        break;
      ArrayRef<int64_t> p = transpose.getPermutation();
      for (int64_t &d : plan.perm)
        d = p[d];
      plan.value = transpose.getInput();
      continue;
    }
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def)) {
      // Merged batch dimensions split back in order keep the row-major batch
      // index; the sequence and feature dimensions must not be merged.
      SmallVector<ReassociationIndices> groups =
          collapse.getReassociationIndices();
      size_t rank = plan.perm.size();
      if (groups[plan.perm[rank - 2]].size() != 1 ||
          groups[plan.perm[rank - 1]].size() != 1)
        break;
      SmallVector<int64_t> perm;
      for (size_t c = 0; c < rank; ++c)
        llvm::append_range(perm, groups[plan.perm[c]]);
      plan.perm = std::move(perm);
      plan.value = collapse.getSrc();
      continue;
    }
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
      FailureOr<double> scale = matchScaleOrCast(linalgOp);
      if (failed(scale) || (!allowScale && *scale != 1.0))
        break;
      plan.scale *= *scale;
      plan.value = linalgOp.getDpsInputs()[0];
      continue;
    }
    break;
  }
  auto type = cast<RankedTensorType>(plan.value.getType());
  if (!type.hasStaticShape()) {
    why = "q, k and v need static shapes";
    return failure();
  }
  return plan;
}

/// Matches `p` against softmax over the key axis and returns its input.
static FailureOr<Expr *> matchSoftmax(Expr *p, std::string &why) {
  p = stripCasts(p);
  if (p->kind == ExprKind::Softmax)
    return p->operands[0];
  auto describe = [](Expr *e) -> std::string {
    if (e->kind == ExprKind::Op)
      return "'" + e->op->getName().getStringRef().str() + "'";
    return "an operand that is not an arith/math op";
  };
  if (p->kind != ExprKind::Op || !isa<arith::DivFOp>(p->op)) {
    why = "the probabilities are not a softmax: found " + describe(p) +
          " where softmax's division or linalg.softmax should be";
    return failure();
  }
  Expr *numerator = stripCasts(p->operands[0]);
  Expr *sum = stripCasts(p->operands[1]);
  if (sum->kind != ExprKind::Reduce || sum->reduce != ReduceKind::Sum ||
      !equalExprs(sum->operands[0], numerator)) {
    why = "the softmax divisor is not the key-axis sum of its numerator";
    return failure();
  }
  if (numerator->kind != ExprKind::Op || !isa<math::ExpOp>(numerator->op)) {
    why = "the softmax numerator is not an exp";
    return failure();
  }
  Expr *shifted = stripCasts(numerator->operands[0]);
  if (shifted->kind == ExprKind::Op && isa<arith::SubFOp>(shifted->op)) {
    Expr *max = stripCasts(shifted->operands[1]);
    if (max->kind == ExprKind::Reduce && max->reduce == ReduceKind::Max) {
      if (!equalExprs(max->operands[0], shifted->operands[0])) {
        why = "softmax subtracts the maximum of another value";
        return failure();
      }
      return shifted->operands[0];
    }
  }
  return shifted;
}

/// Whether `e` has a value independent of the position.
static std::optional<double> positionFreeConstant(Expr *e) {
  std::string why;
  if (readsScores(e))
    return std::nullopt;
  FailureOr<EvalValue> v0 = evaluate(e, 0, 0, why);
  FailureOr<EvalValue> v1 = evaluate(e, 1, 1, why);
  if (failed(v0) || failed(v1) || !v0->isFloat || v0->f != v1->f)
    return std::nullopt;
  // Only plain constants count: a value read from a mask tensor that happens
  // to agree at two positions must not.
  std::function<bool(Expr *)> isConstantTree = [&](Expr *x) {
    if (x->kind == ExprKind::Constant)
      return true;
    return x->kind == ExprKind::Op && llvm::all_of(x->operands, isConstantTree);
  };
  if (!isConstantTree(e))
    return std::nullopt;
  return v0->f;
}

/// Splits the softmax input into scores, a scale and mask terms.
static FailureOr<Expr *> decomposeLogits(Expr *x, double &scale,
                                         SmallVector<MaskTerm> &masks,
                                         std::string &why) {
  while (true) {
    x = stripCasts(x);
    if (x->kind == ExprKind::Scores)
      return x;
    if (x->kind != ExprKind::Op) {
      why = "the softmax input is not derived from a Q.K^T contraction";
      return failure();
    }
    Operation *op = x->op;
    if (isa<arith::MulFOp, arith::DivFOp>(op)) {
      bool isDiv = isa<arith::DivFOp>(op);
      std::optional<double> rhs = positionFreeConstant(x->operands[1]);
      std::optional<double> lhs =
          isDiv ? std::nullopt : positionFreeConstant(x->operands[0]);
      if (rhs) {
        scale = isDiv ? scale / *rhs : scale * *rhs;
        x = x->operands[0];
      } else if (lhs) {
        scale *= *lhs;
        x = x->operands[1];
      } else {
        why = "the scores are scaled by a value that is not a constant";
        return failure();
      }
      continue;
    }
    if (isa<arith::AddFOp>(op)) {
      bool lhsScores = readsScores(x->operands[0]);
      bool rhsScores = readsScores(x->operands[1]);
      if (lhsScores == rhsScores) {
        why = lhsScores ? "the scores are added to themselves"
                        : "the softmax input does not read the scores";
        return failure();
      }
      masks.push_back({x->operands[lhsScores ? 1 : 0]});
      x = x->operands[lhsScores ? 0 : 1];
      continue;
    }
    if (isa<arith::SelectOp>(op)) {
      if (readsScores(x->operands[0])) {
        why = "the mask condition depends on the scores";
        return failure();
      }
      bool trueScores = readsScores(x->operands[1]);
      bool falseScores = readsScores(x->operands[2]);
      if (trueScores == falseScores) {
        why = "a select on the scores does not keep them on exactly one side";
        return failure();
      }
      masks.push_back({x->operands[trueScores ? 2 : 1], x->operands[0],
                       trueScores});
      x = x->operands[trueScores ? 1 : 2];
      continue;
    }
    why = "unsupported op '" + op->getName().getStringRef().str() +
          "' between the scores and the softmax";
    return failure();
  }
}

/// Whether `v`, of type `type`, hides a score: -inf or the lowest finite.
static bool isMaskingValue(double v, Type type) {
  if (std::isinf(v) && v < 0)
    return true;
  if (auto floatType = dyn_cast<FloatType>(type)) {
    APFloat lowest = APFloat::getLargest(floatType.getFloatSemantics(), true);
    bool losesInfo;
    lowest.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                   &losesInfo);
    return v == lowest.convertToDouble();
  }
  return false;
}

static bool isMaskingValue(double v, Expr *term) {
  return isMaskingValue(v, term->type) ||
         isMaskingValue(v, stripCasts(term)->type);
}

/// Evaluates the mask terms on all pairs: which ones stay visible.
static FailureOr<llvm::BitVector>
evaluateVisibility(ArrayRef<MaskTerm> masks, int64_t nq, int64_t nk,
                   std::string &why) {
  llvm::BitVector visible(nq * nk, true);
  for (const MaskTerm &term : masks) {
    for (int64_t i = 0; i < nq; ++i) {
      for (int64_t j = 0; j < nk; ++j) {
        if (term.cond) {
          FailureOr<EvalValue> cond = evaluate(term.cond, i, j, why);
          if (failed(cond))
            return failure();
          if ((cond->i != 0) == term.keepIfTrue)
            continue;
        }
        FailureOr<EvalValue> value = evaluate(term.value, i, j, why);
        if (failed(value))
          return failure();
        if (!value->isFloat) {
          why = "the mask is not a float";
          return failure();
        }
        if (isMaskingValue(value->f, term.value)) {
          visible.reset(i * nk + j);
          continue;
        }
        if (term.cond || value->f != 0.0) {
          why = llvm::formatv("the mask value at (query {0}, key {1}) is {2}, "
                              "neither 0 nor -inf/the lowest finite value",
                              i, j, value->f);
          return failure();
        }
      }
    }
  }
  return visible;
}

/// The batch dimensions of `plan` in canonical order.
static SmallVector<int64_t> batchShape(const OperandPlan &plan) {
  auto type = cast<RankedTensorType>(plan.value.getType());
  SmallVector<int64_t> shape;
  for (size_t c = 0; c + 2 < plan.perm.size(); ++c)
    shape.push_back(type.getDimSize(plan.perm[c]));
  return shape;
}

static int64_t product(ArrayRef<int64_t> sizes) {
  int64_t result = 1;
  for (int64_t size : sizes)
    result *= size;
  return result;
}

/// Proves that `pv` computes SWBA and gathers what the rewrite needs.
static FailureOr<AttentionMatch> matchAttention(linalg::LinalgOp pv,
                                                int64_t maxMaskPairs,
                                                std::string &why) {
  if (!pv.hasPureTensorSemantics()) {
    why = "the contraction is not on tensors";
    return failure();
  }
  FailureOr<ContractionLoops> loops = getContractionLoops(pv);
  if (failed(loops)) {
    why = "the contraction result has rank < 2";
    return failure();
  }
  OpOperand *pOperand = nullptr, *vOperand = nullptr;
  for (OpOperand *operand : pv.getDpsInputOperands()) {
    AffineMap map = pv.getMatchingIndexingMap(operand);
    if (uses(map, loops->row) && uses(map, loops->reduction) &&
        !uses(map, loops->col))
      pOperand = operand;
    else if (uses(map, loops->col) && uses(map, loops->reduction) &&
             !uses(map, loops->row))
      vOperand = operand;
  }
  if (!pOperand || !vOperand) {
    why = "the contraction is not a [.., i, j] x [.., j, e] product";
    return failure();
  }
  if (!hasZeroInit(pv)) {
    why = "the P.V contraction does not accumulate into zeros";
    return failure();
  }

  // The probabilities, read at [batch..., query, key].
  Access pAccess;
  AffineMap pMap = pv.getMatchingIndexingMap(pOperand);
  SmallVector<unsigned> batchRead;
  for (AffineExpr result : pMap.getResults()) {
    auto dim = dyn_cast<AffineDimExpr>(result);
    unsigned d = dim.getPosition();
    if (d == loops->row)
      pAccess.push_back(Axis::Query);
    else if (d == loops->reduction)
      pAccess.push_back(Axis::Key);
    else {
      pAccess.push_back(Axis::Batch);
      batchRead.push_back(d);
    }
  }
  if (batchRead != loops->batch) {
    why = "the probabilities are broadcast or permuted over batch/heads";
    return failure();
  }

  ScoreTracer tracer;
  FailureOr<Expr *> p = tracer.traceTensor(pOperand->get(), pAccess);
  if (failed(p)) {
    why = tracer.getReason();
    return failure();
  }
  FailureOr<Expr *> logits = matchSoftmax(*p, why);
  if (failed(logits))
    return failure();

  AttentionMatch match;
  SmallVector<MaskTerm> masks;
  FailureOr<Expr *> scores = decomposeLogits(*logits, match.scale, masks, why);
  if (failed(scores))
    return failure();

  auto qk = cast<linalg::LinalgOp>((*scores)->op);
  if (!qk.hasPureTensorSemantics() || !hasZeroInit(qk)) {
    why = "the Q.K^T contraction does not accumulate into zeros";
    return failure();
  }
  FailureOr<ContractionLoops> qkLoops = getContractionLoops(qk);
  auto scoresType = cast<RankedTensorType>(qk->getResult(0).getType());
  int64_t rank = scoresType.getRank();
  int64_t nq = scoresType.getDimSize(rank - 2);
  int64_t nk = scoresType.getDimSize(rank - 1);
  if (!scoresType.hasStaticShape()) {
    why = "the scores need a static shape to prove the mask";
    return failure();
  }
  if (nq * nk > maxMaskPairs) {
    why = llvm::formatv("the mask has {0} pairs, more than max-mask-pairs={1}",
                        nq * nk, maxMaskPairs);
    return failure();
  }

  FailureOr<llvm::BitVector> visible = evaluateVisibility(masks, nq, nk, why);
  if (failed(visible))
    return failure();
  FailureOr<SWBAMaskParams> params = inferSWBAMask(*visible, nq, nk, why);
  if (failed(params))
    return failure();
  match.params = *params;

  // q reads the row loop, k the column loop of Q.K^T; both reduce over D.
  OpOperand *qOperand = nullptr, *kOperand = nullptr;
  for (OpOperand *operand : qk.getDpsInputOperands()) {
    AffineMap map = qk.getMatchingIndexingMap(operand);
    if (uses(map, qkLoops->row) && !uses(map, qkLoops->col))
      qOperand = operand;
    else if (uses(map, qkLoops->col) && !uses(map, qkLoops->row))
      kOperand = operand;
  }
  if (!qOperand || !kOperand) {
    why = "the scores contraction is not a [.., i, d] x [.., j, d] product";
    return failure();
  }
  FailureOr<OperandPlan> q =
      planOperand(qk, qOperand, qkLoops->batch, qkLoops->row,
                  qkLoops->reduction, /*allowScale=*/true, why);
  FailureOr<OperandPlan> k =
      planOperand(qk, kOperand, qkLoops->batch, qkLoops->col,
                  qkLoops->reduction, /*allowScale=*/true, why);
  FailureOr<OperandPlan> v =
      planOperand(pv, vOperand, loops->batch, loops->reduction, loops->col,
                  /*allowScale=*/false, why);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  match.q = *q;
  match.k = *k;
  match.v = *v;
  match.scale *= q->scale * k->scale;
  if (!(match.scale > 0) || !std::isfinite(match.scale)) {
    why = llvm::formatv("the scale {0} is not positive and finite",
                        match.scale);
    return failure();
  }
  // Scores or probabilities broadcast over batch/heads would pair q, k and
  // v rows of different heads: every operand spans the same batch.
  auto outType = cast<RankedTensorType>(pv->getResult(0).getType());
  if (!outType.hasStaticShape()) {
    why = "the result needs a static shape";
    return failure();
  }
  int64_t outBatch = 1;
  for (int64_t size : outType.getShape().drop_back(2))
    outBatch *= size;
  for (const OperandPlan *plan : {&match.q, &match.k, &match.v}) {
    if (product(batchShape(*plan)) != outBatch) {
      why = "q, k and v do not span the same batch and heads as the result";
      return failure();
    }
  }
  Type outElt = outType.getElementType();
  if (!outElt.isF32() && !outElt.isF16() && !outElt.isBF16()) {
    why = "the result element type is not f16, bf16 or f32";
    return failure();
  }
  return match;
}

//===----------------------------------------------------------------------===//
// Rewrite
//===----------------------------------------------------------------------===//

/// `value` converted elementwise to element type `elt`.
static Value castElements(RewriterBase &rewriter, Location loc, Value value,
                          Type elt) {
  auto type = cast<RankedTensorType>(value.getType());
  Type from = type.getElementType();
  if (from == elt)
    return value;
  Value init = tensor::EmptyOp::create(rewriter, loc, type.getShape(), elt);
  AffineMap id = rewriter.getMultiDimIdentityMap(type.getRank());
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  bool widen = cast<FloatType>(elt).getWidth() > cast<FloatType>(from).getWidth();
  auto generic = linalg::GenericOp::create(
      rewriter, loc, init.getType(), ValueRange{value}, ValueRange{init},
      ArrayRef<AffineMap>{id, id}, iterators,
      [&](OpBuilder &b, Location l, ValueRange args) {
        Value cast = widen ? Value(arith::ExtFOp::create(b, l, elt, args[0]))
                           : Value(arith::TruncFOp::create(b, l, elt, args[0]));
        linalg::YieldOp::create(b, l, cast);
      });
  return generic->getResult(0);
}

/// Reads `plan` as a [B, H, seq, feature] tensor of element type `elt`, with
/// all batch dimensions in H when `flattenBatch`.
static Value materialize(RewriterBase &rewriter, Location loc,
                         const OperandPlan &plan, bool flattenBatch,
                         Type elt) {
  Value value = plan.value;
  auto type = cast<RankedTensorType>(value.getType());
  int64_t rank = type.getRank();
  if (!llvm::equal(plan.perm, llvm::seq<int64_t>(0, rank))) {
    SmallVector<int64_t> shape;
    for (int64_t d : plan.perm)
      shape.push_back(type.getDimSize(d));
    Value init = tensor::EmptyOp::create(rewriter, loc, shape,
                                         type.getElementType());
    value = linalg::TransposeOp::create(rewriter, loc, value, init, plan.perm)
                ->getResult(0);
    type = cast<RankedTensorType>(value.getType());
  }
  int64_t numBatch = rank - 2;
  ArrayRef<int64_t> shape = type.getShape();
  int64_t seq = shape[rank - 2], feat = shape[rank - 1];
  if (flattenBatch || numBatch != 2) {
    int64_t batch = 1;
    for (int64_t d = 0; d < numBatch; ++d)
      batch *= shape[d];
    if (numBatch > 1) {
      ReassociationIndices lead = llvm::to_vector(llvm::seq<int64_t>(0, numBatch));
      value = tensor::CollapseShapeOp::create(
          rewriter, loc, value,
          ArrayRef<ReassociationIndices>{lead, {numBatch}, {numBatch + 1}});
      numBatch = 1;
    }
    auto target =
        RankedTensorType::get({1, batch, seq, feat}, type.getElementType());
    SmallVector<ReassociationIndices> groups =
        numBatch == 1
            ? SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}}
            : SmallVector<ReassociationIndices>{{0, 1, 2}, {3}};
    value = tensor::ExpandShapeOp::create(rewriter, loc, target, value, groups);
  }
  return castElements(rewriter, loc, value, elt);
}

/// Erases the ops that computed the replaced value and are now dead.
static void eraseDeadProducers(RewriterBase &rewriter,
                               ArrayRef<Value> roots) {
  SmallVector<Operation *> worklist;
  for (Value root : roots)
    if (Operation *def = root.getDefiningOp())
      worklist.push_back(def);
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (!isOpTriviallyDead(op))
      continue;
    // Values captured by the bodies of linalg ops may die with them too.
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (Operation *def = operand.getDefiningOp();
            def && !op->isAncestor(def))
          worklist.push_back(def);
    });
    rewriter.eraseOp(op);
  }
}

static void rewriteAttention(RewriterBase &rewriter, linalg::LinalgOp pv,
                             const AttentionMatch &match) {
  Location loc = pv.getLoc();
  rewriter.setInsertionPoint(pv);
  auto outType = cast<RankedTensorType>(pv->getResult(0).getType());
  // The op runs in the widest element type among q, k, v and the result, so
  // that no operand is narrowed; the result is narrowed to the chain's type.
  Type elt = outType.getElementType();
  for (const OperandPlan *plan : {&match.q, &match.k, &match.v}) {
    Type t = cast<RankedTensorType>(plan->value.getType()).getElementType();
    unsigned tw = cast<FloatType>(t).getWidth();
    unsigned ew = cast<FloatType>(elt).getWidth();
    if (tw > ew)
      elt = t;
    else if (tw == ew && t != elt) // f16 beside bf16: f32 holds both exactly
      elt = rewriter.getF32Type();
  }
  SmallVector<int64_t> bq = batchShape(match.q), bk = batchShape(match.k),
                       bv = batchShape(match.v);
  bool flatten = !(bq.size() == 2 && bq == bk && bq == bv);
  Value q = materialize(rewriter, loc, match.q, flatten, elt);
  Value k = materialize(rewriter, loc, match.k, flatten, elt);
  Value v = materialize(rewriter, loc, match.v, flatten, elt);

  auto qType = cast<RankedTensorType>(q.getType());
  auto vType = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> attShape = {qType.getDimSize(0), qType.getDimSize(1),
                                   qType.getDimSize(2), vType.getDimSize(3)};
  Value init = tensor::EmptyOp::create(rewriter, loc, attShape, elt);
  auto attention = AttentionOp::create(
      rewriter, loc, q, k, v, ValueRange{init}, match.params.blockSize,
      match.params.window, static_cast<float>(match.scale));
  Value result =
      castElements(rewriter, loc, attention->getResult(0),
                   outType.getElementType());

  // Back to the contraction's [batch..., Nq, Dv].
  int64_t outRank = outType.getRank();
  SmallVector<int64_t> outBatch(outType.getShape().drop_back(2));
  if (ArrayRef<int64_t>(attShape).take_front(2) != ArrayRef<int64_t>(outBatch)) {
    if (outRank == 2) {
      result = tensor::CollapseShapeOp::create(
          rewriter, loc, result,
          ArrayRef<ReassociationIndices>{{0, 1, 2}, {3}});
    } else {
      result = tensor::CollapseShapeOp::create(
          rewriter, loc, result,
          ArrayRef<ReassociationIndices>{{0, 1}, {2}, {3}});
      if (outRank > 3) {
        ReassociationIndices lead =
            llvm::to_vector(llvm::seq<int64_t>(0, outRank - 2));
        result = tensor::ExpandShapeOp::create(
            rewriter, loc, outType, result,
            ArrayRef<ReassociationIndices>{lead, {outRank - 2},
                                           {outRank - 1}});
      }
    }
  }
  SmallVector<Value> oldOperands = llvm::to_vector(pv->getOperands());
  rewriter.replaceOp(pv, result);
  eraseDeadProducers(rewriter, oldOperands);
}

//===----------------------------------------------------------------------===//
// Candidates and the pattern
//===----------------------------------------------------------------------===//

/// Whether a contraction operand comes (through elementwise ops, reductions
/// and reshapes) from a softmax or an exp: the contractions worth a remark.
static bool readsSoftmaxLike(linalg::LinalgOp op) {
  SmallVector<Value> worklist(op.getDpsInputs());
  llvm::SmallPtrSet<Operation *, 32> seen;
  while (!worklist.empty() && seen.size() < 256) {
    Operation *def = worklist.pop_back_val().getDefiningOp();
    if (!def || !seen.insert(def).second)
      continue;
    if (isa<linalg::SoftmaxOp>(def))
      return true;
    if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(def)) {
      worklist.push_back(def->getOperand(0));
      continue;
    }
    auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
    if (!linalgOp || isContraction(linalgOp))
      continue;
    bool hasExp = false;
    linalgOp.getBlock()->walk([&](math::ExpOp) { hasExp = true; });
    if (hasExp)
      return true;
    llvm::append_range(worklist, linalgOp.getDpsInputs());
  }
  return false;
}

namespace {
struct RaiseMaskedAttentionPattern
    : public OpInterfaceRewritePattern<linalg::LinalgOp> {
  RaiseMaskedAttentionPattern(MLIRContext *context, int64_t maxMaskPairs,
                              bool emitRemarks)
      : OpInterfaceRewritePattern(context), maxMaskPairs(maxMaskPairs),
        emitRemarks(emitRemarks) {}

  LogicalResult matchAndRewrite(linalg::LinalgOp op,
                                PatternRewriter &rewriter) const override {
    if (!isContraction(op) || !readsSoftmaxLike(op))
      return rewriter.notifyMatchFailure(op, "not an attention candidate");
    std::string why;
    FailureOr<AttentionMatch> match = matchAttention(op, maxMaskPairs, why);
    if (failed(match)) {
      LLVM_DEBUG(llvm::dbgs() << "raise-swba: rejected " << op << ": " << why
                              << "\n");
      if (emitRemarks)
        remark::missed(op.getLoc(), remark::RemarkOpts::name("RaiseSWBA")
                                        .category("raise-swba"))
            << remark::reason("not raised to swba.attention: {0}", why);
      return rewriter.notifyMatchFailure(op, why);
    }
    rewriteAttention(rewriter, op, *match);
    return success();
  }

  int64_t maxMaskPairs;
  bool emitRemarks;
};

struct RaiseSWBAPass : public swba::impl::RaiseSWBABase<RaiseSWBAPass> {
  using RaiseSWBABase::RaiseSWBABase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseMaskedAttentionPattern>(&getContext(), maxMaskPairs,
                                              /*emitRemarks=*/true);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace

void mlir::swba::populateRaiseSWBAPatterns(RewritePatternSet &patterns,
                                           int64_t maxMaskPairs) {
  patterns.add<RaiseMaskedAttentionPattern>(patterns.getContext(),
                                            maxMaskPairs,
                                            /*emitRemarks=*/false);
}
