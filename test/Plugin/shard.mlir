// The dialect plugin attaches swba.attention's sharding interface too: a
// stock mlir-opt partitions it along the sequence with a halo exchange.
// RUN: mlir-opt %s --load-dialect-plugin=%swba_lib_dir/SWBAPlugin%shlibext --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition))" | FileCheck %s

// CHECK-LABEL: func @sequence
// CHECK: shard.update_halo {{.*}} halo_sizes = [16, 0] : tensor<32xf32>
// CHECK: swba.attention {{.*}} key_offset = %{{.*}} -> tensor<1x1x4x4xf32>
shard.grid @grid(shape = 2)
func.func @sequence(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<1x1x8x4xf32>
  %e = tensor.empty() : tensor<1x1x8x4xf32>
  %o = swba.attention ins(%qs, %qs, %qs : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>) outs(%e : tensor<1x1x8x4xf32>) block_size = 2 window = 3 -> tensor<1x1x8x4xf32>
  return %o : tensor<1x1x8x4xf32>
}
