// --lower-swba{target=gpu} rejects, at the op, what its kernel does not
// support, before rewriting anything.
// RUN: swba-opt %s --split-input-file --verify-diagnostics --lower-swba=target=gpu

func.func @gpu_f32(%q: memref<1x2x64x64xf32>) {
  // expected-error @+1 {{'swba.attention' op target=gpu supports f16 and bf16, got 'f32'}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64x64xf32>) outs(%q : memref<1x2x64x64xf32>) block_size = 4 window = 1
  return
}

// -----

func.func @gpu_head_dim_72(%q: memref<1x2x64x72xf16>) {
  // expected-error @+1 {{target=gpu supports head dims that are multiples of 16 from 16 to 128 (64 and 128 are the tuned ones), and with chip=sm_90a multiples of 16 from 64 to 256, got 72 and 72}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x72xf16>, memref<1x2x64x72xf16>, memref<1x2x64x72xf16>) outs(%q : memref<1x2x64x72xf16>) block_size = 4 window = 1
  return
}

// -----

// Head dim 256 is for the sm_90a kernels only (this runs the default chip):
// the mma.sync kernels' warps would hold 256 f32 of O a thread.
func.func @gpu_head_dim_256_mma_sync(%q: memref<1x2x64x256xbf16>) {
  // expected-error @+1 {{target=gpu supports head dims that are multiples of 16 from 16 to 128 (64 and 128 are the tuned ones), and with chip=sm_90a multiples of 16 from 64 to 256, got 256 and 256}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>, memref<1x2x64x256xbf16>) outs(%q : memref<1x2x64x256xbf16>) block_size = 4 window = 1
  return
}

// -----

// A value head dim of 0 is a valid op (empty output) but not one the
// kernels' fragment loops were written for.
func.func @gpu_value_dim_0(%q: memref<1x2x64x64xf16>, %v: memref<1x2x64x0xf16>) {
  // expected-error @+1 {{target=gpu supports head dims that are multiples of 16 from 16 to 128 (64 and 128 are the tuned ones), and with chip=sm_90a multiples of 16 from 64 to 256, got 64 and 0}}
  swba.attention ins(%q, %q, %v : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x0xf16>) outs(%v : memref<1x2x64x0xf16>) block_size = 4 window = 1
  return
}

// -----

func.func @gpu_strided(%q: memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>) {
  // expected-error @+1 {{target=gpu needs contiguous (identity-layout) memrefs, got 'memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>'}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>, memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>, memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>) outs(%q : memref<1x2x64x64xf16, strided<[16384, 8192, 128, 1]>>) block_size = 4 window = 1
  return
}


// -----

func.func @gpu_grad_f32(%q: memref<1x2x64x64xf32>, %l: memref<1x2x64xf32>) {
  // expected-error @+1 {{'swba.attention_grad' op target=gpu supports f16 and bf16, got 'f32'}}
  swba.attention_grad ins(%q, %q, %q, %q, %q, %l : memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64xf32>) outs(%q, %q, %q : memref<1x2x64x64xf32>, memref<1x2x64x64xf32>, memref<1x2x64x64xf32>) block_size = 4 window = 1
  return
}

// -----

// The GPU kernels have no key_offset (a shard's positions): CPU only.
func.func @gpu_key_offset(%q: memref<1x2x64x64xf16>, %off: index) {
  // expected-error @+1 {{'swba.attention' op 'key_offset' is supported by --lower-swba target=cpu only}}
  swba.attention ins(%q, %q, %q : memref<1x2x64x64xf16>, memref<1x2x64x64xf16>, memref<1x2x64x64xf16>) outs(%q : memref<1x2x64x64xf16>) block_size = 4 window = 1 key_offset = %off
  return
}

// -----

// The decode kernel packs the query heads of a kv head times the queries
// into one workgroup of at most 64 rows: 4 heads x 17 queries do not fit.
func.func @gpu_paged_rows(%q: memref<2x8x17x64xf16>, %c: memref<32x16x2x64xf16>, %p: memref<2x8xi32>, %n: memref<2xi32>) {
  // expected-error @+1 {{'swba.paged_attention' op the decode kernel takes at most 64 query rows per kv head (Hq / Hkv * Nq), got 68}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<2x8x17x64xf16>, memref<32x16x2x64xf16>, memref<32x16x2x64xf16>, memref<2x8xi32>, memref<2xi32>) outs(%q : memref<2x8x17x64xf16>) block_size = 16 window = 4
  return
}

// -----

// The decode kernel takes the element types the mma.sync kernels take.
func.func @gpu_paged_f32(%q: memref<2x8x1x64xf32>, %c: memref<32x16x2x64xf32>, %p: memref<2x8xi32>, %n: memref<2xi32>) {
  // expected-error @+1 {{'swba.paged_attention' op target=gpu supports f16 and bf16, got 'f32'}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<2x8x1x64xf32>, memref<32x16x2x64xf32>, memref<32x16x2x64xf32>, memref<2x8xi32>, memref<2xi32>) outs(%q : memref<2x8x1x64xf32>) block_size = 16 window = 4
  return
}

// -----

// The decode kernel takes head dims up to 128 (its ring at two workgroups
// an SM), on every chip.
func.func @gpu_paged_head_dim(%q: memref<2x8x1x192xf16>, %c: memref<32x16x2x192xf16>, %p: memref<2x8xi32>, %n: memref<2xi32>) {
  // expected-error @+1 {{'swba.paged_attention' op the decode kernel takes head dims up to 128, got 192 and 192}}
  swba.paged_attention ins(%q, %c, %c, %p, %n : memref<2x8x1x192xf16>, memref<32x16x2x192xf16>, memref<32x16x2x192xf16>, memref<2x8xi32>, memref<2xi32>) outs(%q : memref<2x8x1x192xf16>) block_size = 16 window = 4
  return
}
