"""The command line that the fuzzers which run programs through mlir-runner
share (raise_differential.py, corpus_mutations.py)."""

import argparse


def parser(doc):
    """An ArgumentParser with swba-opt, mlir-runner and its libraries, the
    seed, the case count, one case alone, jobs and a time limit."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swba-opt", required=True)
    ap.add_argument("--mlir-runner", default="mlir-runner")
    ap.add_argument("--shared-libs", required=True,
                    help="mlir-runner's runtime libraries, comma-separated "
                    "(a leading -shared-libs= is accepted)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--only", type=int, help="run this case of the seed alone")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    return ap


def parse(ap):
    args = ap.parse_args()
    args.shared_libs = args.shared_libs.removeprefix("-shared-libs=")
    return args
