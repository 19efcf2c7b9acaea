// Two workgroups an SM for a narrow band at head dim 64 (withWindowTiling)
// only where both fit in shared memory: with 256-key tiles asked for
// (2 x 144 KiB) the band keeps one workgroup of three consumers, and 2
// workgroups asked for with tiles that do not fit are an error. Nor where a
// consumer's accumulator does not fit in the 80 registers a thread of two
// workgroups is launched with (ptxas refuses the wgmma): 128-key tiles
// keep one workgroup, and two asked for with them are an error.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=256" --canonicalize --cse | FileCheck %s
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=256 consumers=2 workgroups-per-sm=2" -verify-diagnostics
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=128" --canonicalize --cse | FileCheck %s --check-prefix=BN128
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=128 consumers=2 workgroups-per-sm=2" 2>&1 | FileCheck %s --check-prefix=REGS
// Three workgroups of one consumer: 64-key tiles fit (80 registers at
// launch, 136 a consumer), 128-key tiles do not.
// RUN: swba-opt %s --lower-swba="target=gpu chip=sm_90a consumers=1 workgroups-per-sm=3" --canonicalize --cse | FileCheck %s --check-prefix=THREE
// RUN: not swba-opt %s --lower-swba="target=gpu chip=sm_90a block-n=128 consumers=1 workgroups-per-sm=3" 2>&1 | FileCheck %s --check-prefix=REGS3

// THREE: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c256, %c1, %c1)
// THREE: nvvm.maxnreg = 80 : i32
// THREE: nvvm.setmaxregister  increase 136
// REGS3: error: 'swba.attention' op chip=sm_90a: workgroups-per-sm=3 with consumers=1 gives a thread 80 registers at launch, too few for a consumer's 64 x 128 f32 accumulator (block-n=128, value head dim 64); two or three workgroups an SM take block-n=64 at head dim 64
// BN128: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c512, %c1, %c1)
// BN128: nvvm.maxnreg = 128 : i32
// REGS: error: 'swba.attention' op chip=sm_90a: workgroups-per-sm=2 with consumers=2 gives a thread 80 registers at launch, too few for a consumer's 64 x 128 f32 accumulator (block-n=128, value head dim 64); two or three workgroups an SM take block-n=64 at head dim 64

// CHECK-LABEL: func @narrow_band_d64
// CHECK: nvgpu.tma.create.descriptor %{{.*}} box[%c1, %c192, %c64]
// CHECK: gpu.launch_func @swba_attention_kernels::@swba_fwd {{.*}} threads in (%c512, %c1, %c1)
// CHECK: nvvm.maxnreg = 128 : i32
// CHECK: nvvm.setmaxregister  increase 160
func.func @narrow_band_d64(%q: memref<?x64x?x64xbf16>, %k: memref<?x64x?x64xbf16>,
                           %v: memref<?x64x?x64xbf16>, %o: memref<?x64x?x64xbf16>) {
  // expected-error @+1 {{chip=sm_90a: block-n=256 stages=2 workgroups-per-sm=2 needs block-n a multiple of 64 up to 256, at least one stage, one to three workgroups an SM and at most 114944 bytes of shared memory a workgroup for Q and the K/V stages (this takes 147456)}}
  swba.attention ins(%q, %k, %v : memref<?x64x?x64xbf16>, memref<?x64x?x64xbf16>, memref<?x64x?x64xbf16>)
      outs(%o : memref<?x64x?x64xbf16>) block_size = 1 window = 128
  return
}
