//===- Softmax.h - Softmax of the sm_90a kernels ----------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU/Hopper: the forward's online softmax
// in the wgmma accumulator registers, and the backward's recomputation of
// the probabilities from the forward's log-sum-exp. Scores are in the log2
// domain (exp2 is one instruction); with a positive scale they arrive
// unscaled and the scale folds into the exponent's subtraction (one FFMA a
// score; llvm.intr.fma, since math.fma becomes a libdevice call).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_SOFTMAX_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_SOFTMAX_H

#include "HopperKernelBuilder.h"

namespace mlir::swba::gpu_kernels {

/// The online softmax of a consumer's rows, tile by tile: a thread holds
/// two rows (h = 0, 1: register 4 jn + 2 h + c of the accumulator layout)
/// and their running maxima and sums, which a quad completes.
struct OnlineSoftmax {
  HopperKernelBuilder &e;
  /// The scale times log2(e).
  Value scale;
  /// Scores arrive unscaled (see the file comment).
  bool positiveScale;

  /// A tile's probabilities P (f32, in the accumulator's registers) and
  /// the factors alpha that rescale O's rows.
  struct Tile {
    SmallVector<Value> probs;
    Value alpha[2];
  };
  /// The softmax of masked scores `s`: updates the row maxima and sums.
  Tile update(SmallVector<Value> s, MutableArrayRef<Value> rowMax,
              MutableArrayRef<Value> rowSum);
  /// Its two parts: the row maxima with `s`'s, then the probabilities
  /// against the maxima `rowMax` (`oldMax` before `s`), the sums updated
  /// (unless `sums` is false: the caller sums P on the tensor cores).
  void updateMaxima(ArrayRef<Value> s, MutableArrayRef<Value> rowMax);
  Tile exponentiate(SmallVector<Value> s, ArrayRef<Value> oldMax,
                    ArrayRef<Value> rowMax, MutableArrayRef<Value> rowSum,
                    bool sums = true);
  /// O's accumulator with each row times its alpha.
  SmallVector<Value> rescale(SmallVector<Value> acc, Value alpha[2]);
};

/// P = 2^(S scale log2 e - lse log2 e) of one score `s` (already times
/// scaleLog2 unless `positiveScale`), from `negLseLog2` = -lse log2 e.
Value recomputeProbability(HopperKernelBuilder &e, Value s, Value scaleLog2,
                           Value negLseLog2, bool positiveScale);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_SOFTMAX_H
