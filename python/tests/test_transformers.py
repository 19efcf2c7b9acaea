"""transformers' sliding-window models under `swba.backend` (skipped where
transformers is not installed; it is no dependency of the project): tiny
Mistral, Qwen2, Gemma 3 and Gemma 2 models, whose layers build their masks
with vmap over mask functions (`create_sliding_window_causal_mask`,
transformers 4.5x) and attend through the eager or SDPA implementation,
are raised in every layer, with static and then symbolic lengths, and
their logits match eager's. Gemma 2's eager attention caps its scores with
tanh, which the op does not compute: left alone. CPU only."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402

pytestmark = pytest.mark.cpu

SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)

MODELS = [
    # (name, config, model, extra config, attention implementation, windows of the
    # two layers at 24 tokens, then at 40, or None: left alone)
    ("mistral-eager", "MistralConfig", "MistralForCausalLM", dict(sliding_window=8), "eager",
     [8, 8], [8, 8]),
    ("mistral-sdpa", "MistralConfig", "MistralForCausalLM", dict(sliding_window=8), "sdpa",
     [8, 8], [8, 8]),
    ("qwen2-sdpa", "Qwen2Config", "Qwen2ForCausalLM",
     dict(use_sliding_window=True, sliding_window=8, max_window_layers=0), "sdpa", [8, 8], [8, 8]),
    ("gemma3-eager", "Gemma3TextConfig", "Gemma3ForCausalLM",
     dict(sliding_window=8, head_dim=16, query_pre_attn_scalar=16), "eager", [8, 8], [8, 8]),
    # A local and a global layer: the global one is causal, a window of every frame.
    ("gemma2-sdpa", "Gemma2Config", "Gemma2ForCausalLM",
     dict(sliding_window=8, head_dim=16, query_pre_attn_scalar=16), "sdpa", [8, 24], [8, 40]),
    ("gemma2-eager-softcapped", "Gemma2Config", "Gemma2ForCausalLM",
     dict(sliding_window=8, head_dim=16, query_pre_attn_scalar=16), "eager", None, None),
]


@pytest.mark.parametrize("name, config, model, extra, impl, static, symbolic", MODELS,
                         ids=[m[0] for m in MODELS])
def test_sliding_window_models_raised(name, config, model, extra, impl, static, symbolic):
    if not hasattr(transformers, model):
        pytest.skip(f"transformers {transformers.__version__} has no {model}")
    cfg = getattr(transformers, config)(**SMALL, **extra)
    cfg._attn_implementation = impl
    torch.manual_seed(0)
    net = getattr(transformers, model)(cfg).eval()
    decisions = []

    def backend(gm, example_inputs):
        decisions.extend(raising.raise_attention(gm, example_inputs))
        from torch._dynamo import lookup_backend
        return lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(net, backend=backend)
    for n in (24, 40, 13):  # the second length makes it symbolic
        ids = torch.randint(0, 128, (1, n))
        with torch.no_grad():
            got = compiled(ids, use_cache=False).logits
            want = net(ids, use_cache=False).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if static is None:
        assert decisions and not any(d.raised for d in decisions), decisions
        return
    want = [(True, False, 1, w) for w in static] + [(True, True, 1, w) for w in symbolic]
    assert [(d.raised, d.dynamic, d.block_size, d.window) for d in decisions] == want, decisions
