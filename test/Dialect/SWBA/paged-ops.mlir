// Round trip of swba.paged_attention (tensors and memrefs, static and
// dynamic page sizes, with and without lse and scale), through the custom
// printer and through the generic printer.
// RUN: swba-opt %s | swba-opt | FileCheck %s
// RUN: swba-opt %s --mlir-print-op-generic | swba-opt | FileCheck %s

// Decode: one query per sequence, GQA 32/8, pages of 16 tokens.
// CHECK-LABEL: func @decode_tensor_bf16
func.func @decode_tensor_bf16(%q: tensor<?x32x1x128xbf16>, %kc: tensor<?x16x8x128xbf16>,
                              %vc: tensor<?x16x8x128xbf16>, %pages: tensor<?x?xi32>,
                              %lens: tensor<?xi32>, %o: tensor<?x32x1x128xbf16>)
    -> tensor<?x32x1x128xbf16> {
  // CHECK: %[[R:.*]] = swba.paged_attention ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x32x1x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x?xi32>, tensor<?xi32>) outs(%{{.*}} : tensor<?x32x1x128xbf16>) block_size = 256 window = 8 -> tensor<?x32x1x128xbf16>
  %r = swba.paged_attention ins(%q, %kc, %vc, %pages, %lens : tensor<?x32x1x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x?xi32>, tensor<?xi32>)
                            outs(%o : tensor<?x32x1x128xbf16>) block_size = 256 window = 8
                            -> tensor<?x32x1x128xbf16>
  // CHECK: return %[[R]]
  return %r : tensor<?x32x1x128xbf16>
}

// One frame of queries with lse and a scale; dynamic page size, Dv != D.
// CHECK-LABEL: func @frame_memref_f16_lse
func.func @frame_memref_f16_lse(%q: memref<2x4x64x32xf16>, %kc: memref<100x?x2x32xf16>,
                                %vc: memref<100x?x2x16xf16>, %pages: memref<2x40xi32>,
                                %lens: memref<2xi32>, %o: memref<2x4x64x16xf16>,
                                %l: memref<2x4x64xf32>) {
  // CHECK: swba.paged_attention ins({{.*}} : memref<2x4x64x32xf16>, memref<100x?x2x32xf16>, memref<100x?x2x16xf16>, memref<2x40xi32>, memref<2xi32>) outs(%{{.*}}, %{{.*}} : memref<2x4x64x16xf16>, memref<2x4x64xf32>) block_size = 64 window = 3 scale = 2.500000e-01{{$}}
  swba.paged_attention ins(%q, %kc, %vc, %pages, %lens : memref<2x4x64x32xf16>, memref<100x?x2x32xf16>, memref<100x?x2x16xf16>, memref<2x40xi32>, memref<2xi32>)
                       outs(%o, %l : memref<2x4x64x16xf16>, memref<2x4x64xf32>) block_size = 64 window = 3 scale = 0.25
  return
}
