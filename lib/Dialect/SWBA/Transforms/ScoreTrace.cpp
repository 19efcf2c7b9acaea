//===- ScoreTrace.cpp - Element expressions of an attention chain ---------===//

#include "ScoreTrace.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/APFloat.h"

using namespace mlir;
using namespace mlir::swba;

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

static Value stripBodyCasts(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<arith::ExtFOp, arith::TruncFOp>(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

bool mlir::swba::isContraction(linalg::LinalgOp op) {
  if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
      op.getNumReductionLoops() != 1 || op->getNumResults() != 1)
    return false;
  for (AffineMap map : op.getIndexingMapsArray())
    if (!map.isProjectedPermutation())
      return false;
  Block *body = op.getBlock();
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = body->getArgument(2);
  Value product;
  if (add.getLhs() == acc)
    product = add.getRhs();
  else if (add.getRhs() == acc)
    product = add.getLhs();
  else
    return false;
  auto mul = stripBodyCasts(product).getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value a = stripBodyCasts(mul.getLhs()), b = stripBodyCasts(mul.getRhs());
  return (a == body->getArgument(0) && b == body->getArgument(1)) ||
         (a == body->getArgument(1) && b == body->getArgument(0));
}

//===----------------------------------------------------------------------===//
// Tracing
//===----------------------------------------------------------------------===//

struct ScoreTracer::BodyEnv {
  linalg::LinalgOp op;
  unsigned resultNumber;
  SmallVector<Axis> loopAxes;
  SmallVector<int64_t> loopSizes;
  /// The batch loops (static size > 1) in the order the result indexes them.
  SmallVector<unsigned> batchLoops;
  bool isReduction;
  DenseMap<Value, Expr *> memo;
};

Expr *ScoreTracer::make(ExprKind kind, Type type) {
  storage.emplace_back();
  Expr *e = &storage.back();
  e->kind = kind;
  e->type = type;
  return e;
}

FailureOr<Expr *> ScoreTracer::fail(const Twine &why) {
  reason = why.str();
  return failure();
}

LogicalResult ScoreTracer::mergeSizes(int64_t query, int64_t group) {
  if (groupSize == 0)
    groupSize = group;
  if (querySize == 0)
    querySize = query;
  if ((query == 0 || query == querySize) && group == groupSize)
    return success();
  reason = "reshapes merge queries and query heads of different counts";
  return failure();
}

/// The access of a tensor read through `map` by a linalg op whose loops are
/// indexed by `env.loopAxes`. Batch loops must be read in order and all or
/// none, so a batch-indexed operand is read at the same linear batch index.
static FailureOr<Access> accessThrough(AffineMap map,
                                       const SmallVector<Axis> &loopAxes,
                                       ArrayRef<unsigned> batchLoops,
                                       std::string &why) {
  Access access;
  SmallVector<unsigned> batchRead;
  for (AffineExpr result : map.getResults()) {
    if (auto dim = dyn_cast<AffineDimExpr>(result)) {
      unsigned d = dim.getPosition();
      access.push_back(loopAxes[d]);
      if (llvm::is_contained(batchLoops, d))
        batchRead.push_back(d);
      continue;
    }
    auto cst = dyn_cast<AffineConstantExpr>(result);
    if (!cst || cst.getValue() != 0) {
      why = "indexing map is not a projection or broadcast";
      return failure();
    }
    access.push_back(Axis::Zero);
  }
  if (!batchRead.empty() && batchRead != SmallVector<unsigned>(batchLoops)) {
    why = "an operand is broadcast or permuted over only some batch/head "
          "dimensions";
    return failure();
  }
  return access;
}

/// Whether `v` is computed without any contraction or softmax (reading
/// through the bodies of the ops that compute it): then it is no part of
/// the scores chain, and MaskEvaluator takes it as a whole.
bool ScoreTracer::isScoresFree(Value v) {
  if (auto it = scoresFree.find(v); it != scoresFree.end())
    return it->second;
  Operation *def = v.getDefiningOp();
  bool result = true;
  if (def) {
    auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
    if ((linalgOp && isContraction(linalgOp)) || isa<linalg::SoftmaxOp>(def)) {
      result = false;
    } else {
      def->walk([&](Operation *nested) {
        for (Value operand : nested->getOperands()) {
          Operation *producer = operand.getDefiningOp();
          bool inside = producer ? def->isAncestor(producer)
                                 : def->isAncestor(operand.getParentBlock()
                                                       ->getParentOp());
          if (!inside && !isScoresFree(operand)) {
            result = false;
            return WalkResult::interrupt();
          }
        }
        return WalkResult::advance();
      });
    }
  }
  scoresFree[v] = result;
  return result;
}

FailureOr<Expr *> ScoreTracer::traceTensor(Value v, const Access &access) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return fail("expected a ranked tensor");
  Type elt = type.getElementType();
  auto opaque = [&]() -> Expr * {
    Expr *e = make(ExprKind::Opaque, elt);
    e->value = v;
    e->access = access;
    return e;
  };
  Operation *def = v.getDefiningOp();
  if (!def)
    return opaque();

  if (auto cst = dyn_cast<arith::ConstantOp>(def)) {
    if (auto splat = dyn_cast<SplatElementsAttr>(cst.getValue())) {
      Expr *e = make(ExprKind::Constant, elt);
      e->constant = splat.getSplatValue<TypedAttr>();
      return e;
    }
  }
  // A copy of a splat constant (torch-mlir broadcasts a 0-d tensor so where
  // shapes are dynamic) is that constant.
  if (auto generic = dyn_cast<linalg::GenericOp>(def);
      generic && generic.getNumDpsInputs() == 1 &&
      generic->getNumResults() == 1) {
    Block *body = generic.getBody();
    SplatElementsAttr splat;
    if (body->getTerminator()->getOperand(0) == body->getArgument(0) &&
        matchPattern(generic.getDpsInputs()[0], m_Constant(&splat))) {
      Expr *e = make(ExprKind::Constant, elt);
      e->constant = splat.getSplatValue<TypedAttr>();
      return e;
    }
  }
  // Fills stay constants: reduction inits are checked for identities.
  if (!isa<linalg::FillOp>(def) && isScoresFree(v)) {
    Expr *e = make(ExprKind::TensorLeaf, elt);
    e->value = v;
    e->access = access;
    return e;
  }

  if (auto softmax = dyn_cast<linalg::SoftmaxOp>(def)) {
    if (access[softmax.getDimension()] != Axis::Key)
      return fail("linalg.softmax normalizes over dimension " +
                  Twine(softmax.getDimension()) + ", not the key axis");
    FailureOr<Expr *> input = traceTensor(softmax.getInput(), access);
    if (failed(input))
      return failure();
    Expr *e = make(ExprKind::Softmax, elt);
    e->operands.push_back(*input);
    return e;
  }

  if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def))
    return traceCollapse(collapse.getSrc(), collapse.getSrcType(),
                         collapse.getReassociationIndices(), access);

  if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def)) {
    // A collapse, then an expand that keeps the sizes of the dimensions
    // that are not 1, in order, only moves unit dimensions (JAX reshapes
    // through a flat vector so): an element keeps its indices along those
    // dimensions, and along the trailing dimensions the two shapes share
    // (which keeps a query or key axis of size 1 in place).
    if (auto collapse =
            expand.getSrc().getDefiningOp<tensor::CollapseShapeOp>()) {
      RankedTensorType before = collapse.getSrcType();
      if (before.hasStaticShape() && type.hasStaticShape()) {
        ArrayRef<int64_t> from = before.getShape(), to = type.getShape();
        size_t suffix = 0;
        while (suffix < from.size() && suffix < to.size() &&
               from[from.size() - 1 - suffix] == to[to.size() - 1 - suffix])
          ++suffix;
        auto nonUnit = [](ArrayRef<int64_t> shape) {
          SmallVector<int64_t> dims;
          for (auto [d, size] : llvm::enumerate(shape))
            if (size != 1)
              dims.push_back(d);
          return dims;
        };
        ArrayRef<int64_t> fromLead = from.drop_back(suffix),
                          toLead = to.drop_back(suffix);
        SmallVector<int64_t> fromDims = nonUnit(fromLead),
                             toDims = nonUnit(toLead);
        if (llvm::equal(
                llvm::map_range(fromDims, [&](int64_t d) { return from[d]; }),
                llvm::map_range(toDims, [&](int64_t d) { return to[d]; }))) {
          Access src(from.size(), Axis::Zero);
          for (auto [f, t] : llvm::zip_equal(fromDims, toDims))
            src[f] = access[t];
          for (size_t k = 1; k <= suffix; ++k)
            src[from.size() - k] = access[to.size() - k];
          return traceTensor(collapse.getSrc(), src);
        }
      }
    }
    return traceExpand(expand.getSrc(), type, expand.getReassociationIndices(),
                       access);
  }

  if (isa<tensor::ReshapeOp>(def)) {
    // Sizes computed at run time (torch-mlir's view of dynamic shapes):
    // read as the collapse or expand it is.
    bool collapse;
    if (std::optional<SmallVector<ReassociationIndices>> groups =
            matchReshapeGroups(def, sameSize, collapse)) {
      Value src = def->getOperand(0);
      if (collapse)
        return traceCollapse(src, cast<RankedTensorType>(src.getType()),
                             *groups, access);
      return traceExpand(src, type, *groups, access);
    }
    return fail("a tensor.reshape that is not proven a collapse or expand of "
                "its operand");
  }

  if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def))
    return traceLinalg(linalgOp, cast<OpResult>(v).getResultNumber(), access);

  if (isa<tensor::EmptyOp>(def))
    return fail("reads the contents of a tensor.empty");
  return opaque();
}

FailureOr<Expr *>
ScoreTracer::traceCollapse(Value src, RankedTensorType srcType,
                           ArrayRef<ReassociationIndices> groups,
                           const Access &access) {
  Access srcAccess(srcType.getRank(), Axis::Zero);
  for (auto [k, group] : llvm::enumerate(groups)) {
    Axis axis = access[k];
    SmallVector<int64_t> nonUnit;
    for (int64_t d : group)
      if (srcType.getDimSize(d) != 1)
        nonUnit.push_back(d);
    if (isMergedRows(axis)) {
      // Rows that merge query and group, split into their two dimensions
      // in the merge's order.
      if (nonUnit.size() != 2)
        return fail("a reshape merges rows of query heads and queries with "
                    "another dimension");
      bool queryFirst = axis == Axis::QueryGroup;
      srcAccess[nonUnit[0]] = queryFirst ? Axis::Query : Axis::Group;
      srcAccess[nonUnit[1]] = queryFirst ? Axis::Group : Axis::Query;
      if (failed(mergeSizes(srcType.getDimSize(nonUnit[queryFirst ? 0 : 1]),
                            srcType.getDimSize(nonUnit[queryFirst ? 1 : 0]))))
        return failure();
      continue;
    }
    if (axis == Axis::BatchGroup) {
      // Heads that merge kv heads and their query heads, split into the
      // two (unit batch dimensions ahead of them stay batch).
      if (nonUnit.size() != 2 || nonUnit[1] != group.back())
        return fail("a reshape merges query heads with another dimension");
      for (int64_t d : group)
        srcAccess[d] = Axis::Batch;
      srcAccess[nonUnit[1]] = Axis::Group;
      if (failed(mergeSizes(0, srcType.getDimSize(nonUnit[1]))))
        return failure();
      continue;
    }
    if (axis != Axis::Batch && nonUnit.size() > 1) {
      if (axis == Axis::Query) {
        mergedQuery = true;
        return fail("a reshape merges the query axis with another");
      }
      return fail(axis == Axis::Key
                      ? "a reshape merges the key axis with another"
                      : "a reshape merges a query head axis with another");
    }
    for (int64_t d : group)
      srcAccess[d] = (axis == Axis::Batch || srcType.getDimSize(d) != 1 ||
                      group.size() == 1)
                         ? axis
                         : Axis::Zero;
  }
  return traceTensor(src, srcAccess);
}

FailureOr<Expr *>
ScoreTracer::traceExpand(Value src, RankedTensorType type,
                         ArrayRef<ReassociationIndices> groups,
                         const Access &access) {
  Access srcAccess;
  for (const ReassociationIndices &group : groups) {
    SmallVector<Axis> nonUnit;
    SmallVector<int64_t> sizes;
    for (int64_t d : group) {
      if (type.getDimSize(d) == 1)
        continue;
      nonUnit.push_back(access[d]);
      sizes.push_back(type.getDimSize(d));
    }
    if (nonUnit.empty()) {
      // A unit dimension split into unit dimensions: where one of them is
      // the query axis (of one element: decode's one query), it is that
      // axis.
      Axis axis = group.size() == 1 ? access[group[0]] : Axis::Zero;
      if (group.size() > 1 &&
          llvm::count_if(group,
                         [&](int64_t d) { return access[d] == Axis::Query; }) ==
              1 &&
          llvm::all_of(group, [&](int64_t d) {
            return access[d] == Axis::Query || access[d] == Axis::Zero;
          }))
        axis = Axis::Query;
      srcAccess.push_back(axis);
    } else if (llvm::all_of(nonUnit, [](Axis a) { return a == Axis::Batch; })) {
      srcAccess.push_back(Axis::Batch);
    } else if (nonUnit.size() == 1) {
      srcAccess.push_back(nonUnit[0]);
    } else if (nonUnit.size() == 2 && nonUnit[0] == Axis::Batch &&
               nonUnit[1] == Axis::Group &&
               access[group.back()] == Axis::Group) {
      // Heads: the kv head (the batch's innermost) and its query heads.
      if (failed(mergeSizes(0, sizes[1])))
        return failure();
      srcAccess.push_back(Axis::BatchGroup);
    } else if (nonUnit.size() == 2 &&
               llvm::is_contained(nonUnit, Axis::Query) &&
               llvm::is_contained(nonUnit, Axis::Group)) {
      // Rows of the products that hold queries and query heads: split
      // here into the two.
      bool queryFirst = nonUnit[0] == Axis::Query;
      if (failed(
              mergeSizes(sizes[queryFirst ? 0 : 1], sizes[queryFirst ? 1 : 0])))
        return failure();
      srcAccess.push_back(queryFirst ? Axis::QueryGroup : Axis::GroupQuery);
    } else {
      return fail("a reshape splits the query/key axis");
    }
  }
  return traceTensor(src, srcAccess);
}

FailureOr<Expr *> ScoreTracer::traceLinalg(linalg::LinalgOp op,
                                           unsigned resultNumber,
                                           const Access &access) {
  Type elt = getElementTypeOrSelf(op->getResult(resultNumber).getType());
  if (isContraction(op)) {
    size_t rank = access.size();
    // [batch..., rows, key], or transposed ([batch..., key, rows]: the
    // scores computed as K Q^T).
    auto isRows = [](Axis a) { return a == Axis::Query || isMergedRows(a); };
    bool canonical =
        rank >= 2 &&
        ((isRows(access[rank - 2]) && access[rank - 1] == Axis::Key) ||
         (access[rank - 2] == Axis::Key && isRows(access[rank - 1])));
    for (size_t d = 0; canonical && d + 2 < rank; ++d)
      canonical = access[d] == Axis::Batch ||
                  (access[d] == Axis::Zero &&
                   cast<ShapedType>(op.getDpsInits()[0].getType()).getDimSize(d) == 1);
    if (!canonical)
      return fail("the scores are not read at [batch..., query, key]");
    Expr *e = make(ExprKind::Scores, elt);
    e->op = op;
    e->value = op->getResult(0);
    e->access = access;
    return e;
  }

  if (!op.hasPureTensorSemantics())
    return fail("'" + op->getName().getStringRef() + "' is not on tensors");
  BodyEnv env;
  env.op = op;
  env.resultNumber = resultNumber;
  unsigned numLoops = op.getNumLoops();
  env.loopAxes.assign(numLoops, Axis::Zero);
  env.loopSizes = op.getStaticLoopRanges();
  SmallVector<bool> assigned(numLoops, false);
  AffineMap outMap =
      op.getMatchingIndexingMap(op.getDpsInitOperand(resultNumber));
  for (auto [k, result] : llvm::enumerate(outMap.getResults())) {
    // A constant result index (reductions keeping a unit dimension) reads
    // element 0, which is the whole of that dimension.
    if (auto cst = dyn_cast<AffineConstantExpr>(result);
        cst && cst.getValue() == 0)
      continue;
    auto dim = dyn_cast<AffineDimExpr>(result);
    if (!dim)
      return fail("result indexing map is not a projection");
    env.loopAxes[dim.getPosition()] = access[k];
    assigned[dim.getPosition()] = true;
    if ((access[k] == Axis::Batch || access[k] == Axis::BatchGroup) &&
        env.loopSizes[dim.getPosition()] != 1)
      env.batchLoops.push_back(dim.getPosition());
  }
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  env.isReduction = op.getNumReductionLoops() > 0;
  if (op.getNumReductionLoops() > 1)
    return fail("a reduction over more than one loop");
  for (unsigned d = 0; d < numLoops; ++d) {
    if (iterators[d] != utils::IteratorType::reduction)
      continue;
    if (llvm::is_contained(access, Axis::Key))
      return fail("a reduction is not over the key axis");
    env.loopAxes[d] = Axis::Key;
    assigned[d] = true;
  }
  if (!llvm::all_of(assigned, [](bool b) { return b; }))
    return fail("a parallel loop does not index the result");

  Block *body = op.getBlock();
  Value yielded = body->getTerminator()->getOperand(resultNumber);
  if (!env.isReduction)
    return traceBodyValue(yielded, env);

  // A reduction: `acc = combine(acc, x)` from an identity init.
  Value acc = op.getMatchingBlockArgument(op.getDpsInitOperand(resultNumber));
  Operation *combiner = yielded.getDefiningOp();
  Value x;
  ReduceKind kind;
  auto other = [&](Value a, Value b) { return a == acc ? b : b == acc ? a : Value(); };
  if (auto add = dyn_cast_or_null<arith::AddFOp>(combiner)) {
    kind = ReduceKind::Sum;
    x = other(add.getLhs(), add.getRhs());
  } else if (combiner &&
             isa<arith::MaximumFOp, arith::MaxNumFOp>(combiner)) {
    kind = ReduceKind::Max;
    x = other(combiner->getOperand(0), combiner->getOperand(1));
  } else if (auto orOp = dyn_cast_or_null<arith::OrIOp>(combiner);
             orOp && orOp.getType().isInteger(1)) {
    kind = ReduceKind::Any;
    x = other(orOp.getLhs(), orOp.getRhs());
  } else if (auto select = dyn_cast_or_null<arith::SelectOp>(combiner)) {
    kind = ReduceKind::Max;
    auto cmp = select.getCondition().getDefiningOp<arith::CmpFOp>();
    Value t = select.getTrueValue(), f = select.getFalseValue();
    using P = arith::CmpFPredicate;
    if (cmp) {
      P p = cmp.getPredicate();
      bool greater = p == P::OGT || p == P::OGE || p == P::UGT || p == P::UGE;
      bool less = p == P::OLT || p == P::OLE || p == P::ULT || p == P::ULE;
      // select(x > acc, x, acc) or select(acc < x, x, acc)
      if (f == acc && ((greater && cmp.getLhs() == t && cmp.getRhs() == acc) ||
                       (less && cmp.getLhs() == acc && cmp.getRhs() == t)))
        x = t;
    }
  }
  if (!x)
    return fail("a reduction body is not a sum, a max or an 'or' of "
                "booleans");

  AffineMap initMap = outMap;
  FailureOr<Access> initAccess =
      accessThrough(initMap, env.loopAxes, env.batchLoops, reason);
  if (failed(initAccess))
    return failure();
  FailureOr<Expr *> init = traceTensor(
      op.getDpsInits()[resultNumber], *initAccess);
  if (failed(init))
    return failure();
  Expr *initValue = stripCasts(*init);
  bool identity = false;
  if (initValue->kind == ExprKind::Constant) {
    if (auto f = dyn_cast<FloatAttr>(initValue->constant)) {
      APFloat value = f.getValue();
      if (kind == ReduceKind::Sum)
        identity = value.isZero();
      else if (kind == ReduceKind::Max)
        identity = (value.isInfinity() && value.isNegative()) ||
                   (value.isNegative() && value.isLargest());
    } else if (auto i = dyn_cast<IntegerAttr>(initValue->constant)) {
      identity = kind == ReduceKind::Any && i.getValue().isZero();
    }
  }
  if (!identity)
    return fail(Twine("the init of a ") +
                (kind == ReduceKind::Sum   ? "sum"
                 : kind == ReduceKind::Max ? "max"
                                           : "boolean 'or'") +
                " reduction is not its identity");
  FailureOr<Expr *> operand = traceBodyValue(x, env);
  if (failed(operand))
    return failure();
  Expr *e = make(ExprKind::Reduce, elt);
  e->reduce = kind;
  e->operands.push_back(*operand);
  return e;
}

FailureOr<Expr *> ScoreTracer::traceOutsideScalar(Value v) {
  if (auto cst = v.getDefiningOp<arith::ConstantOp>()) {
    if (auto typed = dyn_cast<TypedAttr>(cst.getValue());
        typed && !isa<ShapedType>(typed.getType())) {
      Expr *e = make(ExprKind::Constant, v.getType());
      e->constant = typed;
      return e;
    }
  }
  Expr *e = make(ExprKind::Opaque, v.getType());
  e->value = v;
  return e;
}

/// A body op the trees keep: pure, one scalar result, no regions. The
/// pattern matches the ones it knows; MaskEvaluator folds any of them.
static bool isScalarOp(Operation *op) {
  auto scalar = [](Type t) { return t.isIntOrIndexOrFloat(); };
  return op->getNumResults() == 1 && op->getNumRegions() == 0 &&
         isMemoryEffectFree(op) && scalar(op->getResult(0).getType()) &&
         llvm::all_of(op->getOperandTypes(), scalar);
}

static std::optional<std::pair<Value, int64_t>> loopDim(linalg::LinalgOp op,
                                                        unsigned loop);

/// Where an operand of `env.op` reads unit dimensions `atZero` at index 0
/// and its indices read the loops `read`: those dimensions pair, in order,
/// with the loops of one element that no index reads (one element
/// statically, or proven by `sameSize`: the one query of a decode step that
/// a broadcast made a dynamic dimension), and one paired with the query
/// loop takes the query's axis. At one element the loop's index is 0, so
/// the element read is the same. (Only the query's: a key axis of one
/// element there would be a reduction's kept dimension.)
void ScoreTracer::keepUnitQuery(const BodyEnv &env, ArrayRef<int64_t> atZero,
                                ArrayRef<int64_t> read, Access &access) {
  SmallVector<unsigned> unitLoops;
  for (unsigned l = 0, e = env.loopAxes.size(); l < e; ++l) {
    if (llvm::is_contained(read, l))
      continue;
    bool unit = env.loopSizes[l] == 1;
    if (!unit && ShapedType::isDynamic(env.loopSizes[l]) && sameSize)
      if (std::optional<std::pair<Value, int64_t>> dim = loopDim(env.op, l))
        unit = sameSize(SizeTerm{dim->first, dim->second}, {});
    if (unit)
      unitLoops.push_back(l);
  }
  for (auto [k, l] : llvm::zip(atZero, unitLoops))
    if (env.loopAxes[l] == Axis::Query)
      access[k] = Axis::Query;
}

FailureOr<Expr *> ScoreTracer::traceBodyValue(Value v, BodyEnv &env) {
  if (Expr *known = env.memo.lookup(v))
    return known;
  Block *body = env.op.getBlock();
  FailureOr<Expr *> result = failure();
  if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == body) {
    OpOperand *operand = env.op.getMatchingOpOperand(arg);
    bool isInit = env.op.isDpsInit(operand);
    if (isInit && env.isReduction)
      return fail("a reduction reads its accumulator outside the combiner");
    Value source = operand->get();
    if (!isa<ShapedType>(source.getType())) {
      result = traceOutsideScalar(source);
    } else {
      std::string why;
      AffineMap map = env.op.getMatchingIndexingMap(operand);
      FailureOr<Access> access =
          accessThrough(map, env.loopAxes, env.batchLoops, why);
      if (failed(access))
        return fail(why);
      auto type = cast<ShapedType>(source.getType());
      SmallVector<int64_t> atZero, read;
      for (auto [k, result] : llvm::enumerate(map.getResults())) {
        if (auto dim = dyn_cast<AffineDimExpr>(result))
          read.push_back(dim.getPosition());
        else if (type.getDimSize(k) == 1)
          atZero.push_back(k);
      }
      keepUnitQuery(env, atZero, read, *access);
      result = traceTensor(source, *access);
    }
  } else if (v.getParentBlock() != body) {
    result = traceOutsideScalar(v);
  } else {
    Operation *def = v.getDefiningOp();
    if (auto index = dyn_cast<linalg::IndexOp>(def)) {
      uint64_t dim = index.getDim();
      if (env.loopSizes[dim] == 1) {
        Expr *e = make(ExprKind::Constant, v.getType());
        e->constant = IntegerAttr::get(v.getType(), 0);
        result = e;
      } else if (isMergedRows(env.loopAxes[dim])) {
        return fail("linalg.index of rows that fold query heads in");
      } else {
        Expr *e = make(ExprKind::Index, v.getType());
        e->axis = env.loopAxes[dim];
        result = e;
      }
    } else if (isa<arith::ConstantOp>(def)) {
      result = traceOutsideScalar(v);
    } else if (auto extract = dyn_cast<tensor::ExtractOp>(def);
               extract && extract.getTensor().getParentBlock() != body) {
      // An element of a tensor from outside, at indices of the loops (a
      // broadcast of a dynamic shape): that tensor's element.
      auto srcType = cast<RankedTensorType>(extract.getTensor().getType());
      SmallVector<int64_t> loops;
      for (Value index : extract.getIndices()) {
        std::optional<int64_t> loop = extractIndexLoop(env.op, index, sameSize);
        if (!loop)
          return fail("a tensor.extract in a linalg body reads at an index "
                      "that is not a loop's");
        loops.push_back(*loop);
      }
      Access access;
      SmallVector<int64_t> atZero;
      for (auto [k, loop] : llvm::enumerate(loops)) {
        bool unit = srcType.getDimSize(k) == 1;
        if (loop < 0 && unit)
          atZero.push_back(k);
        // A unit dimension read by a loop is a broadcast, but for the query
        // loop of one element.
        access.push_back(loop < 0 ||
                                 (unit && (env.loopSizes[loop] != 1 ||
                                           env.loopAxes[loop] != Axis::Query))
                             ? Axis::Zero
                             : env.loopAxes[loop]);
      }
      keepUnitQuery(env, atZero, loops, access);
      result = traceTensor(extract.getTensor(), access);
    } else if (isScalarOp(def)) {
      Expr *e = make(ExprKind::Op, v.getType());
      e->op = def;
      for (Value operand : def->getOperands()) {
        FailureOr<Expr *> sub = traceBodyValue(operand, env);
        if (failed(sub))
          return failure();
        e->operands.push_back(*sub);
      }
      result = e;
    } else {
      return fail("unsupported op '" + def->getName().getStringRef() +
                  "' in a linalg body");
    }
  }
  if (succeeded(result))
    env.memo[v] = *result;
  return result;
}

//===----------------------------------------------------------------------===//
// Queries
//===----------------------------------------------------------------------===//

Expr *mlir::swba::stripCasts(Expr *e) {
  while (e->kind == ExprKind::Op && isa<arith::ExtFOp, arith::TruncFOp>(e->op))
    e = e->operands[0];
  return e;
}

static bool sameOpSemantics(Operation *a, Operation *b) {
  if (a->getName() != b->getName())
    return false;
  if (auto cmp = dyn_cast<arith::CmpFOp>(a))
    return cmp.getPredicate() == cast<arith::CmpFOp>(b).getPredicate();
  if (auto cmp = dyn_cast<arith::CmpIOp>(a))
    return cmp.getPredicate() == cast<arith::CmpIOp>(b).getPredicate();
  return true;
}

bool mlir::swba::equalExprs(Expr *a, Expr *b) {
  a = stripCasts(a);
  b = stripCasts(b);
  if (a == b)
    return true;
  if (a->kind != b->kind || a->operands.size() != b->operands.size())
    return false;
  switch (a->kind) {
  case ExprKind::Scores:
    if (a->value != b->value || a->access != b->access)
      return false;
    break;
  case ExprKind::Constant:
    if (a->constant != b->constant)
      return false;
    break;
  case ExprKind::Index:
    if (a->axis != b->axis)
      return false;
    break;
  case ExprKind::Op:
    if (!sameOpSemantics(a->op, b->op))
      return false;
    break;
  case ExprKind::Reduce:
    if (a->reduce != b->reduce)
      return false;
    break;
  case ExprKind::Softmax:
    break;
  case ExprKind::TensorLeaf:
  case ExprKind::Opaque:
    if (a->value != b->value || a->access != b->access)
      return false;
    break;
  }
  for (auto [x, y] : llvm::zip(a->operands, b->operands))
    if (!equalExprs(x, y))
      return false;
  return true;
}

bool mlir::swba::readsScores(Expr *e) {
  if (e->kind == ExprKind::Scores)
    return true;
  return llvm::any_of(e->operands, readsScores);
}

//===----------------------------------------------------------------------===//
// Copies and reshapes of dynamic shapes
//===----------------------------------------------------------------------===//

/// Loop `loop`'s size in `op`: an operand dimension it indexes alone.
static std::optional<std::pair<Value, int64_t>> loopDim(linalg::LinalgOp op,
                                                        unsigned loop) {
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<RankedTensorType>(operand.get().getType()))
      continue;
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (std::optional<unsigned> pos =
            map.getResultPosition(getAffineDimExpr(loop, op->getContext())))
      return std::make_pair(operand.get(), int64_t(*pos));
  }
  return std::nullopt;
}

std::optional<int64_t>
mlir::swba::extractIndexLoop(linalg::LinalgOp op, Value index,
                             const SizeOracle &sameSize) {
  Block *body = op.getBlock();
  auto loopOf = [&](Value v) -> std::optional<int64_t> {
    auto idx = v.getDefiningOp<linalg::IndexOp>();
    if (!idx || idx->getBlock() != body)
      return std::nullopt;
    return idx.getDim();
  };
  if (matchPattern(index, m_Zero()))
    return -1;
  if (std::optional<int64_t> loop = loopOf(index))
    return loop;
  auto select = index.getDefiningOp<arith::SelectOp>();
  if (!select || !sameSize || !matchPattern(select.getTrueValue(), m_Zero()))
    return std::nullopt;
  std::optional<int64_t> loop = loopOf(select.getFalseValue());
  auto cmp = select.getCondition().getDefiningOp<arith::CmpIOp>();
  if (!loop || !cmp || cmp.getPredicate() != arith::CmpIPredicate::eq)
    return std::nullopt;
  Value size = matchPattern(cmp.getRhs(), m_One())   ? cmp.getLhs()
               : matchPattern(cmp.getLhs(), m_One()) ? cmp.getRhs()
                                                     : Value();
  std::optional<std::pair<Value, int64_t>> dim = loopDim(op, *loop);
  if (!size || !dim ||
      !sameSize(SizeTerm{size}, SizeTerm{dim->first, dim->second}))
    return std::nullopt;
  return loop;
}

std::optional<std::pair<Value, SmallVector<int64_t>>>
mlir::swba::matchExtractCopy(linalg::LinalgOp op, const SizeOracle &sameSize,
                             int64_t *broadcast) {
  if (broadcast)
    *broadcast = -1;
  if (!isa<linalg::GenericOp>(op) || op.getNumDpsInits() != 1 ||
      op->getNumResults() != 1 || !op.hasPureTensorSemantics() ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return std::nullopt;
  Block *body = op.getBlock();
  auto extract =
      body->getTerminator()->getOperand(0).getDefiningOp<tensor::ExtractOp>();
  if (!extract || extract.getTensor().getParentBlock() == body)
    return std::nullopt;
  Value source = extract.getTensor();
  auto srcType = cast<RankedTensorType>(source.getType());
  auto outType = cast<RankedTensorType>(op->getResult(0).getType());
  int64_t rank = outType.getRank();
  if (srcType.getRank() != rank)
    return std::nullopt;
  SmallVector<int64_t> perm(rank, -1);
  SmallVector<int64_t> unitSources;
  for (auto [k, index] : llvm::enumerate(extract.getIndices())) {
    std::optional<int64_t> loop = extractIndexLoop(op, index, sameSize);
    if (!loop)
      return std::nullopt;
    if (*loop < 0) {
      if (srcType.getDimSize(k) != 1)
        return std::nullopt;
      unitSources.push_back(k);
      continue;
    }
    if (perm[*loop] >= 0)
      return std::nullopt;
    perm[*loop] = k;
  }
  // Result dimensions no index reads: unit ones (or, with `broadcast`, one
  // static repeat), paired with the unit source dimensions read at 0.
  for (int64_t r = 0; r < rank; ++r) {
    if (perm[r] >= 0)
      continue;
    if (unitSources.empty())
      return std::nullopt;
    if (outType.getDimSize(r) != 1) {
      if (!broadcast || *broadcast >= 0 || outType.isDynamicDim(r))
        return std::nullopt;
      *broadcast = r;
    }
    perm[r] = unitSources.front();
    unitSources.erase(unitSources.begin());
  }
  return std::make_pair(source, perm);
}

std::optional<SmallVector<ReassociationIndices>>
mlir::swba::matchReshapeGroups(Operation *reshape, const SizeOracle &sameSize,
                               bool &collapse) {
  auto op = dyn_cast<tensor::ReshapeOp>(reshape);
  if (!op || !sameSize)
    return std::nullopt;
  auto fromElements = op.getShape().getDefiningOp<tensor::FromElementsOp>();
  auto srcType = dyn_cast<RankedTensorType>(op.getSource().getType());
  auto dstType = dyn_cast<RankedTensorType>(op.getResult().getType());
  if (!fromElements || !srcType || !dstType)
    return std::nullopt;
  collapse = srcType.getRank() > dstType.getRank();
  RankedTensorType big = collapse ? srcType : dstType;
  RankedTensorType small = collapse ? dstType : srcType;
  // Each dimension of the smaller shape is a run of the larger's whose
  // product it is: unit dimensions, then the fewest dimensions that make
  // it (a dynamic size is the from_elements value on the result's side, the
  // source's dimension on the other); a unit dimension of the smaller shape
  // takes one unit dimension. (tensor.reshape is row-major, as a collapse
  // or an expand of such runs.)
  SmallVector<ReassociationIndices> groups;
  int64_t b = 0, bigRank = big.getRank();
  auto term = [&](bool result, int64_t d) {
    return result ? SizeTerm{fromElements.getElements()[d]}
                  : SizeTerm{op.getSource(), d};
  };
  for (int64_t d = 0; d < small.getRank(); ++d) {
    ReassociationIndices group;
    int64_t ss = small.getDimSize(d);
    if (ss == 1) {
      if (b == bigRank || big.getDimSize(b) != 1)
        return std::nullopt;
      groups.push_back({b++});
      continue;
    }
    while (b < bigRank && big.getDimSize(b) == 1)
      group.push_back(b++);
    SmallVector<SizeTerm> run;
    int64_t staticRun = 1;
    bool dynamicRun = false;
    bool same = false;
    while (b < bigRank && !same) {
      int64_t bs = big.getDimSize(b);
      run.push_back(term(!collapse, b));
      dynamicRun |= ShapedType::isDynamic(bs);
      if (!ShapedType::isDynamic(bs))
        staticRun *= bs;
      group.push_back(b++);
      if (!dynamicRun && !ShapedType::isDynamic(ss))
        same = staticRun == ss;
      else
        same = sameSize(term(collapse, d), run);
      if (!dynamicRun && !ShapedType::isDynamic(ss) && staticRun > ss)
        return std::nullopt;
    }
    if (!same)
      return std::nullopt;
    groups.push_back(group);
  }
  if (groups.empty())
    return std::nullopt;
  while (b < bigRank && big.getDimSize(b) == 1)
    groups.back().push_back(b++);
  if (b != bigRank)
    return std::nullopt;
  // The static sizes of the result must be the from_elements values:
  // constants, or sizes proven those constants (ONNX's computed shapes).
  for (int64_t d = 0; d < dstType.getRank(); ++d) {
    if (dstType.isDynamicDim(d))
      continue;
    Value element = fromElements.getElements()[d];
    APInt value;
    if (matchPattern(element, m_ConstantInt(&value))
            ? value.getSExtValue() != dstType.getDimSize(d)
            : !sameSize({SizeTerm{element}}, {SizeTerm{op.getResult(), d}}))
      return std::nullopt;
  }
  return groups;
}
