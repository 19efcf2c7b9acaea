//===- swba-opt.cpp - SWBA optimizer driver -------------------------------===//
//
// An mlir-opt with the swba dialect, its passes and pipelines added to the
// upstream dialects, passes and extensions.
//
//===----------------------------------------------------------------------===//

#include "swba/Conversion/Passes.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"
#include "swba/Dialect/SWBA/Transforms/BufferizableOpInterfaceImpl.h"
#include "swba/Dialect/SWBA/Transforms/Passes.h"
#include "swba/Dialect/SWBA/Transforms/ShardingInterfaceImpl.h"
#include "swba/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::swba::registerSWBAConversionPasses();
  mlir::swba::registerSWBATransformsPasses();
  mlir::swba::registerSWBAPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::swba::SWBADialect>();
  mlir::swba::registerBufferizableOpInterfaceExternalModels(registry);
  mlir::swba::registerShardingInterfaceExternalModels(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "SWBA optimizer driver\n", registry));
}
