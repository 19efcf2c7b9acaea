//===- BufferizableOpInterfaceImpl.h - SWBA bufferization -------*- C++ -*-===//

#ifndef SWBA_DIALECT_SWBA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
#define SWBA_DIALECT_SWBA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace swba {
/// Attaches BufferizableOpInterface to the swba ops so that one-shot-bufferize
/// turns their tensor form into the memref form.
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);
} // namespace swba
} // namespace mlir

#endif // SWBA_DIALECT_SWBA_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
