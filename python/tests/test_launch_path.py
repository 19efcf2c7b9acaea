"""The Python runtime's launch path without a GPU: ops.attention_forward and
attention_backward on kernels that swba-opt compiles here, with torch and the
CUDA driver replaced by recorders (fake_gpu.py) in a process of its own. It
checks that what reaches cuLaunchKernel and cuTensorMapEncodeTiled is what
the lowering's tiling implies (grids, blocks, shared memory, boxes, the
backward's buffers, order and second stream, the split-KV forward's
buffers and grids), and that a repeated call
reuses its prepared parameters and tensor maps.
Runs under pytest or as a script (`SWBA_OPT` names the swba-opt to use)."""

import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), here]
from swba import compiler  # noqa: E402

B, HQ, HKV, NQ, NK = 2, 8, 2, 1000, 1100


def ceil(a, b):
    return -(-a // b)


def test_launch_path():
    if compiler.find_swba_opt() is None:
        import pytest
        pytest.skip("no swba-opt to compile with")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SWBA_KERNEL_DIR=tmp, SWBA_OPT=compiler.find_swba_opt())
        proc = subprocess.run([sys.executable, __file__, "--fake"], env=env,
                              capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.endswith("launch path ok\n"), \
        proc.stdout + proc.stderr


def _run(ops, torch, fake, chip, options, d):
    """(forward calls, backward calls, repeated backward calls)."""
    os.environ["SWBA_CHIP"], os.environ["SWBA_LOWER_OPTIONS"] = chip, options
    q = fake.Tensor((B, HQ, NQ, d), torch.bfloat16)
    k, v = (fake.Tensor((B, HKV, NK, d), torch.bfloat16) for _ in range(2))
    fake.calls.clear()
    out, lse = ops.attention_forward(q, k, v, 256, 4, 0.125)
    forward = list(fake.calls)
    dout = fake.Tensor(out.shape, torch.bfloat16)
    fake.calls.clear()
    ops.attention_backward(q, k, v, out, dout, lse, 256, 4, 0.125)
    backward = list(fake.calls)
    fake.calls.clear()
    ops.attention_backward(q, k, v, out, dout, lse, 256, 4, 0.125)
    return forward, backward, list(fake.calls)


def _launches(calls):
    return [c[1:] for c in calls if c[0] == "launch"]


def _maps(calls):
    """(dims, byte strides, box) of each tensor map encoded, innermost first."""
    return [c[3:6] for c in calls if c[0] == "tensor_map"]


def _streams(calls):
    """The launches and the event calls between them, in order."""
    return [c[0] if c[0] != "launch" else c[1] for c in calls
            if c[0] in ("launch", "event_record", "stream_wait")]


def _fake_main():
    import fake_gpu as fake
    torch = fake.install()
    from swba import ops
    main, side = fake.MAIN_STREAM, fake.SIDE_STREAM
    q_view, k_view = (64, NQ, B * HQ), (64, NK, B * HKV)
    q_steps, k_steps = (128, NQ * 128), (128, NK * 128)

    # sm_90a, head dim 64: three consumers (192 query rows, 512 threads),
    # persistent: a workgroup an SM (the device's 132), or one a query tile
    # where there are fewer (here 2 x 8 heads x 6), claiming query tiles from
    # a zeroed counter.
    forward, backward, again = _run(ops, torch, fake, "sm_90a", "", 64)
    (name, grid, block, smem, stream), = _launches(forward)
    assert (name, grid, block, stream) == ("swba_fwd", (B * HQ * ceil(NQ, 192), 1, 1),
                                           (512, 1, 1), main), _launches(forward)
    assert B * HQ * ceil(NQ, 192) < 132
    assert ("zeros", (1,), torch.int32) in forward, forward
    assert smem > 48 * 1024, smem
    # Opted in to its dynamic shared memory when the module was loaded.
    assert any(c[0] == "allow_shared" and c[1] == "swba_fwd" and c[3] == smem
               for c in forward), forward
    assert _maps(forward) == [(q_view, q_steps, (64, 192, 1)), (k_view, k_steps, (64, 128, 1)),
                              (k_view, k_steps, (64, 128, 1))], _maps(forward)
    # More query tiles than SMs: one workgroup an SM (the device's 132).
    big = fake.Tensor((2, 16, 4096, 64), torch.bfloat16)
    fake.calls.clear()
    ops.attention_forward(big, big, big, 256, 4, 0.125)
    assert [(n, g) for n, g, *_ in _launches(fake.calls)] == [("swba_fwd", (132, 1, 1))], \
        _launches(fake.calls)
    # The backward: delta into a buffer, then dK/dV (128 keys of the kv
    # heads) on the second stream at once with dQ (128 query rows); the new
    # maps are the 128-row Q and dO boxes (K and V are the forward's).
    assert ("empty", (B, HQ, NQ), torch.float32) in backward
    assert [(n, g, b[0], s) for n, g, b, _, s in _launches(backward)] == [
        ("swba_bwd_delta", (HQ, ceil(NQ, 32), B), 128, main),
        ("swba_bwd_dkdv", (HKV, ceil(NK, 128), B), 384, side),
        ("swba_bwd_dq", (HQ, ceil(NQ, 128), B), 384, main)], _launches(backward)
    assert _streams(backward) == ["swba_bwd_delta", "event_record", "stream_wait", "swba_bwd_dkdv",
                                  "swba_bwd_dq", "event_record", "stream_wait"], _streams(backward)
    records = [c for c in backward if c[0] in ("event_record", "stream_wait")]
    assert [c[1] for c in records] == [main, side, side, main], records
    assert _maps(backward) == [(q_view, q_steps, (64, 128, 1))] * 2, _maps(backward)
    # The same tensors again: the prepared parameters and maps are reused.
    assert _maps(again) == [] and _launches(again) == _launches(backward), again

    # The split-KV forward in 3 splits: f32 partial out and lse for the
    # B * HQ * NQ rows, the split kernel over (heads, query tiles, splits x
    # batch), then the combine kernel, 4 rows a workgroup.
    q, k, v = fake.Tensor((B, HQ, NQ, 64), torch.bfloat16), *(
        fake.Tensor((B, HKV, NK, 64), torch.bfloat16) for _ in range(2))
    fake.calls.clear()
    ops.attention_forward(q, k, v, 256, 4, 0.125, splits=3)
    assert ("empty", (3, B * HQ * NQ, 64), torch.float32) in fake.calls, fake.calls
    assert ("empty", (3, B * HQ * NQ), torch.float32) in fake.calls, fake.calls
    assert [(n, g, b[0]) for n, g, b, _, _ in _launches(fake.calls)] == [
        ("swba_fwd_split", (HQ, ceil(NQ, 192), 3 * B), 512),
        ("swba_split_combine", (ceil(B * HQ * NQ, 4), 1, 1), 128)], _launches(fake.calls)
    # Eagerly, plainly launched (in a CUDA graph the combine would start
    # while the split kernel ends).
    assert not any(c[0] == "early_start" for c in fake.calls), fake.calls
    # Picked by the runtime: 2 query heads of one 100-row tile against
    # 20000 keys leave most of the 132 SMs idle. A window of 16 frames of
    # 256 is 33 key tiles: they go to 33 workgroups each (one wave, the
    # least work a workgroup); a window of 4 frames is 9 tiles, too short a
    # loop to pay for the combine: one kernel.
    q, k, v = fake.Tensor((1, 2, 100, 64), torch.bfloat16), *(
        fake.Tensor((1, 1, 20000, 64), torch.bfloat16) for _ in range(2))
    fake.calls.clear()
    ops.attention_forward(q, k, v, 256, 16, 0.125)
    assert [(n, g) for n, g, *_ in _launches(fake.calls)] == [
        ("swba_fwd_split", (2, 1, 33)), ("swba_split_combine", (ceil(200, 4), 1, 1))], \
        _launches(fake.calls)
    fake.calls.clear()
    ops.attention_forward(q, k, v, 256, 4, 0.125)
    assert [(n, g) for n, g, *_ in _launches(fake.calls)] == [("swba_fwd", (2, 1, 1))], \
        _launches(fake.calls)

    # sm_90: the mma.sync kernels, 128 threads, 128 query rows (64 in the
    # backward), no tensor maps, no dynamic shared memory.
    forward, backward, _ = _run(ops, torch, fake, "sm_90", "", 64)
    assert _launches(forward) == [("swba_fwd", (HQ, ceil(NQ, 128), B), (128, 1, 1), 0, main)]
    assert _maps(forward) == [] and _maps(backward) == []
    assert [(n, g, s) for n, g, _, _, s in _launches(backward)] == [
        ("swba_bwd_delta", (HQ, ceil(NQ, 32), B), main),
        ("swba_bwd_dkdv", (HKV, ceil(NK, 64), B), side),
        ("swba_bwd_dq", (HQ, ceil(NQ, 64), B), main)], _launches(backward)

    # A decode step (Nq = 1, four query heads a kv head): the split-KV decode
    # kernel over (splits, Hkv, B) writing f32 partials [splits, B * Hq * 1(,
    # D)], then the split-KV forward's combine kernel, 4 rows a workgroup;
    # the split count is the runtime's (here forced).
    os.environ["SWBA_DECODE_SPLITS"] = "3"
    os.environ["SWBA_CHIP"], os.environ["SWBA_LOWER_OPTIONS"] = "sm_90a", ""
    q = fake.Tensor((B, HQ, 1, 64), torch.bfloat16)
    k, v = (fake.Tensor((B, HKV, NK, 64), torch.bfloat16) for _ in range(2))
    fake.calls.clear()
    ops.attention_forward(q, k, v, 256, 4, 0.125)
    assert [(n, g, b[0]) for n, g, b, _, _ in _launches(fake.calls)] == [
        ("swba_decode", (3, HKV, B), 128),
        ("swba_split_combine", (ceil(B * HQ, 4), 1, 1), 128)], _launches(fake.calls)
    # Captured, the combine starts while the decode kernel ends.
    fake.calls.clear()
    fake.capturing[0] = True
    ops.attention_forward(q, k, v, 256, 4, 0.125)
    fake.capturing[0] = False
    assert [c[1] for c in fake.calls if c[0] == "early_start"] == ["swba_split_combine"], \
        fake.calls
    assert ("empty", (3, B * HQ, 64), torch.float32) in fake.calls, fake.calls
    assert ("empty", (3, B * HQ), torch.float32) in fake.calls, fake.calls
    assert ops.plan_for(q, k, v, 256, 4, 0.125).split_count() == 3
    # A count given by the caller runs the same decode kernel in that many
    # splits (one split count path for the decode and split-KV forwards).
    fake.calls.clear()
    ops.attention_forward(q, k, v, 256, 4, 0.125, splits=2)
    assert [(n, g) for n, g, *_ in _launches(fake.calls)] == [
        ("swba_decode", (2, HKV, B)), ("swba_split_combine", (ceil(B * HQ, 4), 1, 1))], \
        _launches(fake.calls)
    del os.environ["SWBA_DECODE_SPLITS"]

    # sm_90a, head dim 64, a 128-token window: the dQ kernel writes delta,
    # then the dK/dV kernel (one consumer, 64 keys) on the same stream, up
    # to 16 key tiles a workgroup as the rule picks: 2 x 8 kv heads x 128
    # key tiles on 132 SMs at two workgroups each are eight tiles a
    # workgroup, 256 workgroups in one wave (four tiles would take two, 16
    # one wave of workgroups twice as long).
    # Captured in a CUDA graph, dK/dV is launched to start while dQ ends
    # (programmatic stream serialization); eagerly, or with
    # SWBA_EARLY_START=0, plainly.
    q, k, v = (fake.Tensor((2, 8, 8192, 64), torch.bfloat16) for _ in range(3))
    os.environ["SWBA_CHIP"], os.environ["SWBA_LOWER_OPTIONS"] = "sm_90a", ""
    out, lse = ops.attention_forward(q, k, v, 1, 128, 0.125)
    for early, capturing in (("1", True), ("1", False), ("0", True)):
        os.environ["SWBA_EARLY_START"] = early
        ops._plans.clear()
        fake.calls.clear()
        fake.capturing[0] = capturing
        ops.attention_backward(q, k, v, out, fake.Tensor(out.shape, torch.bfloat16), lse,
                               1, 128, 0.125)
        fake.capturing[0] = False
        assert [(n, g, s) for n, g, _, _, s in _launches(fake.calls)] == [
            ("swba_bwd_dq", (8, 128, 2), main), ("swba_bwd_dkdv", (8, 16, 2), main)], \
            _launches(fake.calls)
        assert [c[1] for c in fake.calls if c[0] == "early_start"] == \
            (["swba_bwd_dkdv"] if early == "1" and capturing else []), fake.calls
    del os.environ["SWBA_EARLY_START"]

    # sm_90a, head dim 128, grad-fused-dq: a zeroed f32 dq_accum, all on one
    # stream, its map in [64 rows][32 f32] boxes.
    forward, backward, _ = _run(ops, torch, fake, "sm_90a", "grad-fused-dq=true", 128)
    assert _launches(forward)[0][1:3] == ((HQ, ceil(NQ, 128), B), (384, 1, 1))
    assert ("zeros", (B, HQ, NQ, 128), torch.float32) in backward
    assert [(n, g, s) for n, g, _, _, s in _launches(backward)] == [
        ("swba_bwd_delta", (HQ, ceil(NQ, 32), B), main),
        ("swba_bwd_dkdvdq", (HKV, ceil(NK, 128), B), main),
        ("swba_bwd_dqconvert", (HQ, ceil(NQ, 32), B), main)], _launches(backward)
    assert not any(c[0] in ("event_record", "stream_wait") for c in backward)
    assert _maps(backward)[-1] == ((128, NQ, B * HQ), (512, NQ * 512), (32, 64, 1)), \
        _maps(backward)
    print("launch path ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--fake"]:
        _fake_main()
    else:
        import _runner
        _runner.run(globals())
