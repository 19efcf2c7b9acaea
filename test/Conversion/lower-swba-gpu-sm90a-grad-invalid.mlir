// --lower-swba{target=gpu chip=sm_90a} rejects, at the op, backward tiles
// that do not fit in shared memory, before rewriting anything.
// RUN: swba-opt %s --verify-diagnostics --lower-swba="target=gpu chip=sm_90a grad-stages=6"
// With grad-fused-dq the dK/dV kernel has dS^T slots and dQ staging more.
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=6 grad-fused-dq=true" 2>&1 | FileCheck %s --check-prefix=FUSED
// FUSED: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=6 needs more than the 231168 bytes of shared memory a workgroup can have (grad-fused-dq: dK/dV kernel with dS^T slots and dQ staging 346112)
// The dQ kernel's default 128-key tile gives way to 64 keys where it does
// not fit (head dim 128, 3 stages); one asked for does not.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=3" | FileCheck %s --check-prefix=FALLBACK
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=3 grad-key-tile=128" 2>&1 | FileCheck %s --check-prefix=ASKED
// FALLBACK: gpu.func @swba_bwd_dq
// ASKED: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=3 needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 262144, dK/dV kernel 165888)
// grad-key-stages sets the dQ kernel's stages alone, and the error names both.
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-key-stages=6 grad-key-tile=128" 2>&1 | FileCheck %s --check-prefix=KEYSTAGES
// KEYSTAGES: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=2 grad-key-stages=6 needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 458752, dK/dV kernel 133120)
// With one dK/dV or dQ consumer two workgroups share an SM's shared
// memory; the fused kernel needs two consumers.
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=3 grad-kv-consumers=1" 2>&1 | FileCheck %s --check-prefix=ONEKV
// ONEKV: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=3 needs more than the 231168 bytes of shared memory a workgroup can have, 114944 where two run on an SM (grad-kv-consumers=1) (dQ kernel 163840, dK/dV kernel 132096)
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=4 grad-q-consumers=1" 2>&1 | FileCheck %s --check-prefix=ONEQ
// ONEQ: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=4 needs more than the 231168 bytes of shared memory a workgroup can have, 114944 where two run on an SM (grad-q-consumers=1) (dQ kernel 163840, dK/dV kernel 198656)
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-fused-dq=true grad-kv-consumers=1" 2>&1 | FileCheck %s --check-prefix=ONEKVFUSED
// ONEKVFUSED: error: 'swba.attention_grad' op chip=sm_90a: grad-fused-dq needs the dK/dV kernel's two consumers, got grad-kv-consumers=1
// Past one key tile a dK/dV workgroup K and V take two buffers, and the
// error names grad-kv-tiles; O's rows take the dQ kernel's with
// grad-dq-delta=true, and the error names it.
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-stages=4 grad-kv-tiles=2" 2>&1 | FileCheck %s --check-prefix=KVTILES
// KVTILES: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=4 grad-kv-tiles=2 needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 196608, dK/dV kernel 264192)
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-key-stages=5 grad-dq-delta=true" 2>&1 | FileCheck %s --check-prefix=DQDELTA
// DQDELTA: error: 'swba.attention_grad' op chip=sm_90a: grad-stages=2 grad-key-stages=5 grad-dq-delta=true needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 262144, dK/dV kernel 133120)

func.func @sm90a_grad_stages_exceed_shared_memory(%q: memref<1x2x64x128xf16>, %l: memref<1x2x64xf32>) {
  // expected-error @+1 {{chip=sm_90a: grad-stages=6 needs more than the 231168 bytes of shared memory a workgroup can have (dQ kernel 262144, dK/dV kernel 264192)}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x128xf16>, memref<1x2x64x128xf16>, memref<1x2x64x128xf16>) block_size = 4 window = 1
  return
}
