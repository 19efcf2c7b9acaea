"""swba.halo without torch: where a sequence split across ranks puts each
rank's pieces, and the kernel configurations those pieces ask for."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import compiler, halo  # noqa: E402


def test_pieces_and_their_padded_rows():
    # bs 128, window 3: a shard starting at 100 needs keys from 0; its
    # queries from 384 (frame 3) need only its own keys.
    first = halo.layout([100, 412], 0, 128, 3)
    assert first.pieces() == (None, [(0, 100)])
    assert first.keys_for(0, 100) == (0, 128)
    assert first.padded_queries(0, 100) == 128  # zero rows to the frame's end
    assert first.transfers(1, 0) == (100, 128)  # the rest of its frame
    second = halo.layout([100, 412], 1, 128, 3)
    assert second.pieces() == ((384, 512), [(100, 384)])
    assert second.padded_queries(100, 384) == 284
    assert second.padded_queries(384, 512) == 128
    assert second.transfers(0, 1) == (0, 100)
    # The interior ends at the last whole frame; the tail's 9 queries see
    # keys up to the sequence's end.
    tail = halo.layout([700, 333], 1, 128, 3)
    assert tail.pieces() == ((1024, 1033), [(700, 1024)])
    assert tail.padded_queries(1024, 1033) == 9


def test_kernel_configs_follow_the_pieces():
    configs = halo.kernel_configs([700, 333], 8, 2, 128, 128, 3, dtype="bf16")
    forward = {c.options for c in configs if not c.grad}
    # The 9-query piece (4 query heads a kv head: 36 rows) runs on the
    # decode kernel; the others on the plain or split-KV forward.
    assert forward == {"", "split-kv=1", "decode=true"}
    assert [c.options for c in configs if c.grad] == [""]
    assert {(c.dtype, c.head_dim, c.block_size, c.window, c.chip) for c in configs} == {
        ("bf16", 128, 128, 3, "sm_90a")}
    # One GPU with the whole sequence: no decode-sized piece.
    whole = halo.kernel_configs([1033], 8, 2, 128, 128, 3, dtype="bf16")
    assert {c.options for c in whole if not c.grad} == {"", "split-kv=1"}
    # A given scale reaches every kernel.
    scaled = halo.kernel_configs([8, 8], 2, 2, 64, 4, 3, dtype="f16", scale=0.4)
    assert {c.scale for c in scaled} == {0.4}
    assert compiler.KernelConfig("f16", 64, 64, 4, 3, 0.4, chip="sm_90a", grad=True) in scaled


def test_layout_rejects_bad_lengths():
    with pytest.raises(ValueError, match="at least one token"):
        halo.layout([4, 0], 0, 4, 2)
    with pytest.raises(ValueError, match="at least one token"):
        halo.layout([], 0, 4, 2)
    with pytest.raises(ValueError, match="rank 2 is not one of the 2 ranks"):
        halo.layout([4, 4], 2, 4, 2)
    with pytest.raises(ValueError, match="block_size and window"):
        halo.kernel_configs([4, 4], 2, 2, 64, 0, 2)
