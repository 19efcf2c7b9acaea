//===- RaiseMaskedAttention.cpp - The --raise-swba pass -------------------===//
//
// Raises `softmax(scale * Q.K^T + mask) . V` written in linalg/tensor/arith/
// math to `swba.attention`. The pattern is rooted at the second contraction:
// its probability operand is traced back (ScoreTrace) to an expression for
// one element, the expression is matched against softmax over the key axis
// of scaled and masked scores, and the mask is constant-folded on every
// (query, key) pair (MaskEvaluator) and proven to be an SWBA mask
// (MaskAnalysis). Anything not proven is left alone with a
// missed-optimization remark.
//
//===----------------------------------------------------------------------===//

#include "MaskAnalysis.h"
#include "MaskEvaluator.h"
#include "ScoreTrace.h"
#include "SizeClasses.h"

#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/Remarks.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/ScopeExit.h"
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
  /// k/v: each head of `value` is read by this many consecutive heads of
  /// the contraction (repeat_interleave over heads: grouped-query).
  int64_t headRepeat = 1;
  /// `value`'s type with the dynamic sizes that are proven constants made
  /// static (ONNX's broadcasts and reshapes leave sizes dynamic that are
  /// not); null where the type is kept.
  RankedTensorType refined;
};

/// Rows of the products that fold the query heads of each kv head in
/// (JAX's grouped-query layout): how the rows merge query and group, and
/// the two counts. `rows` is Axis::Query where nothing is folded.
struct FoldedRows {
  Axis rows = Axis::Query;
  int64_t queries = 0, groups = 1;
  bool folded() const { return rows != Axis::Query; }
};

/// A proven masked attention.
struct AttentionMatch {
  OperandPlan q, k, v;
  double scale = 1.0;
  SWBAMaskParams params;
  /// The contraction computes O^T = V^T P^T: [batch..., Dv, Nq].
  bool transposed = false;
  /// The rows of P.V and of Q.K^T, where they fold query heads in.
  FoldedRows pvRows, qkRows;
  /// The scores are computed as K Q^T: [batch..., Nk, Nq].
  bool scoresTransposed = false;
  /// Sizes that the proof took to be at least 1 (SizeClasses::positive,
  /// those defined before the contraction), as (tensor, dim) or (scalar,
  /// -1): the rewrite asserts them.
  SmallVector<std::pair<Value, int64_t>> positive;
};

/// Either a mask term `scores + value` or `select(cond, scores, value)` (or
/// with the branches swapped: `keepIfTrue` false).
struct MaskTerm {
  Expr *value;
  Expr *cond = nullptr;
  bool keepIfTrue = true;
};

/// How much evaluation a mask may take (see --raise-swba's options).
struct MaskBudget {
  int64_t maxPairs;
  int64_t tile;
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

/// The value of a one-element tensor where the graph computes it from
/// constants (std::nullopt where not).
using ScalarOf = function_ref<std::optional<double>(Value)>;

/// The constant that the elementwise op `op` scales its input by (1 for
/// pure casts), or failure. Its factors are constants of its body, or
/// one-element tensors read at every element whose value `scalarOf` gives.
static FailureOr<double> matchScaleOrCast(linalg::LinalgOp op,
                                          ScalarOf scalarOf) {
  if (op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !op.hasPureTensorSemantics() ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return failure();
  // One input read elementwise; any others are one-element tensors read
  // at every element (a scale computed in the graph, as ONNX exports it).
  Block *body = op.getBlock();
  std::optional<unsigned> data;
  DenseMap<Value, Value> scalarInputs;
  for (OpOperand *input : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(input);
    auto type = dyn_cast<RankedTensorType>(input->get().getType());
    if (!type)
      return failure();
    if (map.isIdentity() && !data) {
      data = input->getOperandNumber();
      continue;
    }
    bool broadcastScalar =
        type.hasStaticShape() && type.getNumElements() == 1 &&
        llvm::all_of(map.getResults(),
                     [](AffineExpr e) { return isa<AffineConstantExpr>(e); });
    if (!broadcastScalar)
      return failure();
    scalarInputs[body->getArgument(input->getOperandNumber())] = input->get();
  }
  if (!data)
    return failure();
  Value v = body->getTerminator()->getOperand(0);
  double scale = 1.0;
  auto constantOf = [&](Value c) -> std::optional<double> {
    FloatAttr attr;
    if (matchPattern(c, m_Constant(&attr)))
      return attr.getValueAsDouble();
    if (auto it = scalarInputs.find(c); it != scalarInputs.end() && scalarOf)
      return scalarOf(it->second);
    return std::nullopt;
  };
  while (v != body->getArgument(*data)) {
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

/// Where `op` copies its one input transposed (linalg.transpose, or a
/// linalg.generic with a permuted input map and the identity for its
/// result, as importers write transposes), the input dimension of each
/// result dimension.
static std::optional<SmallVector<int64_t>>
matchPermutedCopy(linalg::LinalgOp op) {
  if (auto transpose = dyn_cast<linalg::TransposeOp>(op.getOperation())) {
    if (!transpose.hasPureTensorSemantics())
      return std::nullopt;
    return llvm::to_vector(transpose.getPermutation());
  }
  if (!isa<linalg::GenericOp>(op) || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !op.hasPureTensorSemantics())
    return std::nullopt;
  AffineMap in = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  Block *body = op.getBlock();
  if (!out.isIdentity() || !in.isPermutation() ||
      body->getTerminator()->getOperand(0) != body->getArgument(0))
    return std::nullopt;
  SmallVector<int64_t> perm;
  for (unsigned d = 0; d < out.getNumResults(); ++d)
    perm.push_back(*in.getResultPosition(getAffineDimExpr(d, op.getContext())));
  return perm;
}

/// The dimension that `op` broadcasts its single input along, when `op`
/// only copies its input (`linalg.broadcast` or the equivalent generic)
/// and adds exactly one dimension.
static std::optional<unsigned> matchSingleBroadcast(linalg::LinalgOp op) {
  if (op.getNumDpsInputs() != 1 || op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !op.hasPureTensorSemantics() ||
      !isa<RankedTensorType>(op.getDpsInputs()[0].getType()))
    return std::nullopt;
  Block *body = op.getBlock();
  if (body->getTerminator()->getOperand(0) != body->getArgument(0))
    return std::nullopt;
  if (!op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return std::nullopt;
  AffineMap in = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  if (in.getNumResults() + 1 != op.getNumLoops())
    return std::nullopt;
  std::optional<unsigned> dropped;
  unsigned next = 0;
  for (AffineExpr result : in.getResults()) {
    auto dim = dyn_cast<AffineDimExpr>(result);
    if (!dim)
      return std::nullopt;
    if (dim.getPosition() != next) {
      if (dropped || dim.getPosition() != next + 1)
        return std::nullopt;
      dropped = next++;
    }
    ++next;
  }
  return dropped ? dropped : std::optional<unsigned>(next);
}

/// Plans how to read operand `operand` of contraction `op` as
/// [batch..., seq, feature], looking through transposes, batch reshapes,
/// casts and (when `allowScale`) scaling by a constant.
///
/// With `folded` rows (q of Q.K^T in JAX's grouped-query layout), the
/// sequence dimension merges queries and query heads: the reshape that
/// merges them is split, and the query heads become the innermost batch
/// dimension (so that query head h reads kv head h / groups).
static FailureOr<OperandPlan>
planOperand(linalg::LinalgOp op, OpOperand *operand,
            ArrayRef<unsigned> batchLoops, unsigned seqLoop, unsigned featLoop,
            bool allowScale, bool allowRepeat, ScalarOf scalarOf,
            const SizeOracle &sameSize, std::string &why,
            const FoldedRows &folded = {}) {
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

  bool rowsSplit = !folded.folded();
  while (Operation *def = plan.value.getDefiningOp()) {
    // An expand (or a tensor.reshape proven one) whose groups the plan reads
    // in order: each source dimension's group of batch dimensions
    // consecutive in the batch (the row-major batch index is kept), the
    // sequence and the feature each a group of their own (ONNX's dynamo
    // export expands k^T's batch after its transpose).
    std::optional<SmallVector<ReassociationIndices>> expandGroups;
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def))
      expandGroups = expand.getReassociationIndices();
    bool isCollapse = false;
    std::optional<SmallVector<ReassociationIndices>> reshapeGroups =
        matchReshapeGroups(def, sameSize, isCollapse);
    if (reshapeGroups && !isCollapse)
      expandGroups = reshapeGroups;
    if (expandGroups) {
      SmallVector<ReassociationIndices> &groups = *expandGroups;
      SmallVector<int64_t> sourceOf(
          cast<RankedTensorType>(plan.value.getType()).getRank());
      for (auto [s, group] : llvm::enumerate(groups))
        for (int64_t r : group)
          sourceOf[r] = s;
      size_t rank = plan.perm.size();
      SmallVector<int64_t> perm;
      bool inOrder = true;
      for (size_t c = 0; c < rank && inOrder; ++c) {
        int64_t r = plan.perm[c];
        const ReassociationIndices &group = groups[sourceOf[r]];
        if (c + 2 >= rank) {
          inOrder = group.size() == 1;
          perm.push_back(sourceOf[r]);
          continue;
        }
        // The first of its group starts the group's run in the batch.
        if (r != group.front())
          continue;
        for (auto [i, member] : llvm::enumerate(group))
          inOrder &= c + i + 2 < rank && plan.perm[c + i] == member;
        perm.push_back(sourceOf[r]);
      }
      if (!inOrder || perm.size() != groups.size())
        break;
      plan.perm = std::move(perm);
      plan.value = def->getOperand(0);
      continue;
    }
    // A collapse, or a tensor.reshape proven one (torch-mlir's view of
    // dynamic shapes).
    std::optional<SmallVector<ReassociationIndices>> collapseGroups;
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def))
      collapseGroups = collapse.getReassociationIndices();
    if (reshapeGroups && isCollapse)
      collapseGroups = std::move(reshapeGroups);
    if (collapseGroups) {
      // Merged batch dimensions split back in order keep the row-major batch
      // index; the sequence and feature dimensions must not be merged.
      SmallVector<ReassociationIndices> groups = std::move(*collapseGroups);
      Value src = def->getOperand(0);
      size_t rank = plan.perm.size();
      if (groups[plan.perm[rank - 1]].size() != 1)
        break;
      if (groups[plan.perm[rank - 2]].size() != 1) {
        if (rowsSplit)
          break;
        // The rows that fold query heads in: their two dimensions of more
        // than one element, the group's innermost among the batch, unit
        // dimensions ahead of the batch.
        auto srcType = cast<RankedTensorType>(src.getType());
        SmallVector<int64_t> nonUnit, unit;
        for (int64_t d : groups[plan.perm[rank - 2]])
          (srcType.getDimSize(d) == 1 ? unit : nonUnit).push_back(d);
        bool queryFirst = folded.rows == Axis::QueryGroup;
        if (nonUnit.size() != 2)
          break;
        int64_t queryDim = nonUnit[queryFirst ? 0 : 1];
        int64_t groupDim = nonUnit[queryFirst ? 1 : 0];
        if (srcType.getDimSize(queryDim) != folded.queries ||
            srcType.getDimSize(groupDim) != folded.groups)
          break;
        SmallVector<int64_t> perm(unit);
        for (size_t c = 0; c + 2 < rank; ++c)
          llvm::append_range(perm, groups[plan.perm[c]]);
        perm.append({groupDim, queryDim});
        llvm::append_range(perm, groups[plan.perm[rank - 1]]);
        plan.perm = std::move(perm);
        plan.value = src;
        rowsSplit = true;
        continue;
      }
      SmallVector<int64_t> perm;
      for (size_t c = 0; c < rank; ++c)
        llvm::append_range(perm, groups[plan.perm[c]]);
      plan.perm = std::move(perm);
      plan.value = src;
      continue;
    }
    auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
    if (linalgOp) {
      if (std::optional<SmallVector<int64_t>> p = matchPermutedCopy(linalgOp)) {
        for (int64_t &d : plan.perm)
          d = (*p)[d];
        plan.value = linalgOp.getDpsInputs()[0];
        continue;
      }
      if (auto copy = matchExtractCopy(linalgOp, sameSize)) {
        for (int64_t &d : plan.perm)
          d = copy->second[d];
        plan.value = copy->first;
        continue;
      }
    }
    size_t numBatch = plan.perm.size() - 2;
    if (linalgOp && allowRepeat && numBatch > 0) {
      // kv heads repeated along the innermost batch dimension: head h of the
      // contraction reads head h / repeat of the input.
      // Or read at 0 along a unit dimension of the source by a
      // tensor.extract (torch-mlir's expand of dynamic shapes): the
      // source keeps that unit dimension in the batch.
      int64_t repeated;
      if (auto copy = matchExtractCopy(linalgOp, sameSize, &repeated);
          copy && repeated >= 0 && repeated == plan.perm[numBatch - 1]) {
        plan.headRepeat *=
            cast<RankedTensorType>(plan.value.getType()).getDimSize(repeated);
        for (int64_t &d : plan.perm)
          d = copy->second[d];
        plan.value = copy->first;
        continue;
      }
      std::optional<unsigned> dim = matchSingleBroadcast(linalgOp);
      if (dim && static_cast<int64_t>(*dim) == plan.perm[numBatch - 1]) {
        plan.headRepeat *= cast<RankedTensorType>(plan.value.getType())
                               .getDimSize(*dim);
        plan.perm.erase(plan.perm.begin() + numBatch - 1);
        for (int64_t &d : plan.perm)
          if (d > static_cast<int64_t>(*dim))
            --d;
        plan.value = linalgOp.getDpsInputs()[0];
        continue;
      }
    }
    if (linalgOp) {
      FailureOr<double> scale = matchScaleOrCast(linalgOp, scalarOf);
      if (failed(scale) || (!allowScale && *scale != 1.0))
        break;
      plan.scale *= *scale;
      plan.value = linalgOp.getDpsInputs()[0];
      continue;
    }
    break;
  }
  if (!rowsSplit) {
    why = "the rows of q fold query heads in, and the reshape that folds "
          "them was not found";
    return failure();
  }
  auto type = cast<RankedTensorType>(plan.value.getType());
  // The sequence and the batch may be dynamic (what models are exported
  // with); heads and head dims are the kernels' constants. The batch is the
  // outermost of the batch dimensions; checkScaleAndResult proves that q, k,
  // v and the result share it.
  for (auto [c, d] : llvm::enumerate(plan.perm)) {
    if (!type.isDynamicDim(d) || c + 2 == plan.perm.size())
      continue;
    if (c == plan.perm.size() - 1) {
      why = "q, k and v need static feature sizes";
      return failure();
    }
    if (c != 0) {
      why = "q, k and v need static head counts (only their batch, their "
            "outermost batch dimension, and their lengths may be dynamic)";
      return failure();
    }
    break;
  }
  return plan;
}

/// The value of `e` where it is (a cast of) a float constant.
static std::optional<APFloat> floatConstant(Expr *e) {
  e = stripCasts(e);
  if (auto f = e->kind == ExprKind::Constant ? dyn_cast<FloatAttr>(e->constant)
                                             : FloatAttr())
    return f.getValue();
  return std::nullopt;
}

/// Whether `e` is a float constant zero (of either sign).
static bool isFloatZero(Expr *e) {
  std::optional<APFloat> f = floatConstant(e);
  return f && f->isZero();
}

/// Whether `x` is (L != -inf) (true) or (L == -inf) (false) for some L,
/// through boolean negations; sets `logits` to L.
static std::optional<bool> notNegInfTest(Expr *x, Expr *&logits);

/// Peels boolean negations (`xori x, true`, `cmpi eq x, false`, `cmpi ne x,
/// true`) off `x`; `positive` flips with each.
static Expr *peelNot(Expr *x, bool &positive) {
  while (x->kind == ExprKind::Op) {
    auto constantBool = [](Expr *e) -> std::optional<bool> {
      e = stripCasts(e);
      if (e->kind != ExprKind::Constant)
        return std::nullopt;
      auto i = dyn_cast<IntegerAttr>(e->constant);
      if (!i || !i.getType().isInteger(1))
        return std::nullopt;
      return !i.getValue().isZero();
    };
    bool negates;
    if (isa<arith::XOrIOp>(x->op))
      negates = true;
    else if (auto cmp = dyn_cast<arith::CmpIOp>(x->op);
             cmp && (cmp.getPredicate() == arith::CmpIPredicate::eq ||
                     cmp.getPredicate() == arith::CmpIPredicate::ne))
      negates = cmp.getPredicate() == arith::CmpIPredicate::eq;
    else
      break;
    std::optional<bool> c = constantBool(x->operands[1]);
    if (!c || (isa<arith::XOrIOp>(x->op) && !*c))
      break;
    // xori x, true and cmpi eq x, false negate; cmpi ne x, false and
    // cmpi eq x, true keep.
    if (isa<arith::CmpIOp>(x->op) && *c)
      negates = !negates;
    if (negates)
      positive = !positive;
    x = x->operands[0];
  }
  return x;
}

static std::optional<bool> notNegInfTest(Expr *x, Expr *&logits) {
  bool positive = true;
  x = peelNot(x, positive);
  if (x->kind != ExprKind::Op)
    return std::nullopt;
  auto cmp = dyn_cast<arith::CmpFOp>(x->op);
  if (!cmp)
    return std::nullopt;
  std::optional<APFloat> inf = floatConstant(x->operands[1]);
  if (!inf || !inf->isInfinity() || !inf->isNegative())
    return std::nullopt;
  using P = arith::CmpFPredicate;
  P p = cmp.getPredicate();
  if (p == P::OEQ || p == P::UEQ)
    positive = !positive;
  else if (p != P::ONE && p != P::UNE)
    return std::nullopt;
  logits = x->operands[0];
  return positive;
}

/// Matches the empty-row guard of decomposed SDPA with a boolean mask:
/// `select(g, 0, p)` / `select(g, p, 0)` with g = [not] any_j(L != -inf).
/// Returns p and sets `logits` to L when the guard keeps p on every row that
/// has a key with L != -inf, which is every row once the mask is proven an
/// SWBA mask (every row sees its own frame) and L is the softmax input.
static Expr *peelEmptyRowGuard(Expr *e, Expr *&logits) {
  e = stripCasts(e);
  if (e->kind != ExprKind::Op || !isa<arith::SelectOp>(e->op))
    return nullptr;
  bool positive = true;
  Expr *any = peelNot(e->operands[0], positive);
  if (any->kind != ExprKind::Reduce || any->reduce != ReduceKind::Any)
    return nullptr;
  std::optional<bool> test = notNegInfTest(any->operands[0], logits);
  if (!test || !*test)
    return nullptr;
  // positive: the condition is "the row has a visible key".
  Expr *kept = e->operands[positive ? 1 : 2];
  if (!isFloatZero(e->operands[positive ? 2 : 1]))
    return nullptr;
  return kept;
}

/// Matches the NaN guard that ONNX's exported scaled_dot_product_attention
/// puts on its probabilities, `select(p != p, 0, p)` (or `select(p == p, p,
/// 0)`, or with `uno`/`ord`), and returns p: a no-op once every row is
/// proven to see a key (the softmax of finite scores has no NaN then).
static Expr *peelNaNGuard(Expr *e) {
  e = stripCasts(e);
  if (e->kind != ExprKind::Op || !isa<arith::SelectOp>(e->op))
    return nullptr;
  Expr *cond = stripCasts(e->operands[0]);
  if (cond->kind != ExprKind::Op || !isa<arith::CmpFOp>(cond->op) ||
      !equalExprs(cond->operands[0], cond->operands[1]))
    return nullptr;
  using P = arith::CmpFPredicate;
  P pred = cast<arith::CmpFOp>(cond->op).getPredicate();
  bool isNaN = pred == P::UNE || pred == P::UNO;
  if (!isNaN && pred != P::OEQ && pred != P::ORD)
    return nullptr;
  Expr *kept = e->operands[isNaN ? 2 : 1];
  if (!isFloatZero(e->operands[isNaN ? 1 : 2]) ||
      !equalExprs(kept, cond->operands[0]))
    return nullptr;
  return kept;
}

/// Matches `p` against softmax over the key axis and returns its input.
static FailureOr<Expr *> matchSoftmax(Expr *p, std::string &why) {
  p = stripCasts(p);
  if (Expr *kept = peelNaNGuard(p))
    p = stripCasts(kept);
  Expr *guardLogits = nullptr;
  if (Expr *kept = peelEmptyRowGuard(p, guardLogits))
    p = stripCasts(kept);
  auto checkGuard = [&](Expr *logits) -> FailureOr<Expr *> {
    if (guardLogits && !equalExprs(guardLogits, logits)) {
      why = "the empty-row guard tests other values than the softmax input";
      return failure();
    }
    return logits;
  };
  if (p->kind == ExprKind::Softmax)
    return checkGuard(p->operands[0]);
  auto describe = [](Expr *e) -> std::string {
    if (e->kind == ExprKind::Op)
      return "'" + e->op->getName().getStringRef().str() + "'";
    return "an operand that is not an arith/math op";
  };
  // exp(x) / sum, or exp(x) * (1 / sum) (the reciprocal of the sum
  // computed once a row).
  auto reciprocalOf = [](Expr *e) -> Expr * {
    e = stripCasts(e);
    if (e->kind != ExprKind::Op || !isa<arith::DivFOp>(e->op))
      return nullptr;
    std::optional<APFloat> one = floatConstant(e->operands[0]);
    return one && one->isExactlyValue(1.0) ? e->operands[1] : nullptr;
  };
  Expr *numerator = nullptr, *sum = nullptr;
  if (p->kind == ExprKind::Op && isa<arith::DivFOp>(p->op)) {
    numerator = stripCasts(p->operands[0]);
    sum = stripCasts(p->operands[1]);
  } else if (p->kind == ExprKind::Op && isa<arith::MulFOp>(p->op)) {
    for (int side = 0; side < 2 && !sum; ++side)
      if (Expr *r = reciprocalOf(p->operands[side])) {
        sum = stripCasts(r);
        numerator = stripCasts(p->operands[1 - side]);
      }
  }
  if (!sum) {
    why = "the probabilities are not a softmax: found " + describe(p) +
          " where softmax's division or linalg.softmax should be";
    return failure();
  }
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
      return checkGuard(shifted->operands[0]);
    }
  }
  return checkGuard(shifted);
}

/// The value of `e` when it depends on no position and no input.
static std::optional<double> positionFreeConstant(Expr *e,
                                                  MaskEvaluator &evaluator) {
  std::string why;
  if (readsScores(e))
    return std::nullopt;
  FailureOr<unsigned> node = evaluator.build(e, why);
  if (failed(node) || evaluator.dependsOnPosition(*node))
    return std::nullopt;
  FailureOr<double> value = evaluator.evaluateConstant(*node, why);
  if (failed(value))
    return std::nullopt;
  return *value;
}

/// Splits the softmax input into scores, a scale and mask terms.
static FailureOr<Expr *> decomposeLogits(Expr *x, double &scale,
                                         SmallVector<MaskTerm> &masks,
                                         MaskEvaluator &evaluator,
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
      std::optional<double> rhs =
          positionFreeConstant(x->operands[1], evaluator);
      std::optional<double> lhs =
          isDiv ? std::nullopt
                : positionFreeConstant(x->operands[0], evaluator);
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

/// The mask terms as the evaluator's nodes.
static FailureOr<SmallVector<MaskTermNodes>>
buildTerms(ArrayRef<MaskTerm> masks, MaskEvaluator &evaluator,
           std::string &why) {
  SmallVector<MaskTermNodes> terms;
  for (const MaskTerm &term : masks) {
    MaskTermNodes nodes;
    FailureOr<unsigned> value = evaluator.build(term.value, why);
    if (failed(value))
      return failure();
    nodes.value = *value;
    if (term.cond) {
      FailureOr<unsigned> cond = evaluator.build(term.cond, why);
      if (failed(cond))
        return failure();
      nodes.cond = *cond;
    }
    nodes.keepIfTrue = term.keepIfTrue;
    nodes.valueTypes = {term.value->type, stripCasts(term.value)->type};
    terms.push_back(std::move(nodes));
  }
  return terms;
}

/// The keys each query row sees under `terms` at nq x nk.
static FailureOr<SmallVector<KeyRange>>
evaluateTerms(ArrayRef<MaskTermNodes> terms, int64_t nq, int64_t nk,
              const MaskBudget &budget, MaskEvaluator &evaluator,
              std::string &why) {
  FailureOr<const MaskRows *> rows =
      evaluator.evaluateMask(terms, nq, nk, budget.tile, budget.maxPairs, why);
  if (failed(rows))
    return failure();
  SmallVector<KeyRange> ranges;
  ranges.reserve(nq);
  for (uint32_t rowClass : (*rows)->rowClass)
    ranges.push_back((*rows)->ranges[rowClass]);
  return ranges;
}

/// Evaluates the mask terms on all pairs: the keys each query row sees.
static FailureOr<SmallVector<KeyRange>>
evaluateVisibility(ArrayRef<MaskTerm> masks, int64_t nq, int64_t nk,
                   const MaskBudget &budget, MaskEvaluator &evaluator,
                   std::string &why) {
  FailureOr<SmallVector<MaskTermNodes>> terms =
      buildTerms(masks, evaluator, why);
  if (failed(terms))
    return failure();
  return evaluateTerms(*terms, nq, nk, budget, evaluator, why);
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

/// The P.V contraction: its loops and which input is P, which V.
struct PVContraction {
  ContractionLoops loops;
  OpOperand *p = nullptr, *v = nullptr;
};

/// With `transposed`, the contraction is read as O^T = V^T P^T: its
/// result's last dimension is the query, the one before it the feature.
static FailureOr<PVContraction>
matchPVContraction(linalg::LinalgOp pv, bool transposed, std::string &why) {
  if (!pv.hasPureTensorSemantics()) {
    why = "the contraction is not on tensors";
    return failure();
  }
  FailureOr<ContractionLoops> loops = getContractionLoops(pv);
  if (failed(loops)) {
    why = "the contraction result has rank < 2";
    return failure();
  }
  if (transposed)
    std::swap(loops->row, loops->col);
  PVContraction result;
  result.loops = *loops;
  for (OpOperand *operand : pv.getDpsInputOperands()) {
    AffineMap map = pv.getMatchingIndexingMap(operand);
    if (uses(map, loops->row) && uses(map, loops->reduction) &&
        !uses(map, loops->col))
      result.p = operand;
    else if (uses(map, loops->col) && uses(map, loops->reduction) &&
             !uses(map, loops->row))
      result.v = operand;
  }
  if (!result.p || !result.v) {
    why = "the contraction is not a [.., i, j] x [.., j, e] product";
    return failure();
  }
  if (!hasZeroInit(pv)) {
    why = "the P.V contraction does not accumulate into zeros";
    return failure();
  }
  return result;
}

/// How P.V reads the probabilities, as [batch..., query, key].
static FailureOr<Access> probabilitiesAccess(linalg::LinalgOp pv,
                                             const PVContraction &contraction,
                                             Axis rows, std::string &why) {
  const ContractionLoops &loops = contraction.loops;
  Access pAccess;
  AffineMap pMap = pv.getMatchingIndexingMap(contraction.p);
  SmallVector<unsigned> batchRead;
  for (AffineExpr result : pMap.getResults()) {
    auto dim = dyn_cast<AffineDimExpr>(result);
    unsigned d = dim.getPosition();
    if (d == loops.row)
      pAccess.push_back(rows);
    else if (d == loops.reduction)
      pAccess.push_back(Axis::Key);
    else {
      pAccess.push_back(Axis::Batch);
      batchRead.push_back(d);
    }
  }
  if (batchRead != loops.batch) {
    why = "the probabilities are broadcast or permuted over batch/heads";
    return failure();
  }
  return pAccess;
}

/// Proves the mask terms a sliding window block mask over the Q.K^T
/// scores and stores its parameters in `match`.
static LogicalResult
proveMaskForAllSizes(linalg::LinalgOp qk, ArrayRef<MaskTerm> masks,
                     const MaskBudget &budget, MaskEvaluator &evaluator,
                     SizeClasses &classes, AttentionMatch &match,
                     std::string &why);

static LogicalResult proveMask(linalg::LinalgOp qk, ArrayRef<MaskTerm> masks,
                               const MaskBudget &budget,
                               MaskEvaluator &evaluator, SizeClasses *classes,
                               AttentionMatch &match, std::string &why) {
  auto scoresType = cast<RankedTensorType>(qk->getResult(0).getType());
  if (!scoresType.hasStaticShape()) {
    if (!classes) {
      why = "the scores need a static shape to prove the mask";
      return failure();
    }
    return proveMaskForAllSizes(qk, masks, budget, evaluator, *classes, match,
                                why);
  }
  int64_t rank = scoresType.getRank();
  int64_t nq = scoresType.getDimSize(rank - 2);
  int64_t nk = scoresType.getDimSize(rank - 1);
  if (match.scoresTransposed)
    std::swap(nq, nk);
  // Rows that fold query heads in hold queries * groups rows; the mask is
  // one of the queries (it was read without the group, or refused).
  if (match.qkRows.folded()) {
    if (nq != match.qkRows.queries * match.qkRows.groups) {
      why = "the scores' rows are not the queries of each query head";
      return failure();
    }
    nq = match.qkRows.queries;
  }
  FailureOr<SmallVector<KeyRange>> visible =
      evaluateVisibility(masks, nq, nk, budget, evaluator, why);
  if (failed(visible))
    return failure();
  FailureOr<SWBAMaskParams> params = inferSWBAMask(*visible, nq, nk, why);
  if (failed(params))
    return failure();
  match.params = *params;
  return success();
}

/// proveMask where the lengths are dynamic: the mask is evaluated at
/// lengths past its integer constants, which finds its block size and
/// window, and is then proven to be that mask at every length up to
/// kMaxSymbolicSize (MaskEvaluator::proveForAllSizes), which the rewrite
/// asserts.
static LogicalResult
proveMaskForAllSizes(linalg::LinalgOp qk, ArrayRef<MaskTerm> masks,
                     const MaskBudget &budget, MaskEvaluator &evaluator,
                     SizeClasses &classes, AttentionMatch &match,
                     std::string &why) {
  if (match.qkRows.folded()) {
    why = "rows that fold query heads in are raised at static lengths only";
    return failure();
  }
  Value scores = qk->getResult(0);
  int64_t rank = cast<RankedTensorType>(scores.getType()).getRank();
  std::optional<SizeRef> nq = classes.dimSize(scores, rank - 2);
  std::optional<SizeRef> nk = classes.dimSize(scores, rank - 1);
  if (match.scoresTransposed)
    std::swap(nq, nk);
  if (!nq || !nk) {
    why = "the lengths of the scores cannot be traced to the sizes of the "
          "tensors";
    return failure();
  }
  FailureOr<SmallVector<MaskTermNodes>> terms =
      buildTerms(masks, evaluator, why);
  if (failed(terms))
    return failure();
  // Lengths past every integer constant of the mask (its window and block
  // size among them), keys at least queries; four times as long again
  // where those lengths do not show the window that holds for every length
  // (frames of 1024 in a window of 4: 2305 keys are 3 frames, where a
  // window of two 2048-key frames looks the same).
  unsigned numSymbols = classes.numSymbols();
  SymbolicSizes sizes{numSymbols, *nq, *nk};
  int64_t largest = evaluator.largestIntegerConstant(*terms);
  int64_t large = 2 * std::min<int64_t>(largest, 1 << 17) + 257;
  // The keys each row sees where the symbols take `values`.
  auto rowsAt = [&](ArrayRef<int64_t> values, int64_t nqValue,
                    int64_t nkValue, std::string &reason) {
    evaluator.setSizeValues(values);
    FailureOr<SmallVector<KeyRange>> rows =
        evaluateTerms(*terms, nqValue, nkValue, budget, evaluator, reason);
    evaluator.setSizeValues({});
    return rows;
  };
  std::string firstWhy;
  SmallVector<SWBAMaskParams> tried;
  for (int attempt = 0; attempt < 3 && large <= (1 << 20);
       ++attempt, large *= 4) {
    SmallVector<int64_t> values(numSymbols, large);
    int64_t nqValue = nq->symbolic ? large / 2 : nq->value;
    int64_t nkValue = nk->symbolic ? std::max(large, nqValue) : nk->value;
    if (nq->symbolic && nk->symbolic && nq->value == nk->value)
      nqValue = nkValue;
    if (nq->symbolic) {
      nqValue = std::max<int64_t>(1, std::min(nqValue, nkValue));
      values[nq->value] = nqValue;
    }
    if (nk->symbolic)
      values[nk->value] = nkValue;
    why.clear();
    FailureOr<SmallVector<KeyRange>> visible =
        rowsAt(values, nqValue, nkValue, why);
    FailureOr<SWBAMaskParams> params =
        succeeded(visible) ? inferSWBAMask(*visible, nqValue, nkValue, why)
                           : FailureOr<SWBAMaskParams>(failure());
    if (failed(params)) {
      // No window at these lengths: none for every length either.
      if (!firstWhy.empty())
        why = firstWhy;
      else
        why += llvm::formatv(" (evaluated at {0} queries and {1} keys)",
                             nqValue, nkValue);
      return failure();
    }
    // Few static query rows (decode: one token, or one frame) fit many
    // windows at one length; after the one inferred, a token window as wide
    // as the last row's keys, frames as long as the rows, and frames as
    // long as the keys show them are tried.
    const KeyRange &last = visible->back();
    int64_t width = last.hi - last.lo;
    auto prove = [&](const SWBAMaskParams &candidate) {
      // A window already not proven at shorter lengths.
      if (llvm::any_of(tried, [&](const SWBAMaskParams &p) {
            return p.blockSize == candidate.blockSize &&
                   p.window == candidate.window;
          }))
        return false;
      tried.push_back(candidate);
      if (succeeded(
              evaluator.proveForAllSizes(*terms, sizes, candidate, why))) {
        match.params = candidate;
        return true;
      }
      if (firstWhy.empty())
        firstWhy = why;
      return false;
    };
    if (prove(*params))
      return success();
    // The last row sees back to key 0 (a causal layer, as hybrid models
    // put between their sliding ones): a window past every length the
    // proof covers, in the inferred block size.
    if (last.lo == 0 &&
        prove({params->blockSize, static_cast<int64_t>(llvm::divideCeil(
                                      kMaxSymbolicSize, params->blockSize))}))
      return success();
    if (nq->symbolic)
      continue;
    if (prove({1, width}) ||
        (nqValue > 1 && width % nqValue == 0 &&
         prove({nqValue, width / nqValue})))
      return success();
    if (!nk->symbolic)
      continue;
    // Frames: as the keys grow by one, the last row's first key moves by a
    // frame's length where the last query enters a new frame.
    int64_t limit = std::min<int64_t>(largest, 4096) + 1;
    for (int64_t t = 1; t <= limit; ++t) {
      SmallVector<int64_t> more(values);
      more[nk->value] = nkValue + t;
      std::string ignored;
      FailureOr<SmallVector<KeyRange>> next =
          rowsAt(more, nqValue, nkValue + t, ignored);
      if (failed(next))
        break;
      int64_t lo = next->back().lo;
      if (lo == last.lo)
        continue;
      int64_t frame = lo - last.lo;
      if (frame > 0 && lo % frame == 0 &&
          prove({frame, (nkValue + t - 1) / frame - lo / frame + 1}))
        return success();
      break;
    }
  }
  why = firstWhy;
  return failure();
}

/// Plans q and k from Q.K^T and v from P.V into `match`.
static LogicalResult planQKV(linalg::LinalgOp qk, linalg::LinalgOp pv,
                             const PVContraction &contraction,
                             AttentionMatch &match, ScalarOf scalarOf,
                             const SizeOracle &sameSize, std::string &why) {
  FailureOr<ContractionLoops> qkLoops = getContractionLoops(qk);
  if (match.scoresTransposed)
    std::swap(qkLoops->row, qkLoops->col);
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
  const ContractionLoops &loops = contraction.loops;
  FailureOr<OperandPlan> q =
      planOperand(qk, qOperand, qkLoops->batch, qkLoops->row,
                  qkLoops->reduction, /*allowScale=*/true,
                  /*allowRepeat=*/false, scalarOf, sameSize, why, match.qkRows);
  auto planK = [&](bool allowRepeat) {
    return planOperand(qk, kOperand, qkLoops->batch, qkLoops->col,
                       qkLoops->reduction, /*allowScale=*/true, allowRepeat,
                       scalarOf, sameSize, why);
  };
  auto planV = [&](bool allowRepeat) {
    return planOperand(pv, contraction.v, loops.batch, loops.reduction,
                       loops.col, /*allowScale=*/false, allowRepeat, scalarOf,
                       sameSize, why);
  };
  FailureOr<OperandPlan> k = planK(true), v = planV(true);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  if (k->headRepeat != v->headRepeat) {
    // One of k and v is read through its repeat, the other only past an
    // op the plan does not see through (ONNX's export scales k^T by a
    // computed tensor): both keep their repeated heads.
    k = planK(false);
    v = planV(false);
    if (failed(k) || failed(v))
      return failure();
  }
  match.q = *q;
  match.k = *k;
  match.v = *v;
  match.scale *= q->scale * k->scale;
  return success();
}

/// Whether the op's operands flatten the batch dimensions into the heads:
/// [B, Hq] and [B, Hkv] stay apart; any other batch layout is flattened into
/// the heads, which keeps query head h reading kv head h / repeat as long as
/// the repeat is the innermost batch dimension (planOperand). Query heads
/// folded into the rows are q's innermost batch dimension. (A dynamic B,
/// the outermost, stays the op's batch: materialize.)
static bool flattensBatch(const AttentionMatch &match) {
  SmallVector<int64_t> bq = batchShape(match.q), bk = batchShape(match.k),
                       bv = batchShape(match.v);
  int64_t repeat = match.k.headRepeat;
  return match.qkRows.folded() ||
         !(bq.size() == 2 && bk.size() == 2 && bk == bv && bq[0] == bk[0] &&
           bq[1] == bk[1] * repeat);
}

/// Where the batch is dynamic: whether q, k, v and the result have one
/// dynamic batch, their outermost batch dimension (the same size in q, k
/// and v), their other batch dimensions static and their batch products
/// the result's (q's with the query heads its rows fold in, k's and v's
/// repeated).
static bool spansResultBatch(linalg::LinalgOp pv, AttentionMatch &match,
                             SizeClasses &classes) {
  Value out = pv->getResult(0);
  auto outType = cast<RankedTensorType>(out.getType());
  int64_t outRank = outType.getRank();
  std::optional<SizeClasses::Scaled> outBatch = classes.scaledProduct(
      out, llvm::to_vector(llvm::seq<int64_t>(0, outRank - 2)));
  if (!outBatch)
    return false;
  // q's batch holds the query heads that the rows fold in.
  auto spans = [&](const OperandPlan &plan, const SizeClasses::Scaled &batch) {
    int64_t groups = &plan == &match.q ? match.qkRows.groups : 1;
    return batch.root == outBatch->root &&
           batch.num * plan.headRepeat * outBatch->den ==
               outBatch->num * groups * batch.den;
  };
  if (!outBatch->root) {
    // A result batch that the types leave dynamic but that is a constant
    // (ONNX's broadcasts compute it): every operand's batch is that
    // constant too, and its sizes but the length are constants, which the
    // rewrite makes static (refined).
    for (OperandPlan *plan : {&match.q, &match.k, &match.v}) {
      std::optional<SizeClasses::Scaled> batch = classes.scaledProduct(
          plan->value, ArrayRef<int64_t>(plan->perm).drop_back(2));
      if (!batch || !spans(*plan, *batch))
        return false;
      auto type = cast<RankedTensorType>(plan->value.getType());
      SmallVector<int64_t> shape(type.getShape());
      int64_t seq = plan->perm[plan->perm.size() - 2];
      for (auto [d, size] : llvm::enumerate(shape)) {
        if (!ShapedType::isDynamic(size) || static_cast<int64_t>(d) == seq)
          continue;
        std::optional<SizeClasses::Scaled> known =
            classes.scaledDim(plan->value, d);
        if (!known || known->root || known->den != 1)
          return false;
        size = known->num;
      }
      if (shape != type.getShape())
        plan->refined = type.clone(shape);
    }
    return true;
  }
  // Row-major, the batch loops' order: the dynamic one outermost.
  auto outerOnly = [](ArrayRef<int64_t> batch) {
    return !batch.empty() && ShapedType::isDynamic(batch.front()) &&
           llvm::none_of(batch.drop_front(), ShapedType::isDynamic);
  };
  if (!outerOnly(outType.getShape().drop_back(2)))
    return false;
  std::optional<SizeClasses::Scaled> outer;
  for (const OperandPlan *plan : {&match.q, &match.k, &match.v}) {
    if (!outerOnly(batchShape(*plan)))
      return false;
    std::optional<SizeClasses::Scaled> first =
        classes.scaledDim(plan->value, plan->perm.front());
    if (!first || (outer && !(*first == *outer)))
      return false;
    outer = first;
    std::optional<SizeClasses::Scaled> batch = classes.scaledProduct(
        plan->value, ArrayRef<int64_t>(plan->perm).drop_back(2));
    if (!batch || !spans(*plan, *batch))
      return false;
  }
  return true;
}

/// Checks what the kernel needs of the planned match and of the P.V result.
static LogicalResult checkScaleAndResult(linalg::LinalgOp pv,
                                         AttentionMatch &match,
                                         SizeClasses *classes,
                                         std::string &why) {
  if (!(match.scale > 0) || !std::isfinite(match.scale)) {
    why = llvm::formatv("the scale {0} is not positive and finite",
                        match.scale);
    return failure();
  }
  // Scores or probabilities broadcast over batch/heads would pair q, k and
  // v rows of different heads: every operand spans the same batch.
  auto outType = cast<RankedTensorType>(pv->getResult(0).getType());
  bool dynamicBatch =
      llvm::any_of(outType.getShape().drop_back(2), ShapedType::isDynamic);
  for (const OperandPlan *plan : {&match.q, &match.k, &match.v})
    dynamicBatch |= llvm::any_of(batchShape(*plan), ShapedType::isDynamic);
  if (dynamicBatch) {
    if (!classes || !spansResultBatch(pv, match, *classes)) {
      why = "q, k and v are not proven to span the dynamic batch of the "
            "result";
      return failure();
    }
    if (match.qkRows.folded() || match.pvRows.folded()) {
      why = "rows that fold query heads in are raised with a static batch "
            "only";
      return failure();
    }
  } else {
    int64_t outBatch = product(outType.getShape().drop_back(2));
    for (const OperandPlan *plan : {&match.q, &match.k, &match.v}) {
      // q's batch holds the query heads that the rows fold in.
      int64_t groups = plan == &match.q ? match.qkRows.groups : 1;
      if (product(batchShape(*plan)) * plan->headRepeat != outBatch * groups) {
        why = "q, k and v do not span the same batch and heads as the result";
        return failure();
      }
    }
  }
  Type outElt = outType.getElementType();
  if (!outElt.isF32() && !outElt.isF16() && !outElt.isBF16()) {
    why = "the result element type is not f16, bf16 or f32";
    return failure();
  }
  return success();
}

/// How far matchAttention got before it failed.
enum class MatchStage { Contraction, Probabilities, Logits };

/// Proves that `pv` (read as O^T = V^T P^T when `transposed`, its rows
/// read as `rows`: queries, or queries and query heads merged) computes
/// SWBA and gathers what the rewrite needs; `stage` says how far it got,
/// `mergedQuery` whether the probabilities' trace stopped at a reshape
/// that merges the query axis with another.
static FailureOr<AttentionMatch>
matchAttention(linalg::LinalgOp pv, bool transposed, Axis rows,
               const MaskBudget &budget, MaskEvaluator &evaluator,
               SizeClasses *classes, std::string &why, MatchStage &stage,
               bool &mergedQuery) {
  stage = MatchStage::Contraction;
  mergedQuery = false;
  FailureOr<PVContraction> contraction =
      matchPVContraction(pv, transposed, why);
  if (failed(contraction))
    return failure();
  FailureOr<Access> pAccess = probabilitiesAccess(pv, *contraction, rows, why);
  if (failed(pAccess))
    return failure();
  stage = MatchStage::Probabilities;

  // The tracer owns the expressions; it lives until the mask is proven.
  ScoreTracer tracer;
  SizeOracle sameSize;
  if (classes)
    sameSize = [classes](ArrayRef<SizeTerm> lhs, ArrayRef<SizeTerm> rhs) {
      auto product = [&](ArrayRef<SizeTerm> terms) {
        std::optional<SizeClasses::Scaled> total = SizeClasses::Scaled{1};
        for (const SizeTerm &term : terms)
          if (total)
            total = SizeClasses::times(
                *total, term.dim < 0
                            ? classes->scaledScalar(term.value)
                            : classes->scaledDim(term.value, term.dim));
        return total;
      };
      std::optional<SizeClasses::Scaled> a = product(lhs), b = product(rhs);
      return a && b && *a == *b;
    };
  tracer.setSizeOracle(sameSize);
  FailureOr<Expr *> p = tracer.traceTensor(contraction->p->get(), *pAccess);
  if (failed(p)) {
    why = tracer.getReason();
    mergedQuery = tracer.failedOnMergedQuery();
    return failure();
  }
  FailureOr<Expr *> logits = matchSoftmax(*p, why);
  if (failed(logits))
    return failure();
  stage = MatchStage::Logits;

  AttentionMatch match;
  match.transposed = transposed;
  SmallVector<MaskTerm> masks;
  FailureOr<Expr *> scores =
      decomposeLogits(*logits, match.scale, masks, evaluator, why);
  if (failed(scores))
    return failure();

  auto qk = cast<linalg::LinalgOp>((*scores)->op);
  if (!qk.hasPureTensorSemantics() || !hasZeroInit(qk)) {
    why = "the Q.K^T contraction does not accumulate into zeros";
    return failure();
  }
  // Query heads folded into the rows of P.V must be folded into the rows
  // of Q.K^T too (and were then split and merged with the same counts).
  const Access &scoresAccess = (*scores)->access;
  Axis scoresRows = scoresAccess[scoresAccess.size() - 2];
  if (scoresRows == Axis::Key) {
    match.scoresTransposed = true;
    scoresRows = scoresAccess.back();
  }
  if (isMergedRows(rows) != isMergedRows(scoresRows)) {
    why = "the probabilities fold query heads into their rows, the scores "
          "do not";
    return failure();
  }
  if (isMergedRows(rows) && tracer.getGroupSize() < 2) {
    why = "no reshape splits the rows into queries and query heads";
    return failure();
  }
  if (isMergedRows(rows)) {
    match.pvRows = {rows, tracer.getQuerySize(), tracer.getGroupSize()};
    match.qkRows = {scoresRows, tracer.getQuerySize(), tracer.getGroupSize()};
  }
  // A one-element tensor's value where it is a constant of the graph.
  auto scalarOf = [&](Value tensor) -> std::optional<double> {
    auto type = cast<RankedTensorType>(tensor.getType());
    FailureOr<Expr *> e =
        tracer.traceTensor(tensor, Access(type.getRank(), Axis::Zero));
    if (failed(e))
      return std::nullopt;
    return positionFreeConstant(*e, evaluator);
  };
  if (failed(proveMask(qk, masks, budget, evaluator, classes, match, why)) ||
      failed(planQKV(qk, pv, *contraction, match, scalarOf, sameSize, why)) ||
      failed(checkScaleAndResult(pv, match, classes, why)))
    return failure();
  // The classes this match took to be at least 1 have members it traced,
  // which are defined before it: one of them is asserted.
  if (classes)
    match.positive =
        classes->positiveSizes([&](std::pair<Value, int64_t> atom) {
          Value v = atom.first;
          if (auto arg = dyn_cast<BlockArgument>(v))
            return arg.getOwner()->getParentOp()->isProperAncestor(pv);
          Operation *def = v.getDefiningOp();
          Operation *ancestor = def->getBlock()->findAncestorOpInBlock(*pv);
          return ancestor && def->isBeforeInBlock(ancestor);
        });
  return match;
}

//===----------------------------------------------------------------------===//
// Rewrite
//===----------------------------------------------------------------------===//

/// An empty tensor of element type `elt` with `value`'s sizes (dynamic ones
/// read from it), in the order `perm` gives (all of them, in order, without
/// one).
static Value emptyLike(RewriterBase &rewriter, Location loc, Value value,
                       Type elt, ArrayRef<int64_t> perm = {}) {
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, value);
  if (!perm.empty())
    sizes = llvm::map_to_vector(perm, [&](int64_t d) { return sizes[d]; });
  return tensor::EmptyOp::create(rewriter, loc, sizes, elt);
}

/// `value` converted elementwise to element type `elt`.
static Value castElements(RewriterBase &rewriter, Location loc, Value value,
                          Type elt) {
  auto type = cast<RankedTensorType>(value.getType());
  Type from = type.getElementType();
  if (from == elt)
    return value;
  Value init = emptyLike(rewriter, loc, value, elt);
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
  if (plan.refined)
    value = tensor::CastOp::create(rewriter, loc, plan.refined, value);
  auto type = cast<RankedTensorType>(value.getType());
  int64_t rank = type.getRank();
  if (!llvm::equal(plan.perm, llvm::seq<int64_t>(0, rank))) {
    Value init =
        emptyLike(rewriter, loc, value, type.getElementType(), plan.perm);
    value = linalg::TransposeOp::create(rewriter, loc, value, init, plan.perm)
                ->getResult(0);
    type = cast<RankedTensorType>(value.getType());
  }
  int64_t numBatch = rank - 2;
  ArrayRef<int64_t> shape = type.getShape();
  int64_t seq = shape[rank - 2], feat = shape[rank - 1];
  if ((flattenBatch || numBatch != 2) && type.isDynamicDim(0)) {
    // A dynamic batch (the outermost, the others static: spansResultBatch)
    // stays the op's batch; the others are its heads.
    if (numBatch == 1) {
      SmallVector<OpFoldResult> sizes =
          tensor::getMixedSizes(rewriter, loc, value);
      sizes.insert(sizes.begin() + 1, rewriter.getIndexAttr(1));
      value = tensor::ExpandShapeOp::create(
          rewriter, loc,
          RankedTensorType::get({ShapedType::kDynamic, 1, seq, feat},
                                type.getElementType()),
          value, ArrayRef<ReassociationIndices>{{0, 1}, {2}, {3}}, sizes);
    } else if (numBatch > 2) {
      ReassociationIndices heads =
          llvm::to_vector(llvm::seq<int64_t>(1, numBatch));
      value = tensor::CollapseShapeOp::create(
          rewriter, loc, value,
          ArrayRef<ReassociationIndices>{
              {0}, heads, {numBatch}, {numBatch + 1}});
    }
  } else if (flattenBatch || numBatch != 2) {
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
  // An op reached twice (two operands from one producer) is erased once.
  llvm::SmallPtrSet<Operation *, 32> erased;
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (erased.contains(op) || !isOpTriviallyDead(op))
      continue;
    // Values captured by the bodies of linalg ops may die with them too.
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (Operation *def = operand.getDefiningOp();
            def && !op->isAncestor(def))
          worklist.push_back(def);
    });
    erased.insert(op);
    rewriter.eraseOp(op);
  }
}

/// Whether `result` is only ever rounded to `type`: its one use, through
/// reshapes, is an elementwise `truncf` to `type` and nothing else.
static bool isOnlyNarrowedTo(Value result, Type type) {
  while (result.hasOneUse()) {
    Operation *user = *result.getUsers().begin();
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user)) {
      result = user->getResult(0);
      continue;
    }
    auto generic = dyn_cast<linalg::LinalgOp>(user);
    if (!generic || generic.getNumDpsInputs() != 1 ||
        generic->getNumResults() != 1 ||
        failed(matchScaleOrCast(generic, /*scalarOf=*/{})))
      return false;
    Block *body = generic.getBlock();
    auto trunc =
        body->getTerminator()->getOperand(0).getDefiningOp<arith::TruncFOp>();
    return trunc && trunc.getIn() == body->getArgument(0) &&
           body->getOperations().size() == 2 && trunc.getType() == type;
  }
  return false;
}

/// The op's result [1, B * G, Nq, Dv] (query head h of kv head h / G) as
/// rows that fold each kv head's G query heads in: [1, B, G * Nq, Dv] or
/// [1, B, Nq * G, Dv].
static Value foldQueryHeads(RewriterBase &rewriter, Location loc, Value result,
                            const FoldedRows &rows) {
  auto type = cast<RankedTensorType>(result.getType());
  Type elt = type.getElementType();
  int64_t heads = type.getDimSize(1), dv = type.getDimSize(3);
  int64_t batch = heads / rows.groups;
  result = tensor::ExpandShapeOp::create(
      rewriter, loc,
      RankedTensorType::get({1, batch, rows.groups, rows.queries, dv}, elt),
      result, ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
  if (rows.rows == Axis::QueryGroup) {
    Value init = tensor::EmptyOp::create(
        rewriter, loc,
        ArrayRef<int64_t>{1, batch, rows.queries, rows.groups, dv}, elt);
    result = linalg::TransposeOp::create(rewriter, loc, result, init,
                                         ArrayRef<int64_t>{0, 1, 3, 2, 4})
                 ->getResult(0);
  }
  return tensor::CollapseShapeOp::create(
      rewriter, loc, result,
      ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}, {4}});
}

static void rewriteAttention(RewriterBase &rewriter, linalg::LinalgOp pv,
                             const AttentionMatch &match) {
  Location loc = pv.getLoc();
  rewriter.setInsertionPoint(pv);
  auto outType = cast<RankedTensorType>(pv->getResult(0).getType());
  // The op runs in the widest element type among q, k, v and the result, so
  // that no operand is narrowed; the result is narrowed to the chain's type.
  // When the result is only rounded to the type q, k and v share (f16/bf16
  // models accumulating P.V in f32), the op runs in that type: it
  // accumulates in f32 and rounds once too, and the round trip through the
  // result's type is exact.
  Type shared =
      cast<RankedTensorType>(match.q.value.getType()).getElementType();
  for (const OperandPlan *plan : {&match.k, &match.v})
    if (cast<RankedTensorType>(plan->value.getType()).getElementType() !=
        shared)
      shared = Type();
  Type elt = outType.getElementType();
  if (shared && isOnlyNarrowedTo(pv->getResult(0), shared))
    elt = shared;
  for (const OperandPlan *plan : {&match.q, &match.k, &match.v}) {
    Type t = cast<RankedTensorType>(plan->value.getType()).getElementType();
    unsigned tw = cast<FloatType>(t).getWidth();
    unsigned ew = cast<FloatType>(elt).getWidth();
    if (tw > ew)
      elt = t;
    else if (tw == ew && t != elt) // f16 beside bf16: f32 holds both exactly
      elt = rewriter.getF32Type();
  }
  bool flatten = flattensBatch(match);
  Value q = materialize(rewriter, loc, match.q, flatten, elt);
  Value k = materialize(rewriter, loc, match.k, flatten, elt);
  Value v = materialize(rewriter, loc, match.v, flatten, elt);

  SmallVector<OpFoldResult> attShape = tensor::getMixedSizes(rewriter, loc, q);
  attShape[3] = tensor::getMixedSizes(rewriter, loc, v)[3];
  Value init = tensor::EmptyOp::create(rewriter, loc, attShape, elt);
  if (cast<RankedTensorType>(k.getType()).isDynamicDim(2)) {
    // The mask was proven for lengths up to kMaxSymbolicSize: past it the
    // program fails rather than compute what was not proven.
    Value nk = tensor::DimOp::create(rewriter, loc, k, 2);
    Value max = arith::ConstantIndexOp::create(rewriter, loc, kMaxSymbolicSize);
    Value within = arith::CmpIOp::create(rewriter, loc,
                                         arith::CmpIPredicate::ule, nk, max);
    cf::AssertOp::create(
        rewriter, loc, within,
        llvm::formatv("swba.attention: --raise-swba proved the mask for "
                      "lengths up to {0}",
                      kMaxSymbolicSize)
            .str());
  }
  // Sizes the proof took to be at least 1 (the domain of the mask's proof,
  // where a comparison of sizes decided a select of ONNX's shapes).
  for (auto [value, d] : match.positive) {
    Value size = value;
    if (d >= 0)
      size = tensor::DimOp::create(rewriter, loc, value, d);
    Value one = arith::ConstantOp::create(
        rewriter, loc, rewriter.getIntegerAttr(size.getType(), 1));
    Value atLeastOne = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::sge, size, one);
    cf::AssertOp::create(rewriter, loc, atLeastOne,
                         "swba.attention: --raise-swba proved the mask for "
                         "sizes of at least 1");
  }
  auto attention = AttentionOp::create(
      rewriter, loc, q, k, v, ValueRange{init}, match.params.blockSize,
      match.params.window, static_cast<float>(match.scale));
  Value result =
      castElements(rewriter, loc, attention->getResult(0),
                   outType.getElementType());

  // Back to the contraction's [batch..., Nq, Dv] (transposed below for
  // O^T = V^T P^T).
  int64_t outRank = outType.getRank();
  SmallVector<int64_t> outBatch(outType.getShape().drop_back(2));
  SmallVector<int64_t> rowsFirst(outType.getShape());
  if (match.transposed)
    std::swap(rowsFirst[outRank - 2], rowsFirst[outRank - 1]);
  auto rowsFirstType =
      RankedTensorType::get(rowsFirst, outType.getElementType());
  // A query count the op knows statically (q's) where the contraction's is
  // dynamic (a broadcast sized it from the mask: ONNX's decode step): the
  // reshapes below take the contraction's.
  if (auto type = cast<RankedTensorType>(result.getType());
      ShapedType::isDynamic(rowsFirst[outRank - 2]) && !type.isDynamicDim(2)) {
    SmallVector<int64_t> shape(type.getShape());
    shape[2] = ShapedType::kDynamic;
    result = tensor::CastOp::create(
        rewriter, loc, RankedTensorType::get(shape, type.getElementType()),
        result);
  }
  if (match.pvRows.folded())
    result = foldQueryHeads(rewriter, loc, result, match.pvRows);
  if (cast<RankedTensorType>(result.getType()).getShape().take_front(2) !=
      ArrayRef<int64_t>(outBatch)) {
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
        // The sizes of the contraction's destination (a dynamic batch's
        // among them), rows first.
        SmallVector<OpFoldResult> sizes =
            tensor::getMixedSizes(rewriter, loc, pv.getDpsInits()[0]);
        if (match.transposed)
          std::swap(sizes[outRank - 2], sizes[outRank - 1]);
        result = tensor::ExpandShapeOp::create(
            rewriter, loc, rowsFirstType, result,
            ArrayRef<ReassociationIndices>{lead, {outRank - 2}, {outRank - 1}},
            sizes);
      }
    }
  }
  if (match.transposed) {
    SmallVector<int64_t> perm = llvm::to_vector(llvm::seq<int64_t>(0, outRank));
    std::swap(perm[outRank - 2], perm[outRank - 1]);
    Value init =
        emptyLike(rewriter, loc, result, outType.getElementType(), perm);
    result = linalg::TransposeOp::create(rewriter, loc, result, init, perm)
                 ->getResult(0);
  }
  if (result.getType() != outType)
    result = tensor::CastOp::create(rewriter, loc, outType, result);
  SmallVector<Value> oldOperands = llvm::to_vector(pv->getOperands());
  rewriter.replaceOp(pv, result);
  eraseDeadProducers(rewriter, oldOperands);
}

//===----------------------------------------------------------------------===//
// Candidates and the pattern
//===----------------------------------------------------------------------===//

/// Whether a contraction operand comes (through elementwise ops, reductions
/// and reshapes) from a softmax, or from an exp beside a reduction that is
/// not a contraction (a row's maximum or sum): the contractions worth a
/// remark. (An exp alone is SiLU's, and the gated MLPs of transformers
/// models multiply by it before their down projection: a remark at each
/// layer's MLP would bury those at its attention.)
static bool readsSoftmaxLike(linalg::LinalgOp op) {
  SmallVector<Value> worklist(op.getDpsInputs());
  llvm::SmallPtrSet<Operation *, 32> seen;
  bool exp = false, reduction = false;
  while (!worklist.empty() && seen.size() < 256 && !(exp && reduction)) {
    Operation *def = worklist.pop_back_val().getDefiningOp();
    if (!def || !seen.insert(def).second)
      continue;
    if (isa<linalg::SoftmaxOp>(def))
      return true;
    if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp, tensor::ReshapeOp>(
            def)) {
      worklist.push_back(def->getOperand(0));
      continue;
    }
    auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
    if (!linalgOp || isContraction(linalgOp))
      continue;
    reduction |= linalgOp.getNumReductionLoops() > 0;
    linalgOp.getBlock()->walk([&](Operation *inner) {
      if (isa<math::ExpOp>(inner))
        exp = true;
      // A copy that reads its source by tensor.extract (the broadcasts of
      // dynamic shapes torch-mlir writes).
      if (auto extract = dyn_cast<tensor::ExtractOp>(inner))
        if (extract.getTensor().getParentBlock() != linalgOp.getBlock())
          worklist.push_back(extract.getTensor());
    });
    llvm::append_range(worklist, linalgOp.getDpsInputs());
  }
  return exp && reduction;
}

namespace {
struct RaiseMaskedAttentionPattern
    : public OpInterfaceRewritePattern<linalg::LinalgOp> {
  RaiseMaskedAttentionPattern(MLIRContext *context, MaskBudget budget,
                              bool emitRemarks)
      : OpInterfaceRewritePattern(context), budget(budget),
        emitRemarks(emitRemarks),
        evaluator(std::make_unique<MaskEvaluator>(context)) {}

  LogicalResult matchAndRewrite(linalg::LinalgOp op,
                                PatternRewriter &rewriter) const override {
    if (!isContraction(op) || !readsSoftmaxLike(op))
      return rewriter.notifyMatchFailure(op, "not an attention candidate");
    // With dynamic lengths, the mask is proven for every length, over the
    // classes of the block's sizes that are equal at run time.
    // At static lengths, tensor.dim of a static size is its constant.
    bool dynamic = llvm::any_of(op->getOperandTypes(), [](Type t) {
      auto shaped = dyn_cast<ShapedType>(t);
      return shaped && !shaped.hasStaticShape();
    });
    SizeClasses sizes(dynamic ? op->getBlock() : nullptr);
    SizeClasses *classes = dynamic ? &sizes : nullptr;
    evaluator->setSizeResolver([&](Value v) { return sizes.scalarSize(v); });
    llvm::scope_exit resetSizes([&] {
      evaluator->setSizeResolver({});
      evaluator->setSizeValues({});
    });
    std::string why;
    evaluator->clearIRCache();
    MatchStage stage, stageTransposed;
    bool merged, mergedTransposed = false;
    FailureOr<AttentionMatch> match =
        matchAttention(op, /*transposed=*/false, Axis::Query, budget,
                       *evaluator, classes, why, stage, merged);
    if (failed(match) && stage != MatchStage::Logits) {
      // Read as O^T = V^T P^T (as jax.nn.dot_product_attention computes
      // it). The remark gives the reason of the reading that got further,
      // or both where they got as far.
      std::string whyTransposed;
      match = matchAttention(op, /*transposed=*/true, Axis::Query, budget,
                             *evaluator, classes, whyTransposed,
                             stageTransposed, mergedTransposed);
      if (stageTransposed > stage)
        why = whyTransposed;
      else if (stageTransposed == stage && stage != MatchStage::Contraction)
        why += "; read as O^T = V^T P^T: " + whyTransposed;
    }
    if (failed(match) && (merged || mergedTransposed)) {
      // The probabilities' rows merge the queries with another dimension:
      // JAX's grouped-query layout folds each kv head's query heads into
      // them, query-major in one product and head-major in the other. Each
      // reading whose trace stopped there is tried with the query first
      // and with the query heads first; the mask then proves which of the
      // two dimensions is the queries (it must not depend on the other).
      std::string whyFolded;
      MatchStage furthest = MatchStage::Contraction;
      for (bool transposed : {false, true}) {
        if (!(transposed ? mergedTransposed : merged))
          continue;
        for (Axis rows : {Axis::QueryGroup, Axis::GroupQuery}) {
          std::string whyThis;
          MatchStage stageThis;
          bool unused;
          match = matchAttention(op, transposed, rows, budget, *evaluator,
                                 classes, whyThis, stageThis, unused);
          if (succeeded(match))
            break;
          // On a tie, the reading that takes the wrong dimension for the
          // queries fails on the mask's dependence on the other: the other
          // reading's reason says more.
          auto onHeads = [](const std::string &reason) {
            return StringRef(reason).contains("depends on the batch/head");
          };
          if (whyFolded.empty() || stageThis > furthest ||
              (stageThis == furthest && onHeads(whyFolded) &&
               !onHeads(whyThis))) {
            whyFolded = whyThis;
            furthest = stageThis;
          }
        }
        if (succeeded(match))
          break;
      }
      if (failed(match))
        why += "; with query heads folded into the rows: " + whyFolded;
    }
    if (failed(match))
      return leaveAlone(op, rewriter, why);
    rewriteAttention(rewriter, op, *match);
    return success();
  }

  /// A candidate not raised: its missed-optimization remark, and the match
  /// failure.
  LogicalResult leaveAlone(linalg::LinalgOp op, PatternRewriter &rewriter,
                           const std::string &why) const {
    LLVM_DEBUG(llvm::dbgs()
               << "raise-swba: rejected " << op << ": " << why << "\n");
    if (emitRemarks)
      remark::missed(
          op.getLoc(),
          remark::RemarkOpts::name("RaiseSWBA").category("raise-swba"))
          << remark::reason("not raised to swba.attention: {0}", why);
    return rewriter.notifyMatchFailure(op, why);
  }

  MaskBudget budget;
  bool emitRemarks;
  /// Shared by the candidates so that a mask repeated in many layers is
  /// evaluated once.
  std::unique_ptr<MaskEvaluator> evaluator;
};

struct RaiseSWBAPass : public swba::impl::RaiseSWBABase<RaiseSWBAPass> {
  using RaiseSWBABase::RaiseSWBABase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseMaskedAttentionPattern>(
        &getContext(), MaskBudget{maxMaskPairs, maskTile},
        /*emitRemarks=*/true);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace

void mlir::swba::populateRaiseSWBAPatterns(RewritePatternSet &patterns,
                                           int64_t maxMaskPairs,
                                           int64_t maskTile) {
  patterns.add<RaiseMaskedAttentionPattern>(patterns.getContext(),
                                            MaskBudget{maxMaskPairs, maskTile},
                                            /*emitRemarks=*/false);
}
