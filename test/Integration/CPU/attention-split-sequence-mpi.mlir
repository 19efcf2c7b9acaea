// swba.attention split along the sequence by the shard dialect and run as
// an MPI program: --sharding-propagation and --shard-partition give each
// process its shard of q, k, v plus a halo of the (window - 1) * block_size
// keys before it (shard.update_halo, in rounds when the halo is longer than a
// shard), --convert-shard-to-mpi turns the exchange into MPI calls. Process 0
// prints how many of all output elements differ from the float64 reference
// and from the unsplit op (gen_sharded_attention_test.py).
// REQUIRES: mpi
//
// 2 processes, one halo round (n = 20, halo 10), f32.
// RUN: %python %S/gen_sharded_attention_test.py --b 1 --hq 2 --hkv 1 --n 40 --d 8 --dv 8 --bs 5 --ws 3 --dtype f32 --grid 2 --seq-axis 0 --kernel %t.k2.mlir --main %t.m2.mlir
// RUN: swba-opt %t.k2.mlir --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition),convert-shard-to-mpi,canonicalize,symbol-dce,%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.k2.o
// RUN: swba-opt %t.m2.mlir --pass-pipeline="builtin.module(%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.m2.o
// RUN: %mpicc %t.k2.o %t.m2.o -lmlir_c_runner_utils -lm -o %t.2.exe
// RUN: %mpirun -n 2 %t.2.exe | FileCheck %s --check-prefix=TWO
// TWO: out checked 640 mismatches 0 unsplit mismatches 0{{$}}
//
// 4 processes, shards (8 tokens) shorter than the halo (14): two rounds, the
// third process's halo spans two processes; GQA, f16.
// RUN: %python %S/gen_sharded_attention_test.py --b 1 --hq 4 --hkv 2 --n 32 --d 8 --dv 8 --bs 2 --ws 8 --dtype f16 --grid 4 --seq-axis 0 --kernel %t.k4.mlir --main %t.m4.mlir
// RUN: swba-opt %t.k4.mlir --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition),convert-shard-to-mpi,canonicalize,symbol-dce,%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.k4.o
// RUN: swba-opt %t.m4.mlir --pass-pipeline="builtin.module(%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.m4.o
// RUN: %mpicc %t.k4.o %t.m4.o -lmlir_c_runner_utils -lm -o %t.4.exe
// RUN: %mpirun -n 4 %t.4.exe | FileCheck %s --check-prefix=FOUR
// FOUR: out checked 1024 mismatches 0 unsplit mismatches 0{{$}}
//
// 4 processes on a 2x2 grid: heads over axis 0, the sequence over axis 1
// (halos between the processes of one row of the grid); bf16.
// RUN: %python %S/gen_sharded_attention_test.py --b 2 --hq 4 --hkv 2 --n 24 --d 8 --dv 8 --bs 4 --ws 3 --dtype bf16 --grid 2x2 --head-axis 0 --seq-axis 1 --kernel %t.kg.mlir --main %t.mg.mlir
// RUN: swba-opt %t.kg.mlir --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition),convert-shard-to-mpi,canonicalize,symbol-dce,%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.kg.o
// RUN: swba-opt %t.mg.mlir --pass-pipeline="builtin.module(%swba_mpi_to_llvm)" | mlir-translate --mlir-to-llvmir | llc -O2 -filetype=obj -relocation-model=pic -o %t.mg.o
// RUN: %mpicc %t.kg.o %t.mg.o -lmlir_c_runner_utils -lm -o %t.g.exe
// RUN: %mpirun -n 4 %t.g.exe | FileCheck %s --check-prefix=GRID
// GRID: out checked 1536 mismatches 0 unsplit mismatches 0{{$}}
