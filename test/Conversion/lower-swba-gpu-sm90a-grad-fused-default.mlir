// The backward --lower-swba{target=gpu chip=sm_90a} picks when grad-fused-dq
// is left empty: the fused dK/dV/dQ kernel (its gpu.module marked not
// reproducible) on frames at head dim 128 whose band's edges fall on the
// 128-key tiles (block_size >= 128; head dims rounded up to 128 too), the
// separate dQ and dK/dV kernels elsewhere (frames of 64, token windows,
// head dim 64), wherever an option of the separate kernels is given, and
// where tiles asked for do not fit the fused kernel's shared memory
// (128-row query tiles or three stages at head dim 128).
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a" | FileCheck %s
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-fused-dq=false" | FileCheck %s --check-prefix=FALSE
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-key-tile=64" | FileCheck %s --check-prefix=FALSE
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-ping-pong=true" | FileCheck %s --check-prefix=FALSE
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-query-tile=32" | FileCheck %s --check-prefix=FALSE
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-query-tile=128" | FileCheck %s --check-prefix=QUERY128
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-stages=3" | FileCheck %s --check-prefix=FALSE
// RUN: swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-kv-tiles=2" | FileCheck %s --check-prefix=FALSE
// RUN: not swba-opt %s --split-input-file --lower-swba="target=gpu chip=sm_90a grad-fused-dq=1" 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: --lower-swba: grad-fused-dq must be empty, 'true' or 'false', got '1'

// CHECK-LABEL: func @frames_128_d128
// CHECK: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdvdq
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dqconvert
// CHECK: gpu.module @swba_attention_grad_kernels attributes {{.*}}swba.reproducible = false}
// CHECK-NOT: gpu.func @swba_bwd_dq(
// CHECK: gpu.func @swba_bwd_dkdvdq(
// FALSE-LABEL: func @frames_128_d128
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
// QUERY128-LABEL: func @frames_128_d128
// QUERY128-NOT: gpu.memset
// QUERY128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
func.func @frames_128_d128(%q: memref<?x4x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x128xbf16>,
    %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>) block_size = 128 window = 16
  return
}

// -----

// CHECK-LABEL: func @frames_1024_d128
// CHECK: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdvdq
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dqconvert
// CHECK: gpu.module @swba_attention_grad_kernels attributes {{.*}}swba.reproducible = false}
// CHECK-NOT: gpu.func @swba_bwd_dq(
// CHECK: gpu.func @swba_bwd_dkdvdq(
// FALSE-LABEL: func @frames_1024_d128
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
// QUERY128-LABEL: func @frames_1024_d128
// QUERY128-NOT: gpu.memset
// QUERY128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
func.func @frames_1024_d128(%q: memref<?x4x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x128xbf16>,
    %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>) block_size = 1024 window = 4
  return
}

// -----

// CHECK-LABEL: func @frames_256_d112_dv80
// CHECK: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdvdq
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dqconvert
// CHECK: gpu.module @swba_attention_grad_kernels attributes {{.*}}swba.reproducible = false}
// CHECK-NOT: gpu.func @swba_bwd_dq(
// CHECK: gpu.func @swba_bwd_dkdvdq(
// FALSE-LABEL: func @frames_256_d112_dv80
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
// QUERY128-LABEL: func @frames_256_d112_dv80
// QUERY128-NOT: gpu.memset
// QUERY128: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
func.func @frames_256_d112_dv80(%q: memref<?x4x?x112xbf16>, %k: memref<?x2x?x112xbf16>, %v: memref<?x2x?x80xbf16>,
    %o: memref<?x4x?x80xbf16>, %do: memref<?x4x?x80xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x112xbf16>, %dk: memref<?x2x?x112xbf16>, %dv: memref<?x2x?x80xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x112xbf16>, memref<?x2x?x112xbf16>, memref<?x2x?x80xbf16>, memref<?x4x?x80xbf16>, memref<?x4x?x80xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x112xbf16>, memref<?x2x?x112xbf16>, memref<?x2x?x80xbf16>) block_size = 256 window = 4
  return
}

// -----

// CHECK-LABEL: func @frames_64_d128
// CHECK-NOT: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
// CHECK-NOT: swba.reproducible
// CHECK: gpu.func @swba_bwd_dq(
// FALSE-LABEL: func @frames_64_d128
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
func.func @frames_64_d128(%q: memref<?x4x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x128xbf16>,
    %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>) block_size = 64 window = 8
  return
}

// -----

// CHECK-LABEL: func @token_window_d128
// CHECK-NOT: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
// CHECK-NOT: swba.reproducible
// CHECK: gpu.func @swba_bwd_dq(
// FALSE-LABEL: func @token_window_d128
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
func.func @token_window_d128(%q: memref<?x4x?x128xbf16>, %k: memref<?x2x?x128xbf16>, %v: memref<?x2x?x128xbf16>,
    %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x128xbf16>, %dk: memref<?x2x?x128xbf16>, %dv: memref<?x2x?x128xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x2x?x128xbf16>, memref<?x2x?x128xbf16>) block_size = 1 window = 1024
  return
}

// -----

// CHECK-LABEL: func @frames_256_d64
// CHECK-NOT: gpu.memset
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// CHECK: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dq 
// CHECK-NOT: swba.reproducible
// CHECK: gpu.func @swba_bwd_dq(
// FALSE-LABEL: func @frames_256_d64
// FALSE-NOT: gpu.memset
// FALSE: gpu.launch_func @swba_attention_grad_kernels::@swba_bwd_dkdv 
// FALSE-NOT: swba.reproducible
// FALSE: gpu.func @swba_bwd_dq(
func.func @frames_256_d64(%q: memref<?x4x?x64xbf16>, %k: memref<?x2x?x64xbf16>, %v: memref<?x2x?x64xbf16>,
    %o: memref<?x4x?x64xbf16>, %do: memref<?x4x?x64xbf16>, %l: memref<?x4x?xf32>,
    %dq: memref<?x4x?x64xbf16>, %dk: memref<?x2x?x64xbf16>, %dv: memref<?x2x?x64xbf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x64xbf16>, memref<?x2x?x64xbf16>, memref<?x2x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?x64xbf16>, memref<?x4x?xf32>)
      outs(%dq, %dk, %dv : memref<?x4x?x64xbf16>, memref<?x2x?x64xbf16>, memref<?x2x?x64xbf16>) block_size = 256 window = 16
  return
}
