"""CPU benchmark of --lower-swba{target=cpu} (not a test): the forward at a
fixed window for growing N, timed inside the module with rtclock() under
mlir-runner. With the block-window bounds the time grows linearly in N.

    python3 python/bench/bench_cpu.py [--swba-opt build/bin/swba-opt]
"""

import argparse
import subprocess

LIB = "/usr/lib/llvm-22/lib"
MODULE = """
func.func private @rtclock() -> f64
func.func @main() {{
  %c0 = arith.constant 0 : index
  %e = tensor.empty() : tensor<1x{h}x{n}x{d}xf32>
  %x = linalg.generic {{indexing_maps = [affine_map<(a, b, c, d) -> (a, b, c, d)>],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}}
       outs(%e : tensor<1x{h}x{n}x{d}xf32>) {{
  ^bb0(%o: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %ij = arith.muli %i, %j : index
    %s = arith.addi %ij, %i : index
    %t = arith.index_cast %s : index to i64
    %f = arith.sitofp %t : i64 to f32
    %v = math.sin %f : f32
    linalg.yield %v : f32
  }} -> tensor<1x{h}x{n}x{d}xf32>
  %o = tensor.empty() : tensor<1x{h}x{n}x{d}xf32>
  %t0 = func.call @rtclock() : () -> f64
  %r = swba.attention ins(%x, %x, %x : tensor<1x{h}x{n}x{d}xf32>, tensor<1x{h}x{n}x{d}xf32>, tensor<1x{h}x{n}x{d}xf32>)
       outs(%o : tensor<1x{h}x{n}x{d}xf32>) block_size = {bs} window = {ws} -> tensor<1x{h}x{n}x{d}xf32>
  %t1 = func.call @rtclock() : () -> f64
  %dt = arith.subf %t1, %t0 : f64
  %z = tensor.extract %r[%c0, %c0, %c0, %c0] : tensor<1x{h}x{n}x{d}xf32>
  vector.print %dt : f64
  vector.print %z : f32
  return
}}
"""


def run(swba_opt, n, h, d, bs, ws):
    text = MODULE.format(n=n, h=h, d=d, bs=bs, ws=ws)
    lowered = subprocess.run([swba_opt, "--swba-to-llvm"], input=text, text=True,
                             capture_output=True, check=True).stdout
    out = subprocess.run(
        ["/usr/lib/llvm-22/bin/mlir-runner", "-e", "main", "-entry-point-result=void", "-O3",
         f"-shared-libs={LIB}/libmlir_c_runner_utils.so,{LIB}/libmlir_runner_utils.so"],
        input=lowered, text=True, capture_output=True, check=True).stdout
    return float(out.split()[0])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--swba-opt", default="build/bin/swba-opt")
    a = ap.parse_args()
    h, d, bs, ws = 2, 32, 64, 4
    print(f"CPU forward, f32, B=1 H={h} D={d} block_size={bs} window={ws} (window = {bs * ws} keys)")
    print("| N | seconds (best of 3) | seconds / N * 1e6 |")
    print("| --- | --- | --- |")
    for n in (1024, 2048, 4096, 8192, 16384):
        t = min(run(a.swba_opt, n, h, d, bs, ws) for _ in range(3))
        print(f"| {n} | {t:.4f} | {t / n * 1e6:.2f} |")
