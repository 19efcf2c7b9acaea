//===- MaskNodes.h - The nodes of MaskEvaluator's graphs --------*- C++ -*-===//
//
// Internal to lib/Dialect/SWBA/Transforms: the scalar nodes that
// MaskEvaluator builds from a mask's IR, shared by its evaluation at static
// sizes (MaskEvaluator.cpp) and its proof for every size
// (MaskEvaluatorSymbolic.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKNODES_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKNODES_H

#include "MaskEvaluator.h"

namespace mlir::swba {
namespace mask_nodes {
/// Dependence bits of a node.
enum : uint8_t { kRow = 1, kCol = 2, kBatch = 4 };

/// The ops evaluated natively (exactly as their folders would, but without
/// building attributes); everything else goes through `Operation::fold`.
enum class Native : uint8_t {
  None,
  AddF,
  SubF,
  MulF,
  DivF,
  NegF,
  MaximumF,
  MaxNumF,
  MinimumF,
  MinNumF,
  CastF,
  SIToFP,
  UIToFP,
  CmpF,
  Select,
  AddI,
  SubI,
  MulI,
  AndI,
  OrI,
  XOrI,
  MinSI,
  MaxSI,
  DivSI,
  FloorDivSI,
  DivUI,
  RemUI,
  RemSI,
  CmpI,
  SExt,
  ZExt,
  Log16,
};

/// The largest value that hides a key, for each term (the largest over the
/// types its value passes through).
SmallVector<double, 2> hidingValues(ArrayRef<MaskTermNodes> terms);
} // namespace mask_nodes

/// Size: a dynamic size of the attention's tensors (a class of sizes equal
/// at run time), `c` its symbol; its value is `sizeValues[c]` when the mask
/// is evaluated, a variable when it is proven for every size.
enum class MaskEvaluator::Kind : uint8_t {
  Const,
  Row,
  Col,
  Batch,
  Op,
  Read,
  Div,
  Rem,
  Linear,
  Size
};

struct MaskEvaluator::ConstantData {
  bool isFloat;
  SmallVector<int64_t> shape;
  std::vector<double> f;
  std::vector<int64_t> i;
};

struct MaskEvaluator::Node {
  Kind kind;
  Type type;
  uint8_t deps = 0;
  SmallVector<unsigned, 3> operands;
  Scalar value;                                         // Const
  Operation *op = nullptr;                              // Op: a detached copy
  mask_nodes::Native native = mask_nodes::Native::None; // Op
  const ConstantData *data = nullptr;                   // Read
  int64_t c = 0;                  // Div/Rem divisor, Linear offset, Size symbol
  SmallVector<int64_t, 3> coeffs; // Linear
};

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKNODES_H
