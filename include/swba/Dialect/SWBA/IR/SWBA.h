//===- SWBA.h - SWBA dialect ------------------------------------*- C++ -*-===//

#ifndef SWBA_DIALECT_SWBA_IR_SWBA_H
#define SWBA_DIALECT_SWBA_IR_SWBA_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "swba/Dialect/SWBA/IR/SWBAOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "swba/Dialect/SWBA/IR/SWBAOps.h.inc"

#endif // SWBA_DIALECT_SWBA_IR_SWBA_H
