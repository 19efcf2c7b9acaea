// The pipelines check every option before building: an unknown or older
// chip, a PTX version the chip does not know, a format, an opt-level out of
// range or an option of the wrong pipeline is an error naming it, never a
// crash or an LLVM ERROR.
// RUN: not swba-opt %s --swba-to-nvvm="chip= format=isa" 2>&1 | FileCheck %s --check-prefix=NOCHIP
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_75 format=isa" 2>&1 | FileCheck %s --check-prefix=OLDCHIP
// RUN: not swba-opt %s --pass-pipeline="builtin.module(swba-to-nvvm{chip=sm_70})" 2>&1 | FileCheck %s --check-prefix=OLDCHIP70
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_100 ptx=ptx80 format=isa" 2>&1 | FileCheck %s --check-prefix=OLDPTX
// RUN: not swba-opt %s --swba-to-nvvm="ptx=ptx99 format=isa" 2>&1 | FileCheck %s --check-prefix=BADPTX
// RUN: not swba-opt %s --swba-to-nvvm="format=llvm" 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not swba-opt %s --swba-to-nvvm="opt-level=2147483648 format=isa" 2>&1 | FileCheck %s --check-prefix=OPT
// RUN: not swba-opt %s --swba-to-nvvm="stages=4611686018427387904 format=isa" 2>&1 | FileCheck %s --check-prefix=STAGES
// RUN: not swba-opt %s --swba-to-nvvm="tile-q=8" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// Every kernel option of --lower-swba reaches it through --swba-to-nvvm
// (SWBA_GPU_KERNEL_OPTIONS): a bad value of each is its error.
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa consumers=9" 2>&1 | FileCheck %s --check-prefix=FWD0
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa block-n=7" 2>&1 | FileCheck %s --check-prefix=FWD1
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-stages=17" 2>&1 | FileCheck %s --check-prefix=FWD2
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-key-stages=17" 2>&1 | FileCheck %s --check-prefix=FWD3
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa workgroups-per-sm=5" 2>&1 | FileCheck %s --check-prefix=FWD4
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa tile-scheduler=ring" 2>&1 | FileCheck %s --check-prefix=FWD5
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa ping-pong=maybe" 2>&1 | FileCheck %s --check-prefix=FWD6
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa split-kv=100000" 2>&1 | FileCheck %s --check-prefix=FWD7
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-key-tile=7" 2>&1 | FileCheck %s --check-prefix=FWD8
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-query-tile=7" 2>&1 | FileCheck %s --check-prefix=FWD9
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-q-consumers=4" 2>&1 | FileCheck %s --check-prefix=FWD10
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-kv-consumers=3" 2>&1 | FileCheck %s --check-prefix=FWD11
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-kv-tiles=17" 2>&1 | FileCheck %s --check-prefix=FWD12
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-fused-dq=yes" 2>&1 | FileCheck %s --check-prefix=FWD13
// RUN: not swba-opt %s --swba-to-nvvm="chip=sm_90a format=isa grad-dq-delta=yes" 2>&1 | FileCheck %s --check-prefix=FWD14
// RUN: not swba-opt %s --swba-to-llvm="tile-q=0" 2>&1 | FileCheck %s --check-prefix=TILE

// NOCHIP: error: --swba-to-nvvm: unsupported chip '' (supported: sm_80, {{.*}})
// OLDCHIP: error: --swba-to-nvvm: unsupported chip 'sm_75' (supported: sm_80, {{.*}})
// OLDCHIP70: error: --swba-to-nvvm: unsupported chip 'sm_70' (supported: sm_80, {{.*}})
// OLDPTX: error: --swba-to-nvvm: sm_100 needs ptx86 or later, got ptx80
// BADPTX: error: --swba-to-nvvm: unknown PTX ISA version 'ptx99' (expected ptx70 .. ptx90)
// FORMAT: error: --swba-to-nvvm: unsupported format 'llvm' (supported: 'bin', 'isa', 'fatbin')
// OPT: error: --swba-to-nvvm: opt-level must be in [0, 3], got 2147483648
// STAGES: error: --swba-to-nvvm: stages, grad-stages and grad-key-stages must be in [0, 16], got stages=4611686018427387904 grad-stages=0 grad-key-stages=0
// UNKNOWN: error: --swba-to-nvvm: cannot parse the options 'tile-q=8'
// TILE: error: --swba-to-llvm: tile-q and tile-k must be in [1, 256], got tile-q=0 tile-k=16
// FWD0: error: --swba-to-nvvm: consumers must be 0, 1, 2 or 3, got 9
// FWD1: error: --swba-to-nvvm: block-n must be 0 or a multiple of 64 up to 256, got 7
// FWD2: error: --swba-to-nvvm: stages, grad-stages and grad-key-stages must be in [0, 16], got stages=0 grad-stages=17 grad-key-stages=0
// FWD3: error: --swba-to-nvvm: stages, grad-stages and grad-key-stages must be in [0, 16], got stages=0 grad-stages=0 grad-key-stages=17
// FWD4: error: --swba-to-nvvm: workgroups-per-sm must be 0, 1, 2 or 3, got 5
// FWD5: error: --swba-to-nvvm: tile-scheduler must be empty, 'grid' or 'persistent', got 'ring'
// FWD6: error: --swba-to-nvvm: ping-pong must be empty, 'true' or 'false', got 'maybe'
// FWD7: error: --swba-to-nvvm: split-kv must be in [0, 1024], got 100000
// FWD8: error: --swba-to-nvvm: grad-key-tile and grad-query-tile must be 0, 32, 64 or 128, got 7
// FWD9: error: --swba-to-nvvm: grad-key-tile and grad-query-tile must be 0, 32, 64 or 128, got 7
// FWD10: error: --swba-to-nvvm: grad-q-consumers must be 0, 1, 2 or 3, got 4
// FWD11: error: --swba-to-nvvm: grad-kv-consumers must be 0, 1 or 2, got 3
// FWD12: error: --swba-to-nvvm: grad-kv-tiles must be in [0, 16], got 17
// FWD13: error: --swba-to-nvvm: grad-fused-dq must be empty, 'true' or 'false', got 'yes'
// FWD14: error: --swba-to-nvvm: grad-dq-delta must be empty, 'true' or 'false', got 'yes'

// Chips after Hopper get the mma.sync kernels in the first PTX version that
// knows them; the default chip is sm_80 with PTX 8.0.
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_100 format=isa" | FileCheck %s --check-prefix=SM100
// RUN: swba-opt %s --swba-to-nvvm="chip=sm_120a format=isa" | FileCheck %s --check-prefix=SM120A
// RUN: swba-opt %s --swba-to-nvvm="format=isa" | FileCheck %s --check-prefix=DEFAULT
// SM100: gpu.binary @swba_attention_kernels
// SM100-SAME: .version 8.6
// SM100-SAME: .target sm_100
// SM100-SAME: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM120A: .version 8.7
// SM120A-SAME: .target sm_120a
// DEFAULT: .version 8.0
// DEFAULT-SAME: .target sm_80
// DEFAULT-SAME: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32

func.func @attention(%q: tensor<1x2x64x64xf16>, %o: tensor<1x2x64x64xf16>) -> tensor<1x2x64x64xf16> {
  %r = swba.attention ins(%q, %q, %q : tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>)
                      outs(%o : tensor<1x2x64x64xf16>) block_size = 16 window = 2 -> tensor<1x2x64x64xf16>
  return %r : tensor<1x2x64x64xf16>
}
