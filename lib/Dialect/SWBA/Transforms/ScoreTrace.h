//===- ScoreTrace.h - Element expressions of an attention chain -*- C++ -*-===//
//
// Traces a tensor computed by linalg/tensor/arith/math ops back to an
// expression tree for one element, in terms of the attention's index space
// (batch, query row i, key column j). Fused and unfused linalg bodies give
// the same trees, so the raising pattern matches forms, not op sequences.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SCORETRACE_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SCORETRACE_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"

#include <deque>
#include <functional>
#include <optional>
#include <string>

namespace mlir::swba {

/// What indexes one dimension of a tensor (or one loop of a linalg op), in
/// the attention's index space. Batch dimensions are only ever accessed in
/// order and whole, so they stand for the row-major batch index together.
///
/// Grouped-query attention as JAX writes it folds the query heads of each
/// kv head into the rows of its products: there the batch is the kv heads',
/// `Group` indexes a query head within its kv head's group, and a row
/// dimension that merges the two is `QueryGroup` (row = query * G + group)
/// or `GroupQuery` (row = group * Nq + query). Between the products the
/// query heads may be a dimension of their own again, `BatchGroup`: the
/// innermost batch index (the kv head) times G plus the group.
enum class Axis {
  Batch,
  Query,
  Key,
  Zero,
  Group,
  QueryGroup,
  GroupQuery,
  BatchGroup
};

/// Whether `axis` merges the query and group axes.
inline bool isMergedRows(Axis axis) {
  return axis == Axis::QueryGroup || axis == Axis::GroupQuery;
}

using Access = SmallVector<Axis, 4>;

enum class ExprKind {
  /// The element of the Q.K^T contraction result at (batch, i, j);
  /// `access` says how its rows are read (Query or merged rows).
  Scores,
  /// A scalar constant.
  Constant,
  /// An element of a tensor computed without the scores (a mask, say), at
  /// `access`; MaskEvaluator evaluates it.
  TensorLeaf,
  /// `linalg.index` of a loop indexed by `axis`.
  Index,
  /// An arith/math op applied to `operands`.
  Op,
  /// A sum or max over the key axis of `operands[0]`.
  Reduce,
  /// `linalg.softmax` over the key axis of `operands[0]`.
  Softmax,
  /// Anything else (function arguments, unsupported producers): `value`.
  Opaque,
};

/// Any is the `ori` of booleans (the empty-row guard of decomposed SDPA).
enum class ReduceKind { Sum, Max, Any };

struct Expr {
  ExprKind kind;
  Type type;
  SmallVector<Expr *, 2> operands;
  Operation *op = nullptr;   // Op: the op; Scores: the contraction.
  TypedAttr constant;        // Constant.
  Access access;             // TensorLeaf, Opaque, Scores.
  Axis axis = Axis::Zero;    // Index.
  ReduceKind reduce = ReduceKind::Sum;
  Value value;               // TensorLeaf, Opaque, Scores (the result).
};

/// A size: a scalar of the IR (`dim` < 0), or dimension `dim` of the
/// tensor `value`.
struct SizeTerm {
  Value value;
  int64_t dim = -1;
};

/// Whether the products of the sizes `lhs` and `rhs` are equal wherever
/// they are computed (SizeClasses, where sizes are dynamic).
using SizeOracle =
    std::function<bool(ArrayRef<SizeTerm> lhs, ArrayRef<SizeTerm> rhs)>;

/// The loop of `op` that index `index` of a tensor.extract in its body
/// reads: linalg.index d, or select(s == 1, 0, linalg.index d) where
/// `sameSize` proves s loop d's size (at size 1 the index is 0 either way:
/// torch-mlir's broadcasts of dynamic shapes); -1 for a constant 0;
/// std::nullopt for anything else.
std::optional<int64_t> extractIndexLoop(linalg::LinalgOp op, Value index,
                                        const SizeOracle &sameSize);

/// Where `op` only copies, permuted, a tensor from outside its body that
/// its body reads with tensor.extract at extractIndexLoop indices: that
/// tensor, and the source dimension of each result dimension (unit
/// dimensions paired in order).
/// With `broadcast`, one result dimension of more than one element that
/// no index reads may be paired with a unit source dimension read at 0 (a
/// repeat, torch-mlir's expand of dynamic shapes): `*broadcast` is that
/// result dimension, or -1 where there is none.
std::optional<std::pair<Value, SmallVector<int64_t>>>
matchExtractCopy(linalg::LinalgOp op, const SizeOracle &sameSize,
                 int64_t *broadcast = nullptr);

/// Where `reshape` (a tensor.reshape to sizes from tensor.from_elements)
/// only merges or splits dimensions as a collapse (`collapse`) or an
/// expand would, each dimension of the smaller shape proven (`sameSize`)
/// the product of a run of the larger's: those runs.
std::optional<SmallVector<ReassociationIndices>>
matchReshapeGroups(Operation *reshape, const SizeOracle &sameSize,
                   bool &collapse);

/// Builds expression trees; owns them.
class ScoreTracer {
public:
  /// Where sizes are dynamic, what proves two of them equal.
  void setSizeOracle(SizeOracle oracle) { sameSize = std::move(oracle); }

  /// The element of `v` at `access` (one Axis per dimension of `v`).
  FailureOr<Expr *> traceTensor(Value v, const Access &access);

  /// Why the last trace failed, and where.
  const std::string &getReason() const { return reason; }

  /// Whether a trace failed at a reshape that merges the query axis with
  /// another dimension (retried with merged rows by the caller).
  bool failedOnMergedQuery() const { return mergedQuery; }

  /// The sizes of the query and group axes where rows merge them (0 until
  /// a merge is split or formed).
  int64_t getQuerySize() const { return querySize; }
  int64_t getGroupSize() const { return groupSize; }

private:
  struct BodyEnv;
  FailureOr<Expr *> traceLinalg(linalg::LinalgOp op, unsigned resultNumber,
                                const Access &access);
  FailureOr<Expr *> traceBodyValue(Value v, BodyEnv &env);
  void keepUnitQuery(const BodyEnv &env, ArrayRef<int64_t> atZero,
                     ArrayRef<int64_t> read, Access &access);
  FailureOr<Expr *> traceOutsideScalar(Value v);
  FailureOr<Expr *> fail(const Twine &why);
  bool isScoresFree(Value v);
  Expr *make(ExprKind kind, Type type);

  /// Checks (and records, the first time) the sizes of a row merge; a
  /// query size of 0 checks the group's alone.
  LogicalResult mergeSizes(int64_t query, int64_t group);

  FailureOr<Expr *> traceCollapse(Value src, RankedTensorType srcType,
                                  ArrayRef<ReassociationIndices> groups,
                                  const Access &access);
  FailureOr<Expr *> traceExpand(Value src, RankedTensorType type,
                                ArrayRef<ReassociationIndices> groups,
                                const Access &access);

  SizeOracle sameSize;
  std::deque<Expr> storage;
  std::string reason;
  bool mergedQuery = false;
  int64_t querySize = 0, groupSize = 0;
  DenseMap<Value, bool> scoresFree;
};

/// Strips extf/truncf: the pattern treats precision changes as rounding.
Expr *stripCasts(Expr *e);

/// Structural equality up to casts.
bool equalExprs(Expr *a, Expr *b);

/// Whether `e` reads the Q.K^T scores (anywhere below it).
bool readsScores(Expr *e);

/// Whether a linalg op is a contraction `out += cast(a) * cast(b)` with one
/// reduction loop.
bool isContraction(linalg::LinalgOp op);

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SCORETRACE_H
