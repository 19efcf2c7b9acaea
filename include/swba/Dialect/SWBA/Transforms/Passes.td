//===- Passes.td - SWBA dialect transforms --------------------*- tablegen -*-===//

#ifndef SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_TD
#define SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def RaiseSWBA : Pass<"raise-swba"> {
  let summary = "Raise masked attention written in linalg/tensor/arith/math "
                "to swba.attention, where the mask is proven to be a sliding "
                "window block mask.";
  let description = [{
    Recognizes `softmax(scale * q @ k^T + mask) @ v` as importers such as
    torch-mlir emit it and replaces it with one `swba.attention` on tensors
    (plus the reshapes and transposes that bring q, k, v and the result to
    and from the op's `[B, H, N, D]` layout). The chain is traced backwards
    from the second contraction through the bodies of the linalg ops that
    compute it (fused or not), so these forms are recognized:

    - contractions: `linalg.matmul`, `linalg.batch_matmul` (also with
      transposing indexing maps), `linalg.generic` contractions, operands
      through `linalg.transpose`, batch and heads in 4-D or collapsed to 3-D
      with `tensor.collapse_shape`/`tensor.expand_shape`; the second one
      also transposed, O^T = V^T P^T (`jax.nn.dot_product_attention`);
      the scores also through a collapse and an expand that only move unit
      dimensions (a reshape through a flat vector);
    - the scale: `mulf`/`divf` by a constant on the scores, on q or on k;
    - the mask: `addf` of a tensor of 0 and -inf (or any value at most half
      the lowest finite value, as PyTorch's `finfo.min` and JAX's -0.7
      times the largest, or `log` of 0/1), or `select(cond, s, -inf)`; the
      mask or the condition computed by anything constant-foldable (see
      below);
    - softmax: `linalg.softmax`, or decomposed into a max reduction,
      `subf`, `exp`, a sum reduction and `divf`, optionally behind the
      empty-row guard of decomposed SDPA (`select` on an `or` reduction of
      `logits != -inf`), which is a no-op once the mask is proven;
    - k and v repeated over heads inside the head axis (`repeat_interleave`:
      a broadcast, then `collapse_shape`): grouped-query attention;
    - `extf`/`truncf` anywhere on the way (f16/bf16 inputs, f32 softmax).

    The mask is evaluated, not matched: its backward slice (linalg bodies,
    `linalg.index`, indexing maps, broadcasts, reshapes that merge or split
    its axes, slices, `dense`/`dense_resource` constants) is constant-folded
    over the (query, key) index space, any scalar op through its folder.
    What cannot be evaluated is refused with a remark naming the op.

    Dynamic lengths (q, k and v with dynamic sequence sizes; heads and head
    dims static, the batch static or dynamic): the mask is evaluated at lengths past its
    integer constants, which gives `block_size` and `window`, and then
    proven to be that mask at every pair of lengths up to 2^30 with
    queries at most keys (the raised program asserts that bound); a mask
    whose last row sees back to key 0 there (a causal layer) is tried as a
    window of 2^30 keys in its block size. Its scalars become Presburger formulas over the
    query, the key and the lengths (MLIR's Presburger library decides
    them): affine arithmetic, floor and truncating division and remainder
    by constants, min/max, selects and comparisons, casts that keep the
    values (narrow integer types with a proof that they do), and integer
    floor division done in floats (`floor(sitofp(x) / c)`, exact below the
    float's precision). The lengths are classes of sizes equal at run
    time: sizes traced through `tensor.empty`, `tensor.dim`, reshapes and
    destinations, equal where one linalg loop indexes them or a
    `cf.assert` compares them. torch-mlir's broadcasts of dynamic shapes
    (`tensor.extract` at `select(size == 1, 0, i)`) and reshapes to
    computed sizes (`tensor.reshape` of `tensor.from_elements`) are read
    as the copies and reshapes they are where the sizes are proven equal;
    a copy whose source length is not proven equal to the query length
    stays the op's operand. Computed sizes are traced through products of
    sizes, exact quotients of products and selects between them (ONNX's
    reshapes with an inferred size, and its 0 that copies a size, which is
    decided with sizes of at least 1: the raised program asserts each size
    so taken). With a static count of queries against dynamic
    keys (decode), where one length fits many windows, a token window as
    wide as the last row's keys and frames as long as the rows, or as the
    keys show them as they grow, are proven after the window inferred. The
    op keeps the dynamic lengths; where queries outnumber keys at run time,
    the lowering's size checks fail.

    A dynamic batch, the outermost batch dimension of q, k, v and the
    result (the others static), stays the op's batch where the IR proves
    it one size in all four: size classes relate their members by constant
    factors (collapses with static heads, `muli`/`divsi`/`affine.apply`
    of sizes, the `max` of a broadcast), so that the batched products' loops tie
    `2 B` to `2 B'`; `tensor.reshape` to computed sizes is read as a
    collapse where a run of dimensions is proven to make each size.

    Soundness: the pass decides the mask on every (query, key) pair of the
    static shapes (one by one, or a block of rows and keys at once where
    interval bounds on the mask's arithmetic give the whole block one
    verdict) and rewrites only when the visible pairs are exactly those
    of `block_size`/`window` with bottom-right aligned positions, for block
    size and window it infers; the scale must be a positive constant, the
    softmax must normalize over the key axis, and the contractions must
    accumulate into zeros. A finite masking value hides its key exactly
    where the row's largest visible score is above it by more than the
    exponential's range (104 in f32), i.e. for any scores but
    astronomically negative ones. Every rejected candidate (a contraction whose
    operand comes from a softmax, or from an `exp` beside a reduction that
    is not a contraction: not a gated MLP's SiLU) gets a missed-optimization
    remark naming the reason; see them with
    `--remarks-filter-missed=raise-swba`.

    Example: `swba-opt --raise-swba --remarks-filter-missed=raise-swba`
    turns

    ```mlir
    %s = linalg.batch_matmul ins(%q, %kt : tensor<2x64x16xf32>, tensor<2x16x64xf32>) ...
    %m = linalg.generic ... { %0 = arith.mulf %in, %c0.25; %1 = arith.addf %0, %mask ... }
    %p = linalg.softmax dimension(2) ins(%m : tensor<2x64x64xf32>) ...
    %o = linalg.batch_matmul ins(%p, %v : tensor<2x64x64xf32>, tensor<2x64x16xf32>) ...
    ```

    into `swba.attention ... block_size = 16 window = 2 scale = 2.500000e-01`
    between `tensor.expand_shape`/`tensor.collapse_shape`.
  }];
  let options = [
    Option<"maxMaskPairs", "max-mask-pairs", "int64_t",
           /*default=*/"16777216",
           "Most evaluations of a mask: (query, key) pairs evaluated one by "
           "one, plus tiles of keys bounded at once; candidates that need "
           "more are left alone with a remark.">,
    Option<"maskTile", "mask-tile", "int64_t", /*default=*/"8",
           "Keys a tile when a row's keys are decided a tile at a time by "
           "interval bounds (masks with many distinct keys); 0: every pair "
           "one by one.">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::swba::SWBADialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def DecomposeLinalgAggregates : Pass<"swba-decompose-linalg-aggregates"> {
  let summary = "Decompose linalg ops that are aggregates of simpler ones "
                "(linalg.softmax) into those ops.";
  let description = [{
    Replaces every op implementing `linalg::AggregatedOpInterface` (in LLVM
    22: `linalg.softmax`) by the ops its `decomposeOperation` builds: for
    softmax a max reduction, a subtraction and exponential, a sum reduction
    and a division, all `linalg.generic`. `--swba-to-llvm` runs it first, so
    that attention which `--raise-swba` left alone (or that nobody raised)
    still lowers to loops; an op that refuses to decompose is an error.

    Example: `swba-opt --swba-decompose-linalg-aggregates`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // SWBA_DIALECT_SWBA_TRANSFORMS_PASSES_TD
