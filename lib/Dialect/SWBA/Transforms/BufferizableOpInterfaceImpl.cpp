//===- BufferizableOpInterfaceImpl.cpp - SWBA bufferization ---------------===//

#include "swba/Dialect/SWBA/Transforms/BufferizableOpInterfaceImpl.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::bufferization;

namespace {
/// Bufferizes an swba op by replacing every tensor operand with its buffer
/// and recreating the op, without results, on those buffers.
template <typename OpTy>
struct SWBAOpInterface
    : public DstBufferizableOpInterfaceExternalModel<SWBAOpInterface<OpTy>,
                                                     OpTy> {
  /// The ops overwrite their outputs whole, so an output's initial contents
  /// are dead: bufferization need not copy them into a new allocation.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &opOperand,
                              const AnalysisState &state) const {
    return !cast<DestinationStyleOpInterface>(op).isDpsInit(&opOperand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto dpsOp = cast<DestinationStyleOpInterface>(op);
    if (dpsOp.hasPureBufferSemantics())
      return success();
    if (!dpsOp.hasPureTensorSemantics())
      return op->emitOpError("expected all operands to be tensors or all to "
                             "be memrefs");

    rewriter.setInsertionPoint(op);
    SmallVector<Value> buffers;
    for (OpOperand &operand : op->getOpOperands()) {
      // Scalars (the forward's key_offset) stay as they are.
      if (!isa<TensorType>(operand.get().getType())) {
        buffers.push_back(operand.get());
        continue;
      }
      FailureOr<Value> buffer =
          getBuffer(rewriter, operand.get(), options, state);
      if (failed(buffer))
        return failure();
      buffers.push_back(*buffer);
    }

    OperationState bufferized(op->getLoc(), op->getName(), buffers,
                              /*types=*/TypeRange(), op->getAttrs());
    rewriter.create(bufferized);

    SmallVector<Value> replacements;
    for (OpOperand &init : dpsOp.getDpsInitsMutable())
      replacements.push_back(buffers[init.getOperandNumber()]);
    replaceOpWithBufferizedValues(rewriter, op, replacements);
    return success();
  }
};
} // namespace

void mlir::swba::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, SWBADialect *dialect) {
    AttentionOp::attachInterface<SWBAOpInterface<AttentionOp>>(*ctx);
    AttentionGradOp::attachInterface<SWBAOpInterface<AttentionGradOp>>(*ctx);
    PagedAttentionOp::attachInterface<SWBAOpInterface<PagedAttentionOp>>(
        *ctx);
  });
}
