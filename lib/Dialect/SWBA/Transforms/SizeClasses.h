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
// contractions). A size may be a constant multiple of another (a collapse
// of a dynamic batch with static heads, torch-mlir's `muli` and `divsi` of
// sizes): classes relate their members by rational factors, so that 2 B =
// 2 B' makes B and B' one class. Each class is a symbol for MaskEvaluator,
// or a constant where a class meets a static size.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H

#include "MaskEvaluator.h"

#include "mlir/IR/Block.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

#include <map>
#include <optional>
#include <tuple>

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
  unsigned numSymbols() const { return numSymbolsMade; }
  /// For each class that a comparison took to be at least 1 (the domain of
  /// the mask's proof, SymbolicSizes), one member for which `available`
  /// holds, where there is one: (tensor, dim), or (scalar, -1). A member is
  /// a positive multiple of its class, so it is at least 1 where the class
  /// is.
  SmallVector<std::pair<Value, int64_t>>
  positiveSizes(function_ref<bool(std::pair<Value, int64_t>)> available);

  /// A size as a factor `num / den` of the size of class `root`, or the
  /// constant `num` (no root). Equal where the sizes are equal at run time.
  struct Scaled {
    int64_t num = 0, den = 1;
    std::optional<unsigned> root = std::nullopt;
    bool operator==(const Scaled &other) const {
      return num == other.num && den == other.den && root == other.root;
    }
  };
  /// Dimension `d` of `tensor` as a factor of its class, or std::nullopt
  /// where it cannot be traced.
  std::optional<Scaled> scaledDim(Value tensor, int64_t d);
  /// The scalar `value` where it is a size, as a factor of its class.
  std::optional<Scaled> scaledScalar(Value value);
  /// The product of dimensions `dims` of `tensor` (at most one of them of a
  /// class; std::nullopt where several are).
  std::optional<Scaled> scaledProduct(Value tensor, ArrayRef<int64_t> dims);
  /// a times b, where at most one of them is of a class (std::nullopt
  /// otherwise, or for either std::nullopt).
  static std::optional<Scaled> times(const Scaled &a,
                                     const std::optional<Scaled> &b);

private:
  /// A dynamic dimension that nothing traced further: (tensor, dim), or a
  /// scalar that is its own size: (value, -1).
  using Atom = std::pair<Value, int64_t>;
  /// `coef` times `atom`, or the constant `coef`.
  struct Size {
    int64_t coef = 0;
    std::optional<Atom> atom;
    Size(int64_t constant) : coef(constant) {}
    Size(Atom atom, int64_t coef = 1) : coef(coef), atom(atom) {}
  };
  /// A positive rational num / den in lowest terms.
  using Ratio = std::pair<int64_t, int64_t>;
  std::optional<Size> traceDim(Value tensor, int64_t d, int depth = 0);
  std::optional<Size> traceScalar(Value value, int depth = 0);
  std::optional<Size> traceDimUncached(Value tensor, int64_t d, int depth);
  std::optional<Size> traceScalarUncached(Value value, int depth);
  /// Element `index` of `tensor` (ONNX's shapes are tensors: a size is an
  /// element of a tensor.from_elements picked through reshapes, slices,
  /// concatenations, fills and the linalg.generics of ONNX's shape ops).
  std::optional<Size> traceElement(Value tensor, ArrayRef<int64_t> index,
                                   int depth);
  /// The value of `value` in the body of a linalg.generic at loop indices
  /// `loops`, where it is a size there: an index into a shape, an element
  /// of one, or what ONNX's shape arithmetic makes of them.
  std::optional<Size> valueIn(Value value, ArrayRef<int64_t> loops, int depth);
  /// A product of sizes, `coef` times the sizes of `ids` (each an atom's
  /// id, repeated for a power): the arithmetic of shapes that torch-mlir
  /// writes for a reshape with an inferred dimension (a product of every
  /// size divided by a product of all but one) and a broadcast's sizes.
  struct Product {
    Ratio coef = {1, 1};
    SmallVector<unsigned, 2> ids;
  };
  std::optional<Product> productOf(Value value, int depth);
  std::optional<Product> productOfUncached(Value value, int depth);
  /// `p` over class roots, its ids sorted and constant classes folded in.
  std::optional<Product> canonical(const Product &p);
  /// Whether `cond` (an i1) is known to hold, or not to, where it compares
  /// products of sizes (which are not negative) with constants.
  std::optional<bool> decide(Value cond, int depth);
  /// `p` as a Size: a constant, or an integer times one class.
  std::optional<Size> sizeOf(const Product &p);
  /// The root of `id`'s class, and `id`'s size as a factor of the root's.
  std::pair<unsigned, Ratio> find(unsigned id);
  unsigned idOf(const Atom &atom);
  void unite(const Size &a, const Size &b);
  std::optional<Scaled> scaledOf(const std::optional<Size> &size);
  std::optional<SizeRef> refOf(const std::optional<Size> &size);

  /// What traceDim and traceScalar found, by (tensor, dim) and by value.
  llvm::DenseMap<Atom, std::optional<Size>> dimCache;
  llvm::DenseMap<Value, std::optional<Size>> scalarCache;
  llvm::DenseMap<Value, std::optional<Product>> productCache;
  llvm::DenseMap<Atom, unsigned> ids;
  /// The atom of each id.
  SmallVector<Atom> atomOf;
  /// The ids of the classes that a decision took to be at least 1.
  llvm::SetVector<unsigned> positive;
  SmallVector<unsigned> parent;
  /// Each id's size as a factor of its parent's.
  SmallVector<Ratio> weight;
  /// The static size a class met, by root.
  llvm::DenseMap<unsigned, int64_t> constants;
  /// Symbol of each (root, factor num, factor den) that was asked for.
  std::map<std::tuple<unsigned, int64_t, int64_t>, unsigned> symbolOf;
  unsigned numSymbolsMade = 0;
};

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_SIZECLASSES_H
