//===- LaunchContract.cpp - How the host launches a SWBA kernel -----------===//

#include "LaunchContract.h"
#include "Hopper/HopperKernelBuilder.h"

#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace mlir::swba;
using namespace mlir::swba::gpu_kernels;

SmallVector<std::pair<StringRef, Value>>
gpu_kernels::namedOperands(Operation *op) {
  if (auto fwd = dyn_cast<AttentionOp>(op)) {
    SmallVector<std::pair<StringRef, Value>> named{{"q", fwd.getQuery()},
                                                   {"k", fwd.getKey()},
                                                   {"v", fwd.getValue()},
                                                   {"out", fwd.getOut()}};
    if (fwd.getLse())
      named.push_back({"lse", fwd.getLse()});
    return named;
  }
  if (auto paged = dyn_cast<PagedAttentionOp>(op)) {
    SmallVector<std::pair<StringRef, Value>> named{
        {"q", paged.getQuery()},           {"k_cache", paged.getKeyCache()},
        {"v_cache", paged.getValueCache()}, {"page_table", paged.getPageTable()},
        {"seq_lens", paged.getSeqLens()},   {"out", paged.getOut()}};
    if (paged.getLse())
      named.push_back({"lse", paged.getLse()});
    return named;
  }
  auto grad = cast<AttentionGradOp>(op);
  return {{"q", grad.getQuery()},      {"k", grad.getKey()},
          {"v", grad.getValue()},      {"out", grad.getOut()},
          {"dout", grad.getGradOut()}, {"lse", grad.getLse()},
          {"dq", grad.getGradQuery()}, {"dk", grad.getGradKey()},
          {"dv", grad.getGradValue()}};
}

static std::string typeName(Type type) {
  std::string name;
  llvm::raw_string_ostream os(name);
  type.print(os);
  return name;
}

static Attribute sizeRefAttr(Builder &b, SizeRef size) {
  if (size.isScalar())
    return b.getDictionaryAttr(
        {b.getNamedAttr("scalar", b.getStringAttr(size.tensor))});
  return b.getDictionaryAttr(
      {b.getNamedAttr("tensor", b.getStringAttr(size.tensor)),
       b.getNamedAttr("dim", b.getI64IntegerAttr(size.dim))});
}

/// One factor as itself; a product (or 1, no factor) as {product = [...]}.
static Attribute sizeAttr(Builder &b, const Size &size) {
  if (size.factors.size() == 1)
    return sizeRefAttr(b, size.factors.front());
  SmallVector<Attribute> factors;
  for (SizeRef factor : size.factors)
    factors.push_back(sizeRefAttr(b, factor));
  return b.getDictionaryAttr(
      {b.getNamedAttr("product", b.getArrayAttr(factors))});
}

static Attribute paramAttr(Builder &b, const KernelParam &param,
                           MemRefType tensorType) {
  SmallVector<NamedAttribute> fields{
      b.getNamedAttr("tensor", b.getStringAttr(param.tensor))};
  if (!param.map) {
    fields.push_back(b.getNamedAttr("kind", b.getStringAttr("memref")));
    int64_t rank = tensorType.getRank();
    if (!param.collapse.empty()) {
      rank = param.collapse.size();
      SmallVector<Attribute> groups;
      for (const ReassociationIndices &group : param.collapse)
        groups.push_back(b.getI64ArrayAttr(group));
      fields.push_back(b.getNamedAttr("collapse", b.getArrayAttr(groups)));
    }
    fields.push_back(b.getNamedAttr("rank", b.getI64IntegerAttr(rank)));
    fields.push_back(
        b.getNamedAttr("element_type",
                       b.getStringAttr(typeName(tensorType.getElementType()))));
    return b.getDictionaryAttr(fields);
  }
  // What cuTensorMapEncodeTiled needs: the [B * H][N][D] view of the tensor
  // (createTensorMap), the box (outermost first) and the map's modes.
  MemRefType box = param.map.getTensor();
  fields.push_back(b.getNamedAttr("kind", b.getStringAttr("tensor_map")));
  fields.push_back(b.getNamedAttr(
      "element_type", b.getStringAttr(typeName(box.getElementType()))));
  fields.push_back(b.getNamedAttr(
      "view", b.getArrayAttr({b.getI64ArrayAttr({0, 1}), b.getI64ArrayAttr({2}),
                              b.getI64ArrayAttr({3})})));
  fields.push_back(b.getNamedAttr("box", b.getI64ArrayAttr(box.getShape())));
  fields.push_back(b.getNamedAttr(
      "swizzle",
      b.getStringAttr(nvgpu::stringifyEnum(param.map.getSwizzle()))));
  fields.push_back(b.getNamedAttr(
      "l2_promotion",
      b.getStringAttr(nvgpu::stringifyEnum(param.map.getL2promo()))));
  fields.push_back(b.getNamedAttr(
      "oob_fill", b.getStringAttr(nvgpu::stringifyEnum(param.map.getOob()))));
  fields.push_back(b.getNamedAttr(
      "interleave",
      b.getStringAttr(nvgpu::stringifyEnum(param.map.getInterleave()))));
  return b.getDictionaryAttr(fields);
}

/// The contract as the `swba.launch` attribute of `kernel`, the `order`-th
/// launch of its op.
static DictionaryAttr contractAttr(Builder &b, gpu::GPUFuncOp kernel,
                                   const LaunchContract &contract,
                                   int64_t order,
                                   const llvm::StringMap<Value> &tensors) {
  SmallVector<Attribute> grid, params;
  for (const GridDim &dim : contract.grid) {
    SmallVector<NamedAttribute> fields{
        b.getNamedAttr("size", sizeAttr(b, dim.size)),
        b.getNamedAttr("per", b.getI64IntegerAttr(dim.per))};
    if (dim.most > 1)
      fields.append(
          {b.getNamedAttr("most", b.getI64IntegerAttr(dim.most)),
           b.getNamedAttr("per_sm", b.getI64IntegerAttr(dim.perSM)),
           b.getNamedAttr("overhead", b.getI64IntegerAttr(dim.overhead))});
    grid.push_back(b.getDictionaryAttr(fields));
  }
  for (const KernelParam &param : contract.params)
    params.push_back(paramAttr(
        b, param, cast<MemRefType>(tensors.lookup(param.tensor).getType())));
  SmallVector<NamedAttribute> fields{
      b.getNamedAttr("order", b.getI64IntegerAttr(order)),
      b.getNamedAttr("stream", b.getI64IntegerAttr(contract.stream)),
      b.getNamedAttr("grid", b.getArrayAttr(grid)),
      b.getNamedAttr("block", b.getI64ArrayAttr({contract.threads, 1, 1})),
      b.getNamedAttr("shared_memory",
                     b.getI64IntegerAttr(contract.sharedBytes)),
      b.getNamedAttr("params", b.getArrayAttr(params))};
  if (!contract.onlyAboveOne.empty())
    fields.push_back(b.getNamedAttr(
        "only_when",
        b.getDictionaryAttr(
            {b.getNamedAttr("scalar", b.getStringAttr(contract.onlyAboveOne)),
             b.getNamedAttr("above", b.getI64IntegerAttr(1))})));
  if (contract.earlyStart)
    fields.push_back(b.getNamedAttr("early_start", b.getBoolAttr(true)));
  // The register cap is the kernel's own attribute (the one ptxas obeys).
  if (auto regs = kernel->getAttrOfType<IntegerAttr>("nvvm.maxnreg"))
    fields.push_back(
        b.getNamedAttr("max_registers", b.getI64IntegerAttr(regs.getInt())));
  return b.getDictionaryAttr(fields);
}

static Attribute buffersAttr(Builder &b, ArrayRef<LaunchBuffer> buffers) {
  SmallVector<Attribute> all;
  for (const LaunchBuffer &buffer : buffers) {
    // The shape: a size reference per dynamic dim, the static ones as ints.
    SmallVector<Attribute> shape;
    auto size = buffer.sizes.begin();
    for (int64_t extent : buffer.type.getShape())
      shape.push_back(ShapedType::isDynamic(extent)
                          ? sizeAttr(b, *size++)
                          : Attribute(b.getI64IntegerAttr(extent)));
    all.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("name", b.getStringAttr(buffer.name)),
         b.getNamedAttr("element_type", b.getStringAttr(typeName(
                                            buffer.type.getElementType()))),
         b.getNamedAttr("shape", b.getArrayAttr(shape)),
         b.getNamedAttr("zero", b.getBoolAttr(buffer.zero))}));
  }
  return b.getArrayAttr(all);
}

/// The value of `size` in the host code: tensors' dims and scalars
/// multiplied.
static Value sizeValue(LoopEmitter &e, const Size &size,
                       const llvm::StringMap<Value> &tensors,
                       const llvm::StringMap<Value> &scalars) {
  Value product;
  for (SizeRef ref : size.factors) {
    Value factor = ref.isScalar() ? scalars.lookup(ref.tensor)
                                  : e.dim(tensors.lookup(ref.tensor), ref.dim);
    assert(factor && "a size names no operand, buffer or scalar");
    product =
        product ? Value(arith::MulIOp::create(e.b, product, factor)) : factor;
  }
  return product ? product : e.idx(1);
}

/// The argument for `param` of type `type`: the tensor (collapsed as it
/// says, then cast to the kernel's dynamic sizes), or its tensor map.
static Value paramValue(LoopEmitter &e, const KernelParam &param, Value tensor,
                        Type type) {
  if (param.map)
    return createTensorMap(e, tensor, param.map);
  if (param.collapse.empty())
    return tensor;
  Value rows = memref::CollapseShapeOp::create(e.b, tensor, param.collapse);
  if (rows.getType() == type)
    return rows;
  return memref::CastOp::create(e.b, type, rows);
}

/// The extent of `grid[i]` (its chunks) that GridDim's rule picks.
static Value packedExtent(LoopEmitter &e, ArrayRef<Value> grid, int64_t i,
                          const GridDim &dim) {
  Value rest = e.idx(1);
  for (auto [j, extent] : llvm::enumerate(grid))
    if (static_cast<int64_t>(j) != i)
      rest = arith::MulIOp::create(e.b, rest, extent);
  Value slots = e.idx(dim.perSM * kHostSmCount);
  Value best, bestCost;
  for (int64_t t = 1; t <= dim.most; ++t) {
    Value extent =
        t == 1 ? grid[i]
               : Value(arith::CeilDivUIOp::create(e.b, grid[i], e.idx(t)));
    Value waves = arith::CeilDivUIOp::create(
        e.b, arith::MulIOp::create(e.b, rest, extent), slots);
    Value cost =
        arith::MulIOp::create(e.b, waves, e.idx(100 * t + dim.overhead));
    if (!best) {
      best = extent;
      bestCost = cost;
      continue;
    }
    Value better =
        arith::CmpIOp::create(e.b, arith::CmpIPredicate::ule, cost, bestCost);
    best = arith::SelectOp::create(e.b, better, extent, best);
    if (t < dim.most)
      bestCost = arith::MinUIOp::create(e.b, cost, bestCost);
  }
  return best;
}

void gpu_kernels::emitLaunches(
    RewriterBase &rewriter, Operation *op, ArrayRef<LaunchBuffer> buffers,
    ArrayRef<std::pair<gpu::GPUFuncOp, LaunchContract>> kernels,
    ArrayRef<std::pair<StringRef, Value>> scalars) {
  rewriter.setInsertionPoint(op);
  LoopEmitter e(rewriter, op->getLoc());
  llvm::StringMap<Value> tensors, scalarValues;
  for (auto [name, value] : namedOperands(op))
    tensors[name] = value;
  for (auto [name, value] : scalars)
    scalarValues[name] = value;
  auto size = [&](const Size &ref) {
    return sizeValue(e, ref, tensors, scalarValues);
  };

  SmallVector<Value> allocated;
  for (const LaunchBuffer &buffer : buffers) {
    SmallVector<Value> sizes = llvm::map_to_vector(buffer.sizes, size);
    Value memref = gpu::AllocOp::create(e.b, buffer.type, /*asyncToken=*/Type(),
                                        /*asyncDependencies=*/ValueRange(),
                                        sizes, /*symbolOperands=*/ValueRange())
                       .getMemref();
    if (buffer.zero)
      gpu::MemsetOp::create(
          e.b, /*asyncToken=*/Type(), /*asyncDependencies=*/ValueRange(),
          memref,
          arith::ConstantOp::create(
              e.b, e.b.getZeroAttr(buffer.type.getElementType())));
    tensors[buffer.name] = memref;
    allocated.push_back(memref);
  }

  for (auto [order, entry] : llvm::enumerate(kernels)) {
    auto &[kernel, contract] = entry;
    assert(kernel.getNumArguments() == contract.params.size() &&
           "contract and kernel disagree on the parameters");
    assert((!contract.earlyStart ||
            (order > 0 && kernels[order - 1].second.stream == 0 &&
             contract.stream == 0)) &&
           "an early start follows a kernel on the same stream");
    SmallVector<Value> args;
    for (const KernelParam &param : contract.params) {
      Value tensor = tensors.lookup(param.tensor);
      assert(tensor && "a parameter names no operand or buffer");
      Type type = gpu::GPUFuncOp(kernel).getArgument(args.size()).getType();
      Value arg = paramValue(e, param, tensor, type);
      assert((param.map || type == arg.getType()) &&
             "a memref parameter of another type than its tensor");
      args.push_back(arg);
    }
    SmallVector<Value, 3> grid;
    for (const GridDim &dim : contract.grid) {
      Value extent = size(dim.size);
      grid.push_back(dim.per == 1 ? extent
                                  : Value(arith::CeilDivUIOp::create(
                                        e.b, extent, e.idx(dim.per))));
    }
    // A dim whose workgroups may run several chunks: GridDim's choice for
    // kHostSmCount SMs, over each count in turn.
    for (auto [i, dim] : llvm::enumerate(contract.grid))
      if (dim.most > 1)
        grid[i] = packedExtent(e, grid, i, dim);
    Value smem = contract.sharedBytes
                     ? Value(arith::ConstantIntOp::create(e.b, e.b.getI32Type(),
                                                          contract.sharedBytes))
                     : Value();
    OpBuilder::InsertionGuard guard(e.b);
    if (!contract.onlyAboveOne.empty()) {
      Value scalar = scalarValues.lookup(contract.onlyAboveOne);
      assert(scalar && "a launch condition names no scalar");
      auto when = scf::IfOp::create(
          e.b,
          arith::CmpIOp::create(e.b, arith::CmpIPredicate::ugt, scalar,
                                e.idx(1)),
          /*withElseRegion=*/false);
      e.b.setInsertionPoint(when.thenBlock()->getTerminator());
    }
    gpu::LaunchFuncOp::create(
        e.b, kernel, gpu::KernelDim3{grid[0], grid[1], grid[2]},
        gpu::KernelDim3{e.idx(contract.threads), e.idx(1), e.idx(1)}, smem,
        args);
    kernel->setAttr(kLaunchAttrName,
                    contractAttr(e.b, kernel, contract, order, tensors));
  }

  for (Value memref : llvm::reverse(allocated))
    gpu::DeallocOp::create(e.b, /*asyncToken=*/Type(), ValueRange(), memref);
  Operation *gpuModule = kernels.front().first->getParentOp();
  if (!buffers.empty())
    gpuModule->setAttr(kBuffersAttrName, buffersAttr(e.b, buffers));
  if (!scalars.empty())
    gpuModule->setAttr(kScalarsAttrName,
                       e.b.getStrArrayAttr(llvm::map_to_vector(
                           scalars, [](auto &entry) { return entry.first; })));
  rewriter.eraseOp(op);
}
