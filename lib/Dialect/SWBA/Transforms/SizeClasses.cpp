//===- SizeClasses.cpp - Which dynamic sizes are equal --------------------===//

#include "SizeClasses.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/Support/MathExtras.h"

#include <numeric>

using namespace mlir;
using namespace mlir::swba;

/// How far a size is traced back through ops. Traces are memoized, and the
/// constructor traces the block's ops in order, so a chain of layers, each
/// sized by the one before, is traced a layer at a time.
static constexpr int kMaxDepth = 1024;

/// `size` times `factor` (std::nullopt past 64 bits).
template <typename SizeT>
static std::optional<SizeT> scaled(std::optional<SizeT> size, int64_t factor) {
  if (!size || llvm::MulOverflow(size->coef, factor, size->coef))
    return std::nullopt;
  return size;
}

/// `size` divided by `divisor` (> 0): a constant floor-divided, a multiple
/// of a class only where the division is exact (std::nullopt otherwise).
template <typename SizeT>
static std::optional<SizeT> divided(std::optional<SizeT> size,
                                    int64_t divisor) {
  if (!size || size->coef < 0 || (size->atom && size->coef % divisor != 0))
    return std::nullopt;
  size->coef /= divisor;
  return size;
}

SizeClasses::SizeClasses(Block *block) {
  if (!block)
    return;
  for (Operation &op : *block) {
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(&op)) {
      // The dimensions that one loop indexes have one size.
      SmallVector<std::optional<Size>> loopSize(linalgOp.getNumLoops());
      for (OpOperand &operand : op.getOpOperands()) {
        auto type = dyn_cast<RankedTensorType>(operand.get().getType());
        if (!type)
          continue;
        AffineMap map = linalgOp.getMatchingIndexingMap(&operand);
        for (auto [d, result] : llvm::enumerate(map.getResults())) {
          auto dim = dyn_cast<AffineDimExpr>(result);
          if (!dim)
            continue;
          std::optional<Size> size = traceDim(operand.get(), d);
          if (!size)
            continue;
          std::optional<Size> &seen = loopSize[dim.getPosition()];
          if (seen)
            unite(*seen, *size);
          else
            seen = size;
        }
      }
      continue;
    }
    if (auto assertOp = dyn_cast<cf::AssertOp>(&op)) {
      SmallVector<Value> conds = {assertOp.getArg()};
      while (!conds.empty()) {
        Value cond = conds.pop_back_val();
        if (auto andOp = cond.getDefiningOp<arith::AndIOp>()) {
          conds.append({andOp.getLhs(), andOp.getRhs()});
          continue;
        }
        auto cmp = cond.getDefiningOp<arith::CmpIOp>();
        if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::eq)
          continue;
        std::optional<Size> a = traceScalar(cmp.getLhs());
        std::optional<Size> b = traceScalar(cmp.getRhs());
        if (a && b)
          unite(*a, *b);
      }
    }
  }
}

std::optional<SizeClasses::Size> SizeClasses::traceDim(Value tensor, int64_t d,
                                                       int depth) {
  if (auto it = dimCache.find({tensor, d}); it != dimCache.end())
    return it->second;
  std::optional<Size> size = traceDimUncached(tensor, d, depth);
  dimCache.try_emplace({tensor, d}, size);
  return size;
}

std::optional<SizeClasses::Size>
SizeClasses::traceDimUncached(Value tensor, int64_t d, int depth) {
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!type || d < 0 || d >= type.getRank())
    return std::nullopt;
  if (!type.isDynamicDim(d))
    return Size(type.getDimSize(d));
  Operation *def = tensor.getDefiningOp();
  if (def && depth < kMaxDepth) {
    if (auto empty = dyn_cast<tensor::EmptyOp>(def))
      return traceScalar(empty.getDynamicSize(d), depth + 1);
    if (auto dps = dyn_cast<DestinationStyleOpInterface>(def)) {
      if (auto result = dyn_cast<OpResult>(tensor);
          result && dps.hasPureTensorSemantics())
        return traceDim(dps.getTiedOpOperand(result)->get(), d, depth + 1);
    }
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def)) {
      OpFoldResult size = expand.getMixedOutputShape()[d];
      if (auto value = dyn_cast<Value>(size))
        return traceScalar(value, depth + 1);
    }
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def)) {
      // The group's one dynamic source dimension times its static ones.
      RankedTensorType srcType = collapse.getSrcType();
      std::optional<int64_t> dynamic;
      int64_t factor = 1;
      bool one = true;
      for (int64_t s : collapse.getReassociationIndices()[d]) {
        if (!srcType.isDynamicDim(s))
          factor *= srcType.getDimSize(s);
        else if (dynamic)
          one = false;
        else
          dynamic = s;
      }
      if (one && dynamic)
        return scaled(traceDim(collapse.getSrc(), *dynamic, depth + 1), factor);
    }
    if (auto cast = dyn_cast<tensor::CastOp>(def))
      return traceDim(cast.getSource(), d, depth + 1);
    if (auto reshape = dyn_cast<tensor::ReshapeOp>(def))
      if (auto shape =
              reshape.getShape().getDefiningOp<tensor::FromElementsOp>())
        return traceScalar(shape.getElements()[d], depth + 1);
  }
  return Size(Atom(tensor, d));
}

std::optional<SizeClasses::Size> SizeClasses::traceScalar(Value value,
                                                          int depth) {
  if (auto it = scalarCache.find(value); it != scalarCache.end())
    return it->second;
  std::optional<Size> size = traceScalarUncached(value, depth);
  scalarCache.try_emplace(value, size);
  return size;
}

std::optional<SizeClasses::Size>
SizeClasses::traceScalarUncached(Value value, int depth) {
  Operation *def = value.getDefiningOp();
  if (!def || depth >= kMaxDepth)
    return std::nullopt;
  if (auto cst = dyn_cast<arith::ConstantOp>(def)) {
    if (auto attr = dyn_cast<IntegerAttr>(cst.getValue()))
      return Size(attr.getValue().getSExtValue());
    return std::nullopt;
  }
  if (auto dim = dyn_cast<tensor::DimOp>(def)) {
    std::optional<int64_t> index = dim.getConstantIndex();
    if (!index)
      return std::nullopt;
    return traceDim(dim.getSource(), *index, depth + 1);
  }
  // Sizes are below 2^31 (MaskEvaluator's bound): casts keep them.
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp>(def))
    return traceScalar(def->getOperand(0), depth + 1);
  if (auto trunc = dyn_cast<arith::TruncIOp>(def);
      trunc && trunc.getType().getIntOrFloatBitWidth() >= 32)
    return traceScalar(trunc.getIn(), depth + 1);
  if (auto extract = dyn_cast<tensor::ExtractOp>(def)) {
    SmallVector<int64_t> index;
    for (Value i : extract.getIndices()) {
      APInt value;
      if (!matchPattern(i, m_ConstantInt(&value)))
        return std::nullopt;
      index.push_back(value.getSExtValue());
    }
    return traceElement(extract.getTensor(), index, depth + 1);
  }
  if (auto select = dyn_cast<arith::SelectOp>(def)) {
    // select(x < 0, a, x) of a size x (torch-mlir's view with an inferred
    // dimension): x, since sizes are not negative.
    auto cmp = select.getCondition().getDefiningOp<arith::CmpIOp>();
    Value compared = cmp ? cmp.getLhs() : Value();
    while (auto cast = compared ? compared.getDefiningOp<arith::IndexCastOp>()
                                : arith::IndexCastOp())
      compared = cast.getIn();
    if (cmp && cmp.getPredicate() == arith::CmpIPredicate::slt &&
        matchPattern(cmp.getRhs(), m_Zero()) &&
        (cmp.getLhs() == select.getFalseValue() ||
         compared == select.getFalseValue())) {
      std::optional<Size> size = traceScalar(cmp.getLhs(), depth + 1);
      if (size && (size->atom || size->coef >= 0))
        return size;
    }
  }
  // torch-mlir's sizes: n * c, n / c (of a multiple of c), and the size of
  // a broadcast, max(a, b), which the linalg op that reads it ties to its
  // operands' (a size of its own).
  APInt c;
  if (auto mul = dyn_cast<arith::MulIOp>(def)) {
    for (auto [x, y] : {std::pair(mul.getLhs(), mul.getRhs()),
                        std::pair(mul.getRhs(), mul.getLhs())})
      if (matchPattern(y, m_ConstantInt(&c)) && !c.isNegative())
        return scaled(traceScalar(x, depth + 1), c.getSExtValue());
    return std::nullopt;
  }
  if (isa<arith::DivSIOp, arith::DivUIOp>(def) &&
      matchPattern(def->getOperand(1), m_ConstantInt(&c)) &&
      c.isStrictlyPositive()) {
    return divided(traceScalar(def->getOperand(0), depth + 1),
                   c.getSExtValue());
  }
  if (isa<arith::MaxUIOp, arith::MaxSIOp>(def))
    return Size(Atom(value, -1));
  // affine.apply of x, x * c or x floordiv c (torch-mlir's sizes where the
  // others are static).
  if (auto apply = dyn_cast<affine::AffineApplyOp>(def)) {
    AffineMap map = apply.getAffineMap();
    if (map.getNumResults() != 1)
      return std::nullopt;
    auto operandOf = [&](AffineExpr e) -> Value {
      if (auto d = dyn_cast<AffineDimExpr>(e))
        return apply.getMapOperands()[d.getPosition()];
      if (auto sym = dyn_cast<AffineSymbolExpr>(e))
        return apply.getMapOperands()[map.getNumDims() + sym.getPosition()];
      return Value();
    };
    AffineExpr e = map.getResult(0);
    if (Value x = operandOf(e))
      return traceScalar(x, depth + 1);
    auto bin = dyn_cast<AffineBinaryOpExpr>(e);
    auto factor =
        bin ? dyn_cast<AffineConstantExpr>(bin.getRHS()) : AffineConstantExpr();
    Value x = bin ? operandOf(bin.getLHS()) : Value();
    if (!x || !factor || factor.getValue() <= 0)
      return std::nullopt;
    if (bin.getKind() == AffineExprKind::Mul)
      return scaled(traceScalar(x, depth + 1), factor.getValue());
    if (bin.getKind() == AffineExprKind::FloorDiv)
      return divided(traceScalar(x, depth + 1), factor.getValue());
  }
  return std::nullopt;
}

unsigned SizeClasses::idOf(const Atom &atom) {
  auto [it, inserted] = ids.try_emplace(atom, parent.size());
  if (inserted) {
    parent.push_back(parent.size());
    weight.push_back({1, 1});
  }
  return it->second;
}

/// a * b in lowest terms (std::nullopt past 64 bits).
static std::optional<std::pair<int64_t, int64_t>>
ratioTimes(std::pair<int64_t, int64_t> a, std::pair<int64_t, int64_t> b) {
  int64_t num, den;
  if (llvm::MulOverflow(a.first, b.first, num) ||
      llvm::MulOverflow(a.second, b.second, den) || den == 0)
    return std::nullopt;
  int64_t g = std::gcd(num, den);
  if (g == 0)
    return std::nullopt;
  return std::pair(num / g, den / g);
}

std::pair<unsigned, SizeClasses::Ratio> SizeClasses::find(unsigned id) {
  if (parent[id] == id)
    return {id, {1, 1}};
  auto [root, toRoot] = find(parent[id]);
  // Path compression: id's factor of the root, directly (the factors are
  // small: overflow leaves the path as it was).
  if (std::optional<Ratio> w = ratioTimes(weight[id], toRoot)) {
    parent[id] = root;
    weight[id] = *w;
    return {root, *w};
  }
  return {root, weight[id]};
}

void SizeClasses::unite(const Size &a, const Size &b) {
  if (!a.atom && !b.atom)
    return; // two constants: nothing to learn (unequal ones fail at run time)
  if (a.coef <= 0 || b.coef <= 0)
    return; // sizes of 0 (or negative values) say nothing of a class
  if (!a.atom || !b.atom) {
    // c x = K: the root's size is K / (c w), where it is an integer.
    const Size &atom = a.atom ? a : b, &constant = a.atom ? b : a;
    auto [root, w] = find(idOf(*atom.atom));
    std::optional<Ratio> cw = ratioTimes({atom.coef, 1}, w);
    if (!cw || constant.coef % cw->first != 0)
      return;
    int64_t value;
    if (llvm::MulOverflow(constant.coef / cw->first, cw->second, value))
      return;
    constants.try_emplace(root, value);
    return;
  }
  // ca wa A = cb wb B (A and B the roots): B = (ca wa) / (cb wb) A.
  auto [ra, wa] = find(idOf(*a.atom));
  auto [rb, wb] = find(idOf(*b.atom));
  if (ra == rb)
    return;
  std::optional<Ratio> left = ratioTimes({a.coef, 1}, wa);
  std::optional<Ratio> right = ratioTimes({b.coef, 1}, wb);
  if (!left || !right || left->first == 0 || right->first == 0)
    return;
  std::optional<Ratio> w = ratioTimes(*left, {right->second, right->first});
  if (!w)
    return;
  parent[rb] = ra;
  weight[rb] = *w;
  if (auto it = constants.find(rb); it != constants.end()) {
    // A = K_B / w, where that is an integer.
    int64_t value;
    if (!llvm::MulOverflow(it->second, w->second, value) &&
        value % w->first == 0)
      constants.try_emplace(ra, value / w->first);
    constants.erase(it);
  }
}

std::optional<SizeClasses::Scaled>
SizeClasses::scaledOf(const std::optional<Size> &size) {
  if (!size)
    return std::nullopt;
  if (!size->atom)
    return Scaled{size->coef, 1, std::nullopt};
  auto [root, w] = find(idOf(*size->atom));
  std::optional<Ratio> factor = ratioTimes({size->coef, 1}, w);
  if (!factor)
    return std::nullopt;
  if (auto it = constants.find(root); it != constants.end()) {
    std::optional<Ratio> value = ratioTimes(*factor, {it->second, 1});
    if (!value || value->second != 1)
      return std::nullopt;
    return Scaled{value->first, 1, std::nullopt};
  }
  return Scaled{factor->first, factor->second, root};
}

std::optional<SizeRef> SizeClasses::refOf(const std::optional<Size> &size) {
  std::optional<Scaled> s = scaledOf(size);
  if (!s)
    return std::nullopt;
  if (!s->root)
    return SizeRef{false, s->num};
  // A multiple of a class (other than the class itself) is a symbol of its
  // own: the proof then knows less of it, not more.
  auto [it, inserted] = symbolOf.try_emplace(
      std::make_tuple(*s->root, s->num, s->den), numSymbolsMade);
  if (inserted)
    ++numSymbolsMade;
  return SizeRef{true, it->second};
}

std::optional<SizeClasses::Scaled> SizeClasses::scaledDim(Value tensor,
                                                          int64_t d) {
  return scaledOf(traceDim(tensor, d));
}

std::optional<SizeClasses::Scaled> SizeClasses::scaledScalar(Value value) {
  return scaledOf(traceScalar(value));
}

std::optional<SizeClasses::Scaled>
SizeClasses::times(const Scaled &a, const std::optional<Scaled> &b) {
  if (!b || (a.root && b->root))
    return std::nullopt;
  std::optional<Ratio> factor = ratioTimes({a.num, a.den}, {b->num, b->den});
  if (!factor)
    return std::nullopt;
  return Scaled{factor->first, factor->second, a.root ? a.root : b->root};
}

std::optional<SizeClasses::Scaled>
SizeClasses::scaledProduct(Value tensor, ArrayRef<int64_t> dims) {
  std::optional<Scaled> product = Scaled{1};
  for (int64_t d : dims)
    if (product)
      product = times(*product, scaledDim(tensor, d));
  return product;
}

std::optional<int64_t> mlir::swba::soleNonUnitDim(RankedTensorType type,
                                                  ArrayRef<int64_t> group) {
  std::optional<int64_t> only = -1;
  for (int64_t d : group) {
    if (type.getDimSize(d) == 1)
      continue;
    if (*only >= 0)
      return std::nullopt;
    only = d;
  }
  return only;
}

std::optional<SizeRef> SizeClasses::dimSize(Value tensor, int64_t d) {
  return refOf(traceDim(tensor, d));
}

std::optional<SizeRef> SizeClasses::scalarSize(Value value) {
  return refOf(traceScalar(value));
}

/// The row-major position of `index` in `shape` (static), or std::nullopt
/// where it is out of bounds.
static std::optional<int64_t> flatten(ArrayRef<int64_t> shape,
                                      ArrayRef<int64_t> index) {
  int64_t flat = 0;
  for (auto [size, i] : llvm::zip_equal(shape, index)) {
    if (ShapedType::isDynamic(size) || i < 0 || i >= size)
      return std::nullopt;
    flat = flat * size + i;
  }
  return flat;
}

/// The index of row-major position `flat` in `shape` (static).
static SmallVector<int64_t> unflatten(ArrayRef<int64_t> shape, int64_t flat) {
  SmallVector<int64_t> index(shape.size());
  for (int64_t d = shape.size() - 1; d >= 0; --d) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

std::optional<SizeClasses::Size>
SizeClasses::traceElement(Value tensor, ArrayRef<int64_t> index, int depth) {
  Operation *def = tensor.getDefiningOp();
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!def || !type || depth >= kMaxDepth ||
      static_cast<int64_t>(index.size()) != type.getRank())
    return std::nullopt;
  DenseElementsAttr dense;
  if (matchPattern(tensor, m_Constant(&dense))) {
    std::optional<int64_t> flat = flatten(type.getShape(), index);
    if (!flat || !isa<IntegerType, IndexType>(type.getElementType()))
      return std::nullopt;
    return Size(dense.isSplat()
                    ? dense.getSplatValue<APInt>().getSExtValue()
                    : dense.getValues<APInt>()[*flat].getSExtValue());
  }
  if (auto elements = dyn_cast<tensor::FromElementsOp>(def)) {
    std::optional<int64_t> flat = flatten(type.getShape(), index);
    if (!flat)
      return std::nullopt;
    return traceScalar(elements.getElements()[*flat], depth + 1);
  }
  if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(def)) {
    auto srcType = cast<RankedTensorType>(def->getOperand(0).getType());
    std::optional<int64_t> flat = flatten(type.getShape(), index);
    if (!flat || !srcType.hasStaticShape())
      return std::nullopt;
    return traceElement(def->getOperand(0),
                        unflatten(srcType.getShape(), *flat), depth + 1);
  }
  if (auto slice = dyn_cast<tensor::ExtractSliceOp>(def)) {
    if (llvm::any_of(slice.getStaticOffsets(), ShapedType::isDynamic) ||
        llvm::any_of(slice.getStaticStrides(), ShapedType::isDynamic))
      return std::nullopt;
    llvm::SmallBitVector dropped = slice.getDroppedDims();
    SmallVector<int64_t> src;
    size_t k = 0;
    for (auto [d, offset] : llvm::enumerate(slice.getStaticOffsets()))
      src.push_back(dropped.test(d)
                        ? offset
                        : offset + index[k++] * slice.getStaticStrides()[d]);
    return traceElement(slice.getSource(), src, depth + 1);
  }
  auto generic = dyn_cast<linalg::GenericOp>(def);
  if (!generic || !generic.hasPureTensorSemantics() ||
      generic.getNumParallelLoops() != generic.getNumLoops())
    return std::nullopt;
  // The loop indices of the element, then what the body yields there.
  unsigned result = cast<OpResult>(tensor).getResultNumber();
  AffineMap outMap =
      generic.getMatchingIndexingMap(generic.getDpsInitOperand(result));
  SmallVector<int64_t> loops(generic.getNumLoops(), 0);
  for (auto [k, expr] : llvm::enumerate(outMap.getResults())) {
    auto dim = dyn_cast<AffineDimExpr>(expr);
    if (!dim)
      return std::nullopt;
    loops[dim.getPosition()] = index[k];
  }
  Block *body = generic.getBody();
  Value v = body->getTerminator()->getOperand(result);
  while (auto cast = v.getDefiningOp<arith::IndexCastOp>())
    v = cast.getIn();
  if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == body) {
    OpOperand *operand = generic.getMatchingOpOperand(arg);
    if (generic.isDpsInit(operand))
      return std::nullopt;
    SmallVector<int64_t> at =
        generic.getMatchingIndexingMap(operand).compose(loops);
    return traceElement(operand->get(), at, depth + 1);
  }
  auto extract = v.getDefiningOp<tensor::ExtractOp>();
  if (!extract || extract.getTensor().getParentBlock() == body)
    return std::nullopt;
  SmallVector<int64_t> at;
  for (Value i : extract.getIndices()) {
    std::optional<int64_t> c = constantIn(i, loops, depth + 1);
    if (!c)
      return std::nullopt;
    at.push_back(*c);
  }
  return traceElement(extract.getTensor(), at, depth + 1);
}

std::optional<int64_t>
SizeClasses::constantIn(Value value, ArrayRef<int64_t> loops, int depth) {
  APInt constant;
  if (matchPattern(value, m_ConstantInt(&constant)))
    return constant.getSExtValue();
  if (depth >= kMaxDepth)
    return std::nullopt;
  if (auto index = value.getDefiningOp<linalg::IndexOp>())
    return loops[index.getDim()];
  if (auto cast = value.getDefiningOp<arith::IndexCastOp>())
    return constantIn(cast.getIn(), loops, depth + 1);
  auto arg = dyn_cast<BlockArgument>(value);
  auto generic =
      arg ? dyn_cast<linalg::GenericOp>(arg.getOwner()->getParentOp())
          : nullptr;
  if (!generic)
    return std::nullopt;
  OpOperand *operand = generic.getMatchingOpOperand(arg);
  if (generic.isDpsInit(operand))
    return std::nullopt;
  SmallVector<int64_t> at =
      generic.getMatchingIndexingMap(operand).compose(loops);
  std::optional<Size> element = traceElement(operand->get(), at, depth + 1);
  if (!element)
    return std::nullopt;
  if (!element->atom)
    return element->coef;
  return std::nullopt;
}
