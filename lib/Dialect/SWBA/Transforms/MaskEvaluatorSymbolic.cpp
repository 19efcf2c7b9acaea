//===- MaskEvaluatorSymbolic.cpp - A mask proven for every size -----------===//
//
// MaskEvaluator::proveForAllSizes: where the attention's lengths are
// dynamic, the mask's nodes are translated into quantifier-free Presburger
// formulas over the query i, the key j, the size symbols and one variable
// for each floor division by a constant, and the set of pairs the mask
// lets through is compared with the sliding window block mask's by MLIR's
// Presburger library (both differences must be empty on the grid).
// Formulas are kept in negation normal form and turned into unions of
// polyhedra on the grid, those without a rational point dropped as they
// are made; the verdicts ask for integer points.
//
// A node's value is a list of pieces: where a formula (the guard) holds,
// the value is an affine form of the variables (integers and index) or a
// constant (floats, i1). Comparisons split a piece in two, selects pick a
// piece's operand, and ops on constant pieces are applied as the static
// evaluation applies them (`apply`). What has no exact translation (a
// product of two variables, a float made from a position, a constant
// tensor read at a variable position, a division by a variable) is refused
// with its reason. Integer ops are exact where their values fit their
// types: narrower types add the condition that they do (an obligation the
// grid must not meet), 64-bit ones are bounded from the sizes' bound.
//
//===----------------------------------------------------------------------===//

#include "MaskEvaluator.h"
#include "MaskNodes.h"

#include "mlir/Analysis/Presburger/IntegerRelation.h"
#include "mlir/Analysis/Presburger/PresburgerRelation.h"
#include "mlir/Analysis/Presburger/Simplex.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <map>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::mask_nodes;
namespace pb = mlir::presburger;

namespace {

/// sum(coeffs[v] * variable v) + c.
struct Lin {
  SmallVector<int64_t, 8> coeffs;
  int64_t c = 0;

  static Lin constant(int64_t value) {
    Lin l;
    l.c = value;
    return l;
  }
  static Lin variable(unsigned v) {
    Lin l;
    l.coeffs.resize(v + 1);
    l.coeffs[v] = 1;
    return l;
  }
  int64_t coeff(unsigned v) const { return v < coeffs.size() ? coeffs[v] : 0; }
  Lin plus(int64_t add) const {
    Lin r = *this;
    r.c += add;
    return r;
  }
  bool isConstant() const {
    return llvm::all_of(coeffs, [](int64_t k) { return k == 0; });
  }
  bool operator==(const Lin &o) const {
    size_t n = std::max(coeffs.size(), o.coeffs.size());
    for (size_t v = 0; v < n; ++v)
      if (coeff(v) != o.coeff(v))
        return false;
    return c == o.c;
  }
  std::vector<int64_t> key() const {
    std::vector<int64_t> k(coeffs.begin(), coeffs.end());
    while (!k.empty() && k.back() == 0)
      k.pop_back();
    k.push_back(c);
    return k;
  }
};

/// a * x + b * y, or failure where a coefficient would overflow.
static FailureOr<Lin> combine(int64_t a, const Lin &x, int64_t b,
                              const Lin &y) {
  Lin r;
  size_t n = std::max(x.coeffs.size(), y.coeffs.size());
  r.coeffs.resize(n);
  auto term = [](int64_t k, int64_t v, int64_t &out) {
    int64_t p;
    if (__builtin_mul_overflow(k, v, &p))
      return false;
    return !__builtin_add_overflow(out, p, &out);
  };
  for (size_t v = 0; v < n; ++v)
    if (!term(a, x.coeff(v), r.coeffs[v]) || !term(b, y.coeff(v), r.coeffs[v]))
      return failure();
  if (!term(a, x.c, r.c) || !term(b, y.c, r.c))
    return failure();
  return r;
}

struct Formula;
using F = std::shared_ptr<const Formula>;

/// A quantifier-free formula in negation normal form: lin >= 0, lin == 0,
/// and, or, constants.
struct Formula {
  enum Kind { True, False, Ge, Eq, And, Or } kind;
  Lin lin;
  SmallVector<F, 2> kids;
};

F constantFormula(bool b) {
  static const F t = std::make_shared<Formula>(Formula{Formula::True, {}, {}});
  static const F f = std::make_shared<Formula>(Formula{Formula::False, {}, {}});
  return b ? t : f;
}
bool isTrue(const F &f) { return f->kind == Formula::True; }
bool isFalse(const F &f) { return f->kind == Formula::False; }
F ge(Lin lin) { // lin >= 0
  if (lin.isConstant())
    return constantFormula(lin.c >= 0);
  return std::make_shared<Formula>(Formula{Formula::Ge, std::move(lin), {}});
}
F eqZero(Lin lin) {
  if (lin.isConstant())
    return constantFormula(lin.c == 0);
  return std::make_shared<Formula>(Formula{Formula::Eq, std::move(lin), {}});
}
F conj(const F &a, const F &b) {
  if (isFalse(a) || isTrue(b))
    return a;
  if (isFalse(b) || isTrue(a))
    return b;
  return std::make_shared<Formula>(Formula{Formula::And, {}, {a, b}});
}
F disj(const F &a, const F &b) {
  if (isTrue(a) || isFalse(b))
    return a;
  if (isTrue(b) || isFalse(a))
    return b;
  return std::make_shared<Formula>(Formula{Formula::Or, {}, {a, b}});
}
/// The negation, pushed down to the atoms (integers: not l >= 0 is
/// -l - 1 >= 0), so that no set is ever complemented.
F negate(const F &a) {
  switch (a->kind) {
  case Formula::True:
  case Formula::False:
    return constantFormula(isFalse(a));
  case Formula::Ge:
    return ge(combine(-1, a->lin, 0, Lin())->plus(-1));
  case Formula::Eq:
    return disj(ge(a->lin.plus(-1)),
                ge(combine(-1, a->lin, 0, Lin())->plus(-1)));
  case Formula::And:
    return disj(negate(a->kids[0]), negate(a->kids[1]));
  case Formula::Or:
    return conj(negate(a->kids[0]), negate(a->kids[1]));
  }
  llvm_unreachable("formula kind");
}

/// Where `guard` holds, the value is `lin` (integer types but i1), or
/// `lin / den` exactly for a float made from an integer (`isFloat`: see
/// symbolicFloatOp), or the constant `value` (floats and i1).
struct Piece {
  F guard;
  bool isLin = false;
  Lin lin;
  Scalar value;
  bool isFloat = false;
  int64_t den = 1;
};
using Pieces = SmallVector<Piece, 4>;

/// Types whose values the pieces hold as affine forms.
bool isAffineType(Type type) {
  return type.isIndex() ||
         (isa<IntegerType>(type) && type.getIntOrFloatBitWidth() > 1);
}

unsigned widthOf(Type type) {
  return type.isIndex() ? 64 : type.getIntOrFloatBitWidth();
}

constexpr size_t kMaxPieces = 256;
constexpr size_t kMaxDisjuncts = 4096;
/// Polyhedra tested for an integer point, at most, in one proof (the masks
/// of models take a few hundred).
constexpr size_t kMaxSteps = 20000;
constexpr size_t kMaxCombinations = 4096;

} // namespace

/// The translation of one mask's nodes (a nested class of MaskEvaluator:
/// it reads the nodes and applies them).
struct MaskEvaluator::Symbolic {
  MaskEvaluator &ev;
  const SymbolicSizes &sizes;
  std::string &why;
  /// Variables: 0 the query, 1 the key, 2 + s symbol s, then divisions.
  unsigned numVars;
  /// The largest magnitude of each variable on the grid.
  SmallVector<__int128, 8> varBound;
  struct Division {
    Lin dividend;
    int64_t divisor;
  };
  /// Division variables: variable 2 + numSymbols + k is
  /// floor(divisions[k].dividend / divisions[k].divisor).
  std::vector<Division> divisions;
  std::map<std::pair<std::vector<int64_t>, int64_t>, unsigned> divisionVars;
  /// Formulas the grid must not meet (values that must fit their types,
  /// operands of unsigned ops that must not be negative, mask values that
  /// must be 0 or hiding).
  std::vector<std::pair<F, std::string>> obligations;
  std::map<unsigned, Pieces> memo;
  size_t steps = 0;
  /// disjuncts' results by formula and variable count (the formula kept
  /// alive with them).
  std::map<std::pair<const Formula *, unsigned>,
           std::pair<F, std::vector<pb::IntegerPolyhedron>>>
      dnfMemo;

  Symbolic(MaskEvaluator &ev, const SymbolicSizes &sizes, std::string &why)
      : ev(ev), sizes(sizes), why(why), numVars(2 + sizes.numSymbols) {
    varBound.assign(numVars, kMaxSymbolicSize);
  }

  Lin sizeLin(SizeRef s) const {
    return s.symbolic ? Lin::variable(2 + s.value) : Lin::constant(s.value);
  }

  __int128 bound(const Lin &l) const {
    __int128 b = l.c < 0 ? -__int128(l.c) : __int128(l.c);
    for (auto [v, k] : llvm::enumerate(l.coeffs))
      b += (k < 0 ? -__int128(k) : __int128(k)) * varBound[v];
    return b;
  }

  /// The variable floor(dividend / divisor), divisor > 0.
  Lin floorDiv(const Lin &dividend, int64_t divisor) {
    if (divisor == 1)
      return dividend;
    auto key = std::make_pair(dividend.key(), divisor);
    auto [it, inserted] = divisionVars.try_emplace(key, numVars);
    if (inserted) {
      divisions.push_back({dividend, divisor});
      varBound.push_back(bound(dividend) / divisor + 1);
      ++numVars;
    }
    return Lin::variable(it->second);
  }

  /// `l` checked to fit `type`: 64-bit types by the bound of its values,
  /// narrower ones by an obligation under `guard`.
  LogicalResult fits(const Lin &l, Type type, const F &guard) {
    unsigned width = widthOf(type);
    if (width >= 64) {
      if (bound(l) >= (__int128(1) << 62)) {
        why = "an integer in the mask may exceed 64 bits at large sizes";
        return failure();
      }
      return success();
    }
    int64_t lo = -(int64_t(1) << (width - 1)),
            hi = (int64_t(1) << (width - 1)) - 1;
    if (bound(l) <= hi)
      return success();
    FailureOr<Lin> below = combine(1, Lin::constant(lo - 1), -1, l);
    FailureOr<Lin> above = combine(1, l, -1, Lin::constant(hi + 1));
    if (failed(below) || failed(above)) {
      why = "an integer in the mask may overflow its type";
      return failure();
    }
    obligations.push_back(
        {conj(guard, disj(ge(*below), ge(*above))),
         llvm::formatv("an i{0} in the mask overflows", width).str()});
    return success();
  }

  static bool sameValue(const Piece &a, const Piece &b, Type type) {
    if (a.isLin != b.isLin)
      return false;
    if (a.isLin)
      return a.lin == b.lin && a.den == b.den;
    if (isa<FloatType>(type))
      return std::memcmp(&a.value.f, &b.value.f, sizeof(double)) == 0;
    return a.value.i == b.value.i;
  }

  /// Pieces with equal values merged (their guards or-ed), those never
  /// taken dropped.
  LogicalResult normalize(Pieces &pieces, Type type) {
    Pieces merged;
    for (Piece &p : pieces) {
      if (isFalse(p.guard))
        continue;
      // A case the grid never meets (a negative position's division, say).
      if (pieces.size() > 1 && !isTrue(p.guard)) {
        FailureOr<std::vector<pb::IntegerPolyhedron>> where =
            disjuncts(p.guard);
        if (failed(where))
          return failure();
        if (where->empty())
          continue;
      }
      if (p.isLin && p.lin.isConstant() && p.den == 1 && !isAffineType(type)) {
        p.isLin = false;
        if (p.isFloat)
          p.value.f = static_cast<double>(p.lin.c);
        else
          p.value.i = p.lin.c;
        p.isFloat = false;
      }
      auto it = llvm::find_if(
          merged, [&](const Piece &m) { return sameValue(m, p, type); });
      if (it != merged.end())
        it->guard = disj(it->guard, p.guard);
      else
        merged.push_back(std::move(p));
    }
    if (merged.size() > kMaxPieces) {
      why = "the mask's values split into too many cases to prove it for "
            "every size";
      return failure();
    }
    pieces = std::move(merged);
    return success();
  }

  Piece constantPiece(Scalar value, Type type, F guard) {
    Piece p{std::move(guard)};
    if (isAffineType(type)) {
      p.isLin = true;
      p.lin = Lin::constant(value.i);
    } else {
      p.value = value;
    }
    return p;
  }

  static bool isConstantPiece(const Piece &p) {
    return !p.isLin || (p.lin.isConstant() && p.den == 1);
  }
  static Scalar scalarOf(const Piece &p) {
    if (!p.isLin)
      return p.value;
    Scalar s;
    if (p.isFloat)
      s.f = static_cast<double>(p.lin.c);
    else
      s.i = p.lin.c;
    return s;
  }

  FailureOr<const Pieces *> of(unsigned n) {
    if (auto it = memo.find(n); it != memo.end())
      return &it->second;
    FailureOr<Pieces> pieces = translate(n);
    if (failed(pieces) || failed(normalize(*pieces, ev.nodes[n].type)))
      return failure();
    return &memo.emplace(n, std::move(*pieces)).first->second;
  }

  /// Every combination of the operands' pieces, with its guard.
  LogicalResult forEachCombination(
      ArrayRef<unsigned> operands,
      function_ref<LogicalResult(ArrayRef<const Piece *>, const F &)> fn) {
    SmallVector<const Pieces *, 3> lists;
    size_t total = 1;
    for (unsigned operand : operands) {
      FailureOr<const Pieces *> list = of(operand);
      if (failed(list))
        return failure();
      lists.push_back(*list);
      total *= std::max<size_t>((*list)->size(), 1);
      if (total > kMaxCombinations) {
        why = "the mask's values split into too many cases to prove it for "
              "every size";
        return failure();
      }
    }
    SmallVector<const Piece *, 3> chosen(lists.size());
    for (size_t k = 0; k < total; ++k) {
      size_t rest = k;
      F guard = constantFormula(true);
      for (auto [a, list] : llvm::enumerate(lists)) {
        chosen[a] = &(*list)[rest % list->size()];
        rest /= list->size();
        guard = conj(guard, chosen[a]->guard);
      }
      if (isFalse(guard))
        continue;
      if (failed(fn(chosen, guard)))
        return failure();
    }
    return success();
  }

  FailureOr<Pieces> translate(unsigned n) {
    const Node &node = ev.nodes[n];
    F always = constantFormula(true);
    Type index = IndexType::get(ev.context);
    switch (node.kind) {
    case Kind::Const:
      return Pieces{constantPiece(node.value, node.type, always)};
    case Kind::Row:
      return Pieces{Piece{always, true, Lin::variable(0)}};
    case Kind::Col:
      return Pieces{Piece{always, true, Lin::variable(1)}};
    case Kind::Size:
      if (node.c < 0 || node.c >= static_cast<int64_t>(sizes.numSymbols)) {
        why = "the mask reads a dynamic size of another candidate";
        return failure();
      }
      return Pieces{Piece{always, true, Lin::variable(2 + node.c)}};
    case Kind::Batch:
      why = "the mask depends on the batch/head index";
      return failure();
    case Kind::Linear:
    case Kind::Div:
    case Kind::Rem: {
      Pieces out;
      if (failed(forEachCombination(
              node.operands,
              [&](ArrayRef<const Piece *> args,
                  const F &guard) -> LogicalResult {
                Lin r;
                if (node.kind == Kind::Linear) {
                  r = Lin::constant(node.c);
                  for (auto [arg, coeff] : llvm::zip(args, node.coeffs)) {
                    FailureOr<Lin> sum = combine(1, r, coeff, arg->lin);
                    if (failed(sum)) {
                      why = "an index in the mask overflows";
                      return failure();
                    }
                    r = *sum;
                  }
                } else {
                  Lin q = floorDiv(args[0]->lin, node.c);
                  r = q;
                  if (node.kind == Kind::Rem)
                    r = *combine(1, args[0]->lin, -node.c, q);
                }
                if (failed(fits(r, index, guard)))
                  return failure();
                out.push_back(Piece{guard, true, std::move(r)});
                return success();
              })))
        return failure();
      return out;
    }
    case Kind::Read:
    case Kind::Op:
      break;
    }
    Pieces out;
    std::string name = node.op
                           ? "'" + node.op->getName().getStringRef().str() + "'"
                           : std::string("a constant tensor");
    if (failed(forEachCombination(
            node.operands,
            [&](ArrayRef<const Piece *> args, const F &guard) -> LogicalResult {
              if (llvm::all_of(args, [](const Piece *p) {
                    return isConstantPiece(*p);
                  })) {
                SmallVector<Scalar, 3> values;
                for (const Piece *arg : args)
                  values.push_back(scalarOf(*arg));
                FailureOr<Scalar> value = ev.apply(n, values, why);
                if (failed(value))
                  return failure();
                out.push_back(constantPiece(*value, node.type, guard));
                return success();
              }
              if (node.kind == Kind::Read) {
                why = "the mask reads a constant tensor at positions that "
                      "depend on the query, the key or a dynamic size";
                return failure();
              }
              return symbolicOp(node, name, args, guard, out);
            })))
      return failure();
    return out;
  }

  enum class Relation { Eq, Ne, Lt, Le, Gt, Ge, Always, Never };

  /// The formula `a rel b` over integers.
  static F compare(const Lin &a, const Lin &b, Relation rel) {
    Lin aMinusB = *combine(1, a, -1, b), bMinusA = *combine(-1, a, 1, b);
    switch (rel) {
    case Relation::Eq: return eqZero(aMinusB);
    case Relation::Ne: return negate(eqZero(aMinusB));
    case Relation::Lt: return ge(bMinusA.plus(-1));
    case Relation::Le: return ge(bMinusA);
    case Relation::Gt: return ge(aMinusB.plus(-1));
    case Relation::Ge: return ge(aMinusB);
    case Relation::Always: return constantFormula(true);
    case Relation::Never: return constantFormula(false);
    }
    llvm_unreachable("relation");
  }

  /// The i1 pieces of a comparison that `holds` under `guard`.
  static void splitOn(const F &guard, const F &holds, Pieces &out) {
    Scalar t, f;
    t.i = -1;
    out.push_back(Piece{conj(guard, holds), false, Lin(), t});
    out.push_back(Piece{conj(guard, negate(holds)), false, Lin(), f});
  }

  /// The bits of the significand of float type `type` (0: not one the
  /// proof takes).
  static unsigned significandBits(Type type) {
    if (type.isF64())
      return 53;
    if (type.isF32())
      return 24;
    if (type.isF16())
      return 11;
    if (type.isBF16())
      return 8;
    return 0;
  }

  /// A float piece as `lin / den`: a float made from an integer, or a
  /// constant that is an integer.
  static std::optional<std::pair<Lin, int64_t>> asRatio(const Piece *p) {
    if (p->isLin && p->isFloat)
      return std::make_pair(p->lin, p->den);
    if (!p->isLin && std::isfinite(p->value.f) &&
        p->value.f == std::floor(p->value.f) && std::fabs(p->value.f) < 0x1p53)
      return std::make_pair(Lin::constant(static_cast<int64_t>(p->value.f)),
                            int64_t(1));
    return std::nullopt;
  }

  /// Floats computed from the positions: sitofp of an integer, and what
  /// float ops make of it exactly, as the ratio of an affine form and a
  /// positive constant. Sums, differences, products by integer constants
  /// and negations stay integers below 2^significand, where the float ops
  /// are exact; a division by an integer constant is exact only in what a
  /// floor, ceil or truncation of it gives, and only that may read it:
  /// where |x| * d < 2^significand, the rounded x / d is at most
  /// |x| 2^-significand from x / d, less than 1 / d, so it has x / d's
  /// floor (torch-mlir writes integer floor division this way, in f64).
  LogicalResult symbolicFloatOp(const Node &node, const std::string &name,
                                ArrayRef<const Piece *> args, const F &guard,
                                Pieces &out) {
    Operation *op = node.op;
    auto refuse = [&]() -> LogicalResult {
      why = "cannot prove " + name +
            " for every size on floats made from the query, the key or a "
            "dynamic size";
      return failure();
    };
    auto exact = [&](const Lin &l, int64_t den, Type type) {
      unsigned bits = significandBits(type);
      return bits && bound(l) * den < (__int128(1) << bits);
    };
    auto roundingFailure = [&]() -> LogicalResult {
      why = name + " may round a value made from the query, the key or a "
                   "dynamic size";
      return failure();
    };
    auto emitFloat = [&](Lin l, int64_t den) -> LogicalResult {
      if (den == 1 && !exact(l, 1, node.type))
        return roundingFailure();
      Piece p{guard, true, std::move(l)};
      p.isFloat = true;
      p.den = den;
      out.push_back(std::move(p));
      return success();
    };
    // floor(x / d), where the float x / d has x / d's floor.
    auto floorOf = [&](const Lin &x, int64_t d,
                       Type type) -> std::optional<Lin> {
      if (!exact(x, d, type))
        return std::nullopt;
      return floorDiv(x, d);
    };
    if (isa<arith::SIToFPOp, arith::UIToFPOp>(op)) {
      if (isa<arith::UIToFPOp>(op))
        nonNegativeUnder(guard, args[0]->lin, name, "converts");
      return emitFloat(args[0]->lin, 1);
    }
    SmallVector<std::pair<Lin, int64_t>, 2> r;
    for (const Piece *arg : args) {
      std::optional<std::pair<Lin, int64_t>> ratio = asRatio(arg);
      if (!ratio)
        return refuse();
      r.push_back(*ratio);
    }
    Type operandType = op->getOperand(0).getType();
    bool whole = llvm::all_of(r, [](auto &x) { return x.second == 1; });
    if (isa<arith::NegFOp>(op))
      return emitFloat(*combine(-1, r[0].first, 0, Lin()), r[0].second);
    if (isa<arith::ExtFOp, arith::TruncFOp>(op) && whole)
      return emitFloat(r[0].first, 1);
    if (isa<arith::AddFOp, arith::SubFOp>(op) && whole) {
      FailureOr<Lin> sum =
          combine(1, r[0].first, isa<arith::AddFOp>(op) ? 1 : -1, r[1].first);
      if (failed(sum))
        return roundingFailure();
      return emitFloat(*sum, 1);
    }
    if (isa<arith::MulFOp>(op) && whole) {
      int k = r[0].first.isConstant() ? 0 : r[1].first.isConstant() ? 1 : -1;
      if (k < 0)
        return refuse();
      FailureOr<Lin> product = combine(r[k].first.c, r[1 - k].first, 0, Lin());
      if (failed(product))
        return roundingFailure();
      return emitFloat(*product, 1);
    }
    if (isa<arith::DivFOp>(op) && r[1].second == 1 && r[1].first.isConstant() &&
        r[1].first.c > 0) {
      int64_t den;
      if (__builtin_mul_overflow(r[0].second, r[1].first.c, &den))
        return refuse();
      return emitFloat(r[0].first, den);
    }
    if (isa<math::FloorOp, math::CeilOp>(op)) {
      bool ceil = isa<math::CeilOp>(op);
      Lin x = ceil ? *combine(-1, r[0].first, 0, Lin()) : r[0].first;
      std::optional<Lin> q = floorOf(x, r[0].second, operandType);
      if (!q)
        return roundingFailure();
      return emitFloat(ceil ? *combine(-1, *q, 0, Lin()) : *q, 1);
    }
    if (isa<arith::FPToSIOp, math::TruncOp>(op)) {
      // Toward zero: the floor where x >= 0, minus the floor of -x below.
      const Lin &x = r[0].first;
      int64_t d = r[0].second;
      std::optional<Lin> up = floorOf(x, d, operandType);
      std::optional<Lin> down =
          floorOf(*combine(-1, x, 0, Lin()), d, operandType);
      if (!up || !down)
        return roundingFailure();
      F nonNeg = ge(x);
      Lin below = *combine(-1, *down, 0, Lin());
      for (auto [g, l] : {std::make_pair(conj(guard, nonNeg), *up),
                          std::make_pair(conj(guard, negate(nonNeg)), below)}) {
        Piece p{g, true, l};
        if (isa<math::TruncOp>(op)) {
          p.isFloat = true;
        } else if (failed(fits(l, node.type, g))) {
          return failure();
        }
        out.push_back(std::move(p));
      }
      return success();
    }
    if (auto cmp = dyn_cast<arith::CmpFOp>(op); cmp && whole) {
      using P = arith::CmpFPredicate;
      Relation rel = Relation::Eq;
      switch (cmp.getPredicate()) {
      case P::OEQ: case P::UEQ: rel = Relation::Eq; break;
      case P::ONE: case P::UNE: rel = Relation::Ne; break;
      case P::OLT: case P::ULT: rel = Relation::Lt; break;
      case P::OLE: case P::ULE: rel = Relation::Le; break;
      case P::OGT: case P::UGT: rel = Relation::Gt; break;
      case P::OGE: case P::UGE: rel = Relation::Ge; break;
      case P::AlwaysTrue: case P::ORD: rel = Relation::Always; break;
      case P::AlwaysFalse: case P::UNO: rel = Relation::Never; break;
      }
      splitOn(guard, compare(r[0].first, r[1].first, rel), out);
      return success();
    }
    return refuse();
  }

  void nonNegativeUnder(const F &guard, const Lin &l, const std::string &name,
                        const char *what) {
    FailureOr<Lin> negative = combine(-1, l, 1, Lin::constant(-1));
    obligations.push_back(
        {conj(guard, ge(*negative)),
         llvm::formatv("{0} {1} a negative value", name, what).str()});
  }

  /// One combination of an op's operands, some of them affine forms.
  LogicalResult symbolicOp(const Node &node, const std::string &name,
                           ArrayRef<const Piece *> args, const F &guard,
                           Pieces &out) {
    if (node.native != Native::Select &&
        (isa<FloatType>(node.type) ||
         llvm::any_of(args, [](const Piece *a) { return a->isFloat; })))
      return symbolicFloatOp(node, name, args, guard, out);
    auto emit = [&](Lin r) -> LogicalResult {
      // i1 values are constants in the pieces (comparisons split them).
      if (!isAffineType(node.type)) {
        why = "cannot prove " + name +
              " for every size: it makes an i1 of a "
              "value that depends on the sizes";
        return failure();
      }
      if (failed(fits(r, node.type, guard)))
        return failure();
      out.push_back(Piece{guard, true, std::move(r)});
      return success();
    };
    auto overflow = [&]() -> LogicalResult {
      why = "an integer in the mask overflows";
      return failure();
    };
    auto nonNegative = [&](const Lin &l, const char *what) {
      nonNegativeUnder(guard, l, name, what);
    };
    auto constantDivisor = [&]() -> std::optional<int64_t> {
      if (!args[1]->lin.isConstant() || args[1]->lin.c <= 0)
        return std::nullopt;
      return args[1]->lin.c;
    };
    switch (node.native) {
    case Native::AddI:
    case Native::SubI: {
      FailureOr<Lin> r = combine(
          1, args[0]->lin, node.native == Native::AddI ? 1 : -1, args[1]->lin);
      return failed(r) ? overflow() : emit(*r);
    }
    case Native::MulI: {
      const Piece *k = args[0]->lin.isConstant()   ? args[0]
                       : args[1]->lin.isConstant() ? args[1]
                                                   : nullptr;
      if (!k)
        break;
      const Piece *x = k == args[0] ? args[1] : args[0];
      FailureOr<Lin> r = combine(k->lin.c, x->lin, 0, Lin());
      return failed(r) ? overflow() : emit(*r);
    }
    case Native::MinSI:
    case Native::MaxSI: {
      if (!isAffineType(node.type))
        break;
      // a <= b: min a, max b.
      F aFirst = ge(*combine(1, args[1]->lin, -1, args[0]->lin));
      bool min = node.native == Native::MinSI;
      out.push_back(
          Piece{conj(guard, aFirst), true, min ? args[0]->lin : args[1]->lin});
      out.push_back(Piece{conj(guard, negate(aFirst)), true,
                          min ? args[1]->lin : args[0]->lin});
      return success();
    }
    case Native::FloorDivSI:
    case Native::DivSI:
    case Native::DivUI:
    case Native::RemSI:
    case Native::RemUI: {
      std::optional<int64_t> d = constantDivisor();
      if (!d) {
        why = name + " by a value that is not a positive constant, on "
                     "values that depend on the sizes";
        return failure();
      }
      const Lin &x = args[0]->lin;
      bool unsignedOp =
          node.native == Native::DivUI || node.native == Native::RemUI;
      bool rem = node.native == Native::RemSI || node.native == Native::RemUI;
      if (unsignedOp)
        nonNegative(x, "divides");
      Lin q = floorDiv(x, *d);
      Lin nonNegResult = rem ? *combine(1, x, -*d, q) : q;
      if (node.native == Native::FloorDivSI || unsignedOp)
        return emit(nonNegResult);
      // Truncating division: floor where x >= 0, -floor(-x / d) below.
      F nonNeg = ge(x);
      Lin negQ = floorDiv(*combine(-1, x, 0, Lin()), *d); // floor(-x / d)
      Lin negResult =
          rem ? *combine(1, x, *d, negQ) : *combine(-1, negQ, 0, Lin());
      out.push_back(Piece{conj(guard, nonNeg), true, nonNegResult});
      out.push_back(Piece{conj(guard, negate(nonNeg)), true, negResult});
      return success();
    }
    case Native::CmpI: {
      using P = arith::CmpIPredicate;
      P p = cast<arith::CmpIOp>(node.op).getPredicate();
      const Lin &a = args[0]->lin, &b = args[1]->lin;
      if (p == P::ult || p == P::ule || p == P::ugt || p == P::uge) {
        // Unsigned: as signed where the signs agree (both values in the
        // type's range); otherwise the negative one is the larger (at least
        // 2^(width-1) as unsigned), as a 0 <= d < n range check relies on.
        bool swap = p == P::ugt || p == P::uge;
        const Lin &x = swap ? b : a, &y = swap ? a : b;
        Relation rel =
            (p == P::ult || p == P::ugt) ? Relation::Lt : Relation::Le;
        F xNonNeg = ge(x), yNonNeg = ge(y);
        F sameSign = disj(conj(xNonNeg, yNonNeg),
                          conj(negate(xNonNeg), negate(yNonNeg)));
        F holds = disj(conj(sameSign, compare(x, y, rel)),
                       conj(xNonNeg, negate(yNonNeg)));
        splitOn(guard, holds, out);
        return success();
      }
      Relation rel = p == P::eq    ? Relation::Eq
                     : p == P::ne  ? Relation::Ne
                     : p == P::slt ? Relation::Lt
                     : p == P::sle ? Relation::Le
                     : p == P::sgt ? Relation::Gt
                                   : Relation::Ge;
      splitOn(guard, compare(a, b, rel), out);
      return success();
    }
    case Native::SExt:
      return emit(args[0]->lin);
    case Native::ZExt:
      nonNegative(args[0]->lin, "zero-extends");
      return emit(args[0]->lin);
    case Native::Select: {
      // The condition is an i1: a constant piece.
      const Piece *chosen = scalarOf(*args[0]).i ? args[1] : args[2];
      Piece p = *chosen;
      p.guard = guard;
      out.push_back(std::move(p));
      return success();
    }
    default:
      break;
    }
    why = "cannot prove " + name +
          " for every size on values that depend on the query, the key or "
          "a dynamic size";
    return failure();
  }

  //===--------------------------------------------------------------------===//
  // Presburger sets
  //===--------------------------------------------------------------------===//

  pb::PresburgerSpace space() const {
    return pb::PresburgerSpace::getSetSpace(numVars);
  }

  SmallVector<int64_t> row(const Lin &l) const {
    SmallVector<int64_t> r(numVars + 1, 0);
    for (auto [v, k] : llvm::enumerate(l.coeffs))
      r[v] = k;
    r[numVars] = l.c;
    return r;
  }

  /// `f` on the domain as a union of polyhedra, those without a rational
  /// point dropped as they are made (and with them the products of the
  /// ands), or failure past kMaxDisjuncts or kMaxSteps.
  FailureOr<std::vector<pb::IntegerPolyhedron>> disjuncts(const F &f) {
    // Guards share their subformulas: each is decided once for as many
    // variables as there are.
    auto key = std::make_pair(f.get(), numVars);
    if (auto it = dnfMemo.find(key); it != dnfMemo.end())
      return it->second.second;
    FailureOr<std::vector<pb::IntegerPolyhedron>> result = makeDisjuncts(f);
    if (succeeded(result))
      dnfMemo.emplace(key, std::make_pair(f, *result));
    return result;
  }

  FailureOr<std::vector<pb::IntegerPolyhedron>> makeDisjuncts(const F &f) {
    std::vector<pb::IntegerPolyhedron> out;
    auto keep = [&](pb::IntegerPolyhedron poly) -> LogicalResult {
      if (++steps > kMaxSteps) {
        why = "proving the mask for every size takes more than " +
              std::to_string(kMaxSteps) + " steps";
        return failure();
      }
      // Rational emptiness (a linear program) prunes; whether what is left
      // holds an integer point is decided only where a verdict needs it
      // (integer emptiness over 2^30-wide ranges can take seconds).
      if (pb::Simplex(poly).isEmpty())
        return success();
      if (out.size() >= kMaxDisjuncts) {
        why = "the mask's conditions split into too many cases to prove it "
              "for every size";
        return failure();
      }
      out.push_back(std::move(poly));
      return success();
    };
    switch (f->kind) {
    case Formula::True:
      out.push_back(domain());
      return out;
    case Formula::False:
      return out;
    case Formula::Ge:
    case Formula::Eq: {
      pb::IntegerPolyhedron poly = domain();
      if (f->kind == Formula::Ge)
        poly.addInequality(row(f->lin));
      else
        poly.addEquality(row(f->lin));
      if (failed(keep(std::move(poly))))
        return failure();
      return out;
    }
    case Formula::Or: {
      for (const F &kid : f->kids) {
        FailureOr<std::vector<pb::IntegerPolyhedron>> part = disjuncts(kid);
        if (failed(part))
          return failure();
        for (pb::IntegerPolyhedron &poly : *part)
          if (failed(keep(std::move(poly))))
            return failure();
      }
      return out;
    }
    case Formula::And: {
      FailureOr<std::vector<pb::IntegerPolyhedron>> a = disjuncts(f->kids[0]);
      if (failed(a))
        return failure();
      if (a->empty())
        return out;
      FailureOr<std::vector<pb::IntegerPolyhedron>> b = disjuncts(f->kids[1]);
      if (failed(b))
        return failure();
      for (const pb::IntegerPolyhedron &x : *a)
        for (const pb::IntegerPolyhedron &y : *b) {
          pb::IntegerPolyhedron both = x;
          both.append(y);
          if (failed(keep(std::move(both))))
            return failure();
        }
      return out;
    }
    }
    llvm_unreachable("formula kind");
  }

  /// The grid, the sizes' bounds and the divisions' definitions.
  pb::IntegerPolyhedron domain() const {
    pb::IntegerPolyhedron poly(space());
    auto addGe = [&](const Lin &l) { poly.addInequality(row(l)); };
    Lin nq = sizeLin(sizes.nq), nk = sizeLin(sizes.nk);
    Lin i = Lin::variable(0), j = Lin::variable(1);
    addGe(i);                               // i >= 0
    addGe(combine(1, nq, -1, i)->plus(-1)); // i <= nq - 1
    addGe(j);                               // j >= 0
    addGe(combine(1, nk, -1, j)->plus(-1)); // j <= nk - 1
    addGe(*combine(1, nk, -1, nq));         // nq <= nk
    for (unsigned s = 0; s < sizes.numSymbols; ++s) {
      Lin v = Lin::variable(2 + s);
      addGe(v.plus(-1));                                       // s >= 1
      addGe(combine(-1, v, 0, Lin())->plus(kMaxSymbolicSize)); // s <= max
    }
    for (auto [k, div] : llvm::enumerate(divisions)) {
      Lin q = Lin::variable(2 + sizes.numSymbols + k);
      // divisor * q <= dividend <= divisor * q + divisor - 1
      addGe(*combine(1, div.dividend, -div.divisor, q));
      addGe(combine(div.divisor, q, -1, div.dividend)->plus(div.divisor - 1));
    }
    return poly;
  }

  /// Whether no polyhedron of `set` holds an integer point.
  bool integerEmpty(ArrayRef<pb::IntegerPolyhedron> set) const {
    return llvm::all_of(set, [](const pb::IntegerPolyhedron &poly) {
      return poly.isIntegerEmpty();
    });
  }

  /// A point of `set` on the domain, for a message: the sizes and the pair.
  std::string example(ArrayRef<pb::IntegerPolyhedron> set) const {
    for (const pb::IntegerPolyhedron &poly : set) {
      std::optional<SmallVector<llvm::DynamicAPInt, 8>> point =
          poly.findIntegerSample();
      if (!point)
        continue;
      auto at = [&](const Lin &l) {
        llvm::DynamicAPInt v(l.c);
        for (auto [var, k] : llvm::enumerate(l.coeffs))
          v += llvm::DynamicAPInt(k) * (*point)[var];
        return int64_t(v);
      };
      return llvm::formatv(" (e.g. at {0} queries and {1} keys, query {2}, "
                           "key {3})",
                           at(sizeLin(sizes.nq)), at(sizeLin(sizes.nk)),
                           int64_t((*point)[0]), int64_t((*point)[1]))
          .str();
    }
    return "";
  }
};

int64_t
MaskEvaluator::largestIntegerConstant(ArrayRef<MaskTermNodes> terms) const {
  int64_t largest = 0;
  SmallVector<unsigned> work;
  for (const MaskTermNodes &term : terms) {
    work.push_back(term.value);
    if (term.cond)
      work.push_back(*term.cond);
  }
  llvm::DenseSet<unsigned> seen;
  while (!work.empty()) {
    unsigned n = work.pop_back_val();
    if (!seen.insert(n).second)
      continue;
    const Node &node = nodes[n];
    auto note = [&](int64_t v) {
      if (v != INT64_MIN)
        largest = std::max(largest, v < 0 ? -v : v);
    };
    if (node.kind == Kind::Const && isAffineType(node.type))
      note(node.value.i);
    // A float divisor (integer floor division done in f64); not other float
    // constants, such as a finite masking value of -1e9.
    if (node.kind == Kind::Op && node.native == Native::DivF) {
      const Node &divisor = nodes[node.operands[1]];
      double f = divisor.value.f;
      if (divisor.kind == Kind::Const && std::isfinite(f) &&
          std::fabs(f) < 0x1p62 && f == std::floor(f))
        note(static_cast<int64_t>(f));
    }
    if (node.kind == Kind::Div || node.kind == Kind::Rem ||
        node.kind == Kind::Linear)
      note(node.c);
    llvm::append_range(work, node.operands);
  }
  return largest;
}

LogicalResult MaskEvaluator::proveForAllSizes(ArrayRef<MaskTermNodes> terms,
                                              const SymbolicSizes &sizes,
                                              SWBAMaskParams params,
                                              std::string &why) {
  Symbolic sym(*this, sizes, why);
  SmallVector<double, 2> hiding = hidingValues(terms);
  F visible = constantFormula(true);
  for (auto [t, term] : llvm::enumerate(terms)) {
    // Where the term applies its value: everywhere, or where its condition
    // does not keep the scores.
    F applied = constantFormula(true);
    if (term.cond) {
      FailureOr<const Pieces *> cond = sym.of(*term.cond);
      if (failed(cond))
        return failure();
      applied = constantFormula(false);
      for (const Piece &p : **cond)
        if ((Symbolic::scalarOf(p).i != 0) != term.keepIfTrue)
          applied = disj(applied, p.guard);
    }
    FailureOr<const Pieces *> values = sym.of(term.value);
    if (failed(values))
      return failure();
    F hidden = constantFormula(false);
    for (const Piece &p : **values) {
      if (p.isLin) {
        why = "the mask's value depends on the query, the key or a dynamic "
              "size, not only through conditions";
        return failure();
      }
      double value = p.value.f;
      if (value <= hiding[t]) {
        hidden = disj(hidden, p.guard);
      } else if (term.cond || value != 0.0) {
        sym.obligations.push_back(
            {conj(applied, p.guard),
             llvm::formatv("the mask value is {0}, neither 0 nor -inf (or at "
                           "most half the lowest finite value)",
                           value)
                 .str()});
      }
    }
    visible = conj(visible, negate(conj(applied, hidden)));
  }

  // The sliding window block mask: frames of query position i + nk - nq and
  // of key j, the key's at most the query's and fewer than `window` apart.
  Lin nq = sym.sizeLin(sizes.nq), nk = sym.sizeLin(sizes.nk);
  Lin pos = *combine(1, Lin::variable(0), 1, *combine(1, nk, -1, nq));
  Lin fq = sym.floorDiv(pos, params.blockSize);
  Lin fk = sym.floorDiv(Lin::variable(1), params.blockSize);
  Lin apart = *combine(1, fq, -1, fk);
  F swba = conj(ge(apart),
                ge(combine(-1, apart, 0, Lin())->plus(params.window - 1)));

  // Every variable exists now: the sets.
  for (const auto &[formula, message] : sym.obligations) {
    FailureOr<std::vector<pb::IntegerPolyhedron>> bad = sym.disjuncts(formula);
    if (failed(bad))
      return failure();
    if (!sym.integerEmpty(*bad)) {
      why = message + sym.example(*bad);
      return failure();
    }
  }
  // Pairs one lets through and the other hides, both ways.
  for (auto [from, to, what] :
       {std::make_tuple(visible, swba,
                        "lets through a pair that the window hides"),
        std::make_tuple(swba, visible,
                        "hides a pair that the window lets through")}) {
    FailureOr<std::vector<pb::IntegerPolyhedron>> differ =
        sym.disjuncts(conj(from, negate(to)));
    if (failed(differ))
      return failure();
    if (sym.integerEmpty(*differ))
      continue;
    why = llvm::formatv("the mask is the sliding window block mask "
                        "(block_size {0}, window {1}) at the sizes it was "
                        "evaluated at, but not at every size: it {2}",
                        params.blockSize, params.window, what)
              .str() +
          sym.example(*differ);
    return failure();
  }
  return success();
}
