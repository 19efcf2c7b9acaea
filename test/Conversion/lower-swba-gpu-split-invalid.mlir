// split-kv asks for the sm_90a split-KV forward: an op that kernel does not
// take (another chip, head dims other than 64/128) is an error at the op,
// before anything is rewritten; a count out of range is an option error.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --lower-swba="target=gpu chip=sm_90a split-kv=4"
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90 split-kv=2" 2>&1 | FileCheck %s --check-prefix=SM90
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a split-kv=-1" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a split-kv=1025" 2>&1 | FileCheck %s --check-prefix=RANGE1025

// SM90: error: 'swba.attention' op split-kv=2 needs the sm_90a forward (chip=sm_90a, head dims multiples of 64 up to 256 or of 16 past 64), got chip=sm_90 and head dims 64/64
// RANGE: error: --lower-swba: split-kv must be in [0, 1024], got -1
// RANGE1025: error: --lower-swba: split-kv must be in [0, 1024], got 1025

// Head dim 32 has only the mma.sync forward.
func.func @split_head_dim_32(%q: memref<1x2x64x32xf16>) {
  // expected-error @+1 {{split-kv=4 needs the sm_90a forward (chip=sm_90a, head dims multiples of 64 up to 256 or of 16 past 64), got chip=sm_90a and head dims 32/32}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x32xf16>, memref<1x2x64x32xf16>, memref<1x2x64x32xf16>) outs(%q : memref<1x2x64x32xf16>) block_size = 4 window = 1
  return
}

// -----

// The backward is not split: split-kv leaves swba.attention_grad to its
// kernels, and a head dim 64 forward lowers to the split kernels.
func.func @split_d64(%q: memref<1x2x64x64xf16>, %l: memref<1x2x64xf32>) {
  swba.attention ins(%q, %q, %q : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>) outs(%q : memref<1x2x64x64xf16>) block_size = 4 window = 1
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>) block_size = 4 window = 1
  return
}
