// --lower-swba{target=gpu chip=sm_90a} rejects, at the op, a tiling of the
// Hopper kernel that cannot run, before rewriting anything; an option out
// of range whatever the op (consumers=4) is rejected before looking at ops.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --lower-swba="target=gpu chip=sm_90a stages=4"
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a consumers=4" 2>&1 | FileCheck %s --check-prefix=CONSUMERS

// CONSUMERS: error: --lower-swba: consumers must be 0, 2 or 3, got 4

func.func @sm90a_stages_exceed_shared_memory(%q: memref<1x2x64x128xf16>) {
  // expected-error @+1 {{chip=sm_90a: block-n=128 stages=4 needs block-n a multiple of 64 up to 256, at least one stage and at most 231168 bytes of shared memory for Q and the K/V stages (this takes 294912)}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>) outs(%q : memref<1x2x64x128xf16>) block_size = 4 window = 1
  return
}

// -----

// Head dim 64, 4 stages fit (24 KiB Q for three consumers + 4 x 32 KiB):
// no error, mma.sync is not used either.
func.func @sm90a_stages_fit_d64(%q: memref<1x2x64x64xf16>) {
  swba.attention ins(%q, %q, %q : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>) outs(%q : memref<1x2x64x64xf16>) block_size = 4 window = 1
  return
}

