// Head dim 256 splits the sm_90a dK/dV work into a dV and a dK kernel,
// which grad-fused-dq (one kernel that also adds dQ up from its dS^T) does
// not take: an error at the op, before rewriting anything.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true"

func.func @sm90a_d256_grad_fused(%q: memref<1x2x64x256xbf16>, %l: memref<1x2x64xf32>) {
  // expected-error @+1 {{chip=sm_90a: grad-fused-dq needs dK and dV in one kernel (head dims with d + dv <= 256, each rounded up to a multiple of 64), got 256 and 256}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>) block_size = 4 window = 1
  return
}

// -----

// At head dim 64 the fused kernel's dS^T slots are laid out for query tiles
// of 64 or 128 rows, not the 32 that grad-query-tile may ask for.
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true grad-query-tile=32" 2>&1 | FileCheck %s --check-prefix=TILE32
// TILE32: error: 'swba.attention_grad' op chip=sm_90a: grad-fused-dq needs query tiles of 64 or 128 rows, got 32
func.func @sm90a_d64_grad_fused(%q: memref<1x2x64x64xf16>, %l: memref<1x2x64xf32>) {
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>) block_size = 4 window = 1
  return
}
