// --lower-swba{target=gpu chip=sm_90a} rejects, at the op, a tiling of the
// Hopper kernel that cannot run, before rewriting anything; an option out
// of range whatever the op (consumers=4, ping-pong=1) is rejected before
// looking at ops.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --lower-swba="target=gpu chip=sm_90a stages=4"
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a consumers=4" 2>&1 | FileCheck %s --check-prefix=CONSUMERS

// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a ping-pong=1" 2>&1 | FileCheck %s --check-prefix=PINGPONG

// CONSUMERS: error: --lower-swba: consumers must be 0, 1, 2 or 3, got 4
// PINGPONG: error: --lower-swba: ping-pong must be empty, 'true' or 'false', got '1'

func.func @sm90a_stages_exceed_shared_memory(%q: memref<1x2x64x128xf16>) {
  // expected-error @+1 {{chip=sm_90a: block-n=128 stages=4 workgroups-per-sm=1 needs block-n a multiple of 64 up to 256, at least one stage, one to three workgroups an SM and at most 231168 bytes of shared memory a workgroup for Q and the K/V stages (this takes 294912)}}
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


// -----

// Past 128, sm_90a takes multiples of 16 (rounded up to whole 64-column
// TMA boxes): 168 is refused (neither kernel family holds it).
func.func @sm90a_head_dim_168(%q: memref<1x2x64x168xf16>) {
  // expected-error @+1 {{target=gpu supports head dims that are multiples of 16 from 16 to 128 (64 and 128 are the tuned ones), and with chip=sm_90a multiples of 16 from 64 to 256, got 168 and 168}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x168xf16>, memref<1x2x64x168xf16>, memref<1x2x64x168xf16>) outs(%q : memref<1x2x64x168xf16>) block_size = 4 window = 1
  return
}

// -----

// Head dim 256: Q of 128 rows (64 KiB) and four stages of 64-key K and V
// tiles (4 x 64 KiB) do not fit.
func.func @sm90a_d256_stages_exceed_shared_memory(%q: memref<1x2x64x256xbf16>) {
  // expected-error @+1 {{chip=sm_90a: block-n=64 stages=4 workgroups-per-sm=1 needs block-n a multiple of 64 up to 256, at least one stage, one to three workgroups an SM and at most 231168 bytes of shared memory a workgroup for Q and the K/V stages (this takes 327680)}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>) outs(%q : memref<1x2x64x256xbf16>) block_size = 4 window = 1
  return
}
