//===- Pipelines.h - SWBA pass pipelines ------------------------*- C++ -*-===//
//
// The options of each pipeline are declared once, here; the builders derive
// the option structs of the passes they run from them, and check every value
// before adding a pass. The kernel options' defaults are those of
// --lower-swba (Passes.td), the chip's default kDefaultChip.
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_PIPELINES_PIPELINES_H
#define SWBA_PIPELINES_PIPELINES_H

#include "swba/Conversion/Passes.h"

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;

namespace swba {

/// Options of --swba-to-llvm.
struct SWBAToLLVMOptions : public PassPipelineOptions<SWBAToLLVMOptions> {
  PassOptions::Option<int64_t> tileQ{
      *this, "tile-q",
      llvm::cl::desc("Query rows per tile of the CPU loops, 1 to 256."),
      llvm::cl::init(LowerSWBAOptions().tileQ)};
  PassOptions::Option<int64_t> tileK{
      *this, "tile-k",
      llvm::cl::desc("Key rows per tile of the CPU loops, 1 to 256."),
      llvm::cl::init(LowerSWBAOptions().tileK)};

  /// --lower-swba's options for the CPU loops.
  LowerSWBAOptions lowerSWBAOptions() const;
};

/// Options of --swba-to-nvvm: the kernels' chip, the binary, and the
/// sm_90a kernels' tile choices (those of --lower-swba, same names).
struct SWBAToNVVMOptions : public PassPipelineOptions<SWBAToNVVMOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("GPU the kernels are for, sm_80 (the default) or later "
                     "(the error for another lists them): sm_90a gives head "
                     "dims 64 and 128 the warpgroup-MMA + TMA kernels, every "
                     "other chip the mma.sync kernels."),
      llvm::cl::init(kDefaultChip)};
  PassOptions::Option<std::string> ptxVersion{
      *this, "ptx",
      llvm::cl::desc("PTX ISA version of the kernels, e.g. ptx86; empty: "
                     "ptx80, or the first version that knows the chip when "
                     "that is later (ptx86 for sm_100)."),
      llvm::cl::init("")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel binary: 'bin' (cubin, needs ptxas), 'isa' "
                     "(PTX text) or 'fatbin'."),
      llvm::cl::init("bin")};
  PassOptions::Option<int64_t> optLevel{
      *this, "opt-level",
      llvm::cl::desc("Optimization level of the kernels' LLVM and ptxas, "
                     "0 to 3."),
      llvm::cl::init(3)};
  // The kernel options, one for each member of SWBA_GPU_KERNEL_OPTIONS
  // (swba/Conversion/Passes.h), which lowerSWBAOptions() forwards.
  PassOptions::Option<int64_t> consumers{
      *this, "consumers",
      llvm::cl::desc("sm_90a forward: consumer warpgroups, 1 to 3; 0: per "
                     "head dim and window (--lower-swba consumers)."),
      llvm::cl::init(LowerSWBAOptions().consumers)};
  PassOptions::Option<int64_t> blockN{
      *this, "block-n",
      llvm::cl::desc("sm_90a forward: keys per K/V tile, a multiple of 64 "
                     "up to 256; 0: per head dim (--lower-swba block-n)."),
      llvm::cl::init(LowerSWBAOptions().blockN)};
  PassOptions::Option<int64_t> stages{
      *this, "stages",
      llvm::cl::desc("sm_90a forward: K/V tiles in flight; 0: per head dim "
                     "(--lower-swba stages)."),
      llvm::cl::init(LowerSWBAOptions().stages)};
  PassOptions::Option<int64_t> workgroupsPerSM{
      *this, "workgroups-per-sm",
      llvm::cl::desc("sm_90a forward: workgroups resident on an SM, 1 to 3; "
                     "0: chosen from the window (--lower-swba "
                     "workgroups-per-sm)."),
      llvm::cl::init(LowerSWBAOptions().workgroupsPerSM)};
  PassOptions::Option<std::string> tileScheduler{
      *this, "tile-scheduler",
      llvm::cl::desc("sm_90a forward: 'grid' (a workgroup per query tile) or "
                     "'persistent' (one per SM, looping over query tiles); "
                     "empty: persistent at head dim 64 (--lower-swba "
                     "tile-scheduler)."),
      llvm::cl::init(LowerSWBAOptions().tileScheduler)};
  PassOptions::Option<bool> overlapSoftmax{
      *this, "overlap-softmax",
      llvm::cl::desc("sm_90a forward: the softmax of one K/V tile runs under "
                     "the P V product of the previous one (--lower-swba "
                     "overlap-softmax)."),
      llvm::cl::init(LowerSWBAOptions().overlapSoftmax)};
  PassOptions::Option<std::string> pingPong{
      *this, "ping-pong",
      llvm::cl::desc("sm_90a forward, with overlap-softmax: 'true', "
                     "'false' or empty (chosen from the window): the "
                     "consumers take turns issuing their products "
                     "(--lower-swba ping-pong)."),
      llvm::cl::init(LowerSWBAOptions().pingPong)};
  PassOptions::Option<int64_t> splitKv{
      *this, "split-kv",
      llvm::cl::desc("sm_90a forward: 0 one workgroup per query tile; N >= 1 "
                     "the split-KV forward, launched here with N splits "
                     "(--lower-swba split-kv)."),
      llvm::cl::init(LowerSWBAOptions().splitKv)};
  PassOptions::Option<bool> decode{
      *this, "decode",
      llvm::cl::desc("swba.attention's forward on the split-KV decode kernel "
                     "(--lower-swba decode)."),
      llvm::cl::init(LowerSWBAOptions().decode)};
  PassOptions::Option<int64_t> gradKeyTile{
      *this, "grad-key-tile",
      llvm::cl::desc("sm_90a backward: keys per K/V tile of the dQ kernel, "
                     "64 or 128; 0: the largest that fits (--lower-swba "
                     "grad-key-tile)."),
      llvm::cl::init(LowerSWBAOptions().gradKeyTile)};
  PassOptions::Option<int64_t> gradQueryTile{
      *this, "grad-query-tile",
      llvm::cl::desc("sm_90a backward: query rows per Q/dO tile of the "
                     "dK/dV kernel, 64 or 128; 0: per head dim (--lower-swba "
                     "grad-query-tile)."),
      llvm::cl::init(LowerSWBAOptions().gradQueryTile)};
  PassOptions::Option<int64_t> gradStages{
      *this, "grad-stages",
      llvm::cl::desc("sm_90a backward: tiles in flight in the dQ and dK/dV "
                     "kernels; 0: 2 (--lower-swba grad-stages)."),
      llvm::cl::init(LowerSWBAOptions().gradStages)};
  PassOptions::Option<int64_t> gradKeyStages{
      *this, "grad-key-stages",
      llvm::cl::desc("sm_90a backward: K/V tiles in flight in the dQ kernel "
                     "alone; 0: grad-stages, or per window (--lower-swba "
                     "grad-key-stages)."),
      llvm::cl::init(LowerSWBAOptions().gradKeyStages)};
  PassOptions::Option<int64_t> gradQConsumers{
      *this, "grad-q-consumers",
      llvm::cl::desc("sm_90a backward: consumer warpgroups of the dQ kernel, "
                     "1 to 3; 0: per window and key tile (--lower-swba "
                     "grad-q-consumers)."),
      llvm::cl::init(LowerSWBAOptions().gradQConsumers)};
  PassOptions::Option<int64_t> gradKvConsumers{
      *this, "grad-kv-consumers",
      llvm::cl::desc("sm_90a backward: consumer warpgroups of the dK/dV "
                     "kernel, 1 or 2; 0: per window (--lower-swba "
                     "grad-kv-consumers)."),
      llvm::cl::init(LowerSWBAOptions().gradKvConsumers)};
  PassOptions::Option<int64_t> gradKvTiles{
      *this, "grad-kv-tiles",
      llvm::cl::desc("sm_90a backward: the most key tiles a dK/dV workgroup "
                     "runs one after another, 1 to 16; 0: per window "
                     "(--lower-swba grad-kv-tiles)."),
      llvm::cl::init(LowerSWBAOptions().gradKvTiles)};
  PassOptions::Option<std::string> gradFusedDQ{
      *this, "grad-fused-dq",
      llvm::cl::desc("sm_90a backward: 'true': the dK/dV kernel also adds dQ "
                     "up with TMA reduce-adds, instead of a dQ kernel (not "
                     "bitwise reproducible); 'false': the dQ kernel; empty: "
                     "true for frames at head dim 128 (--lower-swba "
                     "grad-fused-dq)."),
      llvm::cl::init(LowerSWBAOptions().gradFusedDQ)};
  PassOptions::Option<std::string> gradDqDelta{
      *this, "grad-dq-delta",
      llvm::cl::desc("sm_90a backward: 'true': the dQ kernel computes delta "
                     "for the dK/dV kernel after it (no delta kernel); "
                     "'false': the delta kernel; empty: per window "
                     "(--lower-swba grad-dq-delta)."),
      llvm::cl::init(LowerSWBAOptions().gradDqDelta)};
  PassOptions::Option<bool> gradPingPong{
      *this, "grad-ping-pong",
      llvm::cl::desc("sm_90a backward: the consumers of the dQ and dK/dV "
                     "kernels take turns issuing their products "
                     "(--lower-swba grad-ping-pong)."),
      llvm::cl::init(LowerSWBAOptions().gradPingPong)};
  PassOptions::Option<std::string> manifest{
      *this, "manifest",
      llvm::cl::desc("Write the kernels' launch contracts to this JSON file "
                     "(--swba-write-launch-manifest) after lowering them.")};

  /// --lower-swba's options for the GPU kernels.
  LowerSWBAOptions lowerSWBAOptions() const;
};

/// Tensor- or memref-level module with swba ops -> host code in the LLVM
/// dialect launching kernels embedded as gpu.binary: bufferize, lower the
/// swba ops with target=gpu, then upstream's gpu-lower-to-nvvm-pipeline.
/// Fails, through `emitError`, on an option out of range, before adding any
/// pass.
LogicalResult
buildSWBAToNVVMPipeline(OpPassManager &pm, const SWBAToNVVMOptions &options,
                        function_ref<void(const Twine &)> emitError);

/// Tensor-level module with swba ops (and linalg/tensor/arith/math/func code
/// around them) -> LLVM dialect runnable by mlir-runner: bufferize, lower the
/// swba ops to CPU loops, lower everything to LLVM. Fails like
/// buildSWBAToNVVMPipeline.
LogicalResult
buildSWBAToLLVMPipeline(OpPassManager &pm, const SWBAToLLVMOptions &options,
                        function_ref<void(const Twine &)> emitError);

/// Registers the pipelines above under their names (`swba-to-llvm`,
/// `swba-to-nvvm`).
void registerSWBAPipelines();

} // namespace swba
} // namespace mlir

#endif // SWBA_PIPELINES_PIPELINES_H
