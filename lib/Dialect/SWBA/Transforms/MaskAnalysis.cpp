//===- MaskAnalysis.cpp - Is a visibility matrix an SWBA mask? ------------===//

#include "MaskAnalysis.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <numeric>

using namespace mlir;
using namespace mlir::swba;

static int64_t frameOf(int64_t pos, int64_t blockSize) {
  return pos / blockSize;
}

bool mlir::swba::isSWBAVisible(int64_t i, int64_t j, int64_t nq, int64_t nk,
                               int64_t blockSize, int64_t window) {
  int64_t fq = frameOf(i + nk - nq, blockSize);
  int64_t fk = frameOf(j, blockSize);
  return fk <= fq && fq - fk < window;
}

/// The SWBA key range of query row `i`.
static KeyRange expectedRange(int64_t i, int64_t nq, int64_t nk, int64_t bs,
                              int64_t ws) {
  int64_t fq = frameOf(i + nk - nq, bs);
  return {std::max<int64_t>(0, (fq - ws + 1) * bs),
          std::min<int64_t>((fq + 1) * bs, nk)};
}

FailureOr<SWBAMaskParams> mlir::swba::inferSWBAMask(ArrayRef<KeyRange> rows,
                                                    int64_t nq, int64_t nk,
                                                    std::string &why) {
  if (nq < 1 || nk < nq) {
    why = llvm::formatv("needs 1 <= Nq <= Nk, got Nq={0} Nk={1}", nq, nk);
    return failure();
  }
  // Frame edges are multiples of the block size: it divides every range
  // bound that is not clipped to [0, Nk].
  int64_t edges = 0;
  for (const KeyRange &r : rows) {
    edges = std::gcd(edges, r.lo);
    if (r.hi < nk)
      edges = std::gcd(edges, r.hi);
  }
  if (edges == 0)
    edges = nk;

  // Candidates: the divisors of the common edge, then (for a better
  // diagnosis of near misses) those of the first row's end, largest first.
  SmallVector<int64_t> candidates;
  for (int64_t d = edges; d >= 1; --d)
    if (edges % d == 0)
      candidates.push_back(d);
  for (int64_t d = rows[0].hi; d >= 1; --d)
    if (rows[0].hi % d == 0 && !llvm::is_contained(candidates, d))
      candidates.push_back(d);

  std::string closest;
  int64_t closestMatches = -1;
  for (int64_t bs : candidates) {
    // The window follows from any row whose range is not clipped at 0; with
    // none, every row sees back to key 0 and any window past the frames fits.
    int64_t numFrames = (nk + bs - 1) / bs;
    int64_t ws = numFrames;
    for (int64_t i = 0; i < nq; ++i) {
      if (rows[i].lo > 0) {
        ws = frameOf(i + nk - nq, bs) - rows[i].lo / bs + 1;
        break;
      }
    }
    if (ws < 1)
      continue;
    int64_t matches = 0;
    std::string mismatch;
    for (int64_t i = 0; i < nq; ++i) {
      KeyRange want = expectedRange(i, nq, nk, bs, ws);
      if (want.lo == rows[i].lo && want.hi == rows[i].hi) {
        ++matches;
      } else if (mismatch.empty()) {
        mismatch = llvm::formatv(
            "query row {0} sees keys [{1}, {2}) but block_size={3} "
            "window={4} would give [{5}, {6})",
            i, rows[i].lo, rows[i].hi, bs, ws, want.lo, want.hi);
      }
    }
    if (matches == nq)
      return SWBAMaskParams{bs, std::min(ws, numFrames)};
    if (matches > closestMatches) {
      closestMatches = matches;
      closest = mismatch;
    }
  }
  why = "not a sliding window block mask for any block size; the closest: " + closest;
  return failure();
}
