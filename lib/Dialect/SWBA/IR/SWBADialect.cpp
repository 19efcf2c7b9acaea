//===- SWBADialect.cpp - SWBA dialect -------------------------------------===//

#include "swba/Dialect/SWBA/IR/SWBA.h"

using namespace mlir;
using namespace mlir::swba;

#include "swba/Dialect/SWBA/IR/SWBAOpsDialect.cpp.inc"

void SWBADialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "swba/Dialect/SWBA/IR/SWBAOps.cpp.inc"
      >();
}
