// --lower-swba rejects what it cannot lower with a diagnostic at the op or
// on the pass options, never a crash.
// RUN: swba-opt %s --lower-swba --split-input-file --verify-diagnostics
// RUN: not swba-opt %s --lower-swba="target=tpu" 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not swba-opt %s --lower-swba="tile-q=0" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not swba-opt %s --lower-swba="tile-k=4611686018427387904" 2>&1 | FileCheck %s --check-prefix=HUGETILE
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-key-tile=96" 2>&1 | FileCheck %s --check-prefix=GRADTILE
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_75" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not swba-opt %s --lower-swba="target=gpu chip=" 2>&1 | FileCheck %s --check-prefix=NOCHIP
// RUN: not swba-opt %s --lower-swba="target=gpu consumers=4" 2>&1 | FileCheck %s --check-prefix=CONSUMERS
// RUN: not swba-opt %s --lower-swba="target=gpu block-n=96" 2>&1 | FileCheck %s --check-prefix=BLOCKN
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a workgroups-per-sm=4" 2>&1 | FileCheck %s --check-prefix=PERSM
// RUN: not swba-opt %s --lower-swba="target=gpu grad-stages=-1" 2>&1 | FileCheck %s --check-prefix=STAGES
// RUN: not swba-opt %s --lower-swba="target=gpu grad-key-stages=17" 2>&1 | FileCheck %s --check-prefix=KEYSTAGES
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-kv-consumers=3" 2>&1 | FileCheck %s --check-prefix=KVCONSUMERS
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-q-consumers=4" 2>&1 | FileCheck %s --check-prefix=QCONSUMERS
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-kv-tiles=17" 2>&1 | FileCheck %s --check-prefix=KVTILES
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a grad-kv-tiles=2 grad-fused-dq=true" 2>&1 | FileCheck %s --check-prefix=KVTILESFUSED

// Every option is checked before any op is looked at, whatever the target.
// TARGET: error: --lower-swba: unsupported target 'tpu' (supported: 'cpu', 'gpu')
// TILE: error: --lower-swba: tile-q and tile-k must be in [1, 256], got tile-q=0 tile-k=16
// HUGETILE: error: --lower-swba: tile-q and tile-k must be in [1, 256], got tile-q=16 tile-k=4611686018427387904
// GRADTILE: error: --lower-swba: grad-key-tile and grad-query-tile must be 0, 32, 64 or 128, got 96
// CHIP: error: --lower-swba: unsupported chip 'sm_75' (supported: sm_80, sm_86, {{.*}}, sm_90, sm_90a, sm_100, {{.*}})
// NOCHIP: error: --lower-swba: unsupported chip '' (supported: sm_80,
// CONSUMERS: error: --lower-swba: consumers must be 0, 1, 2 or 3, got 4
// BLOCKN: error: --lower-swba: block-n must be 0 or a multiple of 64 up to 256, got 96
// PERSM: error: --lower-swba: workgroups-per-sm must be 0, 1, 2 or 3, got 4
// STAGES: error: --lower-swba: stages, grad-stages and grad-key-stages must be in [0, 16], got stages=0 grad-stages=-1 grad-key-stages=0
// KEYSTAGES: error: --lower-swba: stages, grad-stages and grad-key-stages must be in [0, 16], got stages=0 grad-stages=0 grad-key-stages=17
// KVCONSUMERS: error: --lower-swba: grad-kv-consumers must be 0, 1 or 2, got 3
// QCONSUMERS: error: --lower-swba: grad-q-consumers must be 0, 1, 2 or 3, got 4
// KVTILES: error: --lower-swba: grad-kv-tiles must be in [0, 16], got 17
// KVTILESFUSED: error: --lower-swba: grad-kv-tiles=2 runs the dK/dV kernel of the separate dQ kernel; grad-fused-dq=true adds dQ up in one key tile a workgroup

func.func @tensor_form(%q: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  // expected-error @+1 {{'swba.attention' op must be bufferized before --lower-swba (run --one-shot-bufferize first)}}
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) outs(%q : tensor<1x2x8x16xf32>) block_size = 4 window = 1 -> tensor<1x2x8x16xf32>
  return %r : tensor<1x2x8x16xf32>
}


// -----

func.func @paged_tensor_form(%q: tensor<1x2x1x16xf32>, %c: tensor<4x8x2x16xf32>, %p: tensor<1x4xi32>, %n: tensor<1xi32>) -> tensor<1x2x1x16xf32> {
  // expected-error @+1 {{'swba.paged_attention' op must be bufferized before --lower-swba (run --one-shot-bufferize first)}}
  %r = swba.paged_attention ins(%q, %c, %c, %p, %n : tensor<1x2x1x16xf32>, tensor<4x8x2x16xf32>, tensor<4x8x2x16xf32>, tensor<1x4xi32>, tensor<1xi32>) outs(%q : tensor<1x2x1x16xf32>) block_size = 4 window = 1 -> tensor<1x2x1x16xf32>
  return %r : tensor<1x2x1x16xf32>
}
