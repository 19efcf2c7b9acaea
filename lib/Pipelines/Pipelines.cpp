//===- Pipelines.cpp - SWBA pass pipelines --------------------------------===//

#include "swba/Pipelines/Pipelines.h"
#include "swba/Conversion/Passes.h"
#include "swba/Dialect/SWBA/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace mlir::swba;

/// The PTX ISA version the kernels are built with when none is named: 8.0
/// (what the sm_90a kernels need), or the chip's first version if later.
static constexpr unsigned kDefaultPtxVersion = 80;

/// Bufferizes the functions' bodies and signatures, with identity layouts at
/// function boundaries (what mlir-runner and the GPU host code expect).
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions options;
  options.bufferizeFunctionBoundaries = true;
  options.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(options));
}

LowerSWBAOptions SWBAToLLVMOptions::lowerSWBAOptions() const {
  LowerSWBAOptions options;
  options.target = "cpu";
  options.tileQ = tileQ;
  options.tileK = tileK;
  return options;
}

LogicalResult
mlir::swba::buildSWBAToLLVMPipeline(OpPassManager &pm,
                                    const SWBAToLLVMOptions &options,
                                    function_ref<void(const Twine &)> emitError) {
  LowerSWBAOptions lowering = options.lowerSWBAOptions();
  if (failed(verifyLowerSWBAOptions(lowering, [&](const Twine &message) {
        emitError("--swba-to-llvm: " + message);
      })))
    return failure();

  pm.addPass(createDecomposeLinalgAggregates());
  addBufferization(pm);
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerSWBA(lowering));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  return success();
}

LowerSWBAOptions SWBAToNVVMOptions::lowerSWBAOptions() const {
  LowerSWBAOptions options;
  options.target = "gpu";
  options.chip = chip;
#define SWBA_FORWARD_OPTION(member) options.member = member;
  SWBA_GPU_KERNEL_OPTIONS(SWBA_FORWARD_OPTION)
#undef SWBA_FORWARD_OPTION
  return options;
}

LogicalResult
mlir::swba::buildSWBAToNVVMPipeline(OpPassManager &pm,
                                    const SWBAToNVVMOptions &options,
                                    function_ref<void(const Twine &)> emitError) {
  auto fail = [&](const Twine &message) {
    emitError("--swba-to-nvvm: " + message);
    return failure();
  };
  LowerSWBAOptions lowering = options.lowerSWBAOptions();
  if (failed(verifyLowerSWBAOptions(
          lowering, [&](const Twine &message) { (void)fail(message); })))
    return failure();
  // The chip is known: verifyLowerSWBAOptions checked it.
  unsigned minPtx = lookupChip(options.chip)->minPtxVersion;
  unsigned ptx = std::max(kDefaultPtxVersion, minPtx);
  if (!options.ptxVersion.empty()) {
    std::optional<unsigned> given = parsePtxVersion(options.ptxVersion);
    if (!given)
      return fail("unknown PTX ISA version '" + options.ptxVersion +
                  "' (expected ptx70 .. ptx90)");
    if (*given < minPtx)
      return fail(options.chip + " needs ptx" + Twine(minPtx) +
                  " or later, got " + options.ptxVersion);
    ptx = *given;
  }
  if (options.format != "bin" && options.format != "isa" &&
      options.format != "fatbin")
    return fail("unsupported format '" + options.format +
                "' (supported: 'bin', 'isa', 'fatbin')");
  if (options.optLevel < 0 || options.optLevel > 3)
    return fail("opt-level must be in [0, 3], got " +
                Twine(options.optLevel));

  addBufferization(pm);
  pm.addPass(createLowerSWBA(lowering));
  if (!options.manifest.empty()) {
    WriteLaunchManifestOptions manifest;
    manifest.path = options.manifest;
    pm.addPass(createWriteLaunchManifest(manifest));
  }
  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.cubinChip = options.chip;
  nvvm.cubinFeatures = ("+ptx" + Twine(ptx)).str();
  nvvm.cubinFormat = options.format;
  nvvm.optLevel = static_cast<int>(options.optLevel);
  gpu::buildLowerToNVVMPassPipeline(pm, nvvm);
  return success();
}

/// Registers `Options`' pipeline under `name`: its options are parsed, then
/// checked by `build`, whose messages become the pipeline's errors.
template <typename Options>
static void registerPipeline(
    StringRef name, StringRef description,
    LogicalResult (*build)(OpPassManager &, const Options &,
                           function_ref<void(const Twine &)>)) {
  registerPassPipeline(
      name, description,
      [name, build](OpPassManager &pm, StringRef text,
              function_ref<LogicalResult(const Twine &)> errorHandler) {
        Options options;
        // The option parser has printed what it could not read.
        if (failed(options.parseFromString(text)))
          return errorHandler("--" + name + ": cannot parse the options '" +
                              text + "'");
        return build(pm, options,
                     [&](const Twine &message) { (void)errorHandler(message); });
      },
      [](function_ref<void(const mlir::detail::PassOptions &)> optionHandler) {
        optionHandler(Options());
      });
}

void mlir::swba::registerSWBAPipelines() {
  registerPipeline<SWBAToLLVMOptions>(
      "swba-to-llvm",
      "Bufferize, lower swba ops to CPU loops and everything to the LLVM "
      "dialect (runnable by mlir-runner).",
      buildSWBAToLLVMPipeline);
  registerPipeline<SWBAToNVVMOptions>(
      "swba-to-nvvm",
      "Bufferize, lower swba ops to tensor-core GPU kernels and those to "
      "NVVM and a cubin (or PTX); host code to the LLVM dialect.",
      buildSWBAToNVVMPipeline);
}
