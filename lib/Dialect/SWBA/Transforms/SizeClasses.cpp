//===- SizeClasses.cpp - Which dynamic sizes are equal --------------------===//

#include "SizeClasses.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace mlir::swba;

/// How far a size is traced back through ops.
static constexpr int kMaxDepth = 64;

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
      // The one source dimension of the group that is not 1.
      std::optional<int64_t> only = soleNonUnitDim(
          collapse.getSrcType(), collapse.getReassociationIndices()[d]);
      if (only && *only >= 0)
        return traceDim(collapse.getSrc(), *only, depth + 1);
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
    if (cmp && cmp.getPredicate() == arith::CmpIPredicate::slt &&
        matchPattern(cmp.getRhs(), m_Zero()) &&
        cmp.getLhs() == select.getFalseValue()) {
      std::optional<Size> size = traceScalar(cmp.getLhs(), depth + 1);
      if (size && (std::holds_alternative<Atom>(*size) ||
                   std::get<int64_t>(*size) >= 0))
        return size;
    }
  }
  return std::nullopt;
}

unsigned SizeClasses::idOf(const Atom &atom) {
  auto [it, inserted] = ids.try_emplace(atom, parent.size());
  if (inserted)
    parent.push_back(parent.size());
  return it->second;
}

unsigned SizeClasses::find(unsigned id) {
  while (parent[id] != id)
    id = parent[id] = parent[parent[id]];
  return id;
}

void SizeClasses::unite(const Size &a, const Size &b) {
  const int64_t *ca = std::get_if<int64_t>(&a);
  const int64_t *cb = std::get_if<int64_t>(&b);
  if (ca && cb)
    return; // two constants: nothing to learn (unequal ones fail at run time)
  if (ca || cb) {
    unsigned root = find(idOf(std::get<Atom>(ca ? b : a)));
    constants.try_emplace(root, ca ? *ca : *cb);
    return;
  }
  unsigned ra = find(idOf(std::get<Atom>(a))),
           rb = find(idOf(std::get<Atom>(b)));
  if (ra == rb)
    return;
  parent[rb] = ra;
  if (auto it = constants.find(rb); it != constants.end()) {
    constants.try_emplace(ra, it->second);
    constants.erase(it);
  }
}

std::optional<SizeRef> SizeClasses::refOf(const std::optional<Size> &size) {
  if (!size)
    return std::nullopt;
  if (const int64_t *c = std::get_if<int64_t>(&*size))
    return SizeRef{false, *c};
  unsigned root = find(idOf(std::get<Atom>(*size)));
  if (auto it = constants.find(root); it != constants.end())
    return SizeRef{false, it->second};
  auto [it, inserted] = symbolOf.try_emplace(root, symbols.size());
  if (inserted)
    symbols.push_back(root);
  return SizeRef{true, it->second};
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
  if (const int64_t *c = std::get_if<int64_t>(&*element))
    return *c;
  return std::nullopt;
}
