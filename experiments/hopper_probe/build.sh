#!/usr/bin/env bash
# Builds experiments/hopper_probe/probe.cubin (+ probe.ptx, probe.sass) from qk.mlir on the
# CPU machine (the GPU machine has no MLIR).  Run from anywhere.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
SWBA_OPT="${SWBA_OPT:-$HERE/../../build/bin/swba-opt}"
PTXAS="${PTXAS:-/usr/local/cuda/bin/ptxas}"
CUOBJDUMP="${CUOBJDUMP:-cuobjdump}"
PY="${PY:-python3}"

echo "== gen.py -> qk.mlir"
"$PY" gen.py

echo "== swba-opt --gpu-lower-to-nvvm-pipeline (sm_90a, +ptx80, isa)"
"$SWBA_OPT" qk.mlir \
  --gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90a cubin-features=+ptx80 cubin-format=isa" \
  -o qk.bin.mlir

echo "== extract PTX (plan's regex) -> probe.ptx"
"$PY" - <<'EOF'
import re
s = open("qk.bin.mlir").read()
m = re.search(r'assembly = "((?:[^"\\]|\\.)*)"', s)
assert m, "no gpu.binary assembly in qk.bin.mlir"
t = re.sub(r"\\(\\|[0-9A-Fa-f]{2})",
           lambda x: "\\" if x.group(1) == "\\" else chr(int(x.group(1), 16)), m.group(1))
open("probe.ptx", "w").write(t)
for e in re.findall(r"\.visible \.entry (\w+)\(([^)]*)\)", t):
    n = len(re.findall(r"\.param", e[1]))
    print(f"   entry {e[0]}: {n} params")
EOF

echo "== ptxas -arch=sm_90a -v"
"$PTXAS" -arch=sm_90a -O3 -v probe.ptx -o probe.cubin 2> ptxas.log || { cat ptxas.log; exit 1; }
cat ptxas.log
if grep -q "C7519\|C7510\|C7515\|serializ" ptxas.log; then
  echo "!! ptxas wgmma serialization / warpgroup warnings present"; fi

echo "== SASS (cuobjdump -sass) -> probe.sass"
if [ -x "$CUOBJDUMP" ]; then
  "$CUOBJDUMP" -sass probe.cubin > probe.sass
  "$PY" - <<'EOF'
import re
text = open("probe.sass").read()
# split per function
parts = re.split(r"\n\s*Function : (\w+)\n", text)
for name, body in zip(parts[1::2], parts[2::2]):
    def c(pat): return len(re.findall(pat, body))
    hg = re.findall(r"HGMMA\.\S+[^;]*", body)
    n = {k: c(p) for k, p in [("UTMALDG", r"UTMALDG"), ("SYNCS", r"SYNCS"),
                              ("LDL/STL", r"\bLDL|\bSTL"), ("WARPGROUP.ARRIVE", r"WARPGROUP\.ARRIVE"),
                              ("DEPBAR", r"WARPGROUP\.DEPBAR")]}
    print(f"   {name}: HGMMA={len(hg)} " + " ".join(f"{k}={v}" for k, v in n.items()))
    for h in hg:
        print("      ", h.strip())
EOF
else
  echo "   (cuobjdump not found at $CUOBJDUMP; skipping SASS)"
fi

echo "== done: $HERE/probe.cubin ($(stat -c %s probe.cubin) bytes), probe.ptx"
