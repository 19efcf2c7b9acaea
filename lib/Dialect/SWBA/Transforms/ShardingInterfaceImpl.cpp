//===- ShardingInterfaceImpl.cpp - SWBA in the shard dialect --------------===//
//
// swba.attention splits along batch, heads and the sequence. Batch and heads
// split like the parallel loops they are. The sequence is different: q, k, v,
// out and lse are all split along it alike, but a shard's queries also see
// the keys of the window - 1 frames before the shard, which other devices
// hold. The partitioned op gets those keys (a halo) from the shards before
// it through shard.update_halo and places its rows in the whole sequence
// with key_offset; the first shard's halo lies before the sequence start and
// is never read.
//
// MLIR 22's update_halo (and its --convert-shard-to-mpi lowering) exchanges
// halos between neighbours along one grid axis only, and sends a neighbour's
// last rows including its own halo. A halo longer than a shard is therefore
// built in rounds: each round widens the halo by one shard length, the rows
// sent being the neighbour's shard plus the halo it received the round
// before.
//
//===----------------------------------------------------------------------===//

#include "swba/Dialect/SWBA/Transforms/ShardingInterfaceImpl.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterfaceImpl.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::shard;

namespace {

/// The dimensions the op splits along, leading in every operand and result:
/// [B, H, N, D] for q, k, v and out, [B, H, N] for lse.
enum SplitDim : unsigned {
  kBatch = 0,
  kHeads = 1,
  kSeq = 2,
  kNumSplitDims = 3
};

/// Grid axes of each split dimension.
using DimAxes = SmallVector<SmallVector<GridAxis>>;
} // namespace

/// The grid axes of dimension `dim` in `sharding` (none past its end).
static ArrayRef<GridAxis> axesOf(const Sharding &sharding, unsigned dim) {
  ArrayRef<GridAxesAttr> split = sharding.getSplitAxes();
  return dim < split.size() ? split[dim].asArrayRef() : ArrayRef<GridAxis>();
}

/// Folds the split of a [B, H, N, ...] value into `grid` and `axes`; fails
/// when it splits a head dimension or disagrees with what is there.
static LogicalResult mergeSharding(const Sharding &sharding,
                                   FlatSymbolRefAttr &grid, DimAxes &axes) {
  if (!sharding)
    return success();
  if (grid && sharding.getGridAttr() != grid)
    return failure();
  grid = sharding.getGridAttr();
  for (auto [dim, split] : llvm::enumerate(sharding.getSplitAxes())) {
    if (split.empty())
      continue;
    if (dim >= kNumSplitDims)
      return failure();
    if (!axes[dim].empty() &&
        ArrayRef<GridAxis>(axes[dim]) != split.asArrayRef())
      return failure();
    axes[dim].assign(split.asArrayRef().begin(), split.asArrayRef().end());
  }
  return success();
}

/// The sharding of a value of rank `rank` under the split `axes`.
static Sharding shardingFor(MLIRContext *ctx, FlatSymbolRefAttr grid,
                            ArrayRef<SmallVector<GridAxis>> axes,
                            int64_t rank) {
  DimAxes split(axes.take_front(std::min<int64_t>(rank, axes.size())));
  removeTrailingEmptySubArray(split);
  SmallVector<GridAxesAttr> attrs;
  for (ArrayRef<GridAxis> dimAxes : split)
    attrs.push_back(GridAxesAttr::get(ctx, dimAxes));
  return Sharding::get(grid, attrs);
}

namespace {
struct AttentionShardingInterface
    : public ShardingInterface::ExternalModel<AttentionShardingInterface,
                                              AttentionOp> {
  // Loops: batch, query heads, query rows (parallel), key rows, head dim
  // (reduction), value dim (parallel). The maps are informative: with GQA a
  // key head is a query head divided by the group size, and a sequence split
  // applies to the key rows as to the query rows (with a halo), which no
  // projected permutation says; the methods below handle both.
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *) const {
    using utils::IteratorType;
    return {IteratorType::parallel,  IteratorType::parallel,
            IteratorType::parallel,  IteratorType::reduction,
            IteratorType::reduction, IteratorType::parallel};
  }

  SmallVector<ReductionKind> getReductionLoopIteratorKinds(Operation *) const {
    return {ReductionKind::Generic, ReductionKind::Sum};
  }

  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    MLIRContext *ctx = op->getContext();
    AffineExpr b, h, i, j, d, e;
    bindDims(ctx, b, h, i, j, d, e);
    auto map = [&](ArrayRef<AffineExpr> results) {
      return AffineMap::get(6, 0, results, ctx);
    };
    auto attention = cast<AttentionOp>(op);
    SmallVector<AffineMap> maps = {map({b, h, i, d}), map({b, h, j, d}),
                                   map({b, h, j, e})};
    SmallVector<AffineMap> outputs = {map({b, h, i, e}), map({b, h, i})};
    outputs.resize(attention.getOutputs().size());
    maps.append(outputs);
    if (attention.getKeyOffset())
      maps.push_back(map({}));
    if (attention.hasPureTensorSemantics())
      maps.append(outputs);
    return maps;
  }

  FailureOr<ShardingOption>
  getShardingOption(Operation *op, ArrayRef<Sharding> operandShardings,
                    ArrayRef<Sharding> resultShardings) const {
    if (!cast<AttentionOp>(op).hasPureTensorSemantics())
      return failure();
    FlatSymbolRefAttr grid;
    DimAxes axes(kNumSplitDims);
    bool annotated = false;
    for (const Sharding &sharding :
         llvm::concat<const Sharding>(operandShardings, resultShardings)) {
      annotated |= static_cast<bool>(sharding);
      if (failed(mergeSharding(sharding, grid, axes)))
        return failure();
    }
    if (!annotated)
      return ShardingOption::makeEmpty();
    SmallVector<GridAxis> used;
    for (ArrayRef<GridAxis> dimAxes : axes)
      for (GridAxis axis : dimAxes) {
        if (llvm::is_contained(used, axis))
          return failure();
        used.push_back(axis);
      }
    ShardingArray loops(axes.begin(), axes.end());
    removeTrailingEmptySubArray(loops);
    return ShardingOption(std::move(loops), grid);
  }

  FailureOr<std::vector<Sharding>>
  getShardingAnnotations(Operation *op, const ShardingOption &option) const {
    MLIRContext *ctx = op->getContext();
    auto shardingOf = [&](Value value) {
      auto type = dyn_cast<RankedTensorType>(value.getType());
      if (!type)
        return Sharding();
      return shardingFor(ctx, option.grid, option.shardingArray,
                         type.getRank());
    };
    std::vector<Sharding> shardings;
    for (Value operand : op->getOperands())
      shardings.push_back(shardingOf(operand));
    for (Value result : op->getResults())
      shardings.push_back(shardingOf(result));
    return shardings;
  }

  LogicalResult addShardingAnnotations(Operation *op, OpBuilder &b,
                                       const ShardingOption &option) const {
    FailureOr<std::vector<Sharding>> shardings =
        getShardingAnnotations(op, option);
    if (failed(shardings))
      return failure();
    unsigned numOperands = op->getNumOperands();
    for (OpResult result : op->getResults())
      maybeInsertTargetShardingAnnotation(
          (*shardings)[numOperands + result.getResultNumber()], result, b);
    for (OpOperand &operand : op->getOpOperands())
      if (Sharding sharding = (*shardings)[operand.getOperandNumber()])
        maybeInsertSourceShardingAnnotation(sharding, operand, b);
    return success();
  }

  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<Sharding> operandShardings,
                          ArrayRef<Sharding> resultShardings,
                          IRMapping &partitionMap,
                          SymbolTableCollection &symbolTable,
                          OpBuilder &builder) const {
    auto attention = cast<AttentionOp>(op);
    Sharding querySharding = operandShardings[0];
    if (!querySharding || isFullReplication(querySharding)) {
      partitionTriviallyShardableOperation(*op, partitionedOperands,
                                           operandShardings, resultShardings,
                                           partitionMap, symbolTable, builder);
      return success();
    }
    MLIRContext *ctx = op->getContext();
    FlatSymbolRefAttr gridAttr = querySharding.getGridAttr();
    GridOp grid = getGridOrNull(op, gridAttr, symbolTable);
    if (!grid)
      return op->emitOpError() << "grid " << gridAttr << " not found";
    DimAxes axes(kNumSplitDims);
    for (unsigned dim = 0; dim < kNumSplitDims; ++dim)
      llvm::append_range(axes[dim], axesOf(querySharding, dim));
    if (failed(verifyAlike(op, operandShardings, resultShardings, gridAttr,
                           axes)) ||
        failed(verifyHeadSplit(attention, grid, axes[kHeads])))
      return failure();

    if (axes[kSeq].empty()) {
      partitionTriviallyShardableOperation(*op, partitionedOperands,
                                           operandShardings, resultShardings,
                                           partitionMap, symbolTable, builder);
      return success();
    }

    FailureOr<int64_t> shardLength = verifySequenceSplit(attention, grid, axes);
    if (failed(shardLength))
      return failure();
    Location loc = op->getLoc();
    int64_t n = *shardLength;
    GridAxis seqAxis = axes[kSeq].front();
    int64_t devices = grid.getShape()[seqAxis];
    int64_t halo = std::min<int64_t>((attention.getWindow() - 1) *
                                         attention.getBlockSize(),
                                     (devices - 1) * n);

    // MLIR 22 lowers mpi.send/recv with the size of a buffer's first
    // dimension as its element count, so the halo travels in a 1-D,
    // sequence-major copy of k and v: [B, H, N, D] -> [N * B * H * D].
    auto keyType = cast<RankedTensorType>(partitionedOperands[1].getType());
    int64_t rowSize =
        keyType.getDimSize(0) * keyType.getDimSize(1) * keyType.getDimSize(3);
    ReassociationIndices allDims = {0, 1, 2, 3};
    // Its OpenMPI lowering has no 16-bit float datatype either: f16 and
    // bf16 travel as i16 bits.
    Type elementType = keyType.getElementType();
    Type wireType =
        elementType.isF32()
            ? elementType
            : builder.getIntegerType(elementType.getIntOrFloatBitWidth());
    auto toRows = [&](Value x) -> Value {
      auto type = cast<RankedTensorType>(x.getType());
      Value init = tensor::EmptyOp::create(
          builder, loc,
          ArrayRef<int64_t>{type.getDimSize(2), type.getDimSize(0),
                            type.getDimSize(1), type.getDimSize(3)},
          elementType);
      Value rows = linalg::TransposeOp::create(builder, loc, x, init,
                                               ArrayRef<int64_t>{2, 0, 1, 3})
                       ->getResult(0);
      Value flat = tensor::CollapseShapeOp::create(builder, loc, rows,
                                                   ArrayRef{allDims});
      if (wireType == elementType)
        return flat;
      return arith::BitcastOp::create(
          builder, loc, cast<RankedTensorType>(flat.getType()).clone(wireType),
          flat);
    };
    auto fromRows = [&](Value flat, RankedTensorType like,
                        int64_t rows) -> Value {
      int64_t b = like.getDimSize(0), h = like.getDimSize(1),
              d = like.getDimSize(3);
      if (wireType != elementType)
        flat = arith::BitcastOp::create(
            builder, loc,
            cast<RankedTensorType>(flat.getType()).clone(elementType), flat);
      Value rowMajor = tensor::ExpandShapeOp::create(
          builder, loc, RankedTensorType::get({rows, b, h, d}, elementType),
          flat, ArrayRef{allDims});
      Value init = tensor::EmptyOp::create(
          builder, loc, ArrayRef<int64_t>{b, h, rows, d}, elementType);
      return linalg::TransposeOp::create(builder, loc, rowMajor, init,
                                         ArrayRef<int64_t>{1, 2, 0, 3})
          ->getResult(0);
    };
    auto splitAxesAttr = GridAxesArrayAttr::get(
        ctx, {GridAxesAttr::get(ctx, ArrayRef<GridAxis>{seqAxis})});

    /// The rows of `x` (with a halo of `have` rows) placed after
    /// `want - have` new ones, which the update fills with the last `want`
    /// rows of the neighbour before.
    auto widenHalo = [&](Value x, int64_t have, int64_t want) -> Value {
      auto type = cast<RankedTensorType>(x.getType());
      Value empty = tensor::EmptyOp::create(
          builder, loc, ArrayRef<int64_t>{(want + n) * rowSize},
          type.getElementType());
      Value placed = tensor::InsertSliceOp::create(
          builder, loc, x, empty,
          ArrayRef<OpFoldResult>{builder.getIndexAttr((want - have) * rowSize)},
          ArrayRef<OpFoldResult>{builder.getIndexAttr(type.getDimSize(0))},
          ArrayRef<OpFoldResult>{builder.getIndexAttr(1)});
      return UpdateHaloOp::create(builder, loc, placed.getType(), placed,
                                  grid.getSymName(), splitAxesAttr,
                                  ValueRange(),
                                  ArrayRef<int64_t>{want * rowSize, 0})
          .getResult();
    };
    Value key = partitionedOperands[1], value = partitionedOperands[2];
    if (halo > 0) {
      Value keyRows = toRows(key), valueRows = toRows(value);
      for (int64_t have = 0; have < halo;) {
        int64_t want = std::min(have + n, halo);
        keyRows = widenHalo(keyRows, have, want);
        valueRows = widenHalo(valueRows, have, want);
        have = want;
      }
      key = fromRows(keyRows, keyType, halo + n);
      value = fromRows(valueRows,
                       cast<RankedTensorType>(partitionedOperands[2].getType()),
                       halo + n);
    }

    // Key row 0 of this shard sits at position index * n - halo.
    Value index = ProcessMultiIndexOp::create(builder, loc, grid.getSymName(),
                                              ArrayRef<GridAxis>{seqAxis})
                      .getResult()[0];
    Value keyOffset = arith::SubIOp::create(
        builder, loc,
        arith::MulIOp::create(builder, loc, index,
                              arith::ConstantIndexOp::create(builder, loc, n)),
        arith::ConstantIndexOp::create(builder, loc, halo));

    SmallVector<Type> resultTypes;
    for (auto [result, sharding] :
         llvm::zip_equal(op->getResults(), resultShardings))
      resultTypes.push_back(shardType(result.getType(), grid, sharding));
    unsigned numOutputs = attention.getOutputs().size();
    auto sharded = AttentionOp::create(
        builder, loc, resultTypes, partitionedOperands[0], key, value,
        partitionedOperands.slice(3, numOutputs), keyOffset,
        attention.getBlockSizeAttr(), attention.getWindowAttr(),
        attention.getScaleAttr());
    partitionMap.map(op->getResults(), sharded->getResults());
    partitionMap.map(op, sharded.getOperation());
    return success();
  }

private:
  /// Every tensor operand and result must be split as q is, without halos or
  /// explicit shard sizes: that is what getShardingAnnotations asks for.
  static LogicalResult verifyAlike(Operation *op,
                                   ArrayRef<Sharding> operandShardings,
                                   ArrayRef<Sharding> resultShardings,
                                   FlatSymbolRefAttr grid,
                                   const DimAxes &axes) {
    SmallVector<Value> values(op->getOperands());
    llvm::append_range(values, op->getResults());
    for (auto [value, sharding] : llvm::zip_equal(
             values,
             llvm::concat<const Sharding>(operandShardings, resultShardings))) {
      auto type = dyn_cast<RankedTensorType>(value.getType());
      if (!type)
        continue;
      bool alike = sharding && sharding.getGridAttr() == grid &&
                   sharding.getStaticHaloSizes().empty() &&
                   sharding.getDynamicHaloSizes().empty() &&
                   sharding.getStaticShardedDimsOffsets().empty() &&
                   sharding.getDynamicShardedDimsOffsets().empty();
      for (int64_t dim = 0; alike && dim < type.getRank(); ++dim) {
        ArrayRef<GridAxis> want = dim < kNumSplitDims
                                      ? ArrayRef<GridAxis>(axes[dim])
                                      : ArrayRef<GridAxis>();
        alike = axesOf(sharding, dim) == want;
      }
      if (!alike)
        return op->emitOpError()
               << "partition: q, k, v, out and lse must be split alike along "
                  "batch, heads and sequence (and not along the head dims), "
                  "without halos or explicit shard sizes";
    }
    return success();
  }

  /// With GQA, splitting the heads over g devices keeps each device's query
  /// heads with their key/value heads only when g divides Hkv.
  static LogicalResult verifyHeadSplit(AttentionOp op, GridOp grid,
                                       ArrayRef<GridAxis> headAxes) {
    if (headAxes.empty())
      return success();
    int64_t devices = collectiveProcessGroupSize(headAxes, grid);
    int64_t hkv = cast<ShapedType>(op.getKey().getType()).getDimSize(1);
    if (!ShapedType::isDynamic(devices) && !ShapedType::isDynamic(hkv) &&
        hkv % devices == 0)
      return success();
    return op.emitOpError()
           << "partition: splitting the heads over " << devices
           << " devices needs a static number of key/value heads divisible "
              "by it, got "
           << hkv;
  }

  /// The conditions of a sequence split; returns the shard length.
  static FailureOr<int64_t> verifySequenceSplit(AttentionOp op, GridOp grid,
                                                const DimAxes &axes) {
    if (axes[kSeq].size() != 1)
      return op.emitOpError()
             << "partition: the sequence must be split along one grid axis "
                "(halos are exchanged between neighbours along it), got "
             << axes[kSeq].size();
    int64_t devices = grid.getShape()[axes[kSeq].front()];
    int64_t nq = cast<ShapedType>(op.getQuery().getType()).getDimSize(2);
    int64_t nk = cast<ShapedType>(op.getKey().getType()).getDimSize(2);
    if (ShapedType::isDynamic(devices) || ShapedType::isDynamic(nq) ||
        ShapedType::isDynamic(nk) || nq != nk || nk % devices != 0)
      return op.emitOpError()
             << "partition: splitting the sequence needs static, equal query "
                "and key lengths divisible by the devices along it, got Nq = "
             << nq << ", Nk = " << nk << " over " << devices << " devices";
    int64_t n = nk / devices;
    if (n % op.getBlockSize() != 0)
      return op.emitOpError()
             << "partition: splitting the sequence needs shards of whole "
                "frames (a query sees the rest of its frame, which a halo "
                "after the shard would have to bring), got shards of "
             << n << " tokens and block_size " << op.getBlockSize();
    auto keyType = cast<ShapedType>(op.getKey().getType());
    if (ShapedType::isDynamic(keyType.getDimSize(0)) ||
        ShapedType::isDynamic(keyType.getDimSize(1)))
      return op.emitOpError()
             << "partition: splitting the sequence needs static batch and "
                "head counts (the halo travels as one flat buffer)";
    if (op.getKeyOffset())
      return op.emitOpError()
             << "partition: splitting the sequence of an op that already has "
                "a key_offset is not supported";
    return n;
  }
};

} // namespace

void mlir::swba::registerShardingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, SWBADialect *) {
    // partition() creates ops of these dialects, which the partition pass
    // does not load.
    ctx->loadDialect<arith::ArithDialect, linalg::LinalgDialect,
                     shard::ShardDialect, tensor::TensorDialect>();
    AttentionOp::attachInterface<AttentionShardingInterface>(*ctx);
  });
}
