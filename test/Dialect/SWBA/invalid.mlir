// Every verifier message of the swba ops, one case each.
// RUN: swba-opt %s --split-input-file --verify-diagnostics

func.func @block_size_zero(%q: memref<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'swba.attention' op 'block_size' must be >= 1, got 0}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 0 window = 1
  return
}

// -----

func.func @window_negative(%q: memref<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'window' must be >= 1, got -2}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = -2
  return
}

// -----

func.func @scale_inf(%q: memref<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'scale' must be finite, got INF}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 1 scale = 0x7F800000
  return
}

// -----

func.func @scale_nan(%q: memref<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'scale' must be finite, got nan}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 1 scale = 0x7FC00000
  return
}

// -----

func.func @no_outputs(%q: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{expects 1 or 2 outputs (out, then optional lse), got 0}}
  "swba.attention"(%q, %q, %q) {block_size = 4 : i64, window = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>} : (memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) -> ()
  return
}

// -----

func.func @three_outputs(%q: memref<1x2x8x16xf32>, %l: memref<1x2x8xf32>) {
  // expected-error @+1 {{expects 1 or 2 outputs (out, then optional lse), got 3}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q, %l, %l : memref<1x2x8x16xf32>, memref<1x2x8xf32>, memref<1x2x8xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @mixed_tensor_memref(%q: tensor<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, got a mix}}
  swba.attention ins(%q, %q, %q : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @query_rank(%q: memref<2x8x16xf32>, %k: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'query' must have rank 4 ([B, Hq, Nq, D]), got rank 3}}
  swba.attention ins(%q, %k, %k : memref<2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%k : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @key_rank(%q: memref<1x2x8x16xf32>, %k: memref<1x1x2x8x16xf32>) {
  // expected-error @+1 {{'key' must have rank 4 ([B, Hkv, Nk, D]), got rank 5}}
  swba.attention ins(%q, %k, %q : memref<1x2x8x16xf32>, memref<1x1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @value_rank(%q: memref<1x2x8x16xf32>, %v: memref<2x8x16xf32>) {
  // expected-error @+1 {{'value' must have rank 4 ([B, Hkv, Nk, Dv]), got rank 3}}
  swba.attention ins(%q, %q, %v : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @out_rank(%q: memref<1x2x8x16xf32>, %o: memref<2x8x16xf32>) {
  // expected-error @+1 {{'out' must have rank 4 ([B, Hq, Nq, Dv]), got rank 3}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @lse_rank(%q: memref<1x2x8x16xf32>, %l: memref<1x2x8x1xf32>) {
  // expected-error @+1 {{'lse' must have rank 3 ([B, Hq, Nq]), got rank 4}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q, %l : memref<1x2x8x16xf32>, memref<1x2x8x1xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @unsupported_element_type(%q: memref<1x2x8x16xf64>) {
  // expected-error @+1 {{'query' element type must be f16, bf16 or f32, got 'f64'}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf64>, memref<1x2x8x16xf64>, memref<1x2x8x16xf64>) outs(%q : memref<1x2x8x16xf64>) block_size = 4 window = 1
  return
}

// -----

func.func @mixed_element_types(%q: memref<1x2x8x16xf16>, %k: memref<1x2x8x16xbf16>) {
  // expected-error @+1 {{'key' element type 'bf16' does not match the element type 'f16' of 'query'}}
  swba.attention ins(%q, %k, %q : memref<1x2x8x16xf16>, memref<1x2x8x16xbf16>, memref<1x2x8x16xf16>) outs(%q : memref<1x2x8x16xf16>) block_size = 4 window = 1
  return
}

// -----

func.func @out_element_type(%q: memref<1x2x8x16xf16>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'out' element type 'f32' does not match the element type 'f16' of 'query'}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf16>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @lse_element_type(%q: memref<1x2x8x16xf16>, %l: memref<1x2x8xf16>) {
  // expected-error @+1 {{'lse' element type must be f32, got 'f16'}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf16>) outs(%q, %l : memref<1x2x8x16xf16>, memref<1x2x8xf16>) block_size = 4 window = 1
  return
}

// -----

func.func @dynamic_head_dim(%q: memref<1x2x8x?xf32>, %k: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{head dim of 'query' (dim 3) must be static}}
  swba.attention ins(%q, %k, %k : memref<1x2x8x?xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%k : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @dynamic_value_head_dim(%q: memref<1x2x8x16xf32>, %v: memref<1x2x8x?xf32>) {
  // expected-error @+1 {{head dim of 'value' (dim 3) must be static}}
  swba.attention ins(%q, %q, %v : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x?xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @batch_mismatch(%q: memref<2x2x8x16xf32>, %k: memref<3x2x8x16xf32>) {
  // expected-error @+1 {{batch size mismatch: 'key' has 3 (dim 0) but 'query' has 2 (dim 0)}}
  swba.attention ins(%q, %k, %k : memref<2x2x8x16xf32>, memref<3x2x8x16xf32>, memref<3x2x8x16xf32>) outs(%q : memref<2x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @head_dim_mismatch(%q: memref<1x2x8x16xf32>, %k: memref<1x2x8x32xf32>) {
  // expected-error @+1 {{head dim size mismatch: 'key' has 32 (dim 3) but 'query' has 16 (dim 3)}}
  swba.attention ins(%q, %k, %q : memref<1x2x8x16xf32>, memref<1x2x8x32xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @value_head_dim_mismatch(%q: memref<1x2x8x16xf32>, %v: memref<1x2x8x32xf32>) {
  // expected-error @+1 {{head dim size mismatch: 'out' has 16 (dim 3) but 'value' has 32 (dim 3)}}
  swba.attention ins(%q, %q, %v : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x32xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @kv_heads_mismatch(%q: memref<1x4x8x16xf32>, %k: memref<1x2x8x16xf32>, %v: memref<1x4x8x16xf32>) {
  // expected-error @+1 {{head size mismatch: 'value' has 4 (dim 1) but 'key' has 2 (dim 1)}}
  swba.attention ins(%q, %k, %v : memref<1x4x8x16xf32>, memref<1x2x8x16xf32>, memref<1x4x8x16xf32>) outs(%q : memref<1x4x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @out_heads_mismatch(%q: memref<1x4x8x16xf32>, %o: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{head size mismatch: 'out' has 2 (dim 1) but 'query' has 4 (dim 1)}}
  swba.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @kv_length_mismatch(%q: memref<1x2x8x16xf32>, %v: memref<1x2x9x16xf32>) {
  // expected-error @+1 {{sequence size mismatch: 'value' has 9 (dim 2) but 'key' has 8 (dim 2)}}
  swba.attention ins(%q, %q, %v : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x9x16xf32>) outs(%q : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @out_length_mismatch(%q: memref<1x2x8x16xf32>, %o: memref<1x2x4x16xf32>) {
  // expected-error @+1 {{sequence size mismatch: 'out' has 4 (dim 2) but 'query' has 8 (dim 2)}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%o : memref<1x2x4x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @lse_shape(%q: memref<1x2x8x16xf32>, %l: memref<1x2x7xf32>) {
  // expected-error @+1 {{sequence size mismatch: 'lse' has 7 (dim 2) but 'query' has 8 (dim 2)}}
  swba.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q, %l : memref<1x2x8x16xf32>, memref<1x2x7xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @gqa_not_multiple(%q: memref<1x6x8x16xf32>, %k: memref<1x4x8x16xf32>) {
  // expected-error @+1 {{query heads (6) must be a multiple of key/value heads (4)}}
  swba.attention ins(%q, %k, %k : memref<1x6x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) outs(%q : memref<1x6x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

// Zero key/value heads under query heads: the verifier used to divide by the
// key/value head count.
func.func @zero_kv_heads(%q: memref<1x3x8x16xf32>, %k: memref<1x0x8x16xf32>) {
  // expected-error @+1 {{query heads (3) must be a multiple of key/value heads (0)}}
  swba.attention ins(%q, %k, %k : memref<1x3x8x16xf32>, memref<1x0x8x16xf32>, memref<1x0x8x16xf32>) outs(%q : memref<1x3x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @zero_head_dim(%q: memref<1x2x8x0xf32>, %v: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{head dim of 'query' (dim 3) must be >= 1, got 0}}
  swba.attention ins(%q, %q, %v : memref<1x2x8x0xf32>, memref<1x2x8x0xf32>, memref<1x2x8x16xf32>) outs(%v : memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @more_queries_than_keys(%q: memref<1x2x16x16xf32>, %k: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{query length (16) must not exceed key length (8): positions are bottom-right aligned}}
  swba.attention ins(%q, %k, %k : memref<1x2x16x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x16x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @tensor_result_type(%q: tensor<1x2x8x16xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{expected type of operand #3 ('tensor<1x2x8x16xf32>') to match type of corresponding result ('tensor<1x2x8x8xf32>')}}
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) outs(%q : tensor<1x2x8x16xf32>) block_size = 4 window = 1 -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}

// -----

func.func @memref_with_result(%q: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{expected the number of tensor results (1) to be equal to the number of output tensors (0)}}
  %r = "swba.attention"(%q, %q, %q, %q) {block_size = 4 : i64, window = 1 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>} : (memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @grad_lse_missing_dim(%q: memref<1x2x8x16xf32>, %l: memref<1x2xf32>) {
  // expected-error @+1 {{'swba.attention_grad' op 'lse' must have rank 3 ([B, Hq, Nq]), got rank 2}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2xf32>) outs(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @grad_dout_shape(%q: memref<1x2x8x16xf32>, %do: memref<1x2x4x16xf32>, %l: memref<1x2x8xf32>) {
  // expected-error @+1 {{sequence size mismatch: 'grad_out' has 4 (dim 2) but 'out' has 8 (dim 2)}}
  swba.attention_grad ins(%q, %q, %q, %q, %do, %l : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x4x16xf32>, memref<1x2x8xf32>) outs(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @grad_dk_heads(%q: memref<1x4x8x16xf32>, %k: memref<1x2x8x16xf32>, %l: memref<1x4x8xf32>) {
  // expected-error @+1 {{head size mismatch: 'grad_key' has 4 (dim 1) but 'key' has 2 (dim 1)}}
  swba.attention_grad ins(%q, %k, %k, %q, %q, %l : memref<1x4x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8xf32>) outs(%q, %q, %k : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @grad_dv_element_type(%q: memref<1x2x8x16xf16>, %dv: memref<1x2x8x16xf32>, %l: memref<1x2x8xf32>) {
  // expected-error @+1 {{'grad_value' element type 'f32' does not match the element type 'f16' of 'value'}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8xf32>) outs(%q, %q, %dv : memref<1x2x8x16xf16>, memref<1x2x8x16xf16>, memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @grad_dq_rank(%q: memref<1x2x8x16xf32>, %dq: memref<2x8x16xf32>, %l: memref<1x2x8xf32>) {
  // expected-error @+1 {{'grad_query' must have rank 4 (the rank of 'query'), got rank 3}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8xf32>) outs(%dq, %q, %q : memref<2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) block_size = 4 window = 1
  return
}

// -----

// A constant key_offset that puts the first query before the sequence start.
func.func @key_offset_query_before_start(%q: memref<1x2x8x16xf32>, %k: memref<1x2x12x16xf32>, %o: memref<1x2x8x16xf32>) {
  %c = arith.constant -5 : index
  // expected-error @+1 {{'key_offset' -5 puts query row 0 at position -1 (Nk - Nq + key_offset with Nk = 12, Nq = 8): queries before the sequence start see no key}}
  swba.attention ins(%q, %k, %k : memref<1x2x8x16xf32>, memref<1x2x12x16xf32>, memref<1x2x12x16xf32>) outs(%o : memref<1x2x8x16xf32>) block_size = 4 window = 2 key_offset = %c
  return
}

// -----

func.func @paged_no_outputs(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'swba.paged_attention' op expects 1 or 2 outputs (out, then optional lse), got 0}}
  "swba.paged_attention"(%q, %c, %c, %p, %n) {block_size = 4 : i64, window = 1 : i64} : (memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) -> ()
  return
}

// -----

func.func @paged_window_zero(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'swba.paged_attention' op 'window' must be >= 1, got 0}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 0
  return
}

// -----

func.func @paged_mixed(%q: tensor<1x2x1x16xf32>, %c: tensor<4x8x2x16xf32>, %p: tensor<1x4xi32>, %n: tensor<1xi32>, %o: memref<1x2x1x16xf32>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, got a mix}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : tensor<1x2x1x16xf32>, tensor<4x8x2x16xf32>, tensor<4x8x2x16xf32>, tensor<1x4xi32>, tensor<1xi32>) outs(%o : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_cache_rank(%q: memref<1x2x1x16xf32>, %c: memref<32x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'key_cache' must have rank 4 ([num_pages, page_size, Hkv, D]), got rank 3}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<32x2x16xf32>, memref<32x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_table_rank(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'page_table' must have rank 2 ([B, max_pages]), got rank 1}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_table_i64(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi64>, %n: memref<1xi32>) {
  // expected-error @+1 {{'page_table' element type must be i32, got 'i64'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi64>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_lens_f32(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xf32>) {
  // expected-error @+1 {{'seq_lens' element type must be i32, got 'f32'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xf32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_cache_type(%q: memref<1x2x1x16xf16>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'key_cache' element type 'f32' does not match the element type 'f16' of 'query'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf16>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf16>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_query_i8(%q: memref<1x2x1x16xi8>, %c: memref<4x8x2x16xi8>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{'query' element type must be f16, bf16 or f32, got 'i8'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xi8>, memref<4x8x2x16xi8>, memref<4x8x2x16xi8>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xi8>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_lse_f16(%q: memref<1x2x1x16xf16>, %c: memref<4x8x2x16xf16>, %p: memref<1x4xi32>, %n: memref<1xi32>, %l: memref<1x2x1xf16>) {
  // expected-error @+1 {{'lse' element type must be f32, got 'f16'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf16>, memref<4x8x2x16xf16>, memref<4x8x2x16xf16>, memref<1x4xi32>, memref<1xi32>) outs(%q, %l : memref<1x2x1x16xf16>, memref<1x2x1xf16>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_dynamic_head_dim(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x?xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{head dim of 'key_cache' (dim 3) must be static}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x?xf32>, memref<4x8x2x?xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_page_size_zero(%q: memref<1x2x1x16xf32>, %c: memref<4x0x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{page size ('key_cache' dim 1) must be >= 1, got 0}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x0x2x16xf32>, memref<4x0x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_table_batch(%q: memref<2x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<3x4xi32>, %n: memref<2xi32>) {
  // expected-error @+1 {{batch size mismatch: 'page_table' has 3 (dim 0) but 'query' has 2 (dim 0)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<2x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<3x4xi32>, memref<2xi32>) outs(%q : memref<2x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_lens_batch(%q: memref<2x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<2x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{batch size mismatch: 'seq_lens' has 1 (dim 0) but 'query' has 2 (dim 0)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<2x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<2x4xi32>, memref<1xi32>) outs(%q : memref<2x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_value_pages(%q: memref<1x2x1x16xf32>, %k: memref<4x8x2x16xf32>, %v: memref<5x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{page count size mismatch: 'value_cache' has 5 (dim 0) but 'key_cache' has 4 (dim 0)}}
  swba.paged_attention ins(%q, %k, %v, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<5x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_value_page_size(%q: memref<1x2x1x16xf32>, %k: memref<4x8x2x16xf32>, %v: memref<4x16x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{page size size mismatch: 'value_cache' has 16 (dim 1) but 'key_cache' has 8 (dim 1)}}
  swba.paged_attention ins(%q, %k, %v, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x16x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_value_heads(%q: memref<1x2x1x16xf32>, %k: memref<4x8x2x16xf32>, %v: memref<4x8x1x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{kv head size mismatch: 'value_cache' has 1 (dim 2) but 'key_cache' has 2 (dim 2)}}
  swba.paged_attention ins(%q, %k, %v, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x1x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_head_dim(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x32xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{head dim size mismatch: 'key_cache' has 32 (dim 3) but 'query' has 16 (dim 3)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x32xf32>, memref<4x8x2x32xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x2x1x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_out_queries(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>, %o: memref<1x2x4x16xf32>) {
  // expected-error @+1 {{query size mismatch: 'out' has 4 (dim 2) but 'query' has 1 (dim 2)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%o : memref<1x2x4x16xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_out_value_dim(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>, %o: memref<1x2x1x8xf32>) {
  // expected-error @+1 {{value head dim size mismatch: 'out' has 8 (dim 3) but 'value_cache' has 16 (dim 3)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%o : memref<1x2x1x8xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_lse_heads(%q: memref<1x2x1x16xf32>, %c: memref<4x8x2x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>, %l: memref<1x3x1xf32>) {
  // expected-error @+1 {{head size mismatch: 'lse' has 3 (dim 1) but 'query' has 2 (dim 1)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x2x1x16xf32>, memref<4x8x2x16xf32>, memref<4x8x2x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q, %l : memref<1x2x1x16xf32>, memref<1x3x1xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @paged_gqa(%q: memref<1x6x1x16xf32>, %c: memref<4x8x4x16xf32>, %p: memref<1x4xi32>, %n: memref<1xi32>) {
  // expected-error @+1 {{query heads (6) must be a multiple of the cache's key/value heads (4, 'key_cache' dim 2)}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<1x6x1x16xf32>, memref<4x8x4x16xf32>, memref<4x8x4x16xf32>, memref<1x4xi32>, memref<1xi32>) outs(%q : memref<1x6x1x16xf32>) block_size = 4 window = 1
  return
}
