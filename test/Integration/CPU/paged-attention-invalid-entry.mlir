// swba.paged_attention with pages the table cannot give: entries outside
// the cache (99 past its 12 pages, -5) on pages inside the window, and a
// page table too short for a sequence's last page. Those pages are never
// read; the query rows whose window holds one get NaN in out and lse (56,
// then 32, of 96 rows), every other element is exact (compared with the
// float64 reference, swba.reference.paged_attention_forward).
// RUN: %python %S/gen_paged_attention_test.py --b 2 --hq 8 --hkv 2 --nq 6 --d 8 --dv 8 --bs 6 --ws 2 --page-size 4 --lens 13,28 --dtype f32 --lse --bad-entry 1,3,99 --bad-entry 0,0,-5 2>&1 >%t.entries.mlir | FileCheck %s --check-prefix=ENTRIES
// RUN: swba-opt --swba-to-llvm %t.entries.mlir \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// RUN: %python %S/gen_paged_attention_test.py --b 2 --hq 8 --hkv 2 --nq 6 --d 8 --dv 8 --bs 6 --ws 2 --page-size 4 --lens 13,28 --dtype f32 --lse --table-columns 6 2>&1 >%t.table.mlir | FileCheck %s --check-prefix=TABLE
// RUN: swba-opt --swba-to-llvm %t.table.mlir \
// RUN:   | mlir-runner -e main -entry-point-result=void %mlir_runner_libs \
// RUN:   | FileCheck %s
// ENTRIES: rows expected NaN: 56 of 96
// TABLE: rows expected NaN: 32 of 96
// CHECK: out checked 768 mismatches 0{{$}}
// CHECK: lse checked 96 mismatches 0{{$}}
