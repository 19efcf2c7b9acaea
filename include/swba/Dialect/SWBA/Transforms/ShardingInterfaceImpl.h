//===- ShardingInterfaceImpl.h - SWBA in the shard dialect ------*- C++ -*-===//

#ifndef SWBA_DIALECT_SWBA_TRANSFORMS_SHARDINGINTERFACEIMPL_H
#define SWBA_DIALECT_SWBA_TRANSFORMS_SHARDINGINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace swba {
/// Attaches the shard dialect's ShardingInterface to swba.attention, so that
/// --sharding-propagation and --shard-partition split it along batch, heads
/// and the sequence (with a halo of the keys before each shard).
void registerShardingInterfaceExternalModels(DialectRegistry &registry);
} // namespace swba
} // namespace mlir

#endif // SWBA_DIALECT_SWBA_TRANSFORMS_SHARDINGINTERFACEIMPL_H
