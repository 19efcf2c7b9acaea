// --shard-partition of swba.attention rejects, at the op, splits it cannot
// give each device exactly its share of the work.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition))"

shard.grid @grid(shape = 2)

// Shards of 6 tokens with frames of 4: a shard's last query would need the
// rest of its frame from the next device.
func.func @partial_frames(%q: tensor<1x1x12x8xf32>) -> tensor<1x1x12x8xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<1x1x12x8xf32>
  %e = tensor.empty() : tensor<1x1x12x8xf32>
  // expected-error @+1 {{partition: splitting the sequence needs shards of whole frames (a query sees the rest of its frame, which a halo after the shard would have to bring), got shards of 6 tokens and block_size 4}}
  %o = swba.attention ins(%qs, %qs, %qs : tensor<1x1x12x8xf32>, tensor<1x1x12x8xf32>, tensor<1x1x12x8xf32>) outs(%e : tensor<1x1x12x8xf32>) block_size = 4 window = 2 -> tensor<1x1x12x8xf32>
  return %o : tensor<1x1x12x8xf32>
}

// -----

shard.grid @grid(shape = 2)

// Decode-style Nq < Nk: the queries' shards would not line up with the keys'.
func.func @kv_cache(%q: tensor<1x1x8x8xf32>, %k: tensor<1x1x16x8xf32>) -> tensor<1x1x8x8xf32> {
  %s = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<1x1x8x8xf32>
  %e = tensor.empty() : tensor<1x1x8x8xf32>
  // expected-error @+1 {{partition: splitting the sequence needs static, equal query and key lengths divisible by the devices along it, got Nq = 8, Nk = 16 over 2 devices}}
  %o = swba.attention ins(%qs, %k, %k : tensor<1x1x8x8xf32>, tensor<1x1x16x8xf32>, tensor<1x1x16x8xf32>) outs(%e : tensor<1x1x8x8xf32>) block_size = 4 window = 2 -> tensor<1x1x8x8xf32>
  return %o : tensor<1x1x8x8xf32>
}

// -----

shard.grid @grid(shape = 2)

// MQA: one key/value head cannot follow four query heads split in two.
func.func @mqa_heads(%q: tensor<1x4x8x8xf32>, %k: tensor<1x1x8x8xf32>) -> tensor<1x4x8x8xf32> {
  %s = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<1x4x8x8xf32>
  %ks = shard.shard %k to %s : tensor<1x1x8x8xf32>
  %e = tensor.empty() : tensor<1x4x8x8xf32>
  // expected-error @+1 {{partition: splitting the heads over 2 devices needs a static number of key/value heads divisible by it, got 1}}
  %o = swba.attention ins(%qs, %ks, %ks : tensor<1x4x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>) outs(%e : tensor<1x4x8x8xf32>) block_size = 4 window = 2 -> tensor<1x4x8x8xf32>
  return %o : tensor<1x4x8x8xf32>
}
