//===- MaskAnalysis.h - Is a visibility matrix an SWBA mask? ----*- C++ -*-===//
//
// Given which (query, key) pairs a mask lets through, find a block size and
// a window for which the SWBA predicate (docs/DESIGN.md, section 1:
// bottom-right aligned positions) lets through exactly those pairs.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKANALYSIS_H
#define SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKANALYSIS_H

#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir::swba {

struct SWBAMaskParams {
  int64_t blockSize;
  int64_t window;
};

/// The keys a query row sees, `[lo, hi)`.
struct KeyRange {
  int64_t lo, hi;
  bool operator==(const KeyRange &other) const {
    return lo == other.lo && hi == other.hi;
  }
};

/// Whether query row `i` sees key `j` under SWBA(blockSize, window) with
/// `nq` queries bottom-right aligned against `nk` keys.
bool isSWBAVisible(int64_t i, int64_t j, int64_t nq, int64_t nk,
                   int64_t blockSize, int64_t window);

/// Finds (block size, window) whose SWBA mask lets query row `i` see
/// exactly the keys `rows[i]` (one non-empty range per row, `nq` rows of
/// `nk` keys). On failure `why` says which row breaks the pattern.
FailureOr<SWBAMaskParams> inferSWBAMask(ArrayRef<KeyRange> rows, int64_t nq,
                                        int64_t nk, std::string &why);

} // namespace mlir::swba

#endif // SWBA_LIB_DIALECT_SWBA_TRANSFORMS_MASKANALYSIS_H
