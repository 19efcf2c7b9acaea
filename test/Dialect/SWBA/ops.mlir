// Round trip of every form of the swba ops, through the custom printer and
// through the generic printer.
// RUN: swba-opt %s | swba-opt | FileCheck %s
// RUN: swba-opt %s --mlir-print-op-generic | swba-opt | FileCheck %s

// CHECK-LABEL: func @tensor_f16
func.func @tensor_f16(%q: tensor<2x12x512x64xf16>, %k: tensor<2x12x512x64xf16>,
                      %v: tensor<2x12x512x64xf16>, %o: tensor<2x12x512x64xf16>)
    -> tensor<2x12x512x64xf16> {
  // CHECK: %[[R:.*]] = swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x12x512x64xf16>, tensor<2x12x512x64xf16>, tensor<2x12x512x64xf16>) outs(%{{.*}} : tensor<2x12x512x64xf16>) block_size = 256 window = 4 -> tensor<2x12x512x64xf16>
  %r = swba.attention ins(%q, %k, %v : tensor<2x12x512x64xf16>, tensor<2x12x512x64xf16>, tensor<2x12x512x64xf16>)
                      outs(%o : tensor<2x12x512x64xf16>) block_size = 256 window = 4
                      -> tensor<2x12x512x64xf16>
  // CHECK: return %[[R]]
  return %r : tensor<2x12x512x64xf16>
}

// CHECK-LABEL: func @tensor_lse_scale_bf16
func.func @tensor_lse_scale_bf16(%q: tensor<1x4x100x128xbf16>, %k: tensor<1x4x100x128xbf16>,
                                 %v: tensor<1x4x100x128xbf16>, %o: tensor<1x4x100x128xbf16>,
                                 %l: tensor<1x4x100xf32>)
    -> (tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>) {
  // CHECK: %[[R:.*]]:2 = swba.attention ins({{.*}}) outs(%{{.*}}, %{{.*}} : tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>) block_size = 30 window = 2 scale = 5.000000e-01 -> tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>
  %r:2 = swba.attention ins(%q, %k, %v : tensor<1x4x100x128xbf16>, tensor<1x4x100x128xbf16>, tensor<1x4x100x128xbf16>)
                        outs(%o, %l : tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>)
                        block_size = 30 window = 2 scale = 0.5
                        -> tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>
  // CHECK: return %[[R]]#0, %[[R]]#1
  return %r#0, %r#1 : tensor<1x4x100x128xbf16>, tensor<1x4x100xf32>
}

// GQA (12 query heads over 4 kv heads), Nq < Nk, dynamic batch and lengths,
// and a value head dim different from the query head dim.
// CHECK-LABEL: func @memref_gqa_kv_cache_dynamic_f32
func.func @memref_gqa_kv_cache_dynamic_f32(%q: memref<?x12x?x64xf32>, %k: memref<?x4x?x64xf32>,
                                           %v: memref<?x4x?x32xf32>, %o: memref<?x12x?x32xf32>,
                                           %l: memref<?x12x?xf32>) {
  // CHECK: swba.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<?x12x?x64xf32>, memref<?x4x?x64xf32>, memref<?x4x?x32xf32>) outs(%{{.*}}, %{{.*}} : memref<?x12x?x32xf32>, memref<?x12x?xf32>) block_size = 1 window = 16{{$}}
  swba.attention ins(%q, %k, %v : memref<?x12x?x64xf32>, memref<?x4x?x64xf32>, memref<?x4x?x32xf32>)
                 outs(%o, %l : memref<?x12x?x32xf32>, memref<?x12x?xf32>) block_size = 1 window = 16
  return
}

// Nq < Nk with static shapes: a decode step of 256 queries against a cache.
// CHECK-LABEL: func @memref_decode_static
func.func @memref_decode_static(%q: memref<1x8x256x64xf16>, %k: memref<1x8x1024x64xf16>,
                                %v: memref<1x8x1024x64xf16>, %o: memref<1x8x256x64xf16>) {
  // CHECK: swba.attention {{.*}} block_size = 256 window = 4{{$}}
  swba.attention ins(%q, %k, %v : memref<1x8x256x64xf16>, memref<1x8x1024x64xf16>, memref<1x8x1024x64xf16>)
                 outs(%o : memref<1x8x256x64xf16>) block_size = 256 window = 4
  return
}

// CHECK-LABEL: func @grad_tensor
func.func @grad_tensor(%q: tensor<2x8x?x64xf16>, %k: tensor<2x2x?x64xf16>, %v: tensor<2x2x?x64xf16>,
                       %o: tensor<2x8x?x64xf16>, %do: tensor<2x8x?x64xf16>, %lse: tensor<2x8x?xf32>,
                       %dq: tensor<2x8x?x64xf16>, %dk: tensor<2x2x?x64xf16>, %dv: tensor<2x2x?x64xf16>)
    -> (tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>) {
  // CHECK: %[[G:.*]]:3 = swba.attention_grad ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x8x?x64xf16>, tensor<2x8x?x64xf16>, tensor<2x8x?xf32>) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>) block_size = 64 window = 3 scale = 1.250000e-01 -> tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>
  %g:3 = swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x8x?x64xf16>, tensor<2x8x?x64xf16>, tensor<2x8x?xf32>)
                             outs(%dq, %dk, %dv : tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>)
                             block_size = 64 window = 3 scale = 0.125
                             -> tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>
  return %g#0, %g#1, %g#2 : tensor<2x8x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>
}

// CHECK-LABEL: func @grad_memref_bf16
func.func @grad_memref_bf16(%q: memref<?x4x?x128xbf16>, %k: memref<?x4x?x128xbf16>, %v: memref<?x4x?x128xbf16>,
                            %o: memref<?x4x?x128xbf16>, %do: memref<?x4x?x128xbf16>, %lse: memref<?x4x?xf32>,
                            %dq: memref<?x4x?x128xbf16>, %dk: memref<?x4x?x128xbf16>, %dv: memref<?x4x?x128xbf16>) {
  // CHECK: swba.attention_grad {{.*}} block_size = 1560 window = 2{{$}}
  swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?xf32>)
                      outs(%dq, %dk, %dv : memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>, memref<?x4x?x128xbf16>)
                      block_size = 1560 window = 2
  return
}

// CHECK-LABEL: func @key_offset
func.func @key_offset(%q: tensor<1x8x512x64xbf16>, %k: tensor<1x8x896x64xbf16>,
                      %v: tensor<1x8x896x64xbf16>, %o: tensor<1x8x512x64xbf16>,
                      %off: index) -> tensor<1x8x512x64xbf16> {
  // CHECK: swba.attention ins({{.*}}) outs({{.*}}) block_size = 128 window = 4 key_offset = %{{.*}} scale = 1.250000e-01 -> tensor<1x8x512x64xbf16>
  %r = swba.attention ins(%q, %k, %v : tensor<1x8x512x64xbf16>, tensor<1x8x896x64xbf16>, tensor<1x8x896x64xbf16>)
                      outs(%o : tensor<1x8x512x64xbf16>) block_size = 128 window = 4
                      key_offset = %off scale = 0.125 -> tensor<1x8x512x64xbf16>
  return %r : tensor<1x8x512x64xbf16>
}

// Zero heads of each kind is an empty but valid op (0 is a multiple of 0).
// CHECK-LABEL: func @zero_heads
func.func @zero_heads(%q: memref<1x0x8x16xf32>) {
  // CHECK: swba.attention ins({{.*}} : memref<1x0x8x16xf32>, memref<1x0x8x16xf32>, memref<1x0x8x16xf32>) outs({{.*}}) block_size = 4 window = 1
  swba.attention ins(%q, %q, %q : memref<1x0x8x16xf32>, memref<1x0x8x16xf32>, memref<1x0x8x16xf32>) outs(%q : memref<1x0x8x16xf32>) block_size = 4 window = 1
  return
}
