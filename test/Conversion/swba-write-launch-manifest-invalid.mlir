// --swba-write-launch-manifest reports a missing path, a module without
// launch contracts (not lowered) and a file it cannot write.
// RUN: swba-opt %s --verify-diagnostics --swba-write-launch-manifest="path=%t.json"
// RUN: not swba-opt %s --lower-swba=target=gpu --swba-write-launch-manifest 2>&1 | FileCheck %s --check-prefix=NOPATH
// RUN: not swba-opt %s --lower-swba=target=gpu --swba-write-launch-manifest="path=%t.missing/dir/x.json" 2>&1 | FileCheck %s --check-prefix=UNWRITABLE

// NOPATH: error: swba-write-launch-manifest: no path given
// UNWRITABLE: error: swba-write-launch-manifest: cannot open output file

// expected-error @+1 {{swba-write-launch-manifest: no kernel with a launch contract (run it after --lower-swba=target=gpu)}}
module {
  func.func @not_lowered(%q: memref<?x2x?x64xf16>, %o: memref<?x2x?x64xf16>) {
    swba.attention ins(%q, %q, %q : memref<?x2x?x64xf16>, memref<?x2x?x64xf16>, memref<?x2x?x64xf16>)
        outs(%o : memref<?x2x?x64xf16>) block_size = 64 window = 2
    return
  }
}
