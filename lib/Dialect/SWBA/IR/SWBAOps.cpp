//===- SWBAOps.cpp - SWBA dialect operations ------------------------------===//

#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::swba;

#define GET_OP_CLASSES
#include "swba/Dialect/SWBA/IR/SWBAOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Verification helpers shared by both ops
//===----------------------------------------------------------------------===//

namespace {
/// An operand as the diagnostics name it.
struct NamedOperand {
  StringRef name;
  ShapedType type;
};

/// Names of the dimensions of [B, H, N, D] operands, for diagnostics.
constexpr StringLiteral kDimNames[] = {"batch", "head", "sequence",
                                       "head dim"};
} // namespace

static NamedOperand named(StringRef name, Value value) {
  return {name, cast<ShapedType>(value.getType())};
}

static LogicalResult verifyRank(Operation *op, const NamedOperand &x,
                                int64_t rank, StringRef layout) {
  if (x.type.getRank() == rank)
    return success();
  return op->emitOpError() << "'" << x.name << "' must have rank " << rank
                           << " (" << layout << "), got rank "
                           << x.type.getRank();
}

static LogicalResult verifyElementType(Operation *op, const NamedOperand &x,
                                       Type expected, StringRef expectedFrom) {
  if (x.type.getElementType() == expected)
    return success();
  return op->emitOpError() << "'" << x.name << "' element type "
                           << x.type.getElementType()
                           << " does not match the element type " << expected
                           << " of '" << expectedFrom << "'";
}

/// Checks that dimension `ai` of `a` equals dimension `bi` of `b` when both
/// are static; --lower-swba asserts dynamic ones at run time.
/// `what` names the size in the diagnostic.
static LogicalResult verifySizeMatch(Operation *op, StringRef what,
                                     const NamedOperand &a, unsigned ai,
                                     const NamedOperand &b, unsigned bi) {
  int64_t x = a.type.getDimSize(ai), y = b.type.getDimSize(bi);
  if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
    return success();
  return op->emitOpError() << what << " size mismatch: '" << a.name
                           << "' has " << x << " (dim " << ai << ") but '"
                           << b.name << "' has " << y << " (dim " << bi << ")";
}

/// verifySizeMatch for [B, H, N, D] operands, whose dims are named by `ai`.
static LogicalResult verifyDimMatch(Operation *op, const NamedOperand &a,
                                    unsigned ai, const NamedOperand &b,
                                    unsigned bi) {
  return verifySizeMatch(op, kDimNames[ai], a, ai, b, bi);
}

static LogicalResult verifySameShape(Operation *op, const NamedOperand &a,
                                     const NamedOperand &b) {
  for (unsigned i = 0, e = a.type.getRank(); i < e; ++i)
    if (failed(verifyDimMatch(op, a, i, b, i)))
      return failure();
  return success();
}

static LogicalResult verifyStaticHeadDim(Operation *op, const NamedOperand &x) {
  if (!x.type.isDynamicDim(3))
    return success();
  return op->emitOpError() << "head dim of '" << x.name
                           << "' (dim 3) must be static";
}

static LogicalResult verifyAttributes(Operation *op, int64_t blockSize,
                                      int64_t window,
                                      std::optional<APFloat> scale) {
  if (blockSize < 1)
    return op->emitOpError() << "'block_size' must be >= 1, got " << blockSize;
  if (window < 1)
    return op->emitOpError() << "'window' must be >= 1, got " << window;
  if (scale && !scale->isFinite())
    return op->emitOpError() << "'scale' must be finite, got "
                             << scale->convertToDouble();
  return success();
}

static LogicalResult verifyAllTensorsOrAllMemRefs(Operation *op) {
  bool anyTensor = false, anyMemRef = false;
  for (Value operand : op->getOperands()) {
    anyTensor |= isa<TensorType>(operand.getType());
    anyMemRef |= isa<MemRefType>(operand.getType());
  }
  if (anyTensor && anyMemRef)
    return op->emitOpError()
           << "operands must be all tensors or all memrefs, got a mix";
  return success();
}

static LogicalResult verifyFloatElementType(Operation *op,
                                            const NamedOperand &x) {
  Type elementType = x.type.getElementType();
  if (elementType.isF16() || elementType.isBF16() || elementType.isF32())
    return success();
  return op->emitOpError() << "'" << x.name
                           << "' element type must be f16, bf16 or f32, got "
                           << elementType;
}

/// Verifies the operands and attributes both ops share: q, k, v, out and lse
/// (lse may be absent in the forward op).
static LogicalResult
verifyAttentionCore(Operation *op, NamedOperand q, NamedOperand k,
                    NamedOperand v, NamedOperand out,
                    std::optional<NamedOperand> lse, int64_t blockSize,
                    int64_t window, std::optional<APFloat> scale) {
  if (failed(verifyAttributes(op, blockSize, window, scale)) ||
      failed(verifyAllTensorsOrAllMemRefs(op)))
    return failure();

  if (failed(verifyRank(op, q, 4, "[B, Hq, Nq, D]")) ||
      failed(verifyRank(op, k, 4, "[B, Hkv, Nk, D]")) ||
      failed(verifyRank(op, v, 4, "[B, Hkv, Nk, Dv]")) ||
      failed(verifyRank(op, out, 4, "[B, Hq, Nq, Dv]")) ||
      (lse && failed(verifyRank(op, *lse, 3, "[B, Hq, Nq]"))))
    return failure();

  Type elementType = q.type.getElementType();
  if (failed(verifyFloatElementType(op, q)))
    return failure();
  if (failed(verifyElementType(op, k, elementType, q.name)) ||
      failed(verifyElementType(op, v, elementType, q.name)) ||
      failed(verifyElementType(op, out, elementType, q.name)))
    return failure();
  if (lse && !lse->type.getElementType().isF32())
    return op->emitOpError() << "'" << lse->name
                             << "' element type must be f32, got "
                             << lse->type.getElementType();

  // The default scale is 1/sqrt(D): a zero head dim has none.
  if (q.type.getDimSize(3) == 0)
    return op->emitOpError() << "head dim of '" << q.name
                             << "' (dim 3) must be >= 1, got 0";
  if (failed(verifyStaticHeadDim(op, q)) ||
      failed(verifyStaticHeadDim(op, k)) ||
      failed(verifyStaticHeadDim(op, v)) ||
      failed(verifyStaticHeadDim(op, out)))
    return failure();

  // Batch everywhere; heads, length and head dims pairwise.
  for (const NamedOperand &x : {k, v, out})
    if (failed(verifyDimMatch(op, x, 0, q, 0)))
      return failure();
  if (failed(verifyDimMatch(op, v, 1, k, 1)) ||
      failed(verifyDimMatch(op, out, 1, q, 1)) ||
      failed(verifyDimMatch(op, v, 2, k, 2)) ||
      failed(verifyDimMatch(op, out, 2, q, 2)) ||
      failed(verifyDimMatch(op, k, 3, q, 3)) ||
      failed(verifyDimMatch(op, out, 3, v, 3)))
    return failure();
  if (lse)
    for (unsigned i = 0; i < 3; ++i)
      if (failed(verifyDimMatch(op, *lse, i, q, i)))
        return failure();

  // Zero heads of each is an empty op; zero key/value heads under some
  // query heads leaves those heads nothing to read.
  int64_t hq = q.type.getDimSize(1), hkv = k.type.getDimSize(1);
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      (hkv == 0 ? hq != 0 : hq % hkv != 0))
    return op->emitOpError() << "query heads (" << hq
                             << ") must be a multiple of key/value heads ("
                             << hkv << ")";

  int64_t nq = q.type.getDimSize(2), nk = k.type.getDimSize(2);
  if (!ShapedType::isDynamic(nq) && !ShapedType::isDynamic(nk) && nq > nk)
    return op->emitOpError() << "query length (" << nq
                             << ") must not exceed key length (" << nk
                             << "): positions are bottom-right aligned";
  return success();
}

static double effectiveScale(std::optional<APFloat> scale, Value query) {
  if (scale)
    return scale->convertToDouble();
  return 1.0 / std::sqrt(double(
                   cast<ShapedType>(query.getType()).getDimSize(3)));
}

/// Inputs are read; outputs are only written (their contents are never read).
static void
getDpsEffects(DestinationStyleOpInterface op,
              SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
                  &effects) {
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    if (op.isDpsInit(&operand))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
    else
      effects.emplace_back(MemoryEffects::Read::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

/// A query row at a negative position would see no key at all (its own frame
/// lies before the sequence), so a constant offset must keep query row 0,
/// at position Nk - Nq + key_offset, at or after the start.
static LogicalResult verifyKeyOffset(AttentionOp op) {
  APInt offset;
  if (!op.getKeyOffset() ||
      !matchPattern(op.getKeyOffset(), m_ConstantInt(&offset)))
    return success();
  int64_t nq = cast<ShapedType>(op.getQuery().getType()).getDimSize(2);
  int64_t nk = cast<ShapedType>(op.getKey().getType()).getDimSize(2);
  if (ShapedType::isDynamic(nq) || ShapedType::isDynamic(nk))
    return success();
  int64_t firstQuery = nk - nq + offset.getSExtValue();
  if (firstQuery >= 0)
    return success();
  return op.emitOpError() << "'key_offset' " << offset.getSExtValue()
                          << " puts query row 0 at position " << firstQuery
                          << " (Nk - Nq + key_offset with Nk = " << nk
                          << ", Nq = " << nq
                          << "): queries before the sequence start see no key";
}

void AttentionOp::build(OpBuilder &builder, OperationState &state, Value query,
                        Value key, Value value, ValueRange outputs,
                        int64_t blockSize, int64_t window,
                        std::optional<float> scale, Value keyOffset) {
  SmallVector<Type> resultTypes;
  for (Value output : outputs)
    if (isa<RankedTensorType>(output.getType()))
      resultTypes.push_back(output.getType());
  build(builder, state, resultTypes, query, key, value, outputs, keyOffset,
        builder.getI64IntegerAttr(blockSize), builder.getI64IntegerAttr(window),
        scale ? builder.getF32FloatAttr(*scale) : FloatAttr());
}

LogicalResult AttentionOp::verify() {
  if (getOutputs().empty() || getOutputs().size() > 2)
    return emitOpError() << "expects 1 or 2 outputs (out, then optional lse), "
                            "got "
                         << getOutputs().size();
  std::optional<NamedOperand> lse;
  if (getLse())
    lse = named("lse", getLse());
  if (failed(verifyAttentionCore(
          *this, named("query", getQuery()), named("key", getKey()),
          named("value", getValue()), named("out", getOut()), lse,
          getBlockSize(), getWindow(), getScale())))
    return failure();
  return verifyKeyOffset(*this);
}

double AttentionOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery());
}

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// AttentionGradOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionGradOp::verify() {
  NamedOperand q = named("query", getQuery()), k = named("key", getKey()),
               v = named("value", getValue()), out = named("out", getOut()),
               dout = named("grad_out", getGradOut()),
               dq = named("grad_query", getGradQuery()),
               dk = named("grad_key", getGradKey()),
               dv = named("grad_value", getGradValue());
  if (failed(verifyAttentionCore(*this, q, k, v, out, named("lse", getLse()),
                                 getBlockSize(), getWindow(), getScale())))
    return failure();
  // Each gradient mirrors the operand it differentiates.
  for (auto [grad, of] : {std::pair{dout, out}, {dq, q}, {dk, k}, {dv, v}}) {
    if (failed(verifyRank(*this, grad, of.type.getRank(),
                          "the rank of '" + of.name.str() + "'")) ||
        failed(verifyElementType(*this, grad, of.type.getElementType(),
                                 of.name)) ||
        failed(verifySameShape(*this, grad, of)))
      return failure();
  }
  return success();
}

double AttentionGradOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery());
}

void AttentionGradOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

static LogicalResult verifyI32(Operation *op, const NamedOperand &x) {
  if (x.type.getElementType().isSignlessInteger(32))
    return success();
  return op->emitOpError() << "'" << x.name << "' element type must be i32, got "
                           << x.type.getElementType();
}

LogicalResult PagedAttentionOp::verify() {
  if (getOutputs().empty() || getOutputs().size() > 2)
    return emitOpError() << "expects 1 or 2 outputs (out, then optional lse), "
                            "got "
                         << getOutputs().size();
  if (failed(verifyAttributes(*this, getBlockSize(), getWindow(),
                              getScale())) ||
      failed(verifyAllTensorsOrAllMemRefs(*this)))
    return failure();

  NamedOperand q = named("query", getQuery()),
               k = named("key_cache", getKeyCache()),
               v = named("value_cache", getValueCache()),
               pages = named("page_table", getPageTable()),
               lens = named("seq_lens", getSeqLens()),
               out = named("out", getOut());
  std::optional<NamedOperand> lse;
  if (getLse())
    lse = named("lse", getLse());
  if (failed(verifyRank(*this, q, 4, "[B, Hq, Nq, D]")) ||
      failed(verifyRank(*this, k, 4, "[num_pages, page_size, Hkv, D]")) ||
      failed(verifyRank(*this, v, 4, "[num_pages, page_size, Hkv, Dv]")) ||
      failed(verifyRank(*this, pages, 2, "[B, max_pages]")) ||
      failed(verifyRank(*this, lens, 1, "[B]")) ||
      failed(verifyRank(*this, out, 4, "[B, Hq, Nq, Dv]")) ||
      (lse && failed(verifyRank(*this, *lse, 3, "[B, Hq, Nq]"))))
    return failure();

  if (failed(verifyFloatElementType(*this, q)) ||
      failed(verifyElementType(*this, k, q.type.getElementType(), q.name)) ||
      failed(verifyElementType(*this, v, q.type.getElementType(), q.name)) ||
      failed(verifyElementType(*this, out, q.type.getElementType(), q.name)) ||
      failed(verifyI32(*this, pages)) || failed(verifyI32(*this, lens)))
    return failure();
  if (lse && !lse->type.getElementType().isF32())
    return emitOpError() << "'lse' element type must be f32, got "
                         << lse->type.getElementType();

  if (failed(verifyStaticHeadDim(*this, q)) ||
      failed(verifyStaticHeadDim(*this, k)) ||
      failed(verifyStaticHeadDim(*this, v)) ||
      failed(verifyStaticHeadDim(*this, out)))
    return failure();

  int64_t pageSize = k.type.getDimSize(1);
  if (!ShapedType::isDynamic(pageSize) && pageSize < 1)
    return emitOpError() << "page size ('key_cache' dim 1) must be >= 1, got "
                         << pageSize;

  if (failed(verifySizeMatch(*this, "batch", pages, 0, q, 0)) ||
      failed(verifySizeMatch(*this, "batch", lens, 0, q, 0)) ||
      failed(verifySizeMatch(*this, "batch", out, 0, q, 0)) ||
      failed(verifySizeMatch(*this, "page count", v, 0, k, 0)) ||
      failed(verifySizeMatch(*this, "page size", v, 1, k, 1)) ||
      failed(verifySizeMatch(*this, "kv head", v, 2, k, 2)) ||
      failed(verifySizeMatch(*this, "head dim", k, 3, q, 3)) ||
      failed(verifySizeMatch(*this, "head", out, 1, q, 1)) ||
      failed(verifySizeMatch(*this, "query", out, 2, q, 2)) ||
      failed(verifySizeMatch(*this, "value head dim", out, 3, v, 3)))
    return failure();
  if (lse)
    for (unsigned i = 0; i < 3; ++i)
      if (failed(verifySizeMatch(
              *this, i == 2 ? StringRef("query") : StringRef(kDimNames[i]),
              *lse, i, q, i)))
        return failure();

  int64_t hq = q.type.getDimSize(1), hkv = k.type.getDimSize(2);
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      (hkv == 0 || hq % hkv != 0))
    return emitOpError() << "query heads (" << hq
                         << ") must be a multiple of the cache's key/value "
                            "heads ("
                         << hkv << ", 'key_cache' dim 2)";
  return success();
}

double PagedAttentionOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery());
}

void PagedAttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getDpsEffects(*this, effects);
}
