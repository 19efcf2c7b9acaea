// Grouped-query attention from a real frontend to Hopper kernels: the JAX
// corpus's bf16 grouped einsums (Gemma's layout, 2 query heads a kv head,
// a causal token window of 4 keys, head dim 64) raised by --raise-swba and
// compiled by --swba-to-nvvm for sm_90a: the host launches the TMA and
// warpgroup-MMA forward kernel with 4 query heads reading 2 kv heads.
// RUN: swba-opt %S/../Frontend/jax-grouped-einsum-sliding-window-bf16.mlir --raise-swba --swba-to-nvvm="chip=sm_90a format=isa" | FileCheck %s

// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd
// CHECK: gpu.binary @swba_attention_kernels
// CHECK-SAME: .target sm_90a
// CHECK-DAG: cp.async.bulk.tensor
// CHECK-DAG: wgmma.mma_async
