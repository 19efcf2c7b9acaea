//===- MaskEvaluator.h - Constant-fold a mask over (query, key) -*- C++ -*-===//
//
// Evaluates the scores-free parts of an attention chain (the mask, the
// scale) at compile time. Their expressions and the tensors they read are
// turned into a graph of scalar nodes over the query row i and key column j
// (linalg bodies, linalg.index, indexing maps, broadcasts, reshapes that
// merge or split axes, slices, dense and dense_resource constants), and any
// scalar op in it is evaluated through its own folder (`Operation::fold`);
// a few arith ops have an exact native fast path. What cannot be evaluated
// is refused with a reason naming the op.
//
// Evaluation is exact and structured: nodes that depend on i alone are
// evaluated once per row, those on j alone once per column; rows (columns)
// on which every such node feeding the rest agrees form one class, and the
// nodes that depend on both are evaluated once per pair of classes. A
// frame-level mask costs O((Nq + Nk) * frames) this way. Where there are
// many column classes (a token-level mask), a row takes its keys a block at
// a time (1024 keys, halved down to `tile` where undecided): the nodes of
// both are bounded over the block by interval arithmetic (each column-only
// value by its minimum and maximum there), and only a tile of keys that the
// bounds do not decide alike is evaluated key by key: about
// O(Nq * (Nk / 1024 + log(1024 / tile) + tile)) for a band.
// Nodes are hash-consed on their semantics and results memoized, so the
// same mask in many layers is evaluated once.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKEVALUATOR_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKEVALUATOR_H

#include "MaskAnalysis.h"
#include "ScoreTrace.h"

#include "mlir/IR/Block.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::swba {

/// A scalar value: floats as double (exact for f16, bf16, f32 and f64),
/// integers and index sign-extended to 64 bits.
struct Scalar {
  double f = 0;
  int64_t i = 0;
};

/// One mask term as the logits apply it: `logits + value` (no `cond`), or
/// `select(cond, logits, value)` (`keepIfTrue`) / `select(cond, value,
/// logits)`. `value` must be 0 or a masking value (-inf, or at most half
/// the lowest finite value of one of `valueTypes`) wherever it is applied.
struct MaskTermNodes {
  unsigned value;
  std::optional<unsigned> cond;
  bool keepIfTrue = true;
  SmallVector<Type, 2> valueTypes;
};

/// Which keys every query row sees: one contiguous range per row class.
struct MaskRows {
  std::vector<uint32_t> rowClass;
  std::vector<KeyRange> ranges;
};

/// A size of the attention's tensors as a mask reads it: a constant, or
/// symbol `value` (a class of dynamic sizes equal at run time).
struct SizeRef {
  bool symbolic = false;
  int64_t value = 0;
};

/// The size that a value of the IR is, where it is one (a tensor.dim, or a
/// cast of one); std::nullopt otherwise.
using SizeResolver = std::function<std::optional<SizeRef>(Value)>;

/// The sizes over which a mask is proven: `numSymbols` symbols, each in
/// [1, kMaxSymbolicSize], and the queries and keys counted by two of them
/// (or constants), queries at most keys.
struct SymbolicSizes {
  unsigned numSymbols = 0;
  SizeRef nq, nk;
};

/// The largest size for which a mask with dynamic sizes is proven (2^30:
/// positions in i32 plus a window of up to 2^30 do not overflow); the
/// raised program checks it at run time.
constexpr int64_t kMaxSymbolicSize = int64_t(1) << 30;

class MaskEvaluator {
public:
  explicit MaskEvaluator(MLIRContext *context);
  ~MaskEvaluator();

  /// The node computing a scores-free expression.
  FailureOr<unsigned> build(Expr *e, std::string &why);

  /// The value of a node that depends on no position (the scale).
  FailureOr<double> evaluateConstant(unsigned node, std::string &why);

  /// Evaluates the terms on every (query, key) pair of an nq x nk mask,
  /// keys a block at a time where that pays (`tile` the smallest block; 0:
  /// key by key). It fails where that takes more than `maxPairs`
  /// evaluations (blocks bounded plus pairs evaluated one by one).
  /// On failure `why` names the op, value or row at fault.
  FailureOr<const MaskRows *> evaluateMask(ArrayRef<MaskTermNodes> terms,
                                           int64_t nq, int64_t nk, int64_t tile,
                                           int64_t maxPairs, std::string &why);

  /// Where the IR's sizes are dynamic: what the mask's scalars that are
  /// sizes stand for (Size nodes for the symbolic ones). Reset with an
  /// empty function.
  void setSizeResolver(SizeResolver resolver) {
    sizeResolver = std::move(resolver);
  }

  /// The values of the size symbols where evaluateMask evaluates a mask
  /// with Size nodes.
  void setSizeValues(ArrayRef<int64_t> values) {
    sizeValues.assign(values.begin(), values.end());
  }

  /// The largest magnitude of an integer constant in the terms' nodes
  /// (the sizes at which a mask with symbols is first evaluated exceed it).
  int64_t largestIntegerConstant(ArrayRef<MaskTermNodes> terms) const;

  /// Proves that the terms let through exactly the pairs of the sliding
  /// window block mask `params` (queries bottom-right aligned) for every
  /// value of the sizes `sizes` (MaskEvaluatorSymbolic.cpp): the nodes
  /// become Presburger formulas over the query, the key and the symbols,
  /// and the difference of the two sets must be empty. On failure `why`
  /// says what could not be translated or that the sets differ.
  LogicalResult proveForAllSizes(ArrayRef<MaskTermNodes> terms,
                                 const SymbolicSizes &sizes,
                                 SWBAMaskParams params, std::string &why);

  /// Whether the node depends on the query row, the key or the batch.
  bool dependsOnPosition(unsigned node) const;

  /// Forgets what was built from the IR (values may be erased after a
  /// rewrite); hash-consed nodes and memoized results stay.
  void clearIRCache() {
    tensorMemo.clear();
    digits.clear();
  }

private:
  struct Node;
  struct Symbolic;
  struct ConstantData;
  enum class Kind : uint8_t;

  unsigned intern(Node node);
  unsigned constantNode(Scalar value, Type type);
  FailureOr<unsigned> buildTensor(Value tensor, ArrayRef<unsigned> coords,
                                  std::string &why);
  /// The value of index node `node` where it is a constant (a constant, or
  /// a linear form of constants).
  std::optional<int64_t> constantIndex(unsigned node) const;
  /// The indices into its source that a reshape, slice or cast reads at
  /// `coords`.
  FailureOr<SmallVector<unsigned>>
  viewSourceCoords(Operation *view, ArrayRef<unsigned> coords,
                   std::string &why);
  FailureOr<unsigned> buildLinalg(Operation *op, unsigned resultNumber,
                                  ArrayRef<unsigned> coords, std::string &why);
  FailureOr<unsigned> buildScalar(Value v, Block *body,
                                  ArrayRef<unsigned> loopCoords,
                                  std::string &why);
  FailureOr<unsigned> buildAffine(AffineExpr expr,
                                  ArrayRef<unsigned> loopCoords,
                                  std::string &why);
  FailureOr<unsigned> buildOp(Operation *op, ArrayRef<unsigned> operands,
                              std::string &why);
  FailureOr<const ConstantData *> getData(Attribute attr, std::string &why);
  FailureOr<Scalar> apply(unsigned node, ArrayRef<Scalar> operands,
                          std::string &why);
  /// apply for the index and constant-read nodes.
  static FailureOr<Scalar> applyIndexing(const Node &node,
                                         ArrayRef<Scalar> operands,
                                         std::string &why);
  /// apply for the ops with an exact native path; nullopt sends the op to
  /// its folder.
  static std::optional<Scalar> applyNative(const Node &node,
                                           ArrayRef<Scalar> operands);
  FailureOr<Scalar> fold(const Node &node, ArrayRef<Scalar> operands,
                         std::string &why);
  struct Source;
  bool applyColumns(unsigned node, ArrayRef<Source> sources, size_t count,
                    Scalar *out);

  // The steps of evaluateMask, sharing the node values of one mask.
  struct MaskTables;
  std::vector<unsigned> operandsFirst(ArrayRef<unsigned> roots) const;
  LogicalResult evaluateAxes(ArrayRef<unsigned> order, MaskTables &tables,
                             std::string &why);
  void classifyPositions(ArrayRef<unsigned> roots, MaskTables &tables);
  Source sourceOf(const MaskTables &tables, unsigned node, int64_t row) const;
  LogicalResult evaluateGrid(MaskTables &tables, int64_t row,
                             std::string &why);
  LogicalResult markVisible(ArrayRef<MaskTermNodes> terms,
                            ArrayRef<double> hiding, const MaskTables &tables,
                            int64_t row, std::vector<char> &visible,
                            std::string &why);
  struct Interval;
  /// Bounds of node `n` over a set of pairs, from its operands' bounds.
  Interval bound(unsigned n, ArrayRef<Interval> operands);
  static std::vector<std::vector<Interval>>
  pyramid(ArrayRef<Scalar> values, Type type, int64_t tile, int64_t levels);
  /// What the bounds over a block of (row, key) pairs say of every pair.
  enum class Verdict : uint8_t { Kept, Hidden, Undecided };
  /// The verdict over the keys of block `block` of `level`
  /// (`tables.colTiles`) and the rows whose row-only values `rowBound`
  /// bounds; `bounds` holds the bounds of the nodes of both.
  Verdict decideBlock(ArrayRef<MaskTermNodes> terms, ArrayRef<double> hiding,
                      const MaskTables &tables,
                      function_ref<Interval(unsigned)> rowBound, int64_t level,
                      int64_t block, std::vector<Interval> &bounds);
  /// Verdicts on blocks of rows and keys, per level: (row block, key block)
  /// packed into one key.
  using SharedVerdicts = std::vector<llvm::DenseMap<uint64_t, Verdict>>;
  /// The keys row `row` sees, blocks of keys at a time (`levels` sizes:
  /// `tile` keys doubled). A key block of a level is decided for the block
  /// of as many rows around `row` where that holds two or more row
  /// classes (once, in `shared`), else for the row alone. Adds the blocks
  /// bounded and the keys evaluated one by one to `evaluations`.
  FailureOr<KeyRange> rowRangeByTiles(ArrayRef<MaskTermNodes> terms,
                                      ArrayRef<double> hiding,
                                      const MaskTables &tables, int64_t row,
                                      int64_t tile, int64_t levels,
                                      SharedVerdicts &shared,
                                      int64_t &evaluations, std::string &why);

  MLIRContext *context;
  SizeResolver sizeResolver;
  std::vector<int64_t> sizeValues;
  std::vector<Node> nodes;
  std::map<std::vector<uint64_t>, unsigned> interned;
  /// Detached copies of the scalar ops the nodes apply, and their operands.
  std::vector<std::unique_ptr<Block>> scratch;
  std::map<std::vector<const void *>, Operation *> opCopies;
  llvm::DenseMap<Attribute, std::unique_ptr<ConstantData>> constants;
  std::map<std::pair<const void *, std::vector<unsigned>>, unsigned> tensorMemo;
  /// A digit of a linear index that a reshape made from in-bounds indices:
  /// `index` < `size`, weighted by `stride`.
  struct Digit {
    unsigned index;
    int64_t stride, size;
  };
  /// The digits of the linear indices made by expand_shape while building
  /// the current candidate (the bounds hold for its IR only).
  llvm::DenseMap<unsigned, SmallVector<Digit>> digits;
  /// The index in [stride, stride * size) of a linear index's digits, when
  /// none of them straddles that range; otherwise std::nullopt.
  std::optional<unsigned> digitsIn(ArrayRef<Digit> of, int64_t stride,
                                   int64_t size);
  std::map<std::vector<uint64_t>, Scalar> foldMemo;
  std::map<std::vector<int64_t>, std::unique_ptr<MaskRows>> maskMemo;
};

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKEVALUATOR_H
