// The split-KV forward (--lower-swba{target=gpu chip=sm_90a split-kv=N}):
// the host code allocates f32 partial out [N, B*Hq*Nq, Dv] and lse
// [N, B*Hq*Nq], launches swba_fwd_split over (heads, query tiles, batch x
// N), then swba_split_combine over the rows (4 a workgroup) with out and
// lse collapsed into rows; the launch contract names the split count as the
// launch scalar `splits`, and the manifest carries it, the buffers' product
// sizes and the collapsed parameters.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a split-kv=3" --swba-write-launch-manifest="path=%t.json" | FileCheck %s
// RUN: FileCheck %s --input-file=%t.json --check-prefix=JSON
// The pipeline compiles both kernels.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa split-kv=2" | FileCheck %s --check-prefix=PTX

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[Q:[^:]+]]: memref<?x32x?x128xbf16>, %[[K:[^:]+]]: memref<?x8x?x128xbf16>, %[[V:[^:]+]]: memref<?x8x?x128xbf16>, %[[O:[^:]+]]: memref<?x32x?x128xbf16>, %[[L:[^:]+]]: memref<?x32x?xf32>)
// CHECK: %[[S:.*]] = arith.constant 3 : index
// CHECK: %[[BH:.*]] = arith.muli
// CHECK: %[[R:.*]] = arith.muli %[[BH]],
// CHECK: %[[PO:.*]] = gpu.alloc  (%[[S]], %[[R]]) : memref<?x?x128xf32>
// CHECK: %[[PL:.*]] = gpu.alloc  (%[[S]], %{{.*}}) : memref<?x?xf32>
// CHECK: %[[B:.*]] = memref.dim %[[Q]], %c0
// CHECK: %[[Z:.*]] = arith.muli %[[B]], %[[S]] : index
// CHECK: gpu.launch_func  @swba_attention_kernels::@swba_fwd_split blocks in (%{{.*}}, %{{.*}}, %[[Z]]) threads in (%c384,
// CHECK-SAME: args(%[[Q]] : {{.*}}, %[[K]] : {{.*}}, %[[V]] : {{.*}}, %[[PO]] : memref<?x?x128xf32>, %[[PL]] : memref<?x?xf32>, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr)
// CHECK: %[[OROWS:.*]] = memref.collapse_shape %[[O]] {{\[\[}}0, 1, 2], [3]] : memref<?x32x?x128xbf16> into memref<?x128xbf16>
// CHECK: %[[LROWS:.*]] = memref.collapse_shape %[[L]] {{\[\[}}0, 1, 2]] : memref<?x32x?xf32> into memref<?xf32>
// CHECK: %[[ROWS:.*]] = memref.dim %[[PL]], %c1
// CHECK: %[[GX:.*]] = arith.ceildivui %[[ROWS]], %c4
// CHECK: gpu.launch_func  @swba_attention_kernels::@swba_split_combine blocks in (%[[GX]], %c1{{.*}}, %c1{{.*}}) threads in (%c128
// CHECK-SAME: args(%[[PO]] : memref<?x?x128xf32>, %[[PL]] : memref<?x?xf32>, %[[OROWS]] : memref<?x128xbf16>, %[[LROWS]] : memref<?xf32>)
// CHECK: gpu.dealloc  %[[PL]]
// CHECK: gpu.dealloc  %[[PO]]

// The module's buffers and launch scalar.
// CHECK: gpu.module @swba_attention_kernels attributes {swba.buffers = [{element_type = "f32", name = "split_out", shape = [{scalar = "splits"}, {product = [{dim = 0 : i64, tensor = "q"}, {dim = 1 : i64, tensor = "q"}, {dim = 2 : i64, tensor = "q"}]}, 128], zero = false}, {element_type = "f32", name = "split_lse", shape = [{scalar = "splits"}, {product = [{{.*}}]}], zero = false}], swba.scalars = ["splits"]}

// The split kernel: grid z is batch x splits; the split count is its
// partial lse's dim 0; a workgroup takes tiles [s n / S, (s + 1) n / S) of
// its window's n, and skips the mainloop when that is empty. It lets the
// combine kernel start at once (launch_dependents, at its top).
// CHECK: gpu.func @swba_fwd_split(%{{.*}}: memref<?x32x?x128xbf16>, %{{.*}}: memref<?x8x?x128xbf16>, %{{.*}}: memref<?x8x?x128xbf16>, %[[KPO:.*]]: memref<?x?x128xf32>, %[[KPL:.*]]: memref<?x?xf32>,
// CHECK-SAME: grid = [{per = 1 : i64, size = {dim = 1 : i64, tensor = "q"}}, {per = 128 : i64, size = {dim = 2 : i64, tensor = "q"}}, {per = 1 : i64, size = {product = [{dim = 0 : i64, tensor = "q"}, {scalar = "splits"}]}}]
// CHECK: nvvm.griddepcontrol  launch_dependents
// CHECK-NEXT: nvgpu.mbarrier.create
// CHECK: %[[SPLITS:.*]] = memref.dim %[[KPL]], %c0
// CHECK: arith.ceildivui
// CHECK: arith.muli {{.*}} : index
// CHECK: arith.divui {{.*}} : i32
// CHECK: scf.if
// CHECK: arith.cmpi ugt
// CHECK: scf.if %{{.*}} -> (f32,
// CHECK: nvvm.wgmma.mma_async
// CHECK: } else {
// CHECK: vector.store %{{.*}}, %[[KPO]][%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 8 : i64} : memref<?x?x128xf32>, vector<2xf32>
// CHECK: memref.store %{{.*}}, %[[KPL]][%{{.*}}, %{{.*}}] : memref<?x?xf32>

// The combine kernel: a warp a row; the max of the rows' lse over the
// splits (NaN kept), then the weighted sum with every split whose lse is
// -inf left out (a NaN one kept), 16-byte loads of the partial rows, out in bf16, lse = m + ln(sum).
// It may start while the split kernel ends (early_start; the split kernel
// lets it at its top), and waits for that kernel before it reads.
// CHECK: gpu.func @swba_split_combine(%[[CPO:.*]]: memref<?x?x128xf32>, %[[CPL:.*]]: memref<?x?xf32>, %[[COUT:.*]]: memref<?x128xbf16>, %[[CLSE:.*]]: memref<?xf32>)
// CHECK-SAME: early_start = true
// CHECK-SAME: params = [{element_type = "f32", kind = "memref", rank = 3 : i64, tensor = "split_out"}, {element_type = "f32", kind = "memref", rank = 2 : i64, tensor = "split_lse"}, {collapse = {{\[\[}}0, 1, 2], [3]], element_type = "bf16", kind = "memref", rank = 2 : i64, tensor = "out"}, {collapse = {{\[\[}}0, 1, 2]], element_type = "f32", kind = "memref", rank = 1 : i64, tensor = "lse"}]
// CHECK-NEXT: nvvm.griddepcontrol  wait
// CHECK: %[[NS:.*]] = memref.dim %[[CPL]], %c0
// CHECK: %[[M:.*]] = scf.for %{{.*}} = %{{.*}} to %[[NS]]
// CHECK: arith.maximumf
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[NS]] {{.*}} -> (vector<4xf32>, f32)
// CHECK: %[[LS:.*]] = memref.load %[[CPL]]
// CHECK: %[[SEEN:.*]] = arith.cmpf une, %[[LS]], %cst
// CHECK: vector.load %[[CPO]]{{.*}} {alignment = 16 : i64} : memref<?x?x128xf32>, vector<4xf32>
// CHECK: arith.select %[[SEEN]]
// CHECK: arith.select %[[SEEN]]
// CHECK: arith.truncf %{{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK: vector.store %{{.*}}, %[[COUT]]
// CHECK: lg2.approx
// CHECK: memref.store %{{.*}}, %[[CLSE]]

// JSON: "buffers": [
// JSON: "name": "split_out",
// JSON-NEXT: "shape": [
// JSON-NEXT: {
// JSON-NEXT: "scalar": "splits"
// JSON: "product": [
// JSON: "name": "split_lse",
// JSON: "kernels": [
// JSON: "scalar": "splits"
// JSON: "name": "swba_fwd_split",
// JSON: "early_start": true,
// JSON: "name": "swba_split_combine",
// JSON: "collapse": [
// JSON: "name": "swba_attention_kernels",
// JSON-NEXT: "reproducible": true,
// JSON-NEXT: "scalars": [
// JSON-NEXT: "splits"

// The partial O leaves as 8-byte pairs, the combine reads 16-byte chunks
// (their natural alignment: no access an element).
// PTX: .entry swba_fwd_split(
// PTX: st.global.v2.b32
// PTX: .entry swba_split_combine(
// PTX: ld.global.v4.b32
func.func @forward(%q: memref<?x32x?x128xbf16>, %k: memref<?x8x?x128xbf16>, %v: memref<?x8x?x128xbf16>,
                   %o: memref<?x32x?x128xbf16>, %l: memref<?x32x?xf32>) {
  swba.attention ins(%q, %k, %v : memref<?x32x?x128xbf16>, memref<?x8x?x128xbf16>, memref<?x8x?x128xbf16>)
      outs(%o, %l : memref<?x32x?x128xbf16>, memref<?x32x?xf32>) block_size = 256 window = 64
  return
}
