//===- SWBAOps.td - SWBA dialect operations -------------------*- tablegen -*-===//

#ifndef SWBA_DIALECT_SWBA_IR_SWBAOPS_TD
#define SWBA_DIALECT_SWBA_IR_SWBAOPS_TD

include "swba/Dialect/SWBA/IR/SWBADialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def SWBA_TensorOrMemRef : AnyTypeOf<[AnyRankedTensor, AnyMemRef],
                                    "ranked tensor or memref">;

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

def SWBA_AttentionOp : SWBA_Op<"attention", [
    AttrSizedOperandSegments,
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Sliding window block attention, forward.";
  let description = [{
    Computes `out = softmax(scale * q @ k^T + mask) @ v` where the mask lets a
    query see only keys in the frames `f - window + 1 .. f` of its own frame
    `f` (frames of `block_size` tokens, positions bottom-right aligned; see the
    dialect description).

    | operand | shape                 |
    | ------- | --------------------- |
    | `q`     | `[B, Hq, Nq, D]`      |
    | `k`     | `[B, Hkv, Nk, D]`     |
    | `v`     | `[B, Hkv, Nk, Dv]`    |
    | `out`   | `[B, Hq, Nq, Dv]`     |
    | `lse`   | `[B, Hq, Nq]`, f32    |

    Element types are f16, bf16 or f32 (the same for `q`, `k`, `v` and `out`);
    accumulation and softmax statistics are f32. Grouped-query attention is
    expressed by `Hq` being a multiple of `Hkv`: query head `h` reads key/value
    head `h / (Hq / Hkv)`. `Nq <= Nk`. Batch and sequence lengths may be
    dynamic; head dimensions `D` and `Dv` must be static.

    The optional second output `lse` receives, per query row, the natural
    logarithm of the sum of `exp` of the scaled, masked scores; the backward
    op needs it. `scale` defaults to `1/sqrt(D)`.

    The optional `key_offset` (an `index`, may be negative) places the rows
    in a longer sequence: key row `j` sits at position `j + key_offset` and
    query row `i` at `i + Nk - Nq + key_offset` (still bottom-right aligned),
    so frames follow the positions in that sequence, and key rows at negative
    positions lie before its start and are seen by no query. A shard of a
    sequence split across devices is the op on its own tokens plus a halo of
    the `(window - 1) * block_size` keys before them, with `key_offset` the
    position of the halo's first row. Without it the offset is 0. Only the
    CPU lowering supports it.

    The op is in destination-passing style: on tensors it returns one result
    per output operand, on memrefs it writes the output buffers and returns
    nothing. The initial contents of the outputs are never read.

    Example:

    ```mlir
    %o = swba.attention ins(%q, %k, %v : tensor<?x12x?x64xf16>,
             tensor<?x4x?x64xf16>, tensor<?x4x?x64xf16>)
           outs(%init : tensor<?x12x?x64xf16>)
           block_size = 256 window = 4 -> tensor<?x12x?x64xf16>

    swba.attention ins(%q, %k, %v : memref<1x8x512x64xbf16>,
             memref<1x8x512x64xbf16>, memref<1x8x512x64xbf16>)
           outs(%o, %lse : memref<1x8x512x64xbf16>, memref<1x8x512xf32>)
           block_size = 128 window = 2 scale = 0.125

    // Tokens 512..1023 of a sequence split in two, with the halo of the
    // (4 - 1) * 128 keys before them: the keys start at position 128.
    %c128 = arith.constant 128 : index
    %o2 = swba.attention ins(%q2, %k2, %v2 : tensor<1x8x512x64xbf16>,
             tensor<1x8x896x64xbf16>, tensor<1x8x896x64xbf16>)
           outs(%init2 : tensor<1x8x512x64xbf16>)
           block_size = 128 window = 4 key_offset = %c128
           -> tensor<1x8x512x64xbf16>
    ```
  }];

  let arguments = (ins SWBA_TensorOrMemRef:$query,
                       SWBA_TensorOrMemRef:$key,
                       SWBA_TensorOrMemRef:$value,
                       Variadic<SWBA_TensorOrMemRef>:$outputs,
                       Optional<Index>:$key_offset,
                       I64Attr:$block_size,
                       I64Attr:$window,
                       OptionalAttr<F32Attr>:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key `,` $value `:` type($query) `,` type($key) `,`
        type($value) `)`
    `outs` `(` $outputs `:` type($outputs) `)`
    `block_size` `=` $block_size `window` `=` $window
    (`key_offset` `=` $key_offset^)?
    (`scale` `=` $scale^)? attr-dict (`->` type($results)^)?
  }];

  let builders = [
    OpBuilder<(ins "Value":$query, "Value":$key, "Value":$value,
                   "ValueRange":$outputs, "int64_t":$blockSize,
                   "int64_t":$window, "std::optional<float>":$scale,
                   CArg<"Value", "{}">:$keyOffset)>
  ];

  let extraClassDeclaration = [{
    /// The `out` output operand.
    Value getOut() { return getOutputs()[0]; }
    /// The optional `lse` output operand, null when absent.
    Value getLse() {
      return getOutputs().size() > 1 ? getOutputs()[1] : Value();
    }
    /// The scale applied to the scores: the `scale` attribute, or 1/sqrt(D).
    double getEffectiveScale();

    MutableOperandRange getDpsInitsMutable() { return getOutputsMutable(); }
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// AttentionGradOp
//===----------------------------------------------------------------------===//

def SWBA_AttentionGradOp : SWBA_Op<"attention_grad", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Sliding window block attention, backward.";
  let description = [{
    Computes the gradients `dq`, `dk`, `dv` of `swba.attention` with the same
    `block_size`, `window` and `scale`, from the forward inputs `q`, `k`, `v`,
    the forward output `out`, the output gradient `dout` and the forward
    log-sum-exp `lse` (`[B, Hq, Nq]`, f32). With grouped-query attention, `dk`
    and `dv` sum over the query heads of each group. `dq`, `dk` and `dv` have
    the shapes and element type of `q`, `k` and `v`.

    Example:

    ```mlir
    %dq, %dk, %dv = swba.attention_grad
        ins(%q, %k, %v, %o, %do, %lse : tensor<2x8x256x64xf16>,
            tensor<2x8x256x64xf16>, tensor<2x8x256x64xf16>,
            tensor<2x8x256x64xf16>, tensor<2x8x256x64xf16>, tensor<2x8x256xf32>)
        outs(%dq0, %dk0, %dv0 : tensor<2x8x256x64xf16>,
             tensor<2x8x256x64xf16>, tensor<2x8x256x64xf16>)
        block_size = 64 window = 2
        -> tensor<2x8x256x64xf16>, tensor<2x8x256x64xf16>, tensor<2x8x256x64xf16>
    ```
  }];

  let arguments = (ins SWBA_TensorOrMemRef:$query,
                       SWBA_TensorOrMemRef:$key,
                       SWBA_TensorOrMemRef:$value,
                       SWBA_TensorOrMemRef:$out,
                       SWBA_TensorOrMemRef:$grad_out,
                       SWBA_TensorOrMemRef:$lse,
                       SWBA_TensorOrMemRef:$grad_query,
                       SWBA_TensorOrMemRef:$grad_key,
                       SWBA_TensorOrMemRef:$grad_value,
                       I64Attr:$block_size,
                       I64Attr:$window,
                       OptionalAttr<F32Attr>:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key `,` $value `,` $out `,` $grad_out `,` $lse `:`
        type($query) `,` type($key) `,` type($value) `,` type($out) `,`
        type($grad_out) `,` type($lse) `)`
    `outs` `(` $grad_query `,` $grad_key `,` $grad_value `:`
        type($grad_query) `,` type($grad_key) `,` type($grad_value) `)`
    `block_size` `=` $block_size `window` `=` $window
    (`scale` `=` $scale^)? attr-dict (`->` type($results)^)?
  }];

  let extraClassDeclaration = [{
    /// The scale applied to the scores: the `scale` attribute, or 1/sqrt(D).
    double getEffectiveScale();

    MutableOperandRange getDpsInitsMutable() {
      return MutableOperandRange(getOperation(), /*start=*/6, /*length=*/3);
    }
  }];

  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

def SWBA_PagedAttentionOp : SWBA_Op<"paged_attention", [
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Sliding window block attention against a paged KV cache.";
  let description = [{
    The forward of `swba.attention` for serving: the keys and values of each
    sequence live in fixed-size pages of a cache shared by the batch, found
    through a per-sequence page table, as vLLM and FlashInfer hold them.

    | operand       | shape                                   |
    | ------------- | --------------------------------------- |
    | `q`           | `[B, Hq, Nq, D]`                        |
    | `key_cache`   | `[num_pages, page_size, Hkv, D]`        |
    | `value_cache` | `[num_pages, page_size, Hkv, Dv]`       |
    | `page_table`  | `[B, max_pages]`, i32                   |
    | `seq_lens`    | `[B]`, i32                              |
    | `out`         | `[B, Hq, Nq, Dv]`                       |
    | `lse`         | `[B, Hq, Nq]`, f32 (optional)           |

    The caches are in the NHD page layout of vLLM's and FlashInfer's paged
    caches (`[num_pages, page_size, num_kv_heads, head_dim]`): a token's
    keys for all heads are contiguous, so appending a token writes one run
    of `Hkv * D` elements, and a page holds whole tokens, so a page is freed
    or reused as a unit. Sequence `b` has `seq_lens[b]` tokens in the cache;
    the key at position `p` is `key_cache[page_table[b, p / page_size],
    p % page_size]`. The `Nq` queries of each sequence are its last `Nq`
    tokens (bottom-right aligned per sequence): query row `i` sits at
    position `seq_lens[b] - Nq + i`, so the cache must already hold the
    queries' own keys and values. Frames of `block_size` tokens start at
    position 0 and the block window is that of `swba.attention`.

    `Nq` is the same for the whole batch: `Nq = 1` is decode, `Nq =
    block_size` one frame of prefill. A batch whose sequences add different
    numbers of tokens uses the largest `Nq`: the extra leading query rows of
    a sequence are earlier positions of it, computed correctly and ignored
    by the caller. Query rows before the start of a sequence (`seq_lens[b]
    < Nq`, a negative length counting as 0) see no key: their `out` is 0
    and their `lse` is `-inf`; a padding entry of length 0 reads nothing.

    Only the pages holding keys of some query's window are read, page table
    entries included: the pages (and entries) that hold only positions
    before `(frame(seq_lens[b] - Nq) - window + 1) * block_size`, the start
    of the first query's window, are never read, so the caller may reuse
    those pages and mark their entries -1.
    A page table entry that is read and lies outside `[0, num_pages)`
    (or a page index at or after `max_pages`) is never dereferenced: every
    query row whose window holds a key of that page gets NaN in `out` and
    `lse`, the other rows are exact. The check is one comparison per page.

    Element types are f16, bf16 or f32 (the same for `q`, the caches and
    `out`), with f32 accumulation; `Hq` is a multiple of `Hkv` (query head
    `h` reads cache head `h / (Hq / Hkv)`); head dims are static, the batch,
    lengths, `num_pages`, `page_size` and `max_pages` may be dynamic. `scale`
    defaults to `1/sqrt(D)`. Tensors or memrefs, destination-passing style
    as `swba.attention`; only the CPU lowering supports the op so far.

    Example (decode: one query per sequence, pages of 16 tokens, frames of
    256 tokens, a window of 8 frames, 32 query heads on 8 cache heads):

    ```mlir
    %o = swba.paged_attention
        ins(%q, %kc, %vc, %pages, %lens : tensor<?x32x1x128xbf16>,
            tensor<?x16x8x128xbf16>, tensor<?x16x8x128xbf16>,
            tensor<?x?xi32>, tensor<?xi32>)
        outs(%init : tensor<?x32x1x128xbf16>)
        block_size = 256 window = 8 -> tensor<?x32x1x128xbf16>
    ```
  }];

  let arguments = (ins SWBA_TensorOrMemRef:$query,
                       SWBA_TensorOrMemRef:$key_cache,
                       SWBA_TensorOrMemRef:$value_cache,
                       SWBA_TensorOrMemRef:$page_table,
                       SWBA_TensorOrMemRef:$seq_lens,
                       Variadic<SWBA_TensorOrMemRef>:$outputs,
                       I64Attr:$block_size,
                       I64Attr:$window,
                       OptionalAttr<F32Attr>:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    `ins` `(` $query `,` $key_cache `,` $value_cache `,` $page_table `,`
        $seq_lens `:` type($query) `,` type($key_cache) `,`
        type($value_cache) `,` type($page_table) `,` type($seq_lens) `)`
    `outs` `(` $outputs `:` type($outputs) `)`
    `block_size` `=` $block_size `window` `=` $window
    (`scale` `=` $scale^)? attr-dict (`->` type($results)^)?
  }];

  let extraClassDeclaration = [{
    /// The `out` output operand.
    Value getOut() { return getOutputs()[0]; }
    /// The optional `lse` output operand, null when absent.
    Value getLse() {
      return getOutputs().size() > 1 ? getOutputs()[1] : Value();
    }
    /// The scale applied to the scores: the `scale` attribute, or 1/sqrt(D).
    double getEffectiveScale();

    MutableOperandRange getDpsInitsMutable() { return getOutputsMutable(); }
  }];

  let hasVerifier = 1;
}

#endif // SWBA_DIALECT_SWBA_IR_SWBAOPS_TD
