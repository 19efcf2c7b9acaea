// --lower-swba{target=gpu chip=sm_90a} rejects, at the op, backward tiles
// that do not fit in shared memory, before rewriting anything.
// RUN: swba-opt %s --verify-diagnostics --lower-swba="target=gpu chip=sm_90a grad-stages=6"

func.func @sm90a_grad_stages_exceed_shared_memory(%q: memref<1x2x64x128xf16>, %l: memref<1x2x64xf32>) {
  // expected-error @+1 {{chip=sm_90a: grad-stages=6 needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 262144, dK/dV kernel 264192)}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>) block_size = 4 window = 1
  return
}
