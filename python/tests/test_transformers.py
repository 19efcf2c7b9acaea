"""transformers' sliding-window models under `swba.backend` (skipped where
transformers is not installed; it is no dependency of the project): a tiny
Mistral, whose layers build their masks with `create_sliding_window_causal_mask`
(vmap over a mask function) and attend through its eager or SDPA
implementation, is raised in every layer, with static and with symbolic
lengths, and its logits match eager's. CPU only."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402

pytestmark = pytest.mark.cpu


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_mistral_sliding_window_raised(impl):
    config = transformers.MistralConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=8,
        max_position_embeddings=256)
    config._attn_implementation = impl
    torch.manual_seed(0)
    model = transformers.MistralForCausalLM(config).eval()
    decisions = []

    def backend(gm, example_inputs):
        decisions.extend(raising.raise_attention(gm, example_inputs))
        from torch._dynamo import lookup_backend
        return lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend)
    for n in (24, 40, 13):  # the second length makes it symbolic
        ids = torch.randint(0, 128, (1, n))
        with torch.no_grad():
            got = compiled(ids, use_cache=False).logits
            want = model(ids, use_cache=False).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert [(d.raised, d.dynamic, d.block_size, d.window) for d in decisions] == \
        [(True, False, 1, 8)] * 2 + [(True, True, 1, 8)] * 2, decisions
