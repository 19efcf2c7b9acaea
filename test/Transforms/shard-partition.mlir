// swba.attention in the shard dialect: --sharding-propagation carries a
// split of q to k, v and the output, --shard-partition gives each device its
// shard. Along the sequence the keys and values get the halo of the
// (window - 1) * block_size keys before the shard through shard.update_halo
// (a flat, sequence-major copy; i16 bits for f16), in rounds of at most one
// shard length, and the op places its rows with key_offset.
// RUN: swba-opt %s --split-input-file --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition,canonicalize,cse))" | FileCheck %s

shard.grid @grid(shape = 4)

// A split of q alone along the sequence: shards of 8 tokens, a halo of
// 3 * 4 = 12 keys, so two rounds (8, then 12 rows of 2 * 2 * 16 elements).
// CHECK-LABEL: func @sequence
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x8x16xf16>, %[[K:.*]]: tensor<2x2x8x16xf16>, %[[V:.*]]: tensor<2x2x8x16xf16>) -> tensor<2x4x8x16xf16>
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG: %[[C12:.*]] = arith.constant 12 : index
// CHECK: %[[KT:.*]] = linalg.transpose ins(%[[K]] : tensor<2x2x8x16xf16>) outs(%{{.*}} : tensor<8x2x2x16xf16>) permutation = [2, 0, 1, 3]
// CHECK: %[[KF:.*]] = tensor.collapse_shape %[[KT]] {{\[}}[0, 1, 2, 3]] : tensor<8x2x2x16xf16> into tensor<512xf16>
// CHECK: %[[KB:.*]] = arith.bitcast %[[KF]] : tensor<512xf16> to tensor<512xi16>
// CHECK: %[[K1:.*]] = tensor.insert_slice %[[KB]] into %{{.*}}[512] [512] [1] : tensor<512xi16> into tensor<1024xi16>
// CHECK: %[[K2:.*]] = shard.update_halo %[[K1]] on @grid split_axes = {{\[}}[0]] halo_sizes = [512, 0] : tensor<1024xi16>
// CHECK: %[[K3:.*]] = tensor.insert_slice %[[K2]] into %{{.*}}[256] [1024] [1] : tensor<1024xi16> into tensor<1280xi16>
// CHECK: %[[K4:.*]] = shard.update_halo %[[K3]] on @grid split_axes = {{\[}}[0]] halo_sizes = [768, 0] : tensor<1280xi16>
// CHECK: %[[KH:.*]] = arith.bitcast %[[K4]] : tensor<1280xi16> to tensor<1280xf16>
// CHECK: %[[KE:.*]] = tensor.expand_shape %[[KH]] {{\[}}[0, 1, 2, 3]] output_shape [20, 2, 2, 16]
// CHECK: %[[KHALO:.*]] = linalg.transpose ins(%[[KE]] : tensor<20x2x2x16xf16>) outs(%{{.*}} : tensor<2x2x20x16xf16>) permutation = [1, 2, 0, 3]
// CHECK: %[[VHALO:.*]] = linalg.transpose ins(%{{.*}} : tensor<20x2x2x16xf16>) outs(%{{.*}} : tensor<2x2x20x16xf16>) permutation = [1, 2, 0, 3]
// CHECK: %[[IDX:.*]] = shard.process_multi_index on @grid axes = [0] : index
// CHECK: %[[START:.*]] = arith.muli %[[IDX]], %[[C8]] : index
// CHECK: %[[OFFSET:.*]] = arith.subi %[[START]], %[[C12]] : index
// CHECK: %[[O:.*]] = swba.attention ins(%[[Q]], %[[KHALO]], %[[VHALO]] : tensor<2x4x8x16xf16>, tensor<2x2x20x16xf16>, tensor<2x2x20x16xf16>) outs(%{{.*}} : tensor<2x4x8x16xf16>) block_size = 4 window = 4 key_offset = %[[OFFSET]] -> tensor<2x4x8x16xf16>
// CHECK: return %[[O]]
func.func @sequence(%q: tensor<2x4x32x16xf16>, %k: tensor<2x2x32x16xf16>, %v: tensor<2x2x32x16xf16>) -> tensor<2x4x32x16xf16> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<2x4x32x16xf16>
  %e = tensor.empty() : tensor<2x4x32x16xf16>
  %o = swba.attention ins(%qs, %k, %v : tensor<2x4x32x16xf16>, tensor<2x2x32x16xf16>, tensor<2x2x32x16xf16>) outs(%e : tensor<2x4x32x16xf16>) block_size = 4 window = 4 -> tensor<2x4x32x16xf16>
  return %o : tensor<2x4x32x16xf16>
}

// -----

shard.grid @grid(shape = 2x2)

// Batch over axis 0 and heads over axis 1 (GQA: 4 query heads over 2 kv
// heads, one kv head per device): no halo, no key_offset; lse splits too.
// CHECK-LABEL: func @batch_heads
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x12x8xf32>, %[[K:.*]]: tensor<1x1x12x8xf32>, %[[V:.*]]: tensor<1x1x12x8xf32>) -> (tensor<1x2x12x8xf32>, tensor<1x2x12xf32>)
// CHECK-NOT: update_halo
// CHECK: %[[O:.*]]:2 = swba.attention ins(%[[Q]], %[[K]], %[[V]] : tensor<1x2x12x8xf32>, tensor<1x1x12x8xf32>, tensor<1x1x12x8xf32>) outs(%{{.*}}, %{{.*}} : tensor<1x2x12x8xf32>, tensor<1x2x12xf32>) block_size = 3 window = 2 -> tensor<1x2x12x8xf32>, tensor<1x2x12xf32>
// CHECK: return %[[O]]#0, %[[O]]#1
func.func @batch_heads(%q: tensor<2x4x12x8xf32>, %k: tensor<2x2x12x8xf32>, %v: tensor<2x2x12x8xf32>) -> (tensor<2x4x12x8xf32>, tensor<2x4x12xf32>) {
  %s = shard.sharding @grid split_axes = [[0], [1]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<2x4x12x8xf32>
  %e = tensor.empty() : tensor<2x4x12x8xf32>
  %l = tensor.empty() : tensor<2x4x12xf32>
  %o:2 = swba.attention ins(%qs, %k, %v : tensor<2x4x12x8xf32>, tensor<2x2x12x8xf32>, tensor<2x2x12x8xf32>) outs(%e, %l : tensor<2x4x12x8xf32>, tensor<2x4x12xf32>) block_size = 3 window = 2 -> tensor<2x4x12x8xf32>, tensor<2x4x12xf32>
  return %o#0, %o#1 : tensor<2x4x12x8xf32>, tensor<2x4x12xf32>
}

// -----

shard.grid @grid(shape = 2)

// window = 1: no halo, but the shard's frames still follow its position.
// CHECK-LABEL: func @no_halo
// CHECK-NOT: update_halo
// CHECK: %[[IDX:.*]] = shard.process_multi_index on @grid axes = [0] : index
// CHECK: %[[OFFSET:.*]] = arith.muli %[[IDX]], %{{.*}} : index
// CHECK: swba.attention {{.*}} block_size = 2 window = 1 key_offset = %[[OFFSET]] -> tensor<1x1x4x8xf32>
func.func @no_halo(%q: tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<1x1x8x8xf32>
  %e = tensor.empty() : tensor<1x1x8x8xf32>
  %o = swba.attention ins(%qs, %qs, %qs : tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>) outs(%e : tensor<1x1x8x8xf32>) block_size = 2 window = 1 -> tensor<1x1x8x8xf32>
  return %o : tensor<1x1x8x8xf32>
}
