//===- SWBAPlugin.cpp - SWBA as a plugin of a stock mlir-opt --------------===//
//
// One shared library that is both a dialect plugin (the swba dialect and its
// bufferization interface) and a pass plugin (the swba passes and pipelines):
//   mlir-opt --load-dialect-plugin=SWBAPlugin.so \
//            --load-pass-plugin=SWBAPlugin.so --lower-swba ...
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/Passes.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Transforms/BufferizableOpInterfaceImpl.h"
#include "swba/Dialect/SWBA/Transforms/Passes.h"
#include "swba/Dialect/SWBA/Transforms/ShardingInterfaceImpl.h"
#include "swba/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

using namespace mlir;

extern "C" LLVM_ATTRIBUTE_WEAK DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "SWBA", LLVM_VERSION_STRING,
          [](DialectRegistry *registry) {
            registry->insert<swba::SWBADialect>();
            swba::registerBufferizableOpInterfaceExternalModels(*registry);
            swba::registerShardingInterfaceExternalModels(*registry);
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK PassPluginLibraryInfo mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "SWBAPasses", LLVM_VERSION_STRING, [] {
            swba::registerSWBAConversionPasses();
            swba::registerSWBATransformsPasses();
            swba::registerSWBAPipelines();
          }};
}
