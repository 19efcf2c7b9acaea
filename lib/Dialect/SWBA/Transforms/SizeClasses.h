//===- SizeClasses.h - Which dynamic sizes are equal -------------*- C++
//-*-===//
//
// Internal to lib/Dialect/SWBA/Transforms: where attention's tensors have
// dynamic sizes, which of them are equal wherever the block that computes
// them runs. A dynamic dimension is traced to where its size comes from
// (tensor.empty's operands, a destination's sizes, expand_shape's output
// shape, tensor.dim); sizes are merged where a linalg op indexes them with
// one loop (its operands' dimensions must agree) and where a cf.assert
// checks their equality (torch-mlir writes those before its broadcasts and
// contractions). Each class is a symbol for MaskEvaluator, or a constant
// where a class meets a static size.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H

#include "MaskEvaluator.h"

#include "mlir/IR/Block.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"

#include <optional>
#include <variant>

namespace mlir::swba {

/// The one dimension of reshape group `group` of `type` whose size is not
/// 1 (-1 where all are 1), or std::nullopt where there are several.
std::optional<int64_t> soleNonUnitDim(RankedTensorType type,
                                      ArrayRef<int64_t> group);

class SizeClasses {
public:
  /// The classes of the sizes that the ops of `block` read and assert
  /// (none without a block: static sizes only).
  explicit SizeClasses(Block *block);

  /// Dimension `d` of `tensor`: a constant, a symbol, or std::nullopt where
  /// its size cannot be traced.
  std::optional<SizeRef> dimSize(Value tensor, int64_t d);
  /// `value` where it is a size (a tensor.dim or a cast of one).
  std::optional<SizeRef> scalarSize(Value value);
  unsigned numSymbols() const { return symbols.size(); }

private:
  /// A dynamic dimension that nothing traced further: (tensor, dim).
  using Atom = std::pair<Value, int64_t>;
  using Size = std::variant<int64_t, Atom>;
  std::optional<Size> traceDim(Value tensor, int64_t d, int depth = 0);
  std::optional<Size> traceScalar(Value value, int depth = 0);
  /// Element `index` of `tensor` (ONNX's shapes are tensors: a size is an
  /// element of a tensor.from_elements picked through reshapes, slices and
  /// a gather's linalg.generic at a constant index).
  std::optional<Size> traceElement(Value tensor, ArrayRef<int64_t> index,
                                   int depth);
  /// The value of `value` in the body of a linalg op at loop indices
  /// `loops`, where it is a constant there (an index into a shape).
  std::optional<int64_t> constantIn(Value value, ArrayRef<int64_t> loops,
                                    int depth);
  unsigned find(unsigned id);
  unsigned idOf(const Atom &atom);
  void unite(const Size &a, const Size &b);
  std::optional<SizeRef> refOf(const std::optional<Size> &size);

  llvm::DenseMap<Atom, unsigned> ids;
  SmallVector<unsigned> parent;
  /// The static size a class met, by root.
  llvm::DenseMap<unsigned, int64_t> constants;
  /// Symbol of each root that was asked for.
  llvm::DenseMap<unsigned, unsigned> symbolOf;
  SmallVector<unsigned> symbols;
};

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H
