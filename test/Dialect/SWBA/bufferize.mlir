// One-shot bufferization turns the tensor form of the swba ops into the
// memref form, writing in place into the destination buffers and never
// copying an output's dead initial contents.
// RUN: swba-opt %s --one-shot-bufferize="bufferize-function-boundaries" --split-input-file | FileCheck %s

// CHECK-LABEL: func @attention_lse
// CHECK-SAME: (%[[Q:.*]]: memref<2x4x?x64xf16{{.*}}>, %[[K:.*]]: memref<2x2x?x64xf16{{.*}}>, %[[V:.*]]: memref<2x2x?x64xf16{{.*}}>, %[[O:.*]]: memref<2x4x?x64xf16{{.*}}>, %[[L:.*]]: memref<2x4x?xf32{{.*}}>)
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.copy
// CHECK: swba.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) outs(%[[O]], %[[L]] : {{.*}}) block_size = 16 window = 3 scale = 1.250000e-01{{$}}
// CHECK: return %[[O]], %[[L]]
func.func @attention_lse(%q: tensor<2x4x?x64xf16>, %k: tensor<2x2x?x64xf16>, %v: tensor<2x2x?x64xf16>,
                         %o: tensor<2x4x?x64xf16>, %l: tensor<2x4x?xf32>)
    -> (tensor<2x4x?x64xf16>, tensor<2x4x?xf32>) {
  %r:2 = swba.attention ins(%q, %k, %v : tensor<2x4x?x64xf16>, tensor<2x2x?x64xf16>, tensor<2x2x?x64xf16>)
                        outs(%o, %l : tensor<2x4x?x64xf16>, tensor<2x4x?xf32>) block_size = 16 window = 3 scale = 0.125
                        -> tensor<2x4x?x64xf16>, tensor<2x4x?xf32>
  return %r#0, %r#1 : tensor<2x4x?x64xf16>, tensor<2x4x?xf32>
}

// -----

// A tensor.empty destination becomes a fresh allocation that is not
// initialized, since the op overwrites it whole.
// CHECK-LABEL: func @attention_empty_init
// CHECK: %[[ALLOC:.*]] = memref.alloc() {{.*}} : memref<1x2x32x16xf32>
// CHECK-NOT: memref.copy
// CHECK: swba.attention ins({{.*}}) outs(%[[ALLOC]] : memref<1x2x32x16xf32>) block_size = 8 window = 2{{$}}
// CHECK: return %[[ALLOC]]
func.func @attention_empty_init(%q: tensor<1x2x32x16xf32>) -> tensor<1x2x32x16xf32> {
  %e = tensor.empty() : tensor<1x2x32x16xf32>
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>)
                      outs(%e : tensor<1x2x32x16xf32>) block_size = 8 window = 2 -> tensor<1x2x32x16xf32>
  return %r : tensor<1x2x32x16xf32>
}

// -----

// A destination that is read after the op cannot be overwritten in place: it
// gets a copy of its own, and the op writes a new buffer without copying the
// old contents into it.
// CHECK-LABEL: func @attention_out_of_place
// CHECK-SAME: (%[[Q:.*]]: memref<1x2x32x16xf32{{.*}}>, %[[O:.*]]: memref<1x2x32x16xf32{{.*}}>)
// CHECK: %[[ALLOC:.*]] = memref.alloc() {{.*}} : memref<1x2x32x16xf32>
// CHECK-NOT: memref.copy
// CHECK: swba.attention ins({{.*}}) outs(%[[ALLOC]] : memref<1x2x32x16xf32>)
// CHECK: memref.load %[[O]]
func.func @attention_out_of_place(%q: tensor<1x2x32x16xf32>, %o: tensor<1x2x32x16xf32>) -> (tensor<1x2x32x16xf32>, f32) {
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>)
                      outs(%o : tensor<1x2x32x16xf32>) block_size = 8 window = 2 -> tensor<1x2x32x16xf32>
  %c0 = arith.constant 0 : index
  %x = tensor.extract %o[%c0, %c0, %c0, %c0] : tensor<1x2x32x16xf32>
  return %r, %x : tensor<1x2x32x16xf32>, f32
}

// -----

// CHECK-LABEL: func @attention_grad
// CHECK-NOT: memref.alloc
// CHECK: swba.attention_grad ins({{.*}}) outs(%[[DQ:[^,]*]], %[[DK:[^,]*]], %[[DV:[^ ]*]] : {{.*}}) block_size = 5 window = 2{{$}}
// CHECK: return %[[DQ]], %[[DK]], %[[DV]]
func.func @attention_grad(%q: tensor<1x4x?x32xbf16>, %k: tensor<1x2x?x32xbf16>, %v: tensor<1x2x?x32xbf16>,
                          %o: tensor<1x4x?x32xbf16>, %do: tensor<1x4x?x32xbf16>, %lse: tensor<1x4x?xf32>,
                          %dq: tensor<1x4x?x32xbf16>, %dk: tensor<1x2x?x32xbf16>, %dv: tensor<1x2x?x32xbf16>)
    -> (tensor<1x4x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x2x?x32xbf16>) {
  %g:3 = swba.attention_grad ins(%q, %k, %v, %o, %do, %lse : tensor<1x4x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x4x?x32xbf16>, tensor<1x4x?x32xbf16>, tensor<1x4x?xf32>)
                             outs(%dq, %dk, %dv : tensor<1x4x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x2x?x32xbf16>)
                             block_size = 5 window = 2 -> tensor<1x4x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x2x?x32xbf16>
  return %g#0, %g#1, %g#2 : tensor<1x4x?x32xbf16>, tensor<1x2x?x32xbf16>, tensor<1x2x?x32xbf16>
}

// -----

// swba.paged_attention bufferizes like swba.attention: the caches, page
// table and lengths are read in place, the output written in place.
// CHECK-LABEL: func @paged_attention
// CHECK-SAME: (%[[Q:.*]]: memref<2x4x1x32xbf16{{.*}}>, %[[K:.*]]: memref<?x16x2x32xbf16{{.*}}>, %[[V:.*]]: memref<?x16x2x32xbf16{{.*}}>, %[[P:.*]]: memref<2x?xi32{{.*}}>, %[[N:.*]]: memref<2xi32{{.*}}>, %[[O:.*]]: memref<2x4x1x32xbf16{{.*}}>)
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.copy
// CHECK: swba.paged_attention ins(%[[Q]], %[[K]], %[[V]], %[[P]], %[[N]] : {{.*}}) outs(%[[O]] : {{.*}}) block_size = 64 window = 2{{$}}
// CHECK: return %[[O]]
func.func @paged_attention(%q: tensor<2x4x1x32xbf16>, %kc: tensor<?x16x2x32xbf16>, %vc: tensor<?x16x2x32xbf16>,
                           %p: tensor<2x?xi32>, %n: tensor<2xi32>, %o: tensor<2x4x1x32xbf16>) -> tensor<2x4x1x32xbf16> {
  %r = swba.paged_attention ins(%q, %kc, %vc, %p, %n : tensor<2x4x1x32xbf16>, tensor<?x16x2x32xbf16>, tensor<?x16x2x32xbf16>, tensor<2x?xi32>, tensor<2xi32>)
                            outs(%o : tensor<2x4x1x32xbf16>) block_size = 64 window = 2 -> tensor<2x4x1x32xbf16>
  return %r : tensor<2x4x1x32xbf16>
}
