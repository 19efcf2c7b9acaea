//===- MaskEvaluator.cpp - Constant-fold a mask over (query, key) ---------===//

#include "MaskEvaluator.h"
#include "MaskNodes.h"
#include "SizeClasses.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstring>
#include <functional>

using namespace mlir;
using namespace mlir::swba;

//===----------------------------------------------------------------------===//
// Nodes
//===----------------------------------------------------------------------===//

using namespace mlir::swba::mask_nodes;

MaskEvaluator::MaskEvaluator(MLIRContext *context) : context(context) {}
MaskEvaluator::~MaskEvaluator() = default;

static uint64_t bitsOf(double f) {
  uint64_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

unsigned MaskEvaluator::intern(Node node) {
  for (unsigned operand : node.operands)
    node.deps |= nodes[operand].deps;
  if (node.kind == Kind::Row)
    node.deps = kRow;
  else if (node.kind == Kind::Col)
    node.deps = kCol;
  else if (node.kind == Kind::Batch)
    node.deps = kBatch;
  std::vector<uint64_t> key = {
      static_cast<uint64_t>(node.kind),
      reinterpret_cast<uint64_t>(node.type.getAsOpaquePointer()),
      bitsOf(node.value.f), static_cast<uint64_t>(node.value.i),
      reinterpret_cast<uint64_t>(node.op),
      reinterpret_cast<uint64_t>(node.data), static_cast<uint64_t>(node.c),
      node.operands.size()};
  key.insert(key.end(), node.operands.begin(), node.operands.end());
  for (int64_t coeff : node.coeffs)
    key.push_back(static_cast<uint64_t>(coeff));
  auto [it, inserted] = interned.try_emplace(key, nodes.size());
  if (inserted)
    nodes.push_back(std::move(node));
  unsigned id = it->second;
  // Arithmetic on constants is a constant (the index into a shape tensor
  // and the slice offsets that ONNX's export computes, say).
  const Node &made = nodes[id];
  bool foldable = made.kind == Kind::Op || made.kind == Kind::Linear ||
                  made.kind == Kind::Div || made.kind == Kind::Rem;
  if (!foldable ||
      !llvm::all_of(made.operands,
                    [&](unsigned o) { return nodes[o].kind == Kind::Const; }))
    return id;
  SmallVector<Scalar, 3> values;
  for (unsigned o : made.operands)
    values.push_back(nodes[o].value);
  std::string ignored;
  FailureOr<Scalar> value = apply(id, values, ignored);
  return succeeded(value) ? constantNode(*value, nodes[id].type) : id;
}

unsigned MaskEvaluator::constantNode(Scalar value, Type type) {
  Node node{Kind::Const, type};
  node.value = value;
  return intern(std::move(node));
}

static Type indexType(MLIRContext *context) {
  return IndexType::get(context);
}

static FailureOr<Scalar> scalarOf(Attribute attr) {
  Scalar s;
  if (auto f = dyn_cast<FloatAttr>(attr)) {
    APFloat value = f.getValue();
    bool losesInfo;
    value.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                  &losesInfo);
    s.f = value.convertToDouble();
    return s;
  }
  if (auto i = dyn_cast<IntegerAttr>(attr)) {
    s.i = i.getType().isIndex() ? i.getInt() : i.getValue().getSExtValue();
    return s;
  }
  return failure();
}

static bool isScalarType(Type type) {
  return isa<FloatType, IntegerType, IndexType>(type) &&
         (!isa<IntegerType>(type) || type.getIntOrFloatBitWidth() <= 64) &&
         (!isa<FloatType>(type) || type.getIntOrFloatBitWidth() <= 64);
}

static std::string describe(Value v) {
  std::string desc;
  llvm::raw_string_ostream os(desc);
  v.printAsOperand(os, OpPrintingFlags());
  return desc;
}

//===----------------------------------------------------------------------===//
// Building from expressions and tensors
//===----------------------------------------------------------------------===//

FailureOr<unsigned> MaskEvaluator::build(Expr *e, std::string &why) {
  switch (e->kind) {
  case ExprKind::Constant: {
    FailureOr<Scalar> value = scalarOf(e->constant);
    if (failed(value)) {
      why = "a constant of an unsupported kind";
      return failure();
    }
    return constantNode(*value, e->type);
  }
  case ExprKind::Index:
    switch (e->axis) {
    case Axis::Query:
      return intern(Node{Kind::Row, indexType(context)});
    case Axis::Key:
      return intern(Node{Kind::Col, indexType(context)});
    case Axis::Zero:
      return constantNode(Scalar{}, indexType(context));
    case Axis::Batch:
    case Axis::Group:
    case Axis::BatchGroup:
      // A mask that depends on the batch, the head or the query head within
      // its group is no sliding window block mask (applyIndexing refuses it).
      return intern(Node{Kind::Batch, indexType(context)});
    case Axis::QueryGroup:
    case Axis::GroupQuery:
      why = "the mask is read on rows that fold query heads in";
      return failure();
    }
    break;
  case ExprKind::TensorLeaf: {
    SmallVector<unsigned> coords;
    for (Axis axis : e->access) {
      Expr index{ExprKind::Index, indexType(context)};
      index.axis = axis;
      FailureOr<unsigned> coord = build(&index, why);
      if (failed(coord))
        return failure();
      coords.push_back(*coord);
    }
    return buildTensor(e->value, coords, why);
  }
  case ExprKind::Op: {
    SmallVector<unsigned> operands;
    for (Expr *operand : e->operands) {
      FailureOr<unsigned> node = build(operand, why);
      if (failed(node))
        return failure();
      operands.push_back(*node);
    }
    return buildOp(e->op, operands, why);
  }
  case ExprKind::Scores:
    why = "the mask reads the scores";
    return failure();
  case ExprKind::Reduce:
  case ExprKind::Softmax:
    why = "the mask contains a reduction of the scores";
    return failure();
  case ExprKind::Opaque:
    // A scalar from outside the linalg bodies: a size of the tensors, or a
    // computation of sizes and constants.
    if (sizeResolver && e->value && e->value.getType().isIntOrIndex())
      return buildScalar(e->value, nullptr, {}, why);
    why = "the mask is not a compile-time constant: it reads " +
          describe(e->value);
    return failure();
  }
  why = "unknown expression";
  return failure();
}

static Native classify(Operation *op) {
  return llvm::TypeSwitch<Operation *, Native>(op)
      .Case([](arith::AddFOp) { return Native::AddF; })
      .Case([](arith::SubFOp) { return Native::SubF; })
      .Case([](arith::MulFOp) { return Native::MulF; })
      .Case([](arith::DivFOp) { return Native::DivF; })
      .Case([](arith::NegFOp) { return Native::NegF; })
      .Case([](arith::MaximumFOp) { return Native::MaximumF; })
      .Case([](arith::MaxNumFOp) { return Native::MaxNumF; })
      .Case([](arith::MinimumFOp) { return Native::MinimumF; })
      .Case([](arith::MinNumFOp) { return Native::MinNumF; })
      .Case([](arith::ExtFOp) { return Native::CastF; })
      .Case([](arith::TruncFOp op) {
        // Other rounding modes go through the folder.
        return op.getRoundingmodeAttr() ? Native::None : Native::CastF;
      })
      .Case([](arith::SIToFPOp) { return Native::SIToFP; })
      .Case([](arith::UIToFPOp) { return Native::UIToFP; })
      .Case([](arith::CmpFOp) { return Native::CmpF; })
      .Case([](arith::SelectOp) { return Native::Select; })
      .Case([](arith::AddIOp) { return Native::AddI; })
      .Case([](arith::SubIOp) { return Native::SubI; })
      .Case([](arith::MulIOp) { return Native::MulI; })
      .Case([](arith::AndIOp) { return Native::AndI; })
      .Case([](arith::OrIOp) { return Native::OrI; })
      .Case([](arith::XOrIOp) { return Native::XOrI; })
      .Case([](arith::MinSIOp) { return Native::MinSI; })
      .Case([](arith::MaxSIOp) { return Native::MaxSI; })
      .Case([](arith::DivSIOp) { return Native::DivSI; })
      .Case([](arith::FloorDivSIOp) { return Native::FloorDivSI; })
      .Case([](arith::DivUIOp) { return Native::DivUI; })
      .Case([](arith::RemUIOp) { return Native::RemUI; })
      .Case([](arith::RemSIOp) { return Native::RemSI; })
      .Case([](arith::CmpIOp) { return Native::CmpI; })
      .Case<arith::ExtSIOp, arith::TruncIOp, arith::IndexCastOp>(
          [](Operation *) { return Native::SExt; })
      .Case<arith::ExtUIOp, arith::IndexCastUIOp>(
          [](Operation *) { return Native::ZExt; })
      // math.log's folder takes f32 and f64 only; on 16-bit floats (f16
      // models' `log` of a 0/1 mask) the log of the value widened to f64,
      // rounded back (exact at 0 and 1, the values a mask's log is of).
      .Case([](math::LogOp op) {
        return op.getType().getIntOrFloatBitWidth() == 16 ? Native::Log16
                                                          : Native::None;
      })
      .Default([](Operation *) { return Native::None; });
}

FailureOr<unsigned> MaskEvaluator::buildOp(Operation *op,
                                           ArrayRef<unsigned> operands,
                                           std::string &why) {
  auto cannot = [&]() -> FailureOr<unsigned> {
    why = "cannot evaluate '" + op->getName().getStringRef().str() + "'";
    return failure();
  };
  if (op->getNumResults() != 1 || op->getNumRegions() != 0 ||
      !isScalarType(op->getResult(0).getType()))
    return cannot();
  for (Value operand : op->getOperands())
    if (!isScalarType(operand.getType()))
      return cannot();
  // Ops with the same name, properties, attributes and types compute the
  // same function: one detached copy serves them all (the IR they come from
  // may be rewritten later).
  std::vector<const void *> key = {
      op->getName().getAsOpaquePointer(),
      op->getPropertiesAsAttribute().getAsOpaquePointer(),
      op->getDiscardableAttrDictionary().getAsOpaquePointer(),
      op->getResult(0).getType().getAsOpaquePointer()};
  for (Value operand : op->getOperands())
    key.push_back(operand.getType().getAsOpaquePointer());
  Operation *&copy = opCopies[key];
  if (!copy) {
    auto block = std::make_unique<Block>();
    IRMapping mapping;
    for (Value operand : op->getOperands())
      mapping.map(operand, block->addArgument(operand.getType(), op->getLoc()));
    copy = op->cloneWithoutRegions(mapping);
    block->push_back(copy);
    scratch.push_back(std::move(block));
  }
  Node node{Kind::Op, op->getResult(0).getType()};
  node.op = copy;
  node.native = classify(copy);
  node.operands.assign(operands.begin(), operands.end());
  return intern(std::move(node));
}

FailureOr<const MaskEvaluator::ConstantData *>
MaskEvaluator::getData(Attribute attr, std::string &why) {
  std::unique_ptr<ConstantData> &slot = constants[attr];
  if (slot)
    return slot.get();
  auto typed = dyn_cast<TypedAttr>(attr);
  auto type = typed ? dyn_cast<ShapedType>(typed.getType()) : ShapedType();
  if (!type || !type.hasStaticShape()) {
    why = "a constant that is not a statically shaped tensor";
    return failure();
  }
  Type elt = type.getElementType();
  if (!isScalarType(elt)) {
    why = "a constant of an unsupported element type";
    return failure();
  }
  auto data = std::make_unique<ConstantData>();
  data->isFloat = isa<FloatType>(elt);
  data->shape.assign(type.getShape().begin(), type.getShape().end());
  int64_t count = type.getNumElements();
  auto toDouble = [&](APFloat value) {
    bool losesInfo;
    value.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                  &losesInfo);
    return value.convertToDouble();
  };
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    if (data->isFloat) {
      data->f.reserve(count);
      for (const APFloat &value : dense.getValues<APFloat>())
        data->f.push_back(toDouble(value));
    } else if (elt.isInteger(1)) {
      data->i.reserve(count);
      for (bool value : dense.getValues<bool>())
        data->i.push_back(value ? -1 : 0);
    } else {
      data->i.reserve(count);
      for (const APInt &value : dense.getValues<APInt>())
        data->i.push_back(value.getSExtValue());
    }
  } else if (auto resource = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob) {
      why = "a dense_resource constant has no data";
      return failure();
    }
    ArrayRef<char> bytes = blob->getData();
    unsigned width = elt.isIndex() ? 64 : elt.getIntOrFloatBitWidth();
    size_t size = width == 1 ? 1 : width / 8;
    if (width % 8 != 0 && width != 1) {
      why = "a dense_resource constant of an unsupported element type";
      return failure();
    }
    if (bytes.size() != size * count) {
      why = llvm::formatv("a dense_resource constant holds {0} bytes, not {1}",
                          bytes.size(), size * count);
      return failure();
    }
    for (int64_t k = 0; k < count; ++k) {
      uint64_t raw = 0;
      std::memcpy(&raw, bytes.data() + k * size, size);
      if (data->isFloat) {
        APFloat value(cast<FloatType>(elt).getFloatSemantics(),
                      APInt(width, raw));
        data->f.push_back(toDouble(value));
      } else if (width == 1) {
        data->i.push_back(raw & 1 ? -1 : 0);
      } else {
        data->i.push_back(APInt(width, raw).getSExtValue());
      }
    }
  } else {
    why = "a constant that is neither dense nor dense_resource";
    return failure();
  }
  slot = std::move(data);
  return slot.get();
}

FailureOr<unsigned> MaskEvaluator::buildAffine(AffineExpr expr,
                                               ArrayRef<unsigned> loopCoords,
                                               std::string &why) {
  Type index = indexType(context);
  if (auto dim = dyn_cast<AffineDimExpr>(expr))
    return loopCoords[dim.getPosition()];
  if (auto cst = dyn_cast<AffineConstantExpr>(expr)) {
    Scalar s;
    s.i = cst.getValue();
    return constantNode(s, index);
  }
  auto binary = dyn_cast<AffineBinaryOpExpr>(expr);
  if (!binary) {
    why = "an indexing map with symbols";
    return failure();
  }
  FailureOr<unsigned> lhs = buildAffine(binary.getLHS(), loopCoords, why);
  if (failed(lhs))
    return failure();
  auto rhsConst = dyn_cast<AffineConstantExpr>(binary.getRHS());
  switch (expr.getKind()) {
  case AffineExprKind::Add: {
    FailureOr<unsigned> rhs = buildAffine(binary.getRHS(), loopCoords, why);
    if (failed(rhs))
      return failure();
    Node node{Kind::Linear, index};
    node.operands = {*lhs, *rhs};
    node.coeffs = {1, 1};
    return intern(std::move(node));
  }
  case AffineExprKind::Mul:
    if (rhsConst) {
      Node node{Kind::Linear, index};
      node.operands = {*lhs};
      node.coeffs = {rhsConst.getValue()};
      return intern(std::move(node));
    }
    break;
  case AffineExprKind::FloorDiv:
  case AffineExprKind::Mod:
    if (rhsConst && rhsConst.getValue() > 0) {
      Node node{expr.getKind() == AffineExprKind::Mod ? Kind::Rem : Kind::Div,
                index};
      node.operands = {*lhs};
      node.c = rhsConst.getValue();
      return intern(std::move(node));
    }
    break;
  default:
    break;
  }
  why = "an indexing map that is not affine in the loops with constant "
        "factors and divisors";
  return failure();
}

std::optional<unsigned> MaskEvaluator::digitsIn(ArrayRef<Digit> of,
                                                int64_t stride, int64_t size) {
  Type index = indexType(context);
  Node linear{Kind::Linear, index};
  for (const Digit &digit : of) {
    int64_t end = digit.stride * digit.size;
    if (end <= stride || digit.stride >= stride * size)
      continue; // below or above the range: contributes nothing
    if (digit.stride < stride || end > stride * size ||
        digit.stride % stride != 0)
      return std::nullopt; // straddles a boundary
    linear.operands.push_back(digit.index);
    linear.coeffs.push_back(digit.stride / stride);
  }
  if (linear.operands.empty())
    return constantNode(Scalar{}, index);
  if (linear.operands.size() == 1 && linear.coeffs[0] == 1)
    return linear.operands[0];
  return intern(std::move(linear));
}

FailureOr<SmallVector<unsigned>>
MaskEvaluator::viewSourceCoords(Operation *view, ArrayRef<unsigned> coords,
                                std::string &why) {
  Type index = indexType(context);
  if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(view)) {
    // A collapsed index splits back into the source's row-major indices.
    RankedTensorType srcType = collapse.getSrcType();
    SmallVector<unsigned> src(srcType.getRank());
    for (auto [k, group] :
         llvm::enumerate(collapse.getReassociationIndices())) {
      // At most one dimension of the group has more than one element: the
      // index is its index (the others' is 0), whatever the sizes.
      if (std::optional<int64_t> only = soleNonUnitDim(srcType, group)) {
        for (int64_t d : group)
          src[d] = d == *only ? coords[k] : constantNode(Scalar{}, index);
        continue;
      }
      if (llvm::any_of(group,
                       [&](int64_t d) { return srcType.isDynamicDim(d); })) {
        why = "a tensor.collapse_shape merges a dynamic dimension with "
              "others";
        return failure();
      }
      int64_t stride = 1;
      auto made = digits.find(coords[k]);
      for (int64_t d : llvm::reverse(group)) {
        int64_t size = srcType.getDimSize(d);
        // An index that an expand made from in-bounds digits splits into
        // those digits where the reshapes' boundaries line up (a mask
        // reshaped through a flat vector): no division, and no dependence
        // on the other digits (a head index among them, say).
        if (made != digits.end()) {
          if (std::optional<unsigned> digit =
                  digitsIn(made->second, stride, size)) {
            src[d] = *digit;
            stride *= size;
            continue;
          }
        }
        Node div{Kind::Div, index};
        div.operands = {coords[k]};
        div.c = stride;
        unsigned quotient = stride == 1 ? coords[k] : intern(std::move(div));
        if (d == group.front()) {
          src[d] = quotient;
        } else {
          Node rem{Kind::Rem, index};
          rem.operands = {quotient};
          rem.c = size;
          src[d] = intern(std::move(rem));
        }
        stride *= size;
      }
    }
    return src;
  }
  if (auto expand = dyn_cast<tensor::ExpandShapeOp>(view)) {
    RankedTensorType type = expand.getResultType();
    SmallVector<unsigned> src;
    for (const ReassociationIndices &group : expand.getReassociationIndices()) {
      if (std::optional<int64_t> only = soleNonUnitDim(type, group)) {
        src.push_back(*only >= 0 ? coords[*only]
                                 : constantNode(Scalar{}, index));
        continue;
      }
      if (llvm::any_of(group,
                       [&](int64_t d) { return type.isDynamicDim(d); })) {
        why = "a tensor.expand_shape splits a dynamic dimension";
        return failure();
      }
      Node linear{Kind::Linear, index};
      SmallVector<Digit> made;
      int64_t stride = 1;
      for (int64_t d : llvm::reverse(group)) {
        linear.operands.push_back(coords[d]);
        linear.coeffs.push_back(stride);
        made.push_back({coords[d], stride, type.getDimSize(d)});
        stride *= type.getDimSize(d);
      }
      if (group.size() == 1) {
        src.push_back(coords[group[0]]);
        continue;
      }
      unsigned id = intern(std::move(linear));
      digits[id] = std::move(made);
      src.push_back(id);
    }
    return src;
  }
  if (auto slice = dyn_cast<tensor::ExtractSliceOp>(view)) {
    if (llvm::any_of(slice.getStaticStrides(), ShapedType::isDynamic) ||
        llvm::any_of(slice.getStaticOffsets(), ShapedType::isDynamic)) {
      why = "a tensor.extract_slice with dynamic offsets or strides";
      return failure();
    }
    llvm::SmallBitVector dropped = slice.getDroppedDims();
    SmallVector<unsigned> src;
    unsigned k = 0;
    for (auto [d, offset] : llvm::enumerate(slice.getStaticOffsets())) {
      Scalar off;
      off.i = offset;
      if (dropped.test(d)) {
        src.push_back(constantNode(off, index));
        continue;
      }
      Node linear{Kind::Linear, index};
      linear.operands = {coords[k++]};
      linear.coeffs = {slice.getStaticStrides()[d]};
      linear.c = offset;
      src.push_back(intern(std::move(linear)));
    }
    return src;
  }
  // A tensor.cast reads its source at the same indices.
  return SmallVector<unsigned>(coords);
}

std::optional<int64_t> MaskEvaluator::constantIndex(unsigned node) const {
  const Node &n = nodes[node];
  if (n.kind == Kind::Const)
    return n.value.i;
  if (n.kind != Kind::Linear)
    return std::nullopt;
  int64_t value = n.c;
  for (auto [operand, coeff] : llvm::zip_equal(n.operands, n.coeffs)) {
    std::optional<int64_t> x = constantIndex(operand);
    if (!x)
      return std::nullopt;
    value += coeff * *x;
  }
  return value;
}

FailureOr<unsigned> MaskEvaluator::buildTensor(Value tensor,
                                               ArrayRef<unsigned> indices,
                                               std::string &why) {
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!type) {
    why = "the mask reads a tensor that is not ranked";
    return failure();
  }
  if (!type.hasStaticShape() && !sizeResolver) {
    why = "the mask reads a tensor of dynamic shape";
    return failure();
  }
  // The one in-bounds index of a unit dimension is 0, whatever computes it
  // (a broadcast over batch/heads, say).
  SmallVector<unsigned> coords(indices);
  for (auto [d, coord] : llvm::enumerate(coords))
    if (type.getDimSize(d) == 1)
      coord = constantNode(Scalar{}, indexType(context));
  auto memoKey = std::make_pair(tensor.getAsOpaquePointer(),
                                std::vector<unsigned>(coords.begin(),
                                                      coords.end()));
  if (auto it = tensorMemo.find(memoKey); it != tensorMemo.end())
    return it->second;
  FailureOr<unsigned> result = failure();
  Operation *def = tensor.getDefiningOp();
  if (!def) {
    why = "the mask is not a compile-time constant: it reads " +
          describe(tensor);
    return failure();
  }
  if (auto cst = dyn_cast<arith::ConstantOp>(def)) {
    if (auto splat = dyn_cast<SplatElementsAttr>(cst.getValue())) {
      FailureOr<Scalar> value = scalarOf(splat.getSplatValue<Attribute>());
      if (failed(value)) {
        why = "a constant of an unsupported kind";
        return failure();
      }
      result = constantNode(*value, type.getElementType());
    } else {
      FailureOr<const ConstantData *> data = getData(cst.getValue(), why);
      if (failed(data))
        return failure();
      Node node{Kind::Read, type.getElementType()};
      node.data = *data;
      node.operands.assign(coords.begin(), coords.end());
      result = intern(std::move(node));
    }
  } else if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp,
                 tensor::ExtractSliceOp, tensor::CastOp>(def)) {
    FailureOr<SmallVector<unsigned>> src = viewSourceCoords(def, coords, why);
    if (failed(src))
      return failure();
    result = buildTensor(def->getOperand(0), *src, why);
  } else if (auto elements = dyn_cast<tensor::FromElementsOp>(def)) {
    // An element at constant indices (a size picked from a shape tensor).
    int64_t flat = 0;
    for (auto [d, coord] : llvm::enumerate(coords)) {
      if (nodes[coord].kind != Kind::Const || nodes[coord].value.i < 0 ||
          nodes[coord].value.i >= type.getDimSize(d)) {
        why = "the mask reads a tensor.from_elements at an index that is not "
              "a constant in its bounds";
        return failure();
      }
      flat = flat * type.getDimSize(d) + nodes[coord].value.i;
    }
    result = buildScalar(elements.getElements()[flat], nullptr, {}, why);
  } else if (auto concat = dyn_cast<tensor::ConcatOp>(def)) {
    // Read where the position along the concatenated dimension is a
    // constant (ONNX's GatherND indices, pairs concatenated along a unit
    // axis): the input that holds it, at the position less the ones before.
    int64_t dim = concat.getDim();
    std::optional<int64_t> at = constantIndex(coords[dim]);
    if (!at) {
      why = "a tensor.concat read at a position along its dimension that is "
            "not a constant";
      return failure();
    }
    for (Value input : concat.getInputs()) {
      int64_t size = cast<RankedTensorType>(input.getType()).getDimSize(dim);
      if (ShapedType::isDynamic(size)) {
        why = "a tensor.concat of an input of dynamic size along its "
              "dimension";
        return failure();
      }
      if (*at < size) {
        SmallVector<unsigned> within(coords);
        Scalar position;
        position.i = *at;
        within[dim] = constantNode(position, indexType(context));
        result = buildTensor(input, within, why);
        break;
      }
      *at -= size;
    }
    if (failed(result) && why.empty())
      why = "a tensor.concat read past its end";
  } else if (isa<tensor::EmptyOp>(def)) {
    why = "the mask reads the contents of a tensor.empty";
    return failure();
  } else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
    result = buildLinalg(def, cast<OpResult>(tensor).getResultNumber(), coords,
                         why);
  } else {
    why = "cannot evaluate '" + def->getName().getStringRef().str() + "'";
    return failure();
  }
  if (succeeded(result))
    tensorMemo[memoKey] = *result;
  return result;
}

FailureOr<unsigned> MaskEvaluator::buildLinalg(Operation *def,
                                               unsigned resultNumber,
                                               ArrayRef<unsigned> coords,
                                               std::string &why) {
  auto op = cast<linalg::LinalgOp>(def);
  std::string name = "'" + def->getName().getStringRef().str() + "'";
  if (!op.hasPureTensorSemantics()) {
    why = "cannot evaluate " + name + " on buffers";
    return failure();
  }
  if (op.getNumReductionLoops() != 0) {
    why = "cannot evaluate " + name + ": the mask is reduced over a loop";
    return failure();
  }
  AffineMap outMap =
      op.getMatchingIndexingMap(op.getDpsInitOperand(resultNumber));
  SmallVector<std::optional<unsigned>> loopCoords(op.getNumLoops());
  for (auto [k, result] : llvm::enumerate(outMap.getResults())) {
    auto dim = dyn_cast<AffineDimExpr>(result);
    if (!dim) {
      why = "cannot evaluate " + name + ": its result map is not a "
                                        "permutation of its loops";
      return failure();
    }
    loopCoords[dim.getPosition()] = coords[k];
  }
  SmallVector<unsigned> loops;
  for (std::optional<unsigned> coord : loopCoords) {
    if (!coord) {
      why = "cannot evaluate " + name + ": a loop does not index its result";
      return failure();
    }
    loops.push_back(*coord);
  }
  Block *body = op.getBlock();
  return buildScalar(body->getTerminator()->getOperand(resultNumber), body,
                     loops, why);
}

FailureOr<unsigned> MaskEvaluator::buildScalar(Value v, Block *body,
                                               ArrayRef<unsigned> loopCoords,
                                               std::string &why) {
  if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == body) {
    auto op = cast<linalg::LinalgOp>(body->getParentOp());
    OpOperand *operand = op.getMatchingOpOperand(arg);
    Value source = operand->get();
    if (!isa<RankedTensorType>(source.getType()))
      return buildScalar(source, nullptr, {}, why);
    SmallVector<unsigned> coords;
    for (AffineExpr result : op.getMatchingIndexingMap(operand).getResults()) {
      FailureOr<unsigned> coord = buildAffine(result, loopCoords, why);
      if (failed(coord))
        return failure();
      coords.push_back(*coord);
    }
    return buildTensor(source, coords, why);
  }
  Operation *def = v.getDefiningOp();
  bool inBody = body && def && def->getBlock() == body;
  // A size of the attention's tensors (a tensor.dim, or a cast of one).
  if (sizeResolver && v.getType().isIntOrIndex()) {
    if (std::optional<SizeRef> size = sizeResolver(v)) {
      if (!size->symbolic) {
        Scalar value;
        value.i = size->value;
        return constantNode(value, v.getType());
      }
      Node node{Kind::Size, v.getType()};
      node.c = size->value;
      return intern(std::move(node));
    }
  }
  if (!def) {
    why = "the mask is not a compile-time constant: it reads " + describe(v);
    return failure();
  }
  if (auto index = dyn_cast<linalg::IndexOp>(def); index && inBody)
    return loopCoords[index.getDim()];
  if (auto cst = dyn_cast<arith::ConstantOp>(def)) {
    FailureOr<Scalar> value = scalarOf(cst.getValue());
    if (failed(value)) {
      why = "a constant of an unsupported kind";
      return failure();
    }
    return constantNode(*value, v.getType());
  }
  SmallVector<unsigned> operands;
  if (auto extract = dyn_cast<tensor::ExtractOp>(def)) {
    for (Value index : extract.getIndices()) {
      FailureOr<unsigned> node =
          buildScalar(index, inBody ? body : nullptr, loopCoords, why);
      if (failed(node))
        return failure();
      operands.push_back(*node);
    }
    return buildTensor(extract.getTensor(), operands, why);
  }
  for (Value operand : def->getOperands()) {
    FailureOr<unsigned> node =
        buildScalar(operand, inBody ? body : nullptr, loopCoords, why);
    if (failed(node))
      return failure();
    operands.push_back(*node);
  }
  return buildOp(def, operands, why);
}

bool MaskEvaluator::dependsOnPosition(unsigned node) const {
  return nodes[node].deps != 0;
}

//===----------------------------------------------------------------------===//
// Evaluating one node
//===----------------------------------------------------------------------===//

/// Rounds `x` to the float type `type`.
static double roundTo(double x, Type type) {
  auto floatType = dyn_cast<FloatType>(type);
  if (!floatType || floatType.isF64() || std::isnan(x))
    return x;
  if (floatType.isF32())
    return static_cast<double>(static_cast<float>(x));
  bool losesInfo;
  APFloat value(x);
  value.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &losesInfo);
  value.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                &losesInfo);
  return value.convertToDouble();
}

static unsigned widthOf(Type type) {
  return type.isIndex() ? 64 : type.getIntOrFloatBitWidth();
}

static int64_t wrapTo(int64_t x, Type type) {
  unsigned width = widthOf(type);
  return width >= 64 ? x : llvm::SignExtend64(static_cast<uint64_t>(x), width);
}

static uint64_t asUnsigned(int64_t x, Type type) {
  unsigned width = widthOf(type);
  uint64_t bits = static_cast<uint64_t>(x);
  return width >= 64 ? bits : bits & ((uint64_t(1) << width) - 1);
}

static bool compareFloat(arith::CmpFPredicate p, double a, double b) {
  using P = arith::CmpFPredicate;
  bool unordered = std::isnan(a) || std::isnan(b);
  switch (p) {
  case P::AlwaysFalse: return false;
  case P::AlwaysTrue: return true;
  case P::OEQ: return !unordered && a == b;
  case P::OGT: return !unordered && a > b;
  case P::OGE: return !unordered && a >= b;
  case P::OLT: return !unordered && a < b;
  case P::OLE: return !unordered && a <= b;
  case P::ONE: return !unordered && a != b;
  case P::ORD: return !unordered;
  case P::UEQ: return unordered || a == b;
  case P::UGT: return unordered || a > b;
  case P::UGE: return unordered || a >= b;
  case P::ULT: return unordered || a < b;
  case P::ULE: return unordered || a <= b;
  case P::UNE: return unordered || a != b;
  case P::UNO: return unordered;
  }
  return false;
}

static bool compareInt(arith::CmpIPredicate p, int64_t a, int64_t b,
                       uint64_t ua, uint64_t ub) {
  using P = arith::CmpIPredicate;
  switch (p) {
  case P::eq: return a == b;
  case P::ne: return a != b;
  case P::slt: return a < b;
  case P::sle: return a <= b;
  case P::sgt: return a > b;
  case P::sge: return a >= b;
  case P::ult: return ua < ub;
  case P::ule: return ua <= ub;
  case P::ugt: return ua > ub;
  case P::uge: return ua >= ub;
  }
  return false;
}

FailureOr<Scalar> MaskEvaluator::fold(const Node &node,
                                      ArrayRef<Scalar> operands,
                                      std::string &why) {
  Operation *op = node.op;
  std::vector<uint64_t> key = {reinterpret_cast<uint64_t>(op)};
  for (auto [operand, value] : llvm::zip(op->getOperands(), operands))
    key.push_back(isa<FloatType>(operand.getType()) ? bitsOf(value.f)
                                                     : value.i);
  if (auto it = foldMemo.find(key); it != foldMemo.end())
    return it->second;
  SmallVector<Attribute> attrs;
  for (auto [operand, value] : llvm::zip(op->getOperands(), operands)) {
    Type type = operand.getType();
    if (auto floatType = dyn_cast<FloatType>(type)) {
      APFloat x(value.f);
      bool losesInfo;
      x.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                &losesInfo);
      attrs.push_back(FloatAttr::get(type, x));
    } else {
      attrs.push_back(IntegerAttr::get(
          type, APInt(widthOf(type), static_cast<uint64_t>(value.i),
                      /*isSigned=*/true, /*implicitTrunc=*/true)));
    }
  }
  SmallVector<OpFoldResult> results;
  std::string name = op->getName().getStringRef().str();
  if (failed(op->fold(attrs, results)) || results.size() != 1) {
    why = "cannot evaluate '" + name + "' on these operands (it does not fold)";
    return failure();
  }
  Scalar result;
  if (auto attr = dyn_cast<Attribute>(results[0])) {
    FailureOr<Scalar> value = scalarOf(attr);
    if (failed(value)) {
      why = "'" + name + "' folds to a value that is not a scalar";
      return failure();
    }
    result = *value;
  } else {
    Value same = cast<Value>(results[0]);
    auto it = llvm::find(op->getOperands(), same);
    if (it == op->getOperands().end()) {
      why = "'" + name + "' folds to a value that is not one of its operands";
      return failure();
    }
    result = operands[it - op->getOperands().begin()];
  }
  foldMemo[key] = result;
  return result;
}

FailureOr<Scalar> MaskEvaluator::applyIndexing(const Node &node,
                                               ArrayRef<Scalar> args,
                                               std::string &why) {
  Scalar r;
  switch (node.kind) {
  case Kind::Const:
    return node.value;
  case Kind::Row:
  case Kind::Col:
    why = "an index outside of the (query, key) grid";
    return failure();
  case Kind::Batch:
    why = "the mask depends on the batch/head index";
    return failure();
  case Kind::Size:
    break; // apply reads the sizes' values
  case Kind::Div:
    r.i = llvm::divideFloorSigned(args[0].i, node.c);
    return r;
  case Kind::Rem:
    r.i = args[0].i - node.c * llvm::divideFloorSigned(args[0].i, node.c);
    return r;
  case Kind::Linear:
    r.i = node.c;
    for (auto [arg, coeff] : llvm::zip(args, node.coeffs))
      r.i += arg.i * coeff;
    return r;
  case Kind::Read: {
    const ConstantData &data = *node.data;
    int64_t flat = 0;
    for (auto [arg, size] : llvm::zip(args, data.shape)) {
      if (arg.i < 0 || arg.i >= size) {
        why = llvm::formatv("the mask reads a constant out of its bounds "
                            "(index {0} of a dimension of {1})",
                            arg.i, size);
        return failure();
      }
      flat = flat * size + arg.i;
    }
    if (data.isFloat)
      r.f = data.f[flat];
    else
      r.i = data.i[flat];
    return r;
  }
  case Kind::Op:
    break;
  }
  llvm_unreachable("scalar ops are applied by applyNative or fold");
}

std::optional<Scalar> MaskEvaluator::applyNative(const Node &node,
                                                 ArrayRef<Scalar> args) {
  Scalar r;
  Type type = node.type;
  Operation *op = node.op;
  auto f = [&](double x) {
    r.f = roundTo(x, type);
    return r;
  };
  auto i = [&](int64_t x) {
    r.i = wrapTo(x, type);
    return r;
  };
  auto truth = [&](bool b) {
    r.i = b ? -1 : 0;
    return r;
  };
  const Scalar *a = args.data();
  switch (node.native) {
  case Native::AddF: return f(a[0].f + a[1].f);
  case Native::SubF: return f(a[0].f - a[1].f);
  case Native::MulF: return f(a[0].f * a[1].f);
  case Native::DivF: return f(a[0].f / a[1].f);
  case Native::NegF: return f(-a[0].f);
  case Native::MaximumF:
    return f(std::isnan(a[0].f) || std::isnan(a[1].f)
                 ? NAN
                 : std::max(a[0].f, a[1].f));
  case Native::MaxNumF: return f(std::fmax(a[0].f, a[1].f));
  case Native::MinimumF:
    return f(std::isnan(a[0].f) || std::isnan(a[1].f)
                 ? NAN
                 : std::min(a[0].f, a[1].f));
  case Native::MinNumF: return f(std::fmin(a[0].f, a[1].f));
  case Native::CastF: return f(a[0].f);
  case Native::SIToFP: return f(static_cast<double>(a[0].i));
  case Native::UIToFP:
    return f(static_cast<double>(asUnsigned(a[0].i, op->getOperand(0).getType())));
  case Native::CmpF:
    return truth(compareFloat(cast<arith::CmpFOp>(op).getPredicate(), a[0].f,
                              a[1].f));
  case Native::Select: return a[0].i ? a[1] : a[2];
  case Native::AddI: return i(a[0].i + a[1].i);
  case Native::SubI: return i(a[0].i - a[1].i);
  case Native::MulI: return i(a[0].i * a[1].i);
  case Native::AndI: return i(a[0].i & a[1].i);
  case Native::OrI: return i(a[0].i | a[1].i);
  case Native::XOrI: return i(a[0].i ^ a[1].i);
  case Native::MinSI: return i(std::min(a[0].i, a[1].i));
  case Native::MaxSI: return i(std::max(a[0].i, a[1].i));
  case Native::DivSI:
  case Native::FloorDivSI:
  case Native::RemSI:
    if (a[1].i == 0 || (a[1].i == -1 && a[0].i == INT64_MIN))
      break; // the folder decides (it refuses)
    if (node.native == Native::DivSI)
      return i(a[0].i / a[1].i);
    if (node.native == Native::RemSI)
      return i(a[0].i % a[1].i);
    return i(llvm::divideFloorSigned(a[0].i, a[1].i));
  case Native::DivUI:
  case Native::RemUI: {
    Type operandType = op->getOperand(0).getType();
    uint64_t x = asUnsigned(a[0].i, operandType);
    uint64_t y = asUnsigned(a[1].i, operandType);
    if (y == 0)
      break; // the folder decides (it refuses)
    return i(
        static_cast<int64_t>(node.native == Native::DivUI ? x / y : x % y));
  }
  case Native::CmpI: {
    Type operandType = op->getOperand(0).getType();
    return truth(compareInt(cast<arith::CmpIOp>(op).getPredicate(), a[0].i,
                            a[1].i, asUnsigned(a[0].i, operandType),
                            asUnsigned(a[1].i, operandType)));
  }
  case Native::SExt: return i(a[0].i);
  case Native::ZExt:
    return i(static_cast<int64_t>(
        asUnsigned(a[0].i, op->getOperand(0).getType())));
  case Native::Log16:
    return f(std::log(a[0].f));
  case Native::None:
    break;
  }
  return std::nullopt;
}

FailureOr<Scalar> MaskEvaluator::apply(unsigned id, ArrayRef<Scalar> args,
                                       std::string &why) {
  const Node &node = nodes[id];
  if (node.kind == Kind::Size) {
    if (node.c < 0 || node.c >= static_cast<int64_t>(sizeValues.size())) {
      why = "the mask reads a dynamic size that has no value here";
      return failure();
    }
    Scalar r;
    r.i = sizeValues[node.c];
    return r;
  }
  if (node.kind != Kind::Op)
    return applyIndexing(node, args, why);
  if (std::optional<Scalar> r = applyNative(node, args))
    return *r;
  return fold(node, args, why);
}

FailureOr<double> MaskEvaluator::evaluateConstant(unsigned id,
                                                  std::string &why) {
  if (nodes[id].deps != 0) {
    why = "the value depends on the position";
    return failure();
  }
  llvm::DenseMap<unsigned, Scalar> values;
  for (unsigned n : operandsFirst({id})) {
    SmallVector<Scalar, 3> args;
    for (unsigned operand : nodes[n].operands)
      args.push_back(values[operand]);
    FailureOr<Scalar> value = apply(n, args, why);
    if (failed(value))
      return failure();
    values[n] = *value;
  }
  if (!isa<FloatType>(nodes[id].type)) {
    why = "the value is not a float";
    return failure();
  }
  return values[id].f;
}

//===----------------------------------------------------------------------===//
// Evaluating a mask over the grid
//===----------------------------------------------------------------------===//

/// Half the lowest finite value of a float type: masks use values at most
/// this for -inf (PyTorch the lowest, finfo.min; JAX -0.7 times the
/// largest). Such a value hides its key exactly (its exponential relative
/// to the row's maximum underflows to 0) whenever the row's largest visible
/// score is finite and above it by the exponential's range, 104 in f32.
static double hidingThreshold(Type type) {
  auto floatType = dyn_cast<FloatType>(type);
  if (!floatType)
    return -INFINITY;
  APFloat lowest = APFloat::getLargest(floatType.getFloatSemantics(), true);
  bool losesInfo;
  lowest.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven,
                 &losesInfo);
  return lowest.convertToDouble() / 2;
}

namespace {
/// Groups positions on which a set of row-only (column-only) values agree.
struct Classes {
  std::vector<uint32_t> classOf;
  std::vector<int64_t> representative;
};
} // namespace

/// Classes of `count` positions by the values of `frontier`.
static Classes classify(int64_t count, ArrayRef<const std::vector<Scalar> *> frontier,
                        ArrayRef<bool> isFloat) {
  Classes classes;
  classes.classOf.resize(count);
  std::map<std::vector<uint64_t>, uint32_t> ids;
  std::vector<uint64_t> key(frontier.size());
  for (int64_t p = 0; p < count; ++p) {
    for (auto [k, values] : llvm::enumerate(frontier))
      key[k] = isFloat[k] ? bitsOf((*values)[p].f)
                          : static_cast<uint64_t>((*values)[p].i);
    auto [it, inserted] = ids.try_emplace(key, classes.representative.size());
    if (inserted)
      classes.representative.push_back(p);
    classes.classOf[p] = it->second;
  }
  return classes;
}

/// Where an operand's values over the column classes are: `base[c *
/// stride]` (stride 0 for a value that is the same on the whole row).
struct MaskEvaluator::Source {
  const Scalar *base;
  size_t stride;

  const Scalar &read(size_t c) const { return base[c * stride]; }
};

/// Evaluates the common integer and f32/f64 ops over all column classes
/// at once; false when the node needs `apply` element by element (other
/// ops, f16/bf16 rounding, divisions that may trap).
bool MaskEvaluator::applyColumns(unsigned id, ArrayRef<Source> sources,
                                 size_t count, Scalar *out) {
  const Node &node = nodes[id];
  auto at = [&](unsigned k, size_t c) -> const Scalar & {
    return sources[k].base[c * sources[k].stride];
  };
  bool isInt = node.type.isSignlessIntOrIndex();
  unsigned width = isInt ? widthOf(node.type) : 0;
  auto wrap = [width](int64_t x) {
    return width >= 64 ? x
                       : llvm::SignExtend64(static_cast<uint64_t>(x), width);
  };
  auto mapInt = [&](auto f) {
    for (size_t c = 0; c < count; ++c)
      out[c].i = wrap(f(c));
    return true;
  };
  bool f32 = node.type.isF32(), f64 = node.type.isF64();
  auto mapFloat = [&](auto f) {
    if (!f32 && !f64)
      return false;
    for (size_t c = 0; c < count; ++c) {
      double x = f(c);
      out[c].f = f32 ? static_cast<double>(static_cast<float>(x)) : x;
    }
    return true;
  };
  switch (node.kind) {
  case Kind::Linear:
    return mapInt([&](size_t c) {
      int64_t r = node.c;
      for (auto [k, coeff] : llvm::enumerate(node.coeffs))
        r += at(k, c).i * coeff;
      return r;
    });
  case Kind::Div:
    return mapInt([&](size_t c) {
      return llvm::divideFloorSigned(at(0, c).i, node.c);
    });
  case Kind::Rem:
    return mapInt([&](size_t c) {
      int64_t x = at(0, c).i;
      return x - node.c * llvm::divideFloorSigned(x, node.c);
    });
  case Kind::Op:
    break;
  default:
    return false;
  }
  Operation *op = node.op;
  switch (node.native) {
  case Native::AddI: return mapInt([&](size_t c) { return at(0, c).i + at(1, c).i; });
  case Native::SubI: return mapInt([&](size_t c) { return at(0, c).i - at(1, c).i; });
  case Native::MulI: return mapInt([&](size_t c) { return at(0, c).i * at(1, c).i; });
  case Native::AndI: return mapInt([&](size_t c) { return at(0, c).i & at(1, c).i; });
  case Native::OrI: return mapInt([&](size_t c) { return at(0, c).i | at(1, c).i; });
  case Native::XOrI: return mapInt([&](size_t c) { return at(0, c).i ^ at(1, c).i; });
  case Native::MinSI:
    return mapInt([&](size_t c) { return std::min(at(0, c).i, at(1, c).i); });
  case Native::MaxSI:
    return mapInt([&](size_t c) { return std::max(at(0, c).i, at(1, c).i); });
  case Native::SExt: return mapInt([&](size_t c) { return at(0, c).i; });
  case Native::CmpI: {
    auto p = cast<arith::CmpIOp>(op).getPredicate();
    unsigned w = widthOf(op->getOperand(0).getType());
    uint64_t bits = w >= 64 ? ~uint64_t(0) : (uint64_t(1) << w) - 1;
    return mapInt([&](size_t c) -> int64_t {
      int64_t a = at(0, c).i, b = at(1, c).i;
      return compareInt(p, a, b, static_cast<uint64_t>(a) & bits,
                        static_cast<uint64_t>(b) & bits)
                 ? -1
                 : 0;
    });
  }
  case Native::CmpF: {
    auto p = cast<arith::CmpFOp>(op).getPredicate();
    return mapInt([&](size_t c) -> int64_t {
      return compareFloat(p, at(0, c).f, at(1, c).f) ? -1 : 0;
    });
  }
  case Native::Select:
    for (size_t c = 0; c < count; ++c)
      out[c] = at(0, c).i ? at(1, c) : at(2, c);
    return true;
  case Native::AddF: return mapFloat([&](size_t c) { return at(0, c).f + at(1, c).f; });
  case Native::SubF: return mapFloat([&](size_t c) { return at(0, c).f - at(1, c).f; });
  case Native::MulF: return mapFloat([&](size_t c) { return at(0, c).f * at(1, c).f; });
  case Native::NegF: return mapFloat([&](size_t c) { return -at(0, c).f; });
  case Native::CastF: return mapFloat([&](size_t c) { return at(0, c).f; });
  case Native::SIToFP:
    return mapFloat([&](size_t c) { return static_cast<double>(at(0, c).i); });
  default:
    return false;
  }
}

/// The memo key of an evaluateMask call: the mask size and every term's
/// nodes and masking types, each term closed by -2.
static std::vector<int64_t> maskMemoKey(ArrayRef<MaskTermNodes> terms,
                                        int64_t nq, int64_t nk,
                                        ArrayRef<int64_t> sizes) {
  std::vector<int64_t> memoKey = {nq, nk};
  llvm::append_range(memoKey, sizes);
  memoKey.push_back(-3);
  for (const MaskTermNodes &term : terms) {
    memoKey.push_back(term.value);
    memoKey.push_back(term.cond ? static_cast<int64_t>(*term.cond) : -1);
    memoKey.push_back(term.keepIfTrue);
    for (Type type : term.valueTypes)
      memoKey.push_back(reinterpret_cast<int64_t>(type.getAsOpaquePointer()));
    memoKey.push_back(-2);
  }
  return memoKey;
}

/// Bounds of a node's values over a set of (query, key) pairs: integers
/// (sign-extended, as Scalar holds them) in [lo, hi], floats in [flo, fhi]
/// (never NaN). Not `known`: no bounds (the pairs are evaluated one by one).
struct MaskEvaluator::Interval {
  bool known = false;
  int64_t lo = 0, hi = 0;
  double flo = 0, fhi = 0;

  static Interval point(Scalar x, Type type) {
    Interval r;
    if (isa<FloatType>(type)) {
      if (std::isnan(x.f))
        return r;
      r.flo = r.fhi = x.f;
    } else {
      r.lo = r.hi = x.i;
    }
    r.known = true;
    return r;
  }
  static Interval ints(int64_t lo, int64_t hi) {
    Interval r;
    r.known = true;
    r.lo = lo;
    r.hi = hi;
    return r;
  }
  static Interval floats(double lo, double hi) {
    Interval r;
    r.known = !std::isnan(lo) && !std::isnan(hi);
    r.flo = lo;
    r.fhi = hi;
    return r;
  }
  /// [lo, hi] in an integer type of `type`'s width where both fit it
  /// (no wrap-around between them).
  static Interval fitted(__int128 lo, __int128 hi, Type type) {
    unsigned width = widthOf(type);
    __int128 half = __int128(1) << (std::min(width, 64u) - 1);
    if (lo < -half || hi > half - 1)
      return {};
    return ints(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
  }
  static Interval hull(const Interval &a, const Interval &b) {
    if (!a.known || !b.known)
      return {};
    Interval r = a;
    r.lo = std::min(a.lo, b.lo);
    r.hi = std::max(a.hi, b.hi);
    r.flo = std::min(a.flo, b.flo);
    r.fhi = std::max(a.fhi, b.fhi);
    return r;
  }
  bool isPoint(Type type) const {
    return known && (isa<FloatType>(type) ? flo == fhi : lo == hi);
  }
  Scalar pointValue() const {
    Scalar x;
    x.i = lo;
    x.f = flo;
    return x;
  }
};

/// The values of one mask's nodes: position-free nodes once, row-only ones
/// per row, column-only ones per column, and the nodes of both (`both`, in
/// evaluation order) per column class of the row class at hand (`grid`).
/// For the evaluation by tiles, `colTiles` bounds each column-only node
/// over each tile of keys.
struct MaskEvaluator::MaskTables {
  int64_t nq, nk;
  llvm::DenseMap<unsigned, Scalar> constant;
  llvm::DenseMap<unsigned, std::vector<Scalar>> perRow, perCol;
  SmallVector<unsigned> both;
  Classes rows, cols;
  /// The column-only values at each column class's representative.
  llvm::DenseMap<unsigned, std::vector<Scalar>> colByClass;
  llvm::DenseMap<unsigned, unsigned> slot;
  std::vector<std::vector<Scalar>> grid;
  /// colTiles[n][l][b]: bounds of column-only node n over block b of
  /// level l, blocks of `tile << l` keys.
  llvm::DenseMap<unsigned, std::vector<std::vector<Interval>>> colTiles;
  /// The same of row-only nodes over blocks of rows.
  llvm::DenseMap<unsigned, std::vector<std::vector<Interval>>> rowTiles;
  /// repsBefore[r]: the row classes whose representative is before row r.
  std::vector<int64_t> repsBefore;

  size_t numCols() const { return cols.representative.size(); }
};

std::vector<unsigned>
MaskEvaluator::operandsFirst(ArrayRef<unsigned> roots) const {
  std::vector<unsigned> order;
  llvm::DenseSet<unsigned> seen;
  SmallVector<unsigned> stack(roots);
  while (!stack.empty()) {
    unsigned n = stack.pop_back_val();
    if (!seen.insert(n).second)
      continue;
    order.push_back(n);
    llvm::append_range(stack, nodes[n].operands);
  }
  // Nodes are interned after their operands, so ids are an operands-first
  // order.
  llvm::sort(order);
  return order;
}

LogicalResult MaskEvaluator::evaluateAxes(ArrayRef<unsigned> order,
                                          MaskTables &tables,
                                          std::string &why) {
  for (unsigned n : order) {
    const Node &node = nodes[n];
    if (node.deps & kBatch) {
      why = "the mask depends on the batch/head index";
      return failure();
    }
    if (node.deps == (kRow | kCol)) {
      tables.both.push_back(n);
      continue;
    }
    SmallVector<Scalar, 3> args(node.operands.size());
    if (node.deps == 0) {
      for (auto [k, operand] : llvm::enumerate(node.operands))
        args[k] = tables.constant[operand];
      FailureOr<Scalar> value = apply(n, args, why);
      if (failed(value))
        return failure();
      tables.constant[n] = *value;
      continue;
    }
    bool isRow = node.deps == kRow;
    int64_t count = isRow ? tables.nq : tables.nk;
    auto &table = isRow ? tables.perRow : tables.perCol;
    std::vector<Scalar> values(count);
    for (int64_t p = 0; p < count; ++p) {
      if (node.kind == Kind::Row || node.kind == Kind::Col) {
        values[p].i = p;
        continue;
      }
      for (auto [k, operand] : llvm::enumerate(node.operands))
        args[k] = nodes[operand].deps ? table[operand][p]
                                      : tables.constant[operand];
      FailureOr<Scalar> value = apply(n, args, why);
      if (failed(value)) {
        why += llvm::formatv(" (at {0} {1})", isRow ? "query" : "key", p);
        return failure();
      }
      values[p] = *value;
    }
    table[n] = std::move(values);
  }
  return success();
}

void MaskEvaluator::classifyPositions(ArrayRef<unsigned> roots,
                                      MaskTables &tables) {
  // Rows (columns) that agree on every row-only (column-only) value that the
  // rest reads see the same keys.
  SmallVector<const std::vector<Scalar> *> rowFrontier, colFrontier;
  SmallVector<bool> rowFloat, colFloat;
  llvm::DenseSet<unsigned> frontierSeen;
  auto addFrontier = [&](unsigned operand) {
    const Node &node = nodes[operand];
    if (node.deps == (kRow | kCol) || node.deps == 0 ||
        !frontierSeen.insert(operand).second)
      return;
    bool isFloat = isa<FloatType>(node.type);
    if (node.deps == kRow) {
      rowFrontier.push_back(&tables.perRow[operand]);
      rowFloat.push_back(isFloat);
    } else {
      colFrontier.push_back(&tables.perCol[operand]);
      colFloat.push_back(isFloat);
    }
  };
  for (unsigned n : tables.both)
    for (unsigned operand : nodes[n].operands)
      addFrontier(operand);
  for (unsigned root : roots)
    addFrontier(root);
  tables.rows = classify(tables.nq, rowFrontier, rowFloat);
  tables.cols = classify(tables.nk, colFrontier, colFloat);

  for (auto [k, n] : llvm::enumerate(tables.both))
    tables.slot[n] = k;
  tables.grid.assign(tables.both.size(),
                     std::vector<Scalar>(tables.numCols()));
  for (auto &[n, values] : tables.perCol) {
    std::vector<Scalar> &byClass = tables.colByClass[n];
    for (int64_t rep : tables.cols.representative)
      byClass.push_back(values[rep]);
  }
}

/// Where node `n`'s values for query `row` lie: one value for the whole row,
/// or one per column class.
MaskEvaluator::Source MaskEvaluator::sourceOf(const MaskTables &tables,
                                              unsigned n, int64_t row) const {
  switch (nodes[n].deps) {
  case 0: return {&tables.constant.find(n)->second, 0};
  case kRow: return {&tables.perRow.find(n)->second[row], 0};
  case kCol: return {tables.colByClass.find(n)->second.data(), 1};
  default: return {tables.grid[tables.slot.find(n)->second].data(), 1};
  }
}

LogicalResult MaskEvaluator::evaluateGrid(MaskTables &tables, int64_t row,
                                          std::string &why) {
  size_t numCols = tables.numCols();
  for (auto [k, n] : llvm::enumerate(tables.both)) {
    const Node &node = nodes[n];
    SmallVector<Source, 3> sources;
    for (unsigned operand : node.operands)
      sources.push_back(sourceOf(tables, operand, row));
    SmallVector<Scalar, 3> args(sources.size());
    std::vector<Scalar> &out = tables.grid[k];
    if (applyColumns(n, sources, numCols, out.data()))
      continue;
    for (size_t c = 0; c < numCols; ++c) {
      for (auto [a, source] : llvm::enumerate(sources))
        args[a] = source.read(c);
      FailureOr<Scalar> value = apply(n, args, why);
      if (failed(value)) {
        why += llvm::formatv(" (at query {0}, key {1})", row,
                             tables.cols.representative[c]);
        return failure();
      }
      out[c] = *value;
    }
  }
  return success();
}

/// Whether `key` is seen by `row` given each term's value (and condition):
/// hidden by a value at most `hiding`, kept by a zero or by its condition;
/// any other value is an error.
static FailureOr<bool> keySeen(ArrayRef<MaskTermNodes> terms,
                               ArrayRef<double> hiding,
                               function_ref<double(size_t)> valueOf,
                               function_ref<int64_t(size_t)> condOf,
                               int64_t row, int64_t key, std::string &why) {
  bool seen = true;
  for (auto [t, term] : llvm::enumerate(terms)) {
    if (term.cond && (condOf(t) != 0) == term.keepIfTrue)
      continue;
    double value = valueOf(t);
    // -inf, or at most half the lowest finite value of the term's types:
    // hidden.
    if (value <= hiding[t]) {
      seen = false;
      continue;
    }
    if (term.cond || value != 0.0) {
      why = llvm::formatv("the mask value at (query {0}, key {1}) is {2}, "
                          "neither 0 nor -inf (or at most half the "
                          "lowest finite value)",
                          row, key, value);
      return failure();
    }
  }
  return seen;
}

/// The largest value that hides a key, for each term (the largest over the
/// types its value passes through).
SmallVector<double, 2>
mlir::swba::mask_nodes::hidingValues(ArrayRef<MaskTermNodes> terms) {
  SmallVector<double, 2> hiding;
  for (const MaskTermNodes &term : terms) {
    hiding.push_back(-INFINITY);
    for (Type type : term.valueTypes)
      hiding.back() = std::max(hiding.back(), hidingThreshold(type));
  }
  return hiding;
}

LogicalResult MaskEvaluator::markVisible(ArrayRef<MaskTermNodes> terms,
                                         ArrayRef<double> hiding,
                                         const MaskTables &tables, int64_t row,
                                         std::vector<char> &visible,
                                         std::string &why) {
  SmallVector<Source, 2> valueSources, condSources;
  for (const MaskTermNodes &term : terms) {
    if (!isa<FloatType>(nodes[term.value].type)) {
      why = "the mask is not a float";
      return failure();
    }
    valueSources.push_back(sourceOf(tables, term.value, row));
    condSources.push_back(term.cond ? sourceOf(tables, *term.cond, row)
                                    : Source{nullptr, 0});
  }
  for (size_t c = 0; c < tables.numCols(); ++c) {
    FailureOr<bool> seen = keySeen(
        terms, hiding, [&](size_t t) { return valueSources[t].read(c).f; },
        [&](size_t t) { return condSources[t].read(c).i; }, row,
        tables.cols.representative[c], why);
    if (failed(seen))
      return failure();
    visible[c] = *seen;
  }
  return success();
}

namespace {
/// The keys one query row sees, which must be one contiguous range, as its
/// keys are decided in order (one at a time or a run at once): `lo` once a
/// key is seen, `hi` once one after it is not.
struct RangeBuilder {
  int64_t row;
  int64_t lo = -1, hi = -1;

  /// Keys from `first` on are seen (or not).
  LogicalResult take(int64_t first, bool seen, std::string &why) {
    if (!seen) {
      if (lo >= 0 && hi < 0)
        hi = first;
      return success();
    }
    if (hi >= 0) {
      why = llvm::formatv("query row {0} sees keys [{1}, {2}) and key {3}: "
                          "not one contiguous range",
                          row, lo, hi, first);
      return failure();
    }
    if (lo < 0)
      lo = first;
    return success();
  }
  FailureOr<KeyRange> finish(int64_t nk, std::string &why) const {
    if (lo < 0) {
      why = llvm::formatv("query row {0} sees no key", row);
      return failure();
    }
    return KeyRange{lo, hi < 0 ? nk : hi};
  }
};
} // namespace

/// The keys query `row` sees, which must be one contiguous range; `visible`
/// is indexed by column class.
static FailureOr<KeyRange> contiguousRange(ArrayRef<char> visible,
                                           const Classes &cols, int64_t nk,
                                           int64_t row, std::string &why) {
  RangeBuilder range{row};
  for (int64_t j = 0; j < nk; ++j)
    if (failed(range.take(j, visible[cols.classOf[j]], why)))
      return failure();
  return range.finish(nk, why);
}

//===----------------------------------------------------------------------===//
// Bounds over a tile of keys
//===----------------------------------------------------------------------===//

MaskEvaluator::Interval MaskEvaluator::bound(unsigned n,
                                             ArrayRef<Interval> args) {
  const Node &node = nodes[n];
  Interval unknown;
  for (const Interval &arg : args)
    if (!arg.known)
      return unknown;
  // Operands that are each one value: the node's own value, exactly.
  bool allPoints = llvm::all_of(llvm::enumerate(args), [&](auto arg) {
    return arg.value().isPoint(nodes[node.operands[arg.index()]].type);
  });
  if (allPoints) {
    SmallVector<Scalar, 3> values;
    for (const Interval &arg : args)
      values.push_back(arg.pointValue());
    std::string ignored;
    FailureOr<Scalar> value = apply(n, values, ignored);
    return succeeded(value) ? Interval::point(*value, node.type) : unknown;
  }
  Type type = node.type;
  switch (node.kind) {
  case Kind::Div:
    if (node.c > 0)
      return Interval::ints(llvm::divideFloorSigned(args[0].lo, node.c),
                            llvm::divideFloorSigned(args[0].hi, node.c));
    return unknown;
  case Kind::Rem: {
    if (node.c <= 0)
      return unknown;
    int64_t q = llvm::divideFloorSigned(args[0].lo, node.c);
    if (q != llvm::divideFloorSigned(args[0].hi, node.c))
      return Interval::ints(0, node.c - 1);
    return Interval::ints(args[0].lo - q * node.c, args[0].hi - q * node.c);
  }
  case Kind::Linear: {
    __int128 lo = node.c, hi = node.c;
    for (auto [arg, coeff] : llvm::zip(args, node.coeffs)) {
      __int128 a = __int128(arg.lo) * coeff, b = __int128(arg.hi) * coeff;
      lo += std::min(a, b);
      hi += std::max(a, b);
    }
    return Interval::fitted(lo, hi, IndexType::get(context));
  }
  case Kind::Op:
    break;
  default:
    return unknown;
  }
  // Monotone non-decreasing unary ops that the folder evaluates: the values
  // at the bounds, as the pair-by-pair path computes them.
  if (node.native == Native::None &&
      isa<math::FloorOp, math::CeilOp, math::RoundOp, math::RoundEvenOp,
          math::TruncOp>(node.op)) {
    std::string ignored;
    FailureOr<Scalar> lo = apply(n, args[0].pointValue(), ignored);
    Scalar hiArg;
    hiArg.f = args[0].fhi;
    FailureOr<Scalar> hi = apply(n, hiArg, ignored);
    if (failed(lo) || failed(hi))
      return unknown;
    return Interval::floats(lo->f, hi->f);
  }
  auto truth = [](bool always, bool never) {
    return always  ? Interval::ints(-1, -1)
           : never ? Interval::ints(0, 0)
                   : Interval::ints(-1, 0);
  };
  // [lo, hi] read as unsigned numbers of `t`'s width, where that is one
  // interval (no wrap between them).
  auto asUnsignedRange =
      [](const Interval &x,
         Type t) -> std::optional<std::pair<uint64_t, uint64_t>> {
    if ((x.lo < 0) != (x.hi < 0))
      return std::nullopt;
    return std::make_pair(asUnsigned(x.lo, t), asUnsigned(x.hi, t));
  };
  const Interval *a = args.data();
  switch (node.native) {
  case Native::AddI:
    return Interval::fitted(__int128(a[0].lo) + a[1].lo,
                            __int128(a[0].hi) + a[1].hi, type);
  case Native::SubI:
    return Interval::fitted(__int128(a[0].lo) - a[1].hi,
                            __int128(a[0].hi) - a[1].lo, type);
  case Native::MulI: {
    __int128 p[] = {__int128(a[0].lo) * a[1].lo, __int128(a[0].lo) * a[1].hi,
                    __int128(a[0].hi) * a[1].lo, __int128(a[0].hi) * a[1].hi};
    return Interval::fitted(*std::min_element(p, p + 4),
                            *std::max_element(p, p + 4), type);
  }
  case Native::MinSI:
    return Interval::ints(std::min(a[0].lo, a[1].lo),
                          std::min(a[0].hi, a[1].hi));
  case Native::MaxSI:
    return Interval::ints(std::max(a[0].lo, a[1].lo),
                          std::max(a[0].hi, a[1].hi));
  case Native::AndI:
  case Native::OrI:
  case Native::XOrI: {
    if (widthOf(type) != 1)
      return unknown;
    // i1: true is -1; [-1, 0] is either.
    bool t0 = a[0].lo == -1 && a[0].hi == -1, f0 = a[0].lo == 0 && a[0].hi == 0;
    bool t1 = a[1].lo == -1 && a[1].hi == -1, f1 = a[1].lo == 0 && a[1].hi == 0;
    if (node.native == Native::AndI)
      return truth(t0 && t1, f0 || f1);
    if (node.native == Native::OrI)
      return truth(t0 || t1, f0 && f1);
    return Interval::ints(-1, 0);
  }
  case Native::DivSI:
  case Native::FloorDivSI: {
    if (!a[1].isPoint(type) || a[1].lo <= 0)
      return unknown;
    int64_t c = a[1].lo;
    if (node.native == Native::DivSI)
      return Interval::ints(a[0].lo / c, a[0].hi / c);
    return Interval::ints(llvm::divideFloorSigned(a[0].lo, c),
                          llvm::divideFloorSigned(a[0].hi, c));
  }
  case Native::RemSI: {
    if (!a[1].isPoint(type) || a[1].lo <= 0 || a[0].lo < 0)
      return unknown;
    int64_t c = a[1].lo;
    if (a[0].lo / c != a[0].hi / c)
      return Interval::ints(0, c - 1);
    return Interval::ints(a[0].lo % c, a[0].hi % c);
  }
  case Native::DivUI:
  case Native::RemUI: {
    // Non-negative operands read the same unsigned; a positive constant
    // divisor keeps the quotient monotone.
    if (!a[1].isPoint(type) || a[1].lo <= 0 || a[0].lo < 0)
      return unknown;
    int64_t c = a[1].lo;
    if (node.native == Native::DivUI)
      return Interval::ints(a[0].lo / c, a[0].hi / c);
    if (a[0].lo / c != a[0].hi / c)
      return Interval::ints(0, c - 1);
    return Interval::ints(a[0].lo % c, a[0].hi % c);
  }
  case Native::CmpI: {
    using P = arith::CmpIPredicate;
    P p = cast<arith::CmpIOp>(node.op).getPredicate();
    Type operandType = node.op->getOperand(0).getType();
    int64_t lo0 = a[0].lo, hi0 = a[0].hi, lo1 = a[1].lo, hi1 = a[1].hi;
    if (p == P::ult || p == P::ule || p == P::ugt || p == P::uge) {
      auto u0 = asUnsignedRange(a[0], operandType);
      auto u1 = asUnsignedRange(a[1], operandType);
      if (!u0 || !u1)
        return unknown;
      auto cmp = [&](bool strict, uint64_t l0, uint64_t h0, uint64_t l1,
                     uint64_t h1) {
        // x < y (strict) or x <= y over the ranges.
        return strict ? truth(h0 < l1, l0 >= h1) : truth(h0 <= l1, l0 > h1);
      };
      auto [l0, h0] = *u0;
      auto [l1, h1] = *u1;
      switch (p) {
      case P::ult:
        return cmp(true, l0, h0, l1, h1);
      case P::ule:
        return cmp(false, l0, h0, l1, h1);
      case P::ugt:
        return cmp(true, l1, h1, l0, h0);
      default:
        return cmp(false, l1, h1, l0, h0);
      }
    }
    switch (p) {
    case P::eq:
      return truth(false, hi0 < lo1 || hi1 < lo0);
    case P::ne:
      return truth(hi0 < lo1 || hi1 < lo0, false);
    case P::slt:
      return truth(hi0 < lo1, lo0 >= hi1);
    case P::sle:
      return truth(hi0 <= lo1, lo0 > hi1);
    case P::sgt:
      return truth(lo0 > hi1, hi0 <= lo1);
    case P::sge:
      return truth(lo0 >= hi1, hi0 < lo1);
    default:
      return unknown;
    }
  }
  case Native::SExt:
    // sign extension keeps the value; truncation keeps it where it fits.
    return Interval::fitted(a[0].lo, a[0].hi, type);
  case Native::ZExt: {
    auto u = asUnsignedRange(a[0], node.op->getOperand(0).getType());
    if (!u || u->second > uint64_t(INT64_MAX))
      return unknown;
    return Interval::fitted(u->first, u->second, type);
  }
  case Native::SIToFP:
    return Interval::floats(roundTo(static_cast<double>(a[0].lo), type),
                            roundTo(static_cast<double>(a[0].hi), type));
  case Native::UIToFP: {
    auto u = asUnsignedRange(a[0], node.op->getOperand(0).getType());
    if (!u)
      return unknown;
    return Interval::floats(roundTo(static_cast<double>(u->first), type),
                            roundTo(static_cast<double>(u->second), type));
  }
  case Native::CastF:
    return Interval::floats(roundTo(a[0].flo, type), roundTo(a[0].fhi, type));
  case Native::Select: {
    bool isTrue = a[0].lo == -1 && a[0].hi == -1;
    bool isFalse = a[0].lo == 0 && a[0].hi == 0;
    if (isTrue)
      return a[1];
    if (isFalse)
      return a[2];
    if (isa<FloatType>(type))
      return Interval::floats(std::min(a[1].flo, a[2].flo),
                              std::max(a[1].fhi, a[2].fhi));
    return Interval::ints(std::min(a[1].lo, a[2].lo),
                          std::max(a[1].hi, a[2].hi));
  }
  case Native::NegF:
    return Interval::floats(-a[0].fhi, -a[0].flo);
  case Native::MaximumF:
  case Native::MaxNumF:
    return Interval::floats(std::max(a[0].flo, a[1].flo),
                            std::max(a[0].fhi, a[1].fhi));
  case Native::MinimumF:
  case Native::MinNumF:
    return Interval::floats(std::min(a[0].flo, a[1].flo),
                            std::min(a[0].fhi, a[1].fhi));
  case Native::AddF:
  case Native::SubF: {
    // Rounding is monotone; infinite bounds could meet as inf - inf.
    for (int k = 0; k < 2; ++k)
      if (!std::isfinite(a[k].flo) || !std::isfinite(a[k].fhi))
        return unknown;
    if (node.native == Native::AddF)
      return Interval::floats(roundTo(a[0].flo + a[1].flo, type),
                              roundTo(a[0].fhi + a[1].fhi, type));
    return Interval::floats(roundTo(a[0].flo - a[1].fhi, type),
                            roundTo(a[0].fhi - a[1].flo, type));
  }
  case Native::MulF:
  case Native::DivF: {
    // Over a box a product, and a quotient whose divisor keeps its sign,
    // is extreme at the corners; rounding (here as in the pair-by-pair
    // path: the double result rounded to the type) keeps the order.
    for (int k = 0; k < 2; ++k)
      if (!std::isfinite(a[k].flo) || !std::isfinite(a[k].fhi))
        return unknown;
    bool divide = node.native == Native::DivF;
    if (divide && !(a[1].flo > 0 || a[1].fhi < 0))
      return unknown;
    double corners[4];
    int c = 0;
    for (double x : {a[0].flo, a[0].fhi})
      for (double y : {a[1].flo, a[1].fhi})
        corners[c++] = divide ? x / y : x * y;
    return Interval::floats(
        roundTo(*std::min_element(corners, corners + 4), type),
        roundTo(*std::max_element(corners, corners + 4), type));
  }
  case Native::CmpF: {
    using P = arith::CmpFPredicate;
    // No NaN in bounds: ordered and unordered predicates agree.
    double lo0 = a[0].flo, hi0 = a[0].fhi, lo1 = a[1].flo, hi1 = a[1].fhi;
    switch (cast<arith::CmpFOp>(node.op).getPredicate()) {
    case P::OLT:
    case P::ULT:
      return truth(hi0 < lo1, lo0 >= hi1);
    case P::OLE:
    case P::ULE:
      return truth(hi0 <= lo1, lo0 > hi1);
    case P::OGT:
    case P::UGT:
      return truth(lo0 > hi1, hi0 <= lo1);
    case P::OGE:
    case P::UGE:
      return truth(lo0 >= hi1, hi0 < lo1);
    case P::OEQ:
    case P::UEQ:
      return truth(false, hi0 < lo1 || hi1 < lo0);
    case P::ONE:
    case P::UNE:
      return truth(hi0 < lo1 || hi1 < lo0, false);
    default:
      return unknown;
    }
  }
  default:
    return unknown;
  }
}

MaskEvaluator::Verdict MaskEvaluator::decideBlock(
    ArrayRef<MaskTermNodes> terms, ArrayRef<double> hiding,
    const MaskTables &tables, function_ref<Interval(unsigned)> rowBound,
    int64_t level, int64_t block, std::vector<Interval> &bounds) {
  auto boundOf = [&](unsigned m) -> Interval {
    switch (nodes[m].deps) {
    case 0:
      return Interval::point(tables.constant.find(m)->second, nodes[m].type);
    case kRow:
      return rowBound(m);
    case kCol:
      return tables.colTiles.find(m)->second[level][block];
    default:
      return bounds[tables.slot.find(m)->second];
    }
  };
  for (auto [k, n] : llvm::enumerate(tables.both)) {
    SmallVector<Interval, 3> args;
    for (unsigned operand : nodes[n].operands)
      args.push_back(boundOf(operand));
    bounds[k] = bound(n, args);
  }
  Verdict verdict = Verdict::Kept;
  for (auto [k, term] : llvm::enumerate(terms)) {
    if (term.cond) {
      Interval cond = boundOf(*term.cond);
      if (!cond.known || cond.lo != cond.hi)
        return Verdict::Undecided;
      if ((cond.lo != 0) == term.keepIfTrue)
        continue;
    }
    Interval value = boundOf(term.value);
    if (value.known && value.fhi <= hiding[k])
      verdict = Verdict::Hidden;
    else if (term.cond || !value.known || value.flo != 0.0 || value.fhi != 0.0)
      return Verdict::Undecided;
  }
  return verdict;
}

FailureOr<KeyRange> MaskEvaluator::rowRangeByTiles(
    ArrayRef<MaskTermNodes> terms, ArrayRef<double> hiding,
    const MaskTables &tables, int64_t row, int64_t tile, int64_t levels,
    SharedVerdicts &shared, int64_t &evaluations, std::string &why) {
  int64_t nq = tables.nq, nk = tables.nk;
  std::vector<Interval> bounds(tables.both.size());
  std::vector<Scalar> values(tables.both.size());
  auto rowBound = [&](unsigned m) {
    return Interval::point(tables.perRow.find(m)->second[row], nodes[m].type);
  };
  auto valueOf = [&](unsigned m, int64_t key) -> Scalar {
    switch (nodes[m].deps) {
    case 0:
      return tables.constant.find(m)->second;
    case kRow:
      return tables.perRow.find(m)->second[row];
    case kCol:
      return tables.perCol.find(m)->second[key];
    default:
      return values[tables.slot.find(m)->second];
    }
  };
  RangeBuilder range{row};
  // Keys [first, last) one by one.
  auto keyByKey = [&](int64_t first, int64_t last) -> LogicalResult {
    evaluations += last - first;
    for (int64_t key = first; key < last; ++key) {
      for (auto [k, n] : llvm::enumerate(tables.both)) {
        SmallVector<Scalar, 3> args;
        for (unsigned operand : nodes[n].operands)
          args.push_back(valueOf(operand, key));
        FailureOr<Scalar> value = apply(n, args, why);
        if (failed(value)) {
          why += llvm::formatv(" (at query {0}, key {1})", row, key);
          return failure();
        }
        values[k] = *value;
      }
      FailureOr<bool> seen = keySeen(
          terms, hiding,
          [&](size_t k) { return valueOf(terms[k].value, key).f; },
          [&](size_t k) { return valueOf(*terms[k].cond, key).i; }, row, key,
          why);
      if (failed(seen) || failed(range.take(key, *seen, why)))
        return failure();
    }
    return success();
  };
  // Block `block` of `level`: decided whole, or split in two, down to
  // single tiles that are evaluated key by key.
  std::function<LogicalResult(int64_t, int64_t)> visit =
      [&](int64_t level, int64_t block) -> LogicalResult {
    int64_t first = (tile << level) * block;
    if (first >= nk)
      return success();
    int64_t last = std::min(first + (tile << level), nk);
    int64_t rowBlock = row / (tile << level);
    int64_t r0 = rowBlock * (tile << level);
    int64_t r1 = std::min(r0 + (tile << level), nq);
    Verdict verdict;
    if (tables.repsBefore[r1] - tables.repsBefore[r0] >= 2) {
      auto [it, inserted] = shared[level].try_emplace(
          (uint64_t(rowBlock) << 32) | uint64_t(block), Verdict::Undecided);
      if (inserted) {
        ++evaluations;
        auto blockBound = [&](unsigned m) {
          return tables.rowTiles.find(m)->second[level][rowBlock];
        };
        it->second = decideBlock(terms, hiding, tables, blockBound, level,
                                 block, bounds);
      }
      verdict = it->second;
    } else {
      ++evaluations;
      verdict =
          decideBlock(terms, hiding, tables, rowBound, level, block, bounds);
    }
    if (verdict != Verdict::Undecided)
      return range.take(first, verdict == Verdict::Kept, why);
    if (level == 0)
      return keyByKey(first, last);
    if (failed(visit(level - 1, 2 * block)))
      return failure();
    return visit(level - 1, 2 * block + 1);
  };
  int64_t top = levels - 1;
  for (int64_t block = 0; (tile << top) * block < nk; ++block)
    if (failed(visit(top, block)))
      return failure();
  return range.finish(nk, why);
}

/// Bounds of `values` over blocks of `tile` positions, then of blocks
/// twice as large, `levels` sizes in all.
std::vector<std::vector<MaskEvaluator::Interval>>
MaskEvaluator::pyramid(ArrayRef<Scalar> values, Type type, int64_t tile,
                       int64_t levels) {
  std::vector<std::vector<Interval>> result;
  std::vector<Interval> base;
  int64_t count = values.size();
  for (int64_t first = 0; first < count; first += tile) {
    Interval b = Interval::point(values[first], type);
    for (int64_t p = first + 1; b.known && p < std::min(first + tile, count);
         ++p)
      b = Interval::hull(b, Interval::point(values[p], type));
    base.push_back(b);
  }
  result.push_back(std::move(base));
  for (int64_t l = 1; l < levels; ++l) {
    const std::vector<Interval> &below = result.back();
    std::vector<Interval> level;
    for (size_t b = 0; b < below.size(); b += 2)
      level.push_back(b + 1 < below.size()
                          ? Interval::hull(below[b], below[b + 1])
                          : below[b]);
    result.push_back(std::move(level));
  }
  return result;
}

FailureOr<const MaskRows *>
MaskEvaluator::evaluateMask(ArrayRef<MaskTermNodes> terms, int64_t nq,
                            int64_t nk, int64_t tile, int64_t maxPairs,
                            std::string &why) {
  std::vector<int64_t> memoKey = maskMemoKey(terms, nq, nk, sizeValues);
  if (auto it = maskMemo.find(memoKey); it != maskMemo.end())
    return it->second.get();

  SmallVector<unsigned> roots;
  for (const MaskTermNodes &term : terms) {
    roots.push_back(term.value);
    if (term.cond)
      roots.push_back(*term.cond);
  }
  MaskTables tables;
  tables.nq = nq;
  tables.nk = nk;
  if (failed(evaluateAxes(operandsFirst(roots), tables, why)))
    return failure();
  classifyPositions(roots, tables);

  auto masks = std::make_unique<MaskRows>();
  masks->rowClass = tables.rows.classOf;
  SmallVector<double, 2> hiding = hidingValues(terms);
  int64_t rowClasses = tables.rows.representative.size();
  if (tile > 0 && static_cast<int64_t>(tables.numCols()) > 4 * tile) {
    // Many column classes: each row's keys a tile at a time, the
    // column-only values bounded over each tile once.
    int64_t levels = 1;
    while ((tile << levels) <= std::max<int64_t>(1024, tile) &&
           (tile << levels) <= nk)
      ++levels;
    for (auto &[n, values] : tables.perCol)
      tables.colTiles[n] = pyramid(values, nodes[n].type, tile, levels);
    // Rows a block at a time too: where a block of rows (as many as a
    // level's keys) holds two or more row classes, its key blocks are
    // decided for all of its rows once, by bounds over the rows' values
    // (on a token window, every block but those along the window's edges).
    const std::vector<int64_t> &reps = tables.rows.representative;
    tables.repsBefore.assign(nq + 1, 0);
    for (int64_t rep : reps)
      ++tables.repsBefore[rep + 1];
    for (int64_t r = 0; r < nq; ++r)
      tables.repsBefore[r + 1] += tables.repsBefore[r];
    for (auto &[n, values] : tables.perRow)
      tables.rowTiles[n] = pyramid(values, nodes[n].type, tile, levels);
    SharedVerdicts shared(levels);
    int64_t evaluations = 0;
    for (int64_t row : reps) {
      FailureOr<KeyRange> range = rowRangeByTiles(
          terms, hiding, tables, row, tile, levels, shared, evaluations, why);
      if (failed(range))
        return failure();
      if (evaluations > maxPairs) {
        why = llvm::formatv("the mask takes more than max-mask-pairs={0} "
                            "evaluations ({1} rows of {2} keys)",
                            maxPairs, rowClasses, nk);
        return failure();
      }
      masks->ranges.push_back(*range);
    }
    auto [it, inserted] = maskMemo.try_emplace(memoKey, std::move(masks));
    return it->second.get();
  }
  if (rowClasses * static_cast<int64_t>(tables.numCols()) > maxPairs) {
    why = llvm::formatv("the mask takes more than max-mask-pairs={0} "
                        "evaluations ({1} rows of {2} key classes)",
                        maxPairs, rowClasses, tables.numCols());
    return failure();
  }

  // Only the nodes of both are evaluated per row class, over the column
  // classes.
  std::vector<char> visible(tables.numCols());
  for (int64_t row : tables.rows.representative) {
    if (failed(evaluateGrid(tables, row, why)) ||
        failed(markVisible(terms, hiding, tables, row, visible, why)))
      return failure();
    FailureOr<KeyRange> range =
        contiguousRange(visible, tables.cols, nk, row, why);
    if (failed(range))
      return failure();
    masks->ranges.push_back(*range);
  }
  auto [it, inserted] = maskMemo.try_emplace(memoKey, std::move(masks));
  return it->second.get();
}
