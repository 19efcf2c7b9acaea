// RUN: swba-opt %S/../Frontend/onnx-sdpa-frames-gqa-dynamic.mlir --raise-swba | FileCheck %s
// RUN: sed 's/%266 = arith.cmpi slt, %extracted_49, %c0_i64/%266 = arith.cmpi slt, %extracted_49, %c2_i64/' %S/../Frontend/onnx-sdpa-frames-gqa-dynamic.mlir \
// RUN:   | swba-opt --raise-swba --remarks-filter-missed=raise-swba 2>&1 | FileCheck %s --check-prefix=UNDECIDED
//
// ONNX's shapes of dynamic sizes (the frontend corpus's GQA export, which
// its own test runs with and without the pass): a reshape's inferred size
// is a product of sizes divided by a product of all but one, and a 0 in a
// shape copies the input's size, a select on `size == 0`. SizeClasses
// traces products and exact quotients of sizes, and a select where both
// branches are one size or its condition is known. Sizes are taken to be
// at least 1 there (the domain of the mask's proof), and the rewrite
// asserts before the op one member of each class that a decision took to
// be at least 1: here the length, which q, k and v share.
//
// CHECK-LABEL: func.func @main
// CHECK: cf.assert %{{.*}}, "swba.attention: --raise-swba proved the mask for lengths up to 1073741824"
// CHECK-NEXT: arith.constant 2 : index
// CHECK-NEXT: %[[N:.*]] = tensor.dim %arg{{[0-2]}}, %{{.*}} : tensor<1x{{[24]}}x?x16xf32>
// CHECK-NEXT: arith.constant 1 : index
// CHECK-NEXT: %[[OK:.*]] = arith.cmpi sge, %[[N]], %{{.*}} : index
// CHECK-NEXT: cf.assert %[[OK]], "swba.attention: --raise-swba proved the mask for sizes of at least 1"
// CHECK-NEXT: swba.attention ins({{.*}} : tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32>) {{.*}} block_size = 8 window = 2
// CHECK-NOT: swba.attention
//
// A near miss: the same module with the key length's `size < 0` of its
// inferred reshape size made `size < 2`, which a size of at least 1 does
// not decide. The select between the inferred size and the size is then
// not traced, and nothing is raised.
//
// UNDECIDED: remark: [Missed] RaiseSWBA {{.*}}the lengths of the scores cannot be traced to the sizes of the tensors
// UNDECIDED-NOT: swba.attention ins
