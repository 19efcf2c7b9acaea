// The dialect and the passes load into a stock mlir-opt as plugins. Passes
// from a pass plugin register after mlir-opt parsed its flags, so they are
// named in --pass-pipeline.
// RUN: mlir-opt %s --load-dialect-plugin=%swba_lib_dir/SWBAPlugin%shlibext --load-pass-plugin=%swba_lib_dir/SWBAPlugin%shlibext --pass-pipeline="builtin.module(one-shot-bufferize{bufferize-function-boundaries},lower-swba)" | FileCheck %s
// RUN: mlir-opt %s --load-dialect-plugin=%swba_lib_dir/SWBAPlugin%shlibext --load-pass-plugin=%swba_lib_dir/SWBAPlugin%shlibext --pass-pipeline="builtin.module(swba-to-llvm)" | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func @attention
// CHECK-NOT: swba.attention
// CHECK: scf.for
// CHECK: math.exp
// LLVM-LABEL: llvm.func @attention
// LLVM-NOT: swba.
// LLVM: llvm.intr.exp
func.func @attention(%q: tensor<1x2x24x8xf16>) -> tensor<1x2x24x8xf16> {
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x24x8xf16>, tensor<1x2x24x8xf16>, tensor<1x2x24x8xf16>) outs(%q : tensor<1x2x24x8xf16>) block_size = 6 window = 2 -> tensor<1x2x24x8xf16>
  return %r : tensor<1x2x24x8xf16>
}
