#!/usr/bin/env python3
"""Writes a linalg model with many attention layers for timing --raise-swba
(docs/BENCHMARKS.md, "Compile time of --raise-swba"): the seed's naive SBA
(frame mask, repeat_interleave) or a token-level window (block_size 1), one
layer feeding the next, exported like generate.py's `export` route; with
`--dynamic`, the length is a symbolic size (a token window, or frames
through `//`, since the seed's frame count N // block_size does not export),
and with `--dynamic-batch` the batch too.

    venv/bin/python test/Frontend/bench_layers.py --layers 32 --n 4096 \\
        --block-size 64 --window 4 > model.mlir
    time build/bin/swba-opt model.mlir --raise-swba -o /dev/null
"""

import argparse
import math
import subprocess
import sys

import torch

from generate import IREE_OPT, PIPELINE, Manual, SeedSBA, TokenWindow
from iree.compiler.extras.fx_importer import FxImporter


class Layers(torch.nn.Module):
    def __init__(self, layers, attention):
        super().__init__()
        self.layers, self.attention = layers, attention

    def forward(self, q, k, v):
        x = q
        for _ in range(self.layers):
            x = self.attention(x, k, v)
        return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--dynamic", action="store_true",
                        help="export with a symbolic length")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="with --dynamic: a symbolic batch too (traced at 2)")
    args = parser.parse_args()
    if args.dynamic_batch and not args.dynamic:
        parser.error("--dynamic-batch needs --dynamic")
    if args.block_size == 1:
        attention = TokenWindow(args.window)
    elif args.dynamic:
        attention = Manual(args.block_size, args.window, 1 / math.sqrt(args.d),
                           style="masked_fill")
    else:
        attention = SeedSBA(args.block_size, args.window, 1 / math.sqrt(args.d))
    shape = (2 if args.dynamic_batch else 1, args.heads, args.n, args.d)
    inputs = tuple(torch.randn(*shape) for _ in range(3))
    shapes = None
    if args.dynamic:
        n = torch.export.Dim("N", min=2, max=1 << 20)
        shapes = tuple({2: n} for _ in inputs)
        if args.dynamic_batch:
            b = torch.export.Dim("B", min=2, max=1 << 10)
            for shape_of in shapes:
                shape_of[0] = b
    ep = torch.export.export(Layers(args.layers, attention), inputs,
                             dynamic_shapes=shapes)
    importer = FxImporter()
    importer.import_frozen_program(ep)
    result = subprocess.run([IREE_OPT, f"--pass-pipeline={PIPELINE}", "-"],
                            input=str(importer.module), capture_output=True,
                            text=True, check=True)
    sys.stdout.write(result.stdout)


if __name__ == "__main__":
    main()
