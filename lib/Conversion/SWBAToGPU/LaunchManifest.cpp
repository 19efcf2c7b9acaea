//===- LaunchManifest.cpp - Write the kernels' launch contracts -----------===//

#include "LaunchContract.h"
#include "swba/Conversion/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"

namespace mlir::swba {
#define GEN_PASS_DEF_WRITELAUNCHMANIFEST
#include "swba/Conversion/Passes.h.inc"
} // namespace mlir::swba

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

namespace {

/// The contract attributes (dictionaries, arrays, strings, integers,
/// booleans) as JSON.
FailureOr<llvm::json::Value> toJSON(Attribute attr) {
  if (auto dict = dyn_cast<DictionaryAttr>(attr)) {
    llvm::json::Object object;
    for (NamedAttribute field : dict) {
      FailureOr<llvm::json::Value> value = toJSON(field.getValue());
      if (failed(value))
        return failure();
      object[field.getName().getValue()] = std::move(*value);
    }
    return llvm::json::Value(std::move(object));
  }
  if (auto array = dyn_cast<ArrayAttr>(attr)) {
    llvm::json::Array values;
    for (Attribute element : array) {
      FailureOr<llvm::json::Value> value = toJSON(element);
      if (failed(value))
        return failure();
      values.push_back(std::move(*value));
    }
    return llvm::json::Value(std::move(values));
  }
  if (auto string = dyn_cast<StringAttr>(attr))
    return llvm::json::Value(string.getValue().str());
  if (auto boolean = dyn_cast<BoolAttr>(attr))
    return llvm::json::Value(boolean.getValue());
  if (auto integer = dyn_cast<IntegerAttr>(attr))
    return llvm::json::Value(integer.getInt());
  return failure();
}

struct WriteLaunchManifestPass
    : public swba::impl::WriteLaunchManifestBase<WriteLaunchManifestPass> {
  using WriteLaunchManifestBase::WriteLaunchManifestBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (path.empty()) {
      emitError(module.getLoc(), "swba-write-launch-manifest: no path given");
      return signalPassFailure();
    }
    llvm::json::Array modules;
    bool bad = false;
    module.walk([&](gpu::GPUModuleOp gpuModule) {
      // The kernels with a contract, in launch order.
      SmallVector<std::pair<int64_t, gpu::GPUFuncOp>> kernels;
      for (auto kernel : gpuModule.getOps<gpu::GPUFuncOp>())
        if (auto launch =
                kernel->getAttrOfType<DictionaryAttr>(kLaunchAttrName))
          if (auto order = launch.getAs<IntegerAttr>("order"))
            kernels.push_back({order.getInt(), kernel});
      if (kernels.empty())
        return;
      llvm::sort(kernels, llvm::less_first());
      llvm::json::Array entries;
      for (auto [order, kernel] : kernels) {
        FailureOr<llvm::json::Value> contract =
            toJSON(kernel->getAttr(kLaunchAttrName));
        if (failed(contract)) {
          kernel.emitError() << "unexpected value in " << kLaunchAttrName;
          bad = true;
          return;
        }
        contract->getAsObject()->try_emplace("name", kernel.getName().str());
        entries.push_back(std::move(*contract));
      }
      llvm::json::Value buffers = llvm::json::Array();
      if (Attribute attr = gpuModule->getAttr(kBuffersAttrName)) {
        FailureOr<llvm::json::Value> value = toJSON(attr);
        if (failed(value)) {
          gpuModule.emitError() << "unexpected value in " << kBuffersAttrName;
          bad = true;
          return;
        }
        buffers = std::move(*value);
      }
      llvm::json::Array scalars;
      if (auto names = gpuModule->getAttrOfType<ArrayAttr>(kScalarsAttrName))
        for (auto name : names.getAsValueRange<StringAttr>())
          scalars.push_back(name.str());
      auto reproducible =
          gpuModule->getAttrOfType<BoolAttr>(kReproducibleAttrName);
      modules.push_back(llvm::json::Object{
          {"name", gpuModule.getName().str()},
          {"reproducible", !reproducible || reproducible.getValue()},
          {"buffers", std::move(buffers)},
          {"scalars", std::move(scalars)},
          {"kernels", std::move(entries)}});
    });
    if (bad)
      return signalPassFailure();
    if (modules.empty()) {
      emitError(module.getLoc(),
                "swba-write-launch-manifest: no kernel with a launch "
                "contract (run it after --lower-swba=target=gpu)");
      return signalPassFailure();
    }
    std::string error;
    std::unique_ptr<llvm::ToolOutputFile> file = openOutputFile(path, &error);
    if (!file) {
      emitError(module.getLoc()) << "swba-write-launch-manifest: " << error;
      return signalPassFailure();
    }
    file->os() << llvm::formatv(
        "{0:2}\n", llvm::json::Value(llvm::json::Object{
                       {"format", 1}, {"modules", std::move(modules)}}));
    file->keep();
  }
};

} // namespace
