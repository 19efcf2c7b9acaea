//===- Passes.td - SWBA conversion passes ----------------------*- tablegen -*-===//

#ifndef SWBA_CONVERSION_PASSES_TD
#define SWBA_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerSWBA : Pass<"lower-swba"> {
  let summary = "Lower swba ops (memref form) to tiled kernels with "
                "block-window loop bounds.";
  let description = [{
    Rewrites `swba.attention` and `swba.attention_grad` on memrefs (after
    bufferization) into tiled online-softmax kernels. For every query tile
    only the key tiles that intersect the tile's block window are visited:
    the key loop runs over `[frame(first query) - window + 1, frame(last
    query) + 1) * block_size`, clipped to the keys, so the work per query is
    O(window * block_size), not O(N). A key tile that every query of the tile
    sees whole runs without any mask arithmetic; only tiles that straddle a
    frame edge evaluate the element mask.

    The backward op becomes three loop nests: `delta = rowsum(dout * out)`,
    then dK/dV per key tile over the query tiles of its reverse window
    (summing the query heads of a GQA group, so no two iterations write the
    same rows), then dQ per query tile over its window.

    `swba.paged_attention` is the same forward with the key loop of each
    query tile walking its window page by page: the page table entry of a
    page is loaded only when the page holds a key of the window, and an
    entry outside the cache is not dereferenced (the rows that would see
    it get NaN).

    On `target=gpu`, `swba.paged_attention` (and `swba.attention` with
    `decode=true`) becomes the split-KV decode kernel and the split-KV
    forward's combine kernel: the query heads of one kv head times the queries
    (at most 64 rows) are packed into one workgroup, so each K/V tile is
    read once per kv head, and the rows' key window is divided into runs
    of 64-key tiles among a number of workgroups the launcher chooses
    (the launch scalar `splits` of the manifest; the emitted host code takes
    about one per 512 keys of a window). K/V tiles stream through a
    three-slot shared-memory ring by `cp.async`; the sequence lengths are
    read on the device. Each split writes its partial out and lse (the
    f32 launch buffers `split_out` `[splits, B * Hq * Nq, Dv]` and
    `split_lse`), the combine kernel merges them with their log-sum-exps.

    `target=cpu` produces `scf`/`memref`/`arith`/`math` loops with f32
    accumulation. `target=gpu` turns `swba.attention` into a `gpu.launch_func`
    of a kernel in a new `gpu.module`: one workgroup of 4 warps per (64 query
    rows, head, batch), K/V tiles of 64 rows staged in shared memory, both
    products on tensor cores (`nvgpu.ldmatrix` + `nvgpu.mma.sync`, sm_80 and
    later), online softmax in registers (f16/bf16, head dims multiples of 16
    up to 128). The ops must already be bufferized: a tensor-form op is an
    error, and so is what a target does not support. Every option is
    checked before anything is rewritten; a value out of range is an
    error. Sizes the verifier cannot check because they are dynamic
    (matching batches, heads and lengths, Nq <= Nk, grouped heads) are
    asserted at run time (`cf.assert`) before the loops or the launch.

    With `chip=sm_90a` the forward op at head dims that are multiples of 64
    up to 256, or of 16 past 64 (which the kernels round up to whole
    64-column TMA boxes: the loads fill the columns past the tensor's with
    zeros, and the epilogues store the tensor's columns alone), becomes a
    Hopper kernel instead: a producer warpgroup brings Q and a ring of
    `stages` K/V tiles of `block-n` keys into 128B-swizzled shared memory
    with TMA (`nvgpu.tma.async.load`, completing on `nvgpu.mbarrier`s), and
    `consumers` warpgroups of 64 query rows (three at head dim 64, two from
    128; 64-key tiles past 128) run S = Q K^T and O += P V on
    warpgroup MMA (`nvvm.wgmma.mma_async`, P from registers). The launch
    creates the TMA descriptors (`nvgpu.tma.create.descriptor`) and passes
    the dynamic shared memory size. The backward op at those head dims
    becomes a small delta kernel, then the same kind of kernels: dQ (Q and
    dO of 128 rows once, a ring of 128-key K/V tiles) and dK/dV (K and V of
    128 keys once, a ring of Q/dO tiles over the GQA group and the reverse
    window), S and dP from shared memory, dQ, dK, dV with dS and P from
    registers; no atomics. Where dK and dV do not fit in a consumer's
    registers together (d + dv > 256: head dims 192 and 256) the dK/dV
    kernel is two, `swba_bwd_dv` and `swba_bwd_dk`, and the dQ and dK
    kernels take 32-row tiles where larger ones do not fit in shared
    memory. dQ and dK/dV read the delta kernel's output and
    nothing of each other, so a runtime may run them at once; with
    `grad-dq-delta=true` (the default on bands of at most 512 keys at head
    dim 64) the dQ kernel computes delta of its rows itself and writes it,
    and the dK/dV kernel runs after it, without a delta kernel. With
    `grad-fused-dq=true` (the default for frames at head dim 128) the
    dK/dV kernel also adds dQ up instead (five products): dS^T into shared
    memory, dQ = dS K, TMA reduce-adds
    (`nvvm.cp.async.bulk.tensor.reduce`) into a zeroed f32 buffer that a
    conversion kernel scales into dq; those kernels are not bitwise
    reproducible, and their manifest says so.
    With `split-kv=N` (N >= 1) the sm_90a forward is split-KV instead, for
    windows too long for batch x heads x query tiles to fill the GPU: a
    kernel whose grid's z is batch x splits, each workgroup taking a share
    of its query tile's key tiles and leaving its normalized partial O and
    lse in f32 buffers, then a combine kernel that merges them by their
    log-sum-exps. The count of splits is a launch scalar: the host code
    made here launches N, a runtime picks its own at each launch.
    Other head dims and other chips keep the `mma.sync` kernels.

    Example: `swba-opt --lower-swba="target=cpu tile-q=16 tile-k=16"`.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "Code to produce: 'cpu' (scf loops) or 'gpu' (gpu.launch_func "
           "of tensor-core kernels).">,
    Option<"tileQ", "tile-q", "int64_t", /*default=*/"16",
           "target=cpu: query rows per tile, 1 to 256 (the tile's scratch "
           "lives on the stack).">,
    Option<"tileK", "tile-k", "int64_t", /*default=*/"16",
           "target=cpu: key rows per tile, 1 to 256.">,
    Option<"chip", "chip", "std::string", /*default=*/"::mlir::swba::kDefaultChip",
           "target=gpu: the GPU the kernels are for, sm_80 (the default) or "
           "later (the error for another lists them). sm_90a gives the "
           "forward and backward at head dims that are multiples of 64 up "
           "to 256, or of 16 past 64 (rounded up to whole TMA boxes), the "
           "warpgroup-MMA + TMA kernels; every other chip (head dims that "
           "are multiples of 16 up to 128), and sm_90a at head dims 16, 32 "
           "and 48, the mma.sync kernels.">,
    Option<"consumers", "consumers", "int64_t", /*default=*/"0",
           "sm_90a forward: consumer warpgroups of 64 query rows, 1 to 3 "
           "(one with two or three workgroups an SM); 0: three at head dim "
           "64 (one, three workgroups an SM, on bands of 256 to 512 keys), "
           "two from 128.">,
    Option<"blockN", "block-n", "int64_t", /*default=*/"0",
           "sm_90a forward: keys per K/V tile, a multiple of 64 up to 256; "
           "0: chosen from the head dims and the window (64 for bands of at "
           "most 512 keys at head dim 64, else 128).">,
    Option<"stages", "stages", "int64_t", /*default=*/"0",
           "sm_90a forward: K/V tiles in flight (shared-memory ring), up to "
           "16 (and what fits in shared memory); 0: per head dim and "
           "window (8 for the persistent forward of token windows of at most "
           "129 keys at head dim 64 with 64-key tiles, whose consumers run "
           "the key tiles their rows see in one pass and need a stage for "
           "each; 4 for that forward on other bands of at most 512 keys; "
           "else 2).">,
    Option<"workgroupsPerSM", "workgroups-per-sm", "int64_t",
           /*default=*/"0",
           "sm_90a forward: workgroups resident on an SM, 1 to 3 (two or "
           "three share the SM's registers and shared memory, so that one "
           "workgroup's loads, prologue and epilogue run under the others' "
           "products; they take the grid); 0: chosen from the head dims and "
           "the window.">,
    Option<"tileScheduler", "tile-scheduler", "std::string",
           /*default=*/"\"\"",
           "sm_90a forward: 'grid' launches a workgroup per query tile; "
           "'persistent' one per SM (the launch scalar sm_count; the host "
           "code made here launches 132, or one a query tile where there are "
           "fewer), each claiming query tiles in "
           "the grid's order from a zeroed counter until none is left, so "
           "that its producer claims the next tile and loads its Q (into a "
           "second buffer, where one fits) and first K/V tiles under this "
           "tile's products and epilogue; empty: persistent "
           "at head dim 64, the grid otherwise (and always for the split-KV "
           "forward and two workgroups an SM).">,
    Option<"overlapSoftmax", "overlap-softmax", "bool", /*default=*/"true",
           "sm_90a forward: run the softmax of one K/V tile while the P V "
           "product of the previous one is on the tensor cores.">,
    Option<"pingPong", "ping-pong", "std::string", /*default=*/"\"\"",
           "sm_90a forward, with overlap-softmax: 'true': the consumer "
           "warpgroups take turns issuing their products, so that one's "
           "softmax runs under the others' products; 'false': each issues "
           "its own when ready; empty: true, but false on bands of at most "
           "512 keys at head dim 64 where the consumers run only their own "
           "rows' key tiles (turns would hold them to the workgroup's).">,
    Option<"splitKv", "split-kv", "int64_t", /*default=*/"0",
           "sm_90a forward: 0 gives each query tile one workgroup; N >= 1 "
           "the split-KV forward: each query tile's key tiles divided among "
           "`splits` workgroups (a launch scalar the launcher picks; the "
           "host code made here launches N), partial results in f32 "
           "buffers that a combine kernel merges. For windows too long for "
           "batch x heads x query tiles to fill the GPU.">,
    Option<"decode", "decode", "bool", /*default=*/"false",
           "target=gpu: swba.attention's forward on the split-KV decode "
           "kernel (as swba.paged_attention always is): the query heads of "
           "a kv head packed into one workgroup (at most 64 rows, Hq / Hkv "
           "* Nq), their key window divided among `splits` workgroups (the "
           "launch scalar of the split-KV forward). Takes precedence over "
           "split-kv. For decode and short query frames.">,
    Option<"gradKeyTile", "grad-key-tile", "int64_t", /*default=*/"0",
           "sm_90a backward: keys per K/V tile of the dQ kernel, 32, 64 or "
           "128; 0: 64 for token windows at head dim 128 and for bands of "
           "at most 512 keys at head dim 64, else 128, or 64 "
           "where 128 does not fit in shared memory (past head dim 128 also "
           "32).">,
    Option<"gradQueryTile", "grad-query-tile", "int64_t", /*default=*/"0",
           "sm_90a backward: query rows per Q/dO tile of the dK/dV kernel, "
           "32, 64 or 128; 0: 128 at head dim 64 (64 for bands of at most "
           "512 keys), 64 at 128, 32 past head dim 128 where 64 does not "
           "fit in shared memory.">,
    Option<"gradStages", "grad-stages", "int64_t", /*default=*/"0",
           "sm_90a backward: tiles in flight in the dQ and dK/dV kernels, "
           "up to 16 (and what fits in shared memory); 0: 2.">,
    Option<"gradKeyStages", "grad-key-stages", "int64_t", /*default=*/"0",
           "sm_90a backward: K/V tiles in flight in the dQ kernel alone, up "
           "to 16 (and what fits); 0: grad-stages where given, else 2 (4 "
           "on bands of at most 512 keys at head dim 64 with 64-key dQ "
           "tiles and grad-q-consumers asked for, where the dQ kernel's "
           "consumers each take a few key tiles: 3-8% faster there).">,
    Option<"gradQConsumers", "grad-q-consumers", "int64_t",
           /*default=*/"0",
           "sm_90a backward: consumer warpgroups of the dQ kernel, 64 query "
           "rows each: 1 (two workgroups an SM, three at head dim 64 with "
           "64-key tiles where they fit in shared memory), 2 or 3; 0: 1 "
           "(three an SM, two stages) on bands of at most 512 keys at head "
           "dim 64 with 64-key tiles (the kernel 15-21% faster there), 3 "
           "with 64-key tiles at head dim 64 elsewhere, else 2.">,
    Option<"gradKvConsumers", "grad-kv-consumers", "int64_t",
           /*default=*/"0",
           "sm_90a backward: consumer warpgroups of the dK/dV kernel, 64 keys "
           "each: 2 (one workgroup an SM), or 1 (two workgroups an SM, each "
           "in half of the SM's registers and shared memory, whose "
           "prologues and epilogues interleave); 0: 1 on bands of at most "
           "512 keys at head dim 64 with 64-row query tiles (the kernel "
           "7-14% faster there, 25% slower on frames of 256), unless "
           "grad-ping-pong=true, else 2.">,
    Option<"gradKvTiles", "grad-kv-tiles", "int64_t", /*default=*/"0",
           "sm_90a backward: the most key tiles a dK/dV workgroup runs one "
           "after another, 1 to 16: the producer loads the next tile's K and "
           "V into a second buffer and its first Q/dO tiles under this "
           "tile's products and epilogue. Past 1, the launcher picks the "
           "count for the problem and the device (the launch manifest's "
           "grid dim with \"most\": the fewest waves of workgroups times a "
           "workgroup's time; the host code made here assumes 132 SMs) and "
           "each workgroup takes ceildiv(key tiles, grid) of them. Not with "
           "grad-fused-dq=true (and asked for, it keeps the fused kernel "
           "from being the default). 0: 16 on bands of at most 512 keys at "
           "head dim 64 with one dK/dV consumer (the kernel 2-20% faster "
           "there; slower on wider bands), else 1.">,
    Option<"gradFusedDQ", "grad-fused-dq", "std::string", /*default=*/"\"\"",
           "sm_90a backward: 'true': the dK/dV kernel also adds dQ up, with "
           "TMA reduce-adds into an f32 buffer that a last kernel converts "
           "(five products instead of seven), instead of a separate dQ "
           "kernel recomputing S and dP; the order of the additions varies, "
           "so dq is not bitwise reproducible (the launch manifest says "
           "\"reproducible\": false). 'false': the separate dQ kernel, "
           "reproducible. Empty: true for frames at head dims 128 (d and dv "
           "rounded up to 128, block_size >= 128: 1.4-3.6% faster steps, "
           "docs/BENCHMARKS.md), unless an option of the separate kernels "
           "is given (grad-key-tile, grad-q-consumers, grad-ping-pong=true, "
           "grad-kv-tiles past 1, grad-dq-delta=true) "
           "or the tiles "
           "asked for (grad-query-tile, grad-stages) do not fit the fused "
           "kernel; false elsewhere.">,
    Option<"gradDqDelta", "grad-dq-delta", "std::string", /*default=*/"\"\"",
           "sm_90a backward with the separate dQ kernel: 'true': the dQ "
           "kernel computes delta = rowsum(dO * O) of its own rows (O's rows "
           "loaded by TMA with Q's and dO's, the sums from shared memory) "
           "and writes it for the dK/dV kernel, which then runs after it on the same stream: "
           "no delta kernel. 'false': the delta kernel first, then dK/dV "
           "and dQ at once (a runtime may run them on two streams). Not "
           "with grad-fused-dq=true (which has no dQ kernel; asked for, it "
           "keeps the fused kernel from being the default). Empty: true on "
           "bands of at most 512 keys at head dim 64 (steps 3-4% faster "
           "there), else false.">,
    Option<"gradPingPong", "grad-ping-pong", "bool", /*default=*/"false",
           "sm_90a backward: the two consumer warpgroups of the dQ and "
           "dK/dV kernels take turns issuing their products (slower on the "
           "H100: docs/BENCHMARKS.md). The grad-fused-dq kernel never "
           "does (a barrier of both consumers orders its dS^T).">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def WriteLaunchManifest : Pass<"swba-write-launch-manifest", "ModuleOp"> {
  let summary = "Write the launch contracts of the SWBA GPU kernels as JSON.";
  let description = [{
    `--lower-swba{target=gpu}` attaches to every kernel it makes how to
    launch it (`swba.launch` on the `gpu.func`) and to its `gpu.module` the
    device buffers the launches share (`swba.buffers`); the host code it
    emits is built from the same description. This pass writes them to
    `path` as JSON, for runtimes that launch the kernels themselves (the
    Python bridge launches from it alone). Run it after `--lower-swba` and
    before the `gpu.module`s become `gpu.binary`s; `--swba-to-nvvm` does
    with `manifest=<path>`.

    ```json
    {"format": 1, "modules": [{"name": "swba_attention_kernels",
      "reproducible": true, "buffers": [], "scalars": [],
      "kernels": [{"name": "swba_fwd", "order": 0, "stream": 0,
        "grid": [{"size": {"tensor": "q", "dim": 1}, "per": 1},
                 {"size": {"tensor": "q", "dim": 2}, "per": 192},
                 {"size": {"tensor": "q", "dim": 0}, "per": 1} ],
        "block": [512, 1, 1], "shared_memory": 90112, "max_registers": 128,
        "params": [{"tensor": "q", "kind": "memref", "rank": 4,
                    "element_type": "bf16"}, ...,
                   {"tensor": "q", "kind": "tensor_map", "element_type": "bf16",
                    "view": [[0, 1], [2], [3]], "box": [1, 192, 64],
                    "swizzle": "swizzle_128b", "l2_promotion": "l2promo_256b",
                    "oob_fill": "zero", "interleave": "none"}, ...]} ]} ]}
    ```

    - Tensors are named as the op's operands: `q`, `k`, `v`, `out`, `lse`
      (`swba.attention`), `q`, `k`, `v`, `out`, `dout`, `lse`, `dq`, `dk`,
      `dv` (`swba.attention_grad`), `q`, `k_cache`, `v_cache`,
      `page_table`, `seq_lens`, `out`, `lse` (`swba.paged_attention`), or
      as a buffer (`delta`, `dq_accum`, `split_out`, `split_lse`):
      `name`, `element_type`, `shape` (a size or a number per dim), `zero`
      (zeroed before the launches).
    - A grid dimension is `ceildiv(size, per)`, a size being dimension `dim`
      of tensor `tensor` at run time (`{"tensor": t, "dim": d}`), a launch
      scalar (`{"scalar": name}`), or a product of sizes
      (`{"product": [...]}`, 1 when empty). With `most` (past 1),
      `per_sm` and `overhead`, a workgroup may run up to `most` of those
      `per`-sized chunks one after another (the dK/dV kernel of
      `grad-kv-tiles`): the launcher picks t in [1, most] and launches
      ceildiv(chunks, t) workgroups along the dim, and the kernel takes
      ceildiv(chunks, extent) chunks a workgroup from the extent it gets,
      so any t is right. The rule (the host code emitted here follows it
      for 132 SMs, the Python launcher for the device's count): the t, the
      largest of equals, with the fewest waves of workgroups times a
      workgroup's time, `ceildiv(grid's workgroups, per_sm x SMs) x (100 t
      + overhead)`, `per_sm` being the workgroups an SM runs at once and
      `overhead` a workgroup's start and end in percent of a chunk's time.
    - `scalars` names the launch scalars: counts the launcher picks at each
      launch and gives with the sizes (`splits`: the number of splits of
      the split-KV forward, `--lower-swba` split-kv, and of the decode
      kernels; any value >= 1 gives the same result).
    - A `memref` parameter is the expanded memref descriptor of the tensor
      (allocated and aligned pointers, offset, sizes, strides), with
      `collapse` of the tensor with those groups of dims merged (the
      split-KV combine kernel takes out and lse as rows); a
      `tensor_map` parameter a pointer to a 128-byte CUtensorMap, in global
      memory, of the tensor seen through `view` (groups of dims merged,
      outermost first) in boxes of `box` elements (outermost first).
    - `reproducible` is false where the results may differ in their last
      bits from one run to the next (`grad-fused-dq`'s reduce-adds, whose
      order varies): a runtime asked for bitwise reproducible results
      compiles the op again with `grad-fused-dq=false`.
    - Kernels run in `order`. A kernel on `stream` 1 may run on a second
      stream, at once with the stream-0 kernels after it; it waits for the
      stream-0 work before it, and the op's work ends when both streams'
      does. `max_registers` is present where the kernel caps them.
      `early_start` (true) says the kernel may start while the kernel
      launched before it on the same stream ends (CUDA's programmatic
      dependent launch): it reads what that kernel writes only after
      `griddepcontrol.wait`, and that kernel lets it start
      (`griddepcontrol.launch_dependents`); a launcher may also launch it
      plainly (the emitted host code does).
  }];
  let options = [
    Option<"path", "path", "std::string", /*default=*/"",
           "The file to write ('-': standard output).">,
  ];
}

#endif // SWBA_CONVERSION_PASSES_TD
