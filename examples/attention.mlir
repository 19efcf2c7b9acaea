// DEMO: --one-shot-bufferize=bufferize-function-boundaries --lower-swba=target=cpu --canonicalize --cse
//
// Sliding window block attention for a video model: 12 heads over 4 kv heads
// (GQA), frames of 256 tokens, each frame sees itself and the 3 frames
// before it. Batch and sequence lengths are dynamic.
func.func @video_attention(%q: tensor<?x12x?x64xf16>, %k: tensor<?x4x?x64xf16>,
                           %v: tensor<?x4x?x64xf16>, %out: tensor<?x12x?x64xf16>,
                           %lse: tensor<?x12x?xf32>)
    -> (tensor<?x12x?x64xf16>, tensor<?x12x?xf32>) {
  %r:2 = swba.attention ins(%q, %k, %v : tensor<?x12x?x64xf16>, tensor<?x4x?x64xf16>, tensor<?x4x?x64xf16>)
                        outs(%out, %lse : tensor<?x12x?x64xf16>, tensor<?x12x?xf32>)
                        block_size = 256 window = 4
                        -> tensor<?x12x?x64xf16>, tensor<?x12x?xf32>
  return %r#0, %r#1 : tensor<?x12x?x64xf16>, tensor<?x12x?xf32>
}
