//===- Pipelines.h - SWBA pass pipelines ------------------------*- C++ -*-===//

#ifndef SWBA_PIPELINES_PIPELINES_H
#define SWBA_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;

namespace swba {

/// Options of --swba-to-llvm.
struct SWBAToLLVMOptions : public PassPipelineOptions<SWBAToLLVMOptions> {
  PassOptions::Option<int64_t> tileQ{*this, "tile-q",
                                     llvm::cl::desc("Query rows per tile."),
                                     llvm::cl::init(16)};
  PassOptions::Option<int64_t> tileK{*this, "tile-k",
                                     llvm::cl::desc("Key rows per tile."),
                                     llvm::cl::init(16)};
};

/// Options of --swba-to-nvvm.
struct SWBAToNVVMOptions : public PassPipelineOptions<SWBAToNVVMOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("GPU architecture of the kernels: sm_90a gives the "
                     "forward op the warpgroup-MMA + TMA kernel (head dims "
                     "64 and 128); others the mma.sync kernels."),
      llvm::cl::init("sm_90")};
  PassOptions::Option<int64_t> consumers{
      *this, "consumers",
      llvm::cl::desc("Consumer warpgroups of 64 query rows in the sm_90a "
                     "forward (2 or 3); 0: per head dim."),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> blockN{
      *this, "block-n",
      llvm::cl::desc("Keys per K/V tile of the sm_90a kernel; 0: per head "
                     "dim."),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> stages{
      *this, "stages",
      llvm::cl::desc("K/V tiles in flight in the sm_90a kernel; 0: per head "
                     "dim."),
      llvm::cl::init(0)};
  PassOptions::Option<bool> overlapSoftmax{
      *this, "overlap-softmax",
      llvm::cl::desc("sm_90a kernel: the softmax of one K/V tile runs while "
                     "the P V product of the previous one is on the tensor "
                     "cores."),
      llvm::cl::init(true)};
  PassOptions::Option<bool> pingPong{
      *this, "ping-pong",
      llvm::cl::desc("sm_90a kernel, with overlap-softmax: the consumer "
                     "warpgroups take turns issuing their products."),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> gradKeyTile{
      *this, "grad-key-tile",
      llvm::cl::desc("sm_90a backward: keys per K/V tile of the dQ kernel "
                     "(64 or 128); 0: 128, or 64 where 128 does not fit "
                     "in shared memory."),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> gradQueryTile{
      *this, "grad-query-tile",
      llvm::cl::desc("sm_90a backward: query rows per Q/dO tile of the dK/dV "
                     "kernel (64 or 128); 0: per head dim."),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> gradStages{
      *this, "grad-stages",
      llvm::cl::desc("sm_90a backward: tiles in flight in both kernels; 0: "
                     "2."),
      llvm::cl::init(0)};
  PassOptions::Option<bool> gradFusedDQ{
      *this, "grad-fused-dq",
      llvm::cl::desc("sm_90a backward: the dK/dV kernel also adds dQ up "
                     "with TMA reduce-adds into an f32 buffer (five "
                     "products; not bitwise reproducible) instead of a "
                     "separate dQ kernel."),
      llvm::cl::init(false)};
  PassOptions::Option<bool> gradPingPong{
      *this, "grad-ping-pong",
      llvm::cl::desc("sm_90a backward: the consumers of the dQ and dK/dV "
                     "kernels take turns issuing their products."),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> ptxVersion{
      *this, "ptx", llvm::cl::desc("PTX ISA version (sm_90 needs ptx78 or "
                                   "later)."),
      llvm::cl::init("ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel binary format: 'bin' (cubin, through ptxas), "
                     "'isa' (PTX) or 'fatbin'."),
      llvm::cl::init("bin")};
  PassOptions::Option<int64_t> optLevel{
      *this, "opt-level", llvm::cl::desc("Optimization level of the kernels."),
      llvm::cl::init(3)};
  PassOptions::Option<std::string> manifest{
      *this, "manifest",
      llvm::cl::desc("Write the kernels' launch contracts to this JSON file "
                     "(--swba-write-launch-manifest) after lowering them.")};
};

/// Tensor- or memref-level module with swba ops -> host code in the LLVM
/// dialect launching kernels embedded as gpu.binary: bufferize, lower the
/// swba ops with target=gpu, then upstream's gpu-lower-to-nvvm-pipeline.
void buildSWBAToNVVMPipeline(OpPassManager &pm,
                             const SWBAToNVVMOptions &options);

/// Tensor-level module with swba ops (and linalg/tensor/arith/math/func code
/// around them) -> LLVM dialect runnable by mlir-runner: bufferize, lower the
/// swba ops to CPU loops, lower everything to LLVM.
void buildSWBAToLLVMPipeline(OpPassManager &pm,
                             const SWBAToLLVMOptions &options);

/// Registers the pipelines above under their names (`swba-to-llvm`,
/// `swba-to-nvvm`).
void registerSWBAPipelines();

} // namespace swba
} // namespace mlir

#endif // SWBA_PIPELINES_PIPELINES_H
