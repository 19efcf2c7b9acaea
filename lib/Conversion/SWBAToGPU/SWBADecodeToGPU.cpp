//===- SWBADecodeToGPU.cpp - Decode attention to split-KV kernels ---------===//
//
// swba.paged_attention, and swba.attention under --lower-swba's `decode`
// option, become the split-KV decode kernel and the combination kernel
// (Decode/Kernels.h has the design): the first writes each split's partial
// out and lse into the split-KV forward's partial buffers, whose combine
// kernel (SplitCombine.h) merges them into out (and lse). The split count
// is the launch scalar `splits` (picked by the launcher): the kernels read it
// from their grid and their buffers, so one compiled kernel serves every
// sequence length, and lengths read on the device (seq_lens) can change
// between replays of a captured launch.
//
//===----------------------------------------------------------------------===//

#include "Decode/Kernels.h"
#include "Hopper/HopperKernelBuilder.h"
#include "LaunchContract.h"
#include "SplitCombine.h"
#include "swba/Conversion/SWBAToGPU/SWBAToGPU.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

/// The split count of the emitted host code (the Python runtime picks its
/// own from the shapes and the GPU): about one split per 512 keys of a
/// window, at most 16.
static int64_t hostSplits(BlockWindow w) {
  double keys =
      static_cast<double>(w.blockSize) * static_cast<double>(w.window);
  return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(keys / 512.0)), 1,
                             16);
}

namespace {

/// What the two forms (dense and paged) differ in.
struct DecodeOp {
  Operation *op;
  DecodeOperands operands;
  Value out, lse;
  /// The name and dim of the kv head count (the grid's y).
  StringRef keyName;
  int64_t kvHeadDim;
  BlockWindow window;
  double scale;

  static DecodeOp of(AttentionOp op) {
    return {op,
            {op.getQuery(), op.getKey(), op.getValue(), {}, {}, {}, {}},
            op.getOut(),
            op.getLse(),
            "k",
            1,
            {static_cast<int64_t>(op.getBlockSize()),
             static_cast<int64_t>(op.getWindow())},
            op.getEffectiveScale()};
  }
  static DecodeOp of(PagedAttentionOp op) {
    return {op,
            {op.getQuery(),
             op.getKeyCache(),
             op.getValueCache(),
             op.getPageTable(),
             op.getSeqLens(),
             {},
             {}},
            op.getOut(),
            op.getLse(),
            "k_cache",
            2,
            {static_cast<int64_t>(op.getBlockSize()),
             static_cast<int64_t>(op.getWindow())},
            op.getEffectiveScale()};
  }
};

/// An empty kernel using the module's @swba_smem as dynamic shared memory.
gpu::GPUFuncOp createDecodeKernel(RewriterBase &rewriter,
                                  gpu::GPUModuleOp gpuModule, Location loc,
                                  StringRef name, TypeRange args) {
  if (!SymbolTable::lookupSymbolIn(gpuModule, "swba_smem")) {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(gpuModule.getBody());
    auto space = gpu::AddressSpaceAttr::get(
        rewriter.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    memref::GlobalOp::create(
        rewriter, loc, "swba_smem", /*sym_visibility=*/StringAttr(),
        MemRefType::get({0}, rewriter.getI8Type(), MemRefLayoutAttrInterface(),
                        space),
        /*initial_value=*/Attribute(), /*constant=*/false,
        rewriter.getI64IntegerAttr(1024)); // TMA's 128B swizzle
  }
  return createKernel(rewriter, gpuModule, loc, name, args, TypeRange());
}

/// Asserts on the host that the packed rows (Hq / Hkv * Nq) fit one
/// workgroup, where the sizes are dynamic; a static excess was rejected
/// before (checkDecodeLowerable).
void assertRowsFit(LoopEmitter &e, const DecodeOp &d) {
  Value q = d.operands.q, k = d.operands.k;
  Value rows = arith::MulIOp::create(
      e.b,
      e.divIdx(e.dim(q, 1),
               arith::MaxUIOp::create(e.b, e.dim(k, d.kvHeadDim), e.idx(1))),
      e.dim(q, 2));
  cf::AssertOp::create(
      e.b,
      arith::CmpIOp::create(e.b, arith::CmpIPredicate::ule, rows,
                            e.idx(kDecodeRows)),
      (d.op->getName().getStringRef() +
       ": more than 64 query rows per kv head (Hq / Hkv * Nq) for the "
       "decode kernel")
          .str());
}

/// Rows of a paged cache's TMA box: min(page size, tile) where the page
/// size is static, a multiple of 16 (whole 2 KiB boxes keep the 128B
/// swizzle's 1024-byte phase) and divides the tile or is divided by it;
/// else 0 (bulk copies a row).
int64_t pagedBoxRows(const DecodeOp &d, int64_t tile) {
  if (!d.operands.paged())
    return 0;
  int64_t pageSize = cast<MemRefType>(d.operands.k.getType()).getDimSize(1);
  if (ShapedType::isDynamic(pageSize) || pageSize % 16 != 0 ||
      (pageSize % tile != 0 && tile % pageSize != 0))
    return 0;
  return std::min(pageSize, tile);
}

LogicalResult rewriteDecode(DecodeOp d, PatternRewriter &rewriter,
                            bool bulkCopies) {
  Operation *op = d.op;
  auto module = op->getParentOfType<ModuleOp>();
  if (!module)
    return rewriter.notifyMatchFailure(op, "expected an enclosing module");
  Location loc = op->getLoc();
  MLIRContext *context = rewriter.getContext();
  Type elementType = cast<MemRefType>(d.operands.q.getType()).getElementType();
  DecodeLayout layout{cast<MemRefType>(d.operands.q.getType()).getDimSize(3),
                      cast<MemRefType>(d.operands.v.getType()).getDimSize(3),
                      d.operands.paged()};
  int64_t pageRows = pagedBoxRows(d, layout.tile);
  // TMA boxes are 64 columns wide: head dims of whole boxes (64, 128), and
  // a paged cache's boxes must tile its pages.
  layout.tma = bulkCopies && layout.headDim % 64 == 0 &&
               layout.valueDim % 64 == 0 && (!d.operands.paged() || pageRows);
  if (layout.pagedTma())
    layout.pageRows = pageRows;
  layout.bulk = bulkCopies && d.operands.paged() && !layout.tma;

  rewriter.setInsertionPoint(op);
  LoopEmitter host(rewriter, loc);
  assertRowsFit(host, d);
  Value splits = host.idx(hostSplits(d.window));

  SmallVector<Value> decodeArgs{d.operands.q, d.operands.k, d.operands.v};
  SmallVector<StringRef> decodeNames{"q", d.operands.paged() ? "k_cache" : "k",
                                     d.operands.paged() ? "v_cache" : "v"};
  if (d.operands.paged()) {
    decodeArgs.append({d.operands.pageTable, d.operands.seqLens});
    decodeNames.append({"page_table", "seq_lens"});
  }
  // A single split writes out and lse itself.
  size_t outArg = decodeArgs.size();
  decodeArgs.push_back(d.out);
  decodeNames.push_back("out");
  if (d.lse) {
    decodeArgs.push_back(d.lse);
    decodeNames.push_back("lse");
  }
  SmallVector<Type> decodeTypes =
      llvm::map_to_vector(decodeArgs, [](Value v) { return v.getType(); });
  decodeTypes.append(
      {splitOutType(context, layout.valueDim), splitLseType(context)});
  decodeNames.append({kSplitOutBuffer, kSplitLseBuffer});
  // TMA: pointers to the maps of k and v, after the memrefs.
  nvgpu::TensorMapDescriptorType mapType;
  if (layout.tma) {
    // Dense: [B * Hkv][Nk][D] in boxes of 1 x tile x 64; paged: [pages *
    // page size][Hkv][D] in boxes of pageRows x 1 x 64.
    mapType = layout.pagedTma()
                  ? tensorMapType(elementType, /*rows=*/1, layout.pageRows)
                  : tensorMapType(elementType, layout.tile);
    decodeTypes.append(2, LLVM::LLVMPointerType::get(context));
  }

  OpBuilder::InsertionGuard guard(rewriter);
  auto gpuModule =
      createKernelModule(rewriter, module, loc, "swba_decode_kernels");
  auto decode =
      createDecodeKernel(rewriter, gpuModule, loc, "swba_decode", decodeTypes);
  // On sm_90a the combine kernel may start while this one ends: it waits
  // for it before it reads the partials.
  auto outType = cast<MemRefType>(d.out.getType());
  LaunchContract combineLaunch =
      splitCombineLaunch("out", outType.getRank(), d.lse ? "lse" : "");
  combineLaunch.onlyAboveOne = kSplitsScalar;
  combineLaunch.earlyStart = bulkCopies;
  if (combineLaunch.earlyStart)
    NVVM::GriddepcontrolOp::create(rewriter, loc,
                                   NVVM::GridDepActionKind::launch_dependents);
  DecodeOperands operands = d.operands;
  ArrayRef<BlockArgument> args = decode.getArguments();
  operands.q = args[0];
  operands.k = args[1];
  operands.v = args[2];
  if (d.operands.paged()) {
    operands.pageTable = args[3];
    operands.seqLens = args[4];
  }
  size_t buffers = args.size() - (layout.tma ? 2 : 0);
  operands.partialOut = args[buffers - 2];
  operands.partialLse = args[buffers - 1];
  operands.out = args[outArg];
  if (d.lse)
    operands.lse = args[outArg + 1];
  if (layout.tma) {
    operands.kMap = args[buffers];
    operands.vMap = args[buffers + 1];
  }
  buildDecodeBody(rewriter, loc, elementType, layout, d.window, d.scale,
                  operands);
  gpu::ReturnOp::create(rewriter, loc);

  auto combine = createSplitCombineKernel(
      rewriter, gpuModule, loc, outType.getElementType(), layout.valueDim,
      bool(d.lse), combineLaunch.earlyStart);

  LaunchContract decodeLaunch{{GridDim{SizeRef::scalar(kSplitsScalar)},
                               GridDim{{d.keyName, d.kvHeadDim}},
                               GridDim{{"q", 0}}},
                              kThreads,
                              layout.sharedBytes()};
  for (StringRef name : decodeNames)
    decodeLaunch.params.push_back({name});
  if (layout.tma)
    decodeLaunch.params.append(
        {{decodeNames[1], mapType}, {decodeNames[2], mapType}});
  Size rows = Size::product({{"q", 0}, {"q", 1}, {"q", 2}});
  emitLaunches(rewriter, op, splitBuffers(context, layout.valueDim, rows),
               {{decode, decodeLaunch}, {combine, combineLaunch}},
               {{kSplitsScalar, splits}});
  return success();
}

template <typename Op> struct ToDecode : public OpRewritePattern<Op> {
  ToDecode(MLIRContext *context, bool bulkCopies, PatternBenefit benefit = 1)
      : OpRewritePattern<Op>(context, benefit), bulkCopies(bulkCopies) {}
  LogicalResult matchAndRewrite(Op op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureBufferSemantics())
      return rewriter.notifyMatchFailure(op, "expected memref operands");
    return rewriteDecode(DecodeOp::of(op), rewriter, bulkCopies);
  }
  bool bulkCopies;
};

} // namespace

LogicalResult mlir::swba::checkDecodeLowerable(Operation *op) {
  auto q = cast<ShapedType>(op->getOperand(0).getType());
  auto k = cast<ShapedType>(op->getOperand(1).getType());
  auto v = cast<ShapedType>(op->getOperand(2).getType());
  // The kernel is laid out for two workgroups an SM: at head dim 128 its
  // ring takes 105 KiB, past it only one would fit.
  if (q.getDimSize(3) > kDecodeMaxHeadDim ||
      v.getDimSize(3) > kDecodeMaxHeadDim)
    return op->emitOpError()
           << "the decode kernel takes head dims up to " << kDecodeMaxHeadDim
           << ", got " << q.getDimSize(3) << " and " << v.getDimSize(3);
  int64_t kvHeadDim = isa<PagedAttentionOp>(op) ? 2 : 1;
  if (q.isDynamicDim(1) || k.isDynamicDim(kvHeadDim) || q.isDynamicDim(2) ||
      k.getDimSize(kvHeadDim) == 0)
    return success(); // asserted on the host
  int64_t rows = q.getDimSize(1) / k.getDimSize(kvHeadDim) * q.getDimSize(2);
  if (rows > kDecodeRows)
    return op->emitOpError()
           << "the decode kernel takes at most " << kDecodeRows
           << " query rows per kv head (Hq / Hkv * Nq), got " << rows;
  return success();
}

void mlir::swba::populateSWBADecodeToGPUPatterns(RewritePatternSet &patterns,
                                                 bool decodeAttention,
                                                 bool bulkCopies) {
  patterns.add<ToDecode<PagedAttentionOp>>(patterns.getContext(), bulkCopies);
  // Ahead of the other swba.attention patterns (benefit 1).
  if (decodeAttention)
    patterns.add<ToDecode<AttentionOp>>(patterns.getContext(), bulkCopies,
                                        /*benefit=*/10);
}
