// The delta kernel (delta = rowsum(dout * out)) that --lower-swba{target=gpu}
// puts before the dQ and dK/dV kernels: a quad of threads per query row,
// thread t of the quad reading 16-byte chunks t, t + 4, ... of the row. A
// value dim of 48 is 6 chunks: a first step that every thread takes, and a
// second that only threads 0 and 1 of the quad take (chunks 4 and 5).
// RUN: swba-opt %s --lower-swba=target=gpu --canonicalize --cse | FileCheck %s

// CHECK-LABEL: gpu.func @swba_bwd_delta
// CHECK-SAME: (%[[DO:[^:]*]]: memref<?x4x?x48xf16>, %[[O:[^:]*]]: memref<?x4x?x48xf16>, %[[D:[^:]*]]: memref<?x?x?xf32>)
// CHECK: %[[T:.*]] = arith.remui %{{.*}}, %c4
// CHECK: %[[ROW:.*]] = arith.addi
// CHECK: %[[IN:.*]] = arith.cmpi ult, %[[ROW]], %{{.*}}
// CHECK: scf.if %[[IN]] -> (f32)
// CHECK: %[[COL:.*]] = arith.muli %[[T]], %c8
// CHECK: vector.load %[[DO]][%{{.*}}, %{{.*}}, %[[ROW]], %[[COL]]] {alignment = 16 : i64} {{.*}} vector<8xf16>
// CHECK: vector.load %[[O]][%{{.*}}, %{{.*}}, %[[ROW]], %[[COL]]] {alignment = 16 : i64} {{.*}} vector<8xf16>
// CHECK: %[[COL2:.*]] = arith.addi %[[COL]], %c32
// CHECK: %[[TAIL:.*]] = arith.cmpi ult, %[[T]], %c2
// CHECK: scf.if %[[TAIL]] -> (f32)
// CHECK-NEXT: vector.load %[[DO]][%{{.*}}, %{{.*}}, %[[ROW]], %[[COL2]]]
// CHECK: } else {
// CHECK: gpu.shuffle xor %{{.*}}, %c1_i32, %c32_i32
// CHECK: gpu.shuffle xor %{{.*}}, %c2_i32, %c32_i32
// CHECK: memref.store %{{.*}}, %[[D]][%{{.*}}, %{{.*}}, %[[ROW]]]
func.func @backward_dv48(%q: memref<?x4x?x32xf16>, %k: memref<?x2x?x32xf16>, %v: memref<?x2x?x48xf16>, %o: memref<?x4x?x48xf16>, %do: memref<?x4x?x48xf16>, %l: memref<?x4x?xf32>, %dq: memref<?x4x?x32xf16>, %dk: memref<?x2x?x32xf16>, %dv: memref<?x2x?x48xf16>) {
  swba.attention_grad ins(%q, %k, %v, %o, %do, %l : memref<?x4x?x32xf16>, memref<?x2x?x32xf16>, memref<?x2x?x48xf16>, memref<?x4x?x48xf16>, memref<?x4x?x48xf16>, memref<?x4x?xf32>) outs(%dq, %dk, %dv : memref<?x4x?x32xf16>, memref<?x2x?x32xf16>, memref<?x2x?x48xf16>) block_size = 50 window = 3
  return
}
