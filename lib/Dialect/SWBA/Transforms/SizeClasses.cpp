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

#include <limits>
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
  // A comparison of sizes known to hold or not (a select's condition).
  if (isa<arith::CmpIOp>(def)) {
    if (std::optional<bool> known = decide(value, depth + 1))
      return Size(int64_t(*known));
    return std::nullopt;
  }
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
  }
  if (isa<arith::DivSIOp, arith::DivUIOp>(def) &&
      matchPattern(def->getOperand(1), m_ConstantInt(&c)) &&
      c.isStrictlyPositive()) {
    return divided(traceScalar(def->getOperand(0), depth + 1),
                   c.getSExtValue());
  }
  if (isa<arith::MaxUIOp, arith::MaxSIOp>(def)) {
    // Two constants, or one size twice: that size; otherwise a size of its
    // own.
    std::optional<Size> a = traceScalar(def->getOperand(0), depth + 1);
    std::optional<Size> b = traceScalar(def->getOperand(1), depth + 1);
    if (a && b && !a->atom && !b->atom)
      return Size(std::max(a->coef, b->coef));
    if (a && b) {
      std::optional<Scaled> sa = scaledOf(a), sb = scaledOf(b);
      if (sa && sb && *sa == *sb)
        return a;
    }
    return Size(Atom(value, -1));
  }
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
  // Products of sizes, exact quotients of them and selects between them
  // (torch-mlir's reshapes with an inferred dimension): a size where they
  // come to a constant or a multiple of one class.
  if (isa<arith::MulIOp, arith::DivSIOp, arith::DivUIOp, arith::SelectOp,
          arith::AddIOp>(def))
    if (std::optional<Product> product = productOf(value, depth + 1))
      return sizeOf(*product);
  return std::nullopt;
}

std::optional<SizeClasses::Product> SizeClasses::productOf(Value value,
                                                           int depth) {
  if (auto it = productCache.find(value); it != productCache.end())
    return it->second;
  std::optional<Product> product = productOfUncached(value, depth);
  productCache.try_emplace(value, product);
  return product;
}

std::optional<SizeClasses::Product> SizeClasses::productOfUncached(Value value,
                                                                   int depth) {
  Operation *def = value.getDefiningOp();
  if (!def || depth >= kMaxDepth)
    return std::nullopt;
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp>(def) &&
      !def->getOperand(0).getType().isInteger(1))
    return productOf(def->getOperand(0), depth + 1);
  auto constant = [](int64_t c) { return Product{{c, 1}, {}}; };
  if (isa<arith::ExtUIOp>(def))
    if (std::optional<bool> known = decide(def->getOperand(0), depth + 1))
      return constant(*known);
  if (auto mul = dyn_cast<arith::MulIOp>(def)) {
    std::optional<Product> a = productOf(mul.getLhs(), depth + 1);
    std::optional<Product> b =
        a ? productOf(mul.getRhs(), depth + 1) : std::nullopt;
    std::optional<Ratio> coef = b ? ratioTimes(a->coef, b->coef) : std::nullopt;
    if (!coef)
      return std::nullopt;
    Product p{*coef, a->ids};
    p.ids.append(b->ids);
    return canonical(p);
  }
  if (isa<arith::DivSIOp, arith::DivUIOp>(def)) {
    std::optional<Product> a = productOf(def->getOperand(0), depth + 1);
    std::optional<Product> b =
        a ? productOf(def->getOperand(1), depth + 1) : std::nullopt;
    if (b) {
      a = canonical(*a);
      b = canonical(*b);
    }
    if (!a || !b || b->coef.first <= 0 || a->coef.first < 0)
      return std::nullopt;
    // Exact only where each of the divisor's classes is one of the
    // dividend's and what is left is an integer multiple of the rest.
    for (unsigned id : b->ids) {
      auto *it = llvm::find(a->ids, id);
      if (it == a->ids.end())
        return std::nullopt;
      a->ids.erase(it);
    }
    std::optional<Ratio> coef =
        ratioTimes(a->coef, {b->coef.second, b->coef.first});
    if (!coef)
      return std::nullopt;
    if (a->ids.empty()) {
      // Constants: the integer quotient (sizes are not negative).
      if (a->coef.second != 1 || b->coef.second != 1)
        return std::nullopt;
      return constant(a->coef.first / b->coef.first);
    }
    if (coef->second != 1)
      return std::nullopt;
    return Product{*coef, a->ids};
  }
  if (auto add = dyn_cast<arith::AddIOp>(def)) {
    std::optional<Product> a = productOf(add.getLhs(), depth + 1);
    std::optional<Product> b =
        a ? productOf(add.getRhs(), depth + 1) : std::nullopt;
    int64_t sum;
    if (!b || !a->ids.empty() || !b->ids.empty() || a->coef.second != 1 ||
        b->coef.second != 1 ||
        llvm::AddOverflow(a->coef.first, b->coef.first, sum))
      return std::nullopt;
    return constant(sum);
  }
  if (auto select = dyn_cast<arith::SelectOp>(def)) {
    // Either branch where they are one product; else the one the condition
    // takes, where it is known.
    std::optional<Product> a = productOf(select.getTrueValue(), depth + 1);
    std::optional<Product> b = productOf(select.getFalseValue(), depth + 1);
    if (a && b) {
      a = canonical(*a);
      b = canonical(*b);
      if (a && b && a->coef == b->coef && a->ids == b->ids)
        return a;
    }
    std::optional<bool> known = decide(select.getCondition(), depth + 1);
    if (!known)
      return std::nullopt;
    return *known ? a : b;
  }
  // A size traced on its own (a dimension, a constant, an element of a
  // shape).
  if (isa<arith::MulIOp, arith::DivSIOp, arith::DivUIOp, arith::SelectOp,
          arith::AddIOp>(def))
    return std::nullopt;
  std::optional<Size> size = traceScalar(value, depth + 1);
  if (!size)
    return std::nullopt;
  if (!size->atom)
    return constant(size->coef);
  return canonical(Product{{size->coef, 1}, {idOf(*size->atom)}});
}

std::optional<SizeClasses::Product> SizeClasses::canonical(const Product &p) {
  Product out{p.coef, {}};
  for (unsigned id : p.ids) {
    auto [root, w] = find(id);
    std::optional<Ratio> coef = ratioTimes(out.coef, w);
    if (auto it = constants.find(root); coef && it != constants.end())
      coef = ratioTimes(*coef, {it->second, 1});
    else
      out.ids.push_back(root);
    if (!coef)
      return std::nullopt;
    out.coef = *coef;
  }
  llvm::sort(out.ids);
  return out;
}

std::optional<bool> SizeClasses::decide(Value cond, int depth) {
  APInt bit;
  if (matchPattern(cond, m_ConstantInt(&bit)))
    return !bit.isZero();
  auto cmp = cond.getDefiningOp<arith::CmpIOp>();
  if (!cmp || depth >= kMaxDepth)
    return std::nullopt;
  // Each side as a range: a constant, or a product of sizes with a positive
  // coefficient, which is at least max(1, floor(coefficient)) where the
  // sizes are at least 1 (the domain of the mask's proof, SymbolicSizes,
  // which the rewrite asserts where a decision took it).
  struct Range {
    int64_t lo, hi;
  };
  // The classes the ranges take to be at least 1.
  SmallVector<unsigned> sizes;
  auto rangeOf = [&](Value v) -> std::optional<Range> {
    std::optional<Product> p = productOf(v, depth + 1);
    if (p)
      p = canonical(*p);
    if (!p)
      return std::nullopt;
    if (p->ids.empty()) {
      if (p->coef.second != 1)
        return std::nullopt;
      return Range{p->coef.first, p->coef.first};
    }
    if (p->coef.first <= 0)
      return std::nullopt;
    sizes.append(p->ids);
    return Range{std::max<int64_t>(1, p->coef.first / p->coef.second),
                 std::numeric_limits<int64_t>::max()};
  };
  std::optional<Range> l = rangeOf(cmp.getLhs());
  std::optional<Range> r = l ? rangeOf(cmp.getRhs()) : std::nullopt;
  if (!r)
    return std::nullopt;
  using P = arith::CmpIPredicate;
  std::optional<bool> known;
  auto decideBy = [&](bool holds, bool fails) {
    if (holds || fails)
      known = holds;
  };
  switch (cmp.getPredicate()) {
  case P::slt:
    decideBy(l->hi < r->lo, l->lo >= r->hi);
    break;
  case P::sle:
    decideBy(l->hi <= r->lo, l->lo > r->hi);
    break;
  case P::sgt:
    decideBy(l->lo > r->hi, l->hi <= r->lo);
    break;
  case P::sge:
    decideBy(l->lo >= r->hi, l->hi < r->lo);
    break;
  case P::eq:
  case P::ne: {
    bool equal = l->lo == l->hi && r->lo == r->hi && l->lo == r->lo;
    bool apart = l->hi < r->lo || r->hi < l->lo;
    if (equal || apart)
      known = equal == (cmp.getPredicate() == P::eq);
    break;
  }
  default:
    break;
  }
  if (known)
    positive.insert(sizes.begin(), sizes.end());
  return known;
}

SmallVector<std::pair<Value, int64_t>> SizeClasses::positiveSizes(
    function_ref<bool(std::pair<Value, int64_t>)> available) {
  SmallVector<std::pair<Value, int64_t>> sizes;
  llvm::SmallDenseSet<unsigned> roots;
  for (unsigned id : positive) {
    unsigned root = find(id).first;
    if (!roots.insert(root).second)
      continue;
    for (unsigned member = 0; member < atomOf.size(); ++member) {
      if (find(member).first == root && available(atomOf[member])) {
        sizes.push_back(atomOf[member]);
        break;
      }
    }
  }
  return sizes;
}

std::optional<SizeClasses::Size> SizeClasses::sizeOf(const Product &p) {
  std::optional<Product> c = canonical(p);
  if (!c || c->coef.second != 1)
    return std::nullopt;
  if (c->ids.empty())
    return Size(c->coef.first);
  if (c->ids.size() != 1)
    return std::nullopt;
  return Size(atomOf[c->ids[0]], c->coef.first);
}

unsigned SizeClasses::idOf(const Atom &atom) {
  auto [it, inserted] = ids.try_emplace(atom, parent.size());
  if (inserted) {
    atomOf.push_back(atom);
    parent.push_back(parent.size());
    weight.push_back({1, 1});
  }
  return it->second;
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
  // A fill's every element is its value.
  if (auto fill = dyn_cast<linalg::FillOp>(def)) {
    if (!flatten(type.getShape(), index))
      return std::nullopt;
    return traceScalar(fill.value(), depth + 1);
  }
  // A concatenation of static sizes along its dimension: the input that
  // holds the element.
  if (auto concat = dyn_cast<tensor::ConcatOp>(def)) {
    int64_t dim = concat.getDim();
    int64_t at = index[dim];
    for (Value input : concat.getInputs()) {
      int64_t size = cast<RankedTensorType>(input.getType()).getDimSize(dim);
      if (ShapedType::isDynamic(size))
        return std::nullopt;
      if (at < size) {
        SmallVector<int64_t> within(index);
        within[dim] = at;
        return traceElement(input, within, depth + 1);
      }
      at -= size;
    }
    return std::nullopt;
  }
  auto generic = dyn_cast<linalg::GenericOp>(def);
  if (!generic || !generic.hasPureTensorSemantics() ||
      generic.getNumParallelLoops() != generic.getNumLoops() ||
      !flatten(type.getShape(), index))
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
  return valueIn(generic.getBody()->getTerminator()->getOperand(result), loops,
                 depth + 1);
}

std::optional<SizeClasses::Size>
SizeClasses::valueIn(Value value, ArrayRef<int64_t> loops, int depth) {
  APInt constant;
  if (matchPattern(value, m_ConstantInt(&constant)))
    return Size(constant.getBitWidth() == 1 ? constant.getZExtValue()
                                            : constant.getSExtValue());
  if (depth >= kMaxDepth)
    return std::nullopt;
  auto arg = dyn_cast<BlockArgument>(value);
  auto generic =
      arg ? dyn_cast<linalg::GenericOp>(arg.getOwner()->getParentOp())
          : nullptr;
  if (generic) {
    OpOperand *operand = generic.getMatchingOpOperand(arg);
    if (generic.isDpsInit(operand))
      return std::nullopt;
    SmallVector<int64_t> at =
        generic.getMatchingIndexingMap(operand).compose(loops);
    return traceElement(operand->get(), at, depth + 1);
  }
  Operation *def = value.getDefiningOp();
  if (!def)
    return std::nullopt;
  // Ops outside the body are sizes (or their elements) of their own.
  if (!isa<linalg::GenericOp>(def->getParentOp()))
    return traceScalar(value, depth + 1);
  if (auto index = dyn_cast<linalg::IndexOp>(def))
    return Size(loops[index.getDim()]);
  // Sizes are below 2^31 (MaskEvaluator's bound): casts keep them.
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp>(def) ||
      (isa<arith::TruncIOp>(def) &&
       def->getResult(0).getType().getIntOrFloatBitWidth() >= 32))
    return valueIn(def->getOperand(0), loops, depth + 1);
  auto constantOf = [&](Value v) -> std::optional<int64_t> {
    std::optional<Size> size = valueIn(v, loops, depth + 1);
    if (!size || size->atom)
      return std::nullopt;
    return size->coef;
  };
  // An element of a tensor from outside the body at indices known here
  // (a gather's index into a shape).
  if (auto extract = dyn_cast<tensor::ExtractOp>(def)) {
    if (extract.getTensor().getParentBlock() == def->getBlock())
      return std::nullopt;
    SmallVector<int64_t> at;
    for (Value i : extract.getIndices()) {
      std::optional<int64_t> c = constantOf(i);
      if (!c)
        return std::nullopt;
      at.push_back(*c);
    }
    return traceElement(extract.getTensor(), at, depth + 1);
  }
  // ONNX's shape arithmetic: a select on a condition known at these
  // indices (a scatter of one size into a shape), compares and sums of
  // constants, a size times or divided by a constant.
  if (auto select = dyn_cast<arith::SelectOp>(def)) {
    // Either branch where both are one size (ONNX's reshape reads a 0 in
    // the shape as the input's size, where the shape holds that size).
    std::optional<Size> a = valueIn(select.getTrueValue(), loops, depth + 1);
    std::optional<Size> b = valueIn(select.getFalseValue(), loops, depth + 1);
    if (a && b) {
      std::optional<Scaled> sa = scaledOf(a), sb = scaledOf(b);
      if (sa && sb && *sa == *sb)
        return a;
    }
    std::optional<int64_t> cond = constantOf(select.getCondition());
    if (!cond)
      return std::nullopt;
    return *cond ? a : b;
  }
  if (auto cmp = dyn_cast<arith::CmpIOp>(def)) {
    std::optional<int64_t> a = constantOf(cmp.getLhs());
    std::optional<int64_t> b = constantOf(cmp.getRhs());
    if (!a || !b)
      return std::nullopt;
    return Size(int64_t(arith::applyCmpPredicate(
        cmp.getPredicate(), APInt(64, *a, true), APInt(64, *b, true))));
  }
  if (isa<arith::AddIOp, arith::SubIOp>(def)) {
    std::optional<int64_t> a = constantOf(def->getOperand(0));
    std::optional<int64_t> b = constantOf(def->getOperand(1));
    int64_t r;
    if (!a || !b ||
        (isa<arith::AddIOp>(def) ? llvm::AddOverflow(*a, *b, r)
                                 : llvm::SubOverflow(*a, *b, r)))
      return std::nullopt;
    return Size(r);
  }
  if (isa<arith::MulIOp>(def)) {
    for (int k = 0; k < 2; ++k)
      if (std::optional<int64_t> c = constantOf(def->getOperand(1 - k));
          c && *c >= 0)
        return scaled(valueIn(def->getOperand(k), loops, depth + 1), *c);
    return std::nullopt;
  }
  if (isa<arith::DivSIOp, arith::DivUIOp>(def)) {
    std::optional<int64_t> c = constantOf(def->getOperand(1));
    if (!c || *c <= 0)
      return std::nullopt;
    return divided(valueIn(def->getOperand(0), loops, depth + 1), *c);
  }
  return std::nullopt;
}
