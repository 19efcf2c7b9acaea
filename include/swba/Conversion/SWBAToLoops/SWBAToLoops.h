//===- SWBAToLoops.h - SWBA ops to scf loops --------------------*- C++ -*-===//

#ifndef SWBA_CONVERSION_SWBATOLOOPS_SWBATOLOOPS_H
#define SWBA_CONVERSION_SWBATOLOOPS_SWBATOLOOPS_H

#include <cstdint>

namespace mlir {
class RewritePatternSet;

namespace swba {

/// Tile sizes of the loop lowering.
struct LoopTiling {
  int64_t tileQ = 16;
  int64_t tileK = 16;
};

/// Patterns that rewrite memref-form `swba.attention`,
/// `swba.attention_grad` and `swba.paged_attention` into tiled scf loops
/// with block-window bounds.
void populateSWBAToLoopsPatterns(RewritePatternSet &patterns,
                                 LoopTiling tiling);

/// The `swba.paged_attention` pattern alone: key loops walk each window
/// page by page through the page table.
void populatePagedAttentionToLoopsPatterns(RewritePatternSet &patterns,
                                           LoopTiling tiling);

} // namespace swba
} // namespace mlir

#endif // SWBA_CONVERSION_SWBATOLOOPS_SWBATOLOOPS_H
