#!/usr/bin/env python3
"""Runs a generated model, or compares two runs.

`run_model.py MODEL.mlir` prints MODEL with an `@entry` function added that
fills every tensor argument of `@main` with pseudo-random non-zero values
(sin of the flat index times a per-argument factor, rounded to the element
type; integer arguments are token ids, the flat index times 37 plus a
per-argument constant, mod 61), calls `@main` and prints its result as f32
with printMemrefF32.
Where `@main`'s types have dynamic sizes, `--lengths A,B,...` gives them,
in the order they appear in the arguments; the result's take the first
argument's. `--function NAME` runs @NAME instead of @main.

`run_model.py --compare A B --tolerance T` reads the printed data of two
runs and prints `compared N elements, M mismatches, nonzero|zero`: a
mismatch is an element whose values differ by more than T.
"""

import argparse
import re
import sys


def parse_tensor(text):
    """('1x2x?x16', 'f32') -> ([1, 2, None, 16], 'f32')."""
    parts = text.split("x")
    return [None if p == "?" else int(p) for p in parts[:-1]], parts[-1]


def given(shape, lengths):
    """`shape` with its dynamic sizes taken from the front of `lengths`."""
    return [lengths.pop(0) if d is None else d for d in shape]


def parallel(rank):
    return ", ".join(['"parallel"'] * rank)


def tensor_type(shape, elt):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elt + ">"


def fill(name, shape, elt, factor):
    """A linalg.generic producing sin((flat + 1) * factor) in `elt`."""
    rank = len(shape)
    dims = ", ".join(f"d{i}" for i in range(rank))
    ty = tensor_type(shape, elt)
    lines = [f"    %{name}_e = tensor.empty() : {ty}\n",
             f"    %{name} = linalg.generic {{indexing_maps = [affine_map<({dims}) -> ({dims})>], "
             f"iterator_types = [{parallel(rank)}]}} "
             f"outs(%{name}_e : {ty}) {{\n",
             f"    ^bb0(%{name}_out: {elt}):\n",
             f"      %{name}_f0 = arith.constant 0 : index\n"]
    flat = f"%{name}_f0"
    for d in range(rank):
        lines.append(f"      %{name}_x{d} = linalg.index {d} : index\n")
        lines.append(f"      %{name}_s{d} = arith.constant {shape[d]} : index\n")
        lines.append(f"      %{name}_m{d} = arith.muli {flat}, %{name}_s{d} : index\n")
        lines.append(f"      %{name}_f{d + 1} = arith.addi %{name}_m{d}, %{name}_x{d} : index\n")
        flat = f"%{name}_f{d + 1}"
    if elt in ("i32", "i64"):
        # Token ids: (flat * 37 + k) mod 61, below the vocabularies of the
        # corpus's models.
        lines.append(f"      %{name}_p = arith.constant 37 : index\n")
        lines.append(f"      %{name}_q = arith.constant {int(factor * 100) % 61} : index\n")
        lines.append(f"      %{name}_r = arith.constant 61 : index\n")
        lines.append(f"      %{name}_u = arith.muli {flat}, %{name}_p : index\n")
        lines.append(f"      %{name}_w = arith.addi %{name}_u, %{name}_q : index\n")
        lines.append(f"      %{name}_z = arith.remui %{name}_w, %{name}_r : index\n")
        lines.append(f"      %{name}_t = arith.index_cast %{name}_z : index to {elt}\n")
        lines.append(f"      linalg.yield %{name}_t : {elt}\n")
        lines.append(f"    }} -> {ty}\n")
        return lines
    lines.append(f"      %{name}_i = arith.index_cast {flat} : index to i64\n")
    lines.append(f"      %{name}_c = arith.sitofp %{name}_i : i64 to f32\n")
    lines.append(f"      %{name}_k = arith.constant {factor} : f32\n")
    lines.append(f"      %{name}_a = arith.addf %{name}_c, %{name}_k : f32\n")
    lines.append(f"      %{name}_b = arith.mulf %{name}_a, %{name}_k : f32\n")
    lines.append(f"      %{name}_v = math.sin %{name}_b : f32\n")
    value = f"%{name}_v"
    if elt in ("f16", "bf16"):
        lines.append(f"      %{name}_t = arith.truncf %{name}_v : f32 to {elt}\n")
        value = f"%{name}_t"
    elif elt != "f32":
        sys.exit(f"run_model.py: no inputs of element type {elt}")
    lines.append(f"      linalg.yield {value} : {elt}\n")
    lines.append(f"    }} -> {ty}\n")
    return lines


def entry(signature, lengths, function):
    match = re.match(r"\s*func\.func (?:public )?@" + re.escape(function) +
                     r"\((.*)\) -> (tensor<[^>]*>)", signature)
    if not match:
        sys.exit(f"run_model.py: @{function} must return one tensor")
    args = re.findall(r"%\w+: tensor<([^>]*)>", match.group(1))
    result_shape, result_elt = parse_tensor(match.group(2)[len("tensor<"):-1])
    lines = ["  func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}\n",
             "  func.func @entry() {\n"]
    names = []
    result_lengths = None
    for n, arg in enumerate(args):
        declared, elt = parse_tensor(arg)
        before = len(lengths)
        shape = given(declared, lengths)
        if result_lengths is None:
            result_lengths = [d for d, t in zip(shape, declared) if t is None]
            # q's sizes, where the result's rank is q's (a result dim that is
            # dynamic where q's is static: the query count that ONNX's
            # broadcasts of a decode step make dynamic).
            q_shape = shape
        if None in shape:
            sys.exit("run_model.py: --lengths gives fewer sizes than @main's types have")
        lines += fill(f"in{n}", shape, elt, [0.731, 1.377, 0.593, 0.911][n % 4])
        name, ty = f"%in{n}", tensor_type(shape, elt)
        if before != len(lengths):
            dyn_ty = tensor_type(["?" if d is None else d for d in declared], elt)
            lines.append(f"    %in{n}_d = tensor.cast {name} : {ty} to {dyn_ty}\n")
            name, ty = f"%in{n}_d", dyn_ty
        names.append((name, ty))
    if lengths:
        sys.exit("run_model.py: --lengths gives more sizes than @main's types have")
    declared_result = result_shape
    if len(result_shape) == len(q_shape):
        result_shape = [q if d is None else d for d, q in zip(result_shape, q_shape)]
    else:
        result_shape = given(result_shape, list(result_lengths or []))
    result_ty = tensor_type(["?" if d is None else d for d in declared_result], result_elt)
    lines.append(f"    %r_d = func.call @{function}({', '.join(n for n, _ in names)}) : "
                 f"({', '.join(t for _, t in names)}) -> {result_ty}\n")
    static_ty = tensor_type(result_shape, result_elt)
    lines.append(f"    %r = tensor.cast %r_d : {result_ty} to {static_ty}\n")
    result_ty = static_ty
    value = "%r"
    if result_elt != "f32":
        rank = len(result_shape)
        dims = ", ".join(f"d{i}" for i in range(rank))
        f32_ty = tensor_type(result_shape, "f32")
        lines += [f"    %r32_e = tensor.empty() : {f32_ty}\n",
                  f"    %r32 = linalg.generic {{indexing_maps = [affine_map<({dims}) -> ({dims})>, "
                  f"affine_map<({dims}) -> ({dims})>], iterator_types = [{parallel(rank)}]}} "
                  f"ins(%r : {result_ty}) outs(%r32_e : {f32_ty}) {{\n",
                  f"    ^bb0(%x: {result_elt}, %o: f32):\n",
                  f"      %y = arith.extf %x : {result_elt} to f32\n",
                  "      linalg.yield %y : f32\n",
                  f"    }} -> {f32_ty}\n"]
        value = "%r32"
    memref_ty = "memref<" + "".join(f"{d}x" for d in result_shape) + "f32>"
    lines += [f"    %buf = bufferization.to_buffer {value} : {tensor_type(result_shape, 'f32')} to {memref_ty}\n",
              f"    %unranked = memref.cast %buf : {memref_ty} to memref<*xf32>\n",
              "    func.call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()\n",
              "    return\n",
              "  }\n"]
    return lines


def wrapped(path, lengths, function="main"):
    """The text of the module at `path` with its @entry (the module's
    docstring); `lengths` gives @function's dynamic sizes."""
    with open(path) as f:
        lines = f.readlines()
    signature = next((l for l in lines
                      if re.search(r"func\.func (public )?@" + re.escape(function) + r"\(", l)),
                     None)
    if signature is None:
        sys.exit(f"run_model.py: no @{function} in {path}")
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("module"):
            out += entry(signature, list(lengths), function)
    return "".join(out)


def values(path):
    with open(path) as f:
        return values_in(f.read(), path)


def values_in(text, where):
    """The elements of the memref that mlir-runner printed in `text` (from
    `where`)."""
    if "data =" not in text:
        sys.exit(f"run_model.py: no printed memref in {where}")
    return [float(x) for x in re.findall(r"-?(?:nan|inf|[0-9][0-9.]*(?:e[-+]?[0-9]+)?)",
                                           text.split("data =", 1)[1])]


def compare(a_path, b_path, tolerance):
    a, b = values(a_path), values(b_path)
    if len(a) != len(b):
        print(f"compared {len(a)} and {len(b)} elements: sizes differ")
        return
    bad = sum(not (abs(x - y) <= tolerance) for x, y in zip(a, b))
    nonzero = "nonzero" if max(map(abs, a)) > 0.01 else "zero"
    print(f"compared {len(a)} elements, {bad} mismatches, {nonzero}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--compare", nargs=2)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--function", default="main", help="the function to run")
    parser.add_argument("--lengths", default="",
                        help="comma-separated sizes of @main's dynamic dimensions")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare, args.tolerance)
    else:
        sys.stdout.write(wrapped(args.model, [int(x) for x in args.lengths.split(",") if x],
                                 args.function))


if __name__ == "__main__":
    main()
