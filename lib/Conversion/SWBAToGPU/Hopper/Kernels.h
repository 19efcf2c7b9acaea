//===- Kernels.h - Bodies of the sm_90a kernels -----------------*- C++ -*-===//
//
// Internal to lib/Conversion/SWBAToGPU: the bodies of the warp-specialized
// forward, dQ and dK/dV kernels, built at the start of an empty kernel
// (createHopperKernel) from the parts in this folder: the workgroup's tile
// (Workgroup.h), the producer (Producer.h), the consumers' mainloop (one
// file per kernel), their softmax (Softmax.h) and epilogue (Epilogue.h).
//
//===----------------------------------------------------------------------===//

#ifndef SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KERNELS_H
#define SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KERNELS_H

#include "Tiling.h"
#include "swba/Dialect/SWBA/IR/SWBA.h"

namespace mlir::swba::gpu_kernels {

/// The forward kernel's body (ForwardMainloop.cpp). `args`: q, k, v, out
/// and, if the op has one, lse; `maps`: the tensor maps of q, k, v. With
/// `split`, the split-KV variant: `args` q, k, v, split_out, split_lse
/// (SplitCombine.h), the grid's z splits x batch. With `outMap` (the
/// persistent one pass, SharedLayout::outStagingBytes) the tensor map of
/// out, through which the consumers store O (storeForwardTile).
void buildForwardBody(OpBuilder &builder, Location loc, AttentionOp op,
                      const HopperTiling &tiling, const SharedLayout &layout,
                      ValueRange args, ArrayRef<Value> maps, Type elementType,
                      int64_t headDim, int64_t valueDim, bool split,
                      Value outMap = Value());

/// The dQ kernel's body (QueryGradMainloop.cpp). `args`: q, k, v, dout,
/// lse, delta, out, dq; `maps`: the tensor maps of q, k, v, dout. With
/// `pingPong` the consumers take turns issuing their products; with
/// `computeDelta` (grad-dq-delta) the kernel computes delta of its rows and
/// writes it, instead of reading it, and lets the dK/dV kernel after it
/// start as soon as its own last workgroups have (griddepcontrol
/// .launch_dependents).
void buildQueryGradBody(OpBuilder &builder, Location loc, AttentionGradOp op,
                        const QueryGradLayout &layout, ValueRange args,
                        ArrayRef<Value> maps, Type elementType, int64_t headDim,
                        int64_t valueDim, bool pingPong, bool computeDelta);

/// The dK/dV kernel's body (KeyValueGradMainloop.cpp). `args`: q, k, v,
/// dout, lse, delta, dk, dv; `maps`: the tensor maps of q, k, v, dout.
/// With `dqAccumMap` (grad-fused-dq) the kernel also adds dQ up into the
/// f32 buffer behind that map. With `earlyStart` (after the dQ kernel that
/// writes delta) its consumers wait for the launch before it
/// (griddepcontrol.wait) before they read anything; its producer loads
/// only the op's inputs and does not wait.
void buildKeyValueGradBody(OpBuilder &builder, Location loc, AttentionGradOp op,
                           const KeyValueGradLayout &layout, ValueRange args,
                           ArrayRef<Value> maps, Type elementType,
                           int64_t headDim, int64_t valueDim, Value dqAccumMap,
                           bool pingPong, bool earlyStart = false);

} // namespace mlir::swba::gpu_kernels

#endif // SWBA_LIB_CONVERSION_SWBATOGPU_HOPPER_KERNELS_H
