"""A transformers model with sliding-window layers (Mistral-class: a
window of 4096 tokens, 32 query / 8 kv heads, head dim 128; or Gemma
3-class: a window of 1024, 8 / 4 heads, head dim 256), bf16, at prefill:
eager, Inductor
(`torch.compile(model)`) and `torch.compile(model, backend=swba.backend)`,
forward ms at each length (weights random; transformers from PyPI, no
dependency of the project). The swba graph's logits are compared with
eager's; the last length runs on the graph that the earlier lengths made
symbolic."""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import raising  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--impl", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--model", default="mistral", choices=["mistral", "gemma3"])
    args = parser.parse_args()
    import transformers
    from triton.testing import do_bench
    if args.model == "mistral":  # Mistral 7B's attention and MLP shapes
        config = transformers.MistralConfig(
            vocab_size=1024, hidden_size=4096, intermediate_size=14336,
            num_hidden_layers=args.layers, num_attention_heads=32, num_key_value_heads=8,
            head_dim=128, sliding_window=4096, max_position_embeddings=65536)
        net = transformers.MistralForCausalLM
    else:  # Gemma 3 4B's local layers: head dim 256, a window of 1024
        config = transformers.Gemma3TextConfig(
            vocab_size=1024, hidden_size=2560, intermediate_size=10240,
            num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4,
            head_dim=256, query_pre_attn_scalar=256, sliding_window=1024,
            max_position_embeddings=65536)
        net = transformers.Gemma3ForCausalLM
    config._attn_implementation = args.impl
    torch.manual_seed(0)
    model = net(config).cuda().to(torch.bfloat16).eval()
    torch._dynamo.reset()
    torch._dynamo.config.cache_size_limit = 64
    inductor = torch.compile(model)
    decisions = []

    def backend(gm, example_inputs):  # swba.backend, keeping its decisions
        decisions.extend(raising.raise_attention(gm, example_inputs))
        from torch._inductor.compile_fx import compile_fx
        return compile_fx(gm, example_inputs)

    ours = torch.compile(model, backend=backend)
    rows = []
    for n in args.lengths:
        ids = torch.randint(0, 1024, (1, n), device="cuda")
        with torch.no_grad():
            want = model(ids, use_cache=False).logits.float()
            got = ours(ids, use_cache=False).logits.float()
            err = ((got - want).abs().max() / want.abs().max()).item()
            times = [do_bench(lambda f=f: f(ids, use_cache=False), warmup=3, rep=200)
                     for f in (model, inductor, ours)]
        rows.append((n, *times, err))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}, {args.model}, attn {args.impl}, "
          f"{args.layers} layers; raised "
          f"(static, symbolic): {sum(d.raised and not d.dynamic for d in decisions)}, "
          f"{sum(d.raised and d.dynamic for d in decisions)} of {len(decisions)}")
    print(f"{'N':>6} {'eager ms':>9} {'inductor ms':>12} {'swba ms':>8} {'vs eager':>9} "
          f"{'vs inductor':>12} {'max |d| / max':>14}")
    for n, e, i, s, err in rows:
        print(f"{n:>6} {e:>9.2f} {i:>12.2f} {s:>8.2f} {e / s:>8.2f}x {i / s:>11.2f}x "
              f"{err:>14.2e}")


if __name__ == "__main__":
    main()
