//===- Pipelines.cpp - SWBA pass pipelines --------------------------------===//

#include "swba/Pipelines/Pipelines.h"
#include "swba/Conversion/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

void mlir::swba::buildSWBAToLLVMPipeline(OpPassManager &pm,
                                         const SWBAToLLVMOptions &options) {
  // Upstream passes by their registered names keep this list readable next
  // to the `swba-opt` command line that it is equivalent to.
  std::string pipeline = llvm::formatv(
      "swba-decompose-linalg-aggregates,"
      "one-shot-bufferize{{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map},"
      "buffer-deallocation-pipeline,"
      "convert-linalg-to-loops,"
      "lower-swba{{target=cpu tile-q={0} tile-k={1}},"
      "lower-affine,"
      "convert-scf-to-cf,"
      "expand-strided-metadata,"
      "lower-affine,"
      "arith-expand{{include-bf16=true},"
      "convert-math-to-llvm,"
      "convert-math-to-libm,"
      "convert-vector-to-llvm,"
      "finalize-memref-to-llvm,"
      "convert-arith-to-llvm,"
      "convert-index-to-llvm,"
      "convert-func-to-llvm,"
      "convert-cf-to-llvm,"
      "reconcile-unrealized-casts",
      options.tileQ.getValue(), options.tileK.getValue());
  if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
    llvm::report_fatal_error("swba-to-llvm: invalid pass pipeline");
}

void mlir::swba::buildSWBAToNVVMPipeline(OpPassManager &pm,
                                         const SWBAToNVVMOptions &options) {
  std::string pipeline = llvm::formatv(
      "one-shot-bufferize{{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map},"
      "lower-swba{{target=gpu chip={0} block-n={4} stages={5} "
      "overlap-softmax={6} ping-pong={7} grad-key-tile={8} "
      "grad-query-tile={9} grad-stages={10} grad-fused-dq={11} "
      "grad-ping-pong={12} consumers={13}}",
      options.chip.getValue(), options.ptxVersion.getValue(),
      options.format.getValue(), options.optLevel.getValue(),
      options.blockN.getValue(), options.stages.getValue(),
      options.overlapSoftmax.getValue() ? "true" : "false",
      options.pingPong.getValue() ? "true" : "false",
      options.gradKeyTile.getValue(), options.gradQueryTile.getValue(),
      options.gradStages.getValue(),
      options.gradFusedDQ.getValue() ? "true" : "false",
      options.gradPingPong.getValue() ? "true" : "false",
      options.consumers.getValue());
  if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
    llvm::report_fatal_error("swba-to-nvvm: invalid pass pipeline");
  // Added as a pass, not parsed: the path may hold any character.
  if (!options.manifest.empty())
    pm.addPass(createWriteLaunchManifest({options.manifest.getValue()}));
  std::string toNVVM = llvm::formatv(
      "gpu-lower-to-nvvm-pipeline{{cubin-chip={0} cubin-features=+{1} "
      "cubin-format={2} opt-level={3}}",
      options.chip.getValue(), options.ptxVersion.getValue(),
      options.format.getValue(), options.optLevel.getValue());
  if (failed(parsePassPipeline(toNVVM, pm, llvm::errs())))
    llvm::report_fatal_error("swba-to-nvvm: invalid pass pipeline");
}

void mlir::swba::registerSWBAPipelines() {
  PassPipelineRegistration<SWBAToLLVMOptions>(
      "swba-to-llvm",
      "Bufferize, lower swba ops to CPU loops and everything to the LLVM "
      "dialect (runnable by mlir-runner).",
      buildSWBAToLLVMPipeline);
  PassPipelineRegistration<SWBAToNVVMOptions>(
      "swba-to-nvvm",
      "Bufferize, lower swba ops to tensor-core GPU kernels and those to "
      "NVVM and a cubin (or PTX); host code to the LLVM dialect.",
      buildSWBAToNVVMPipeline);
}
