"""Benchmark configurations: the four of docs/BENCHMARKS.md and a sweep of N;
and the check the option-comparing tools share."""

import math
from collections import namedtuple

Config = namedtuple("Config", "b h n d bs ws")

DESIGN = [
    Config(1, 12, 4096, 64, 256, 16),
    Config(1, 12, 16384, 64, 256, 16),
    Config(1, 24, 16384, 128, 1024, 4),
    Config(1, 24, 32768, 128, 2048, 4),
]
# Time against tokens at a fixed window (the seed README's plot).
SWEEP = [Config(1, 12, n, 64, 256, 16) for n in (1024, 2048, 4096, 8192, 16384, 32768)]


def kernel_configs():
    from swba.compiler import KernelConfig
    out = set()
    for c in DESIGN + SWEEP:
        for grad in (False, True):
            out.add(KernelConfig("f16", c.d, c.d, c.bs, c.ws, 1.0 / math.sqrt(c.d),
                                 grad=grad))
    return out


def refuse_repeated_options(parser, options):
    """Stops `parser` with an error when an option string is given twice:
    the comparing tools keep each one's results under its string."""
    repeated = sorted({o for o in options if options.count(o) > 1})
    if repeated:
        parser.error(f"options given more than once: {repeated} (each option's "
                     "results are kept under its string)")
