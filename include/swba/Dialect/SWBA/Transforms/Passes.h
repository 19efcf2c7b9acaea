//===- Passes.h - SWBA dialect transforms -----------------------*- C++ -*-===//

#ifndef SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_H
#define SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_H

#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;

namespace swba {

#define GEN_PASS_DECL
#include "swba/Dialect/SWBA/Transforms/Passes.h.inc"

/// Adds the pattern that raises a proven masked attention (rooted at its
/// second contraction) to `swba.attention`. A mask is evaluated with at most
/// `maxMaskPairs` evaluations (pairs one by one, or tiles of `maskTile`
/// keys bounded at once; see --raise-swba).
void populateRaiseSWBAPatterns(RewritePatternSet &patterns,
                               int64_t maxMaskPairs = 1 << 24,
                               int64_t maskTile = 8);

#define GEN_PASS_REGISTRATION
#include "swba/Dialect/SWBA/Transforms/Passes.h.inc"

} // namespace swba
} // namespace mlir

#endif // SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_H
