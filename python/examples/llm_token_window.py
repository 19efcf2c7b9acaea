"""A decoder layer with sliding window attention over tokens (each token
sees the 1024 tokens up to it: block_size 1, window 1024), written with
`F.scaled_dot_product_attention` and a boolean mask, with grouped-query
attention. Compiled with `backend=swba.backend`, the attention runs on
SWBA-MLIR's kernels; the layer could also call `swba.attention(q, k, v,
block_size=1, window=1024)` itself (the third line below). Prints the
forward+backward time of eager PyTorch, plain torch.compile, the swba
backend and the direct call, and checks the outputs agree.

Usage: python llm_token_window.py  (a CUDA GPU; see video_training_step.py
for kernels without MLIR).
"""

import time

import torch
import torch.nn.functional as F

import swba

SEQ, WINDOW = 8192, 1024
DIM, HEADS, KV_HEADS, HEAD_DIM, BATCH = 4096, 32, 8, 128, 1


class DecoderLayer(torch.nn.Module):
    def __init__(self, direct=False):
        super().__init__()
        self.direct = direct
        self.norm1 = torch.nn.RMSNorm(DIM)
        self.q = torch.nn.Linear(DIM, HEADS * HEAD_DIM, bias=False)
        self.kv = torch.nn.Linear(DIM, 2 * KV_HEADS * HEAD_DIM, bias=False)
        self.o = torch.nn.Linear(HEADS * HEAD_DIM, DIM, bias=False)
        self.norm2 = torch.nn.RMSNorm(DIM)
        self.up = torch.nn.Linear(DIM, 2 * 4 * DIM, bias=False)
        self.down = torch.nn.Linear(4 * DIM, DIM, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        h = self.norm1(x)
        q = self.q(h).view(b, n, HEADS, HEAD_DIM).transpose(1, 2)
        k, v = self.kv(h).view(b, n, 2, KV_HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
        if self.direct:
            a = swba.attention(q, k, v, block_size=1, window=WINDOW)
        else:
            pos = torch.arange(n, device=x.device)
            mask = (pos[None, :] <= pos[:, None]) & (pos[:, None] - pos[None, :] < WINDOW)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, HEADS * HEAD_DIM))
        gate, up = self.up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def timed(model, x, dout, steps=10):
    """(ms per forward+backward, the output)."""
    def step():
        x.grad = None
        out = model(x)
        out.backward(dout)
        return out
    for _ in range(3):
        out = step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1e3, out.detach()


def main():
    torch.manual_seed(0)
    base = DecoderLayer().cuda().bfloat16()
    x = torch.randn(BATCH, SEQ, DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dout = torch.randn_like(x)

    def fresh(direct=False):
        m = DecoderLayer(direct).cuda().bfloat16()
        m.load_state_dict(base.state_dict())
        return m

    eager_ms, want = timed(fresh(), x, dout)
    inductor_ms, _ = timed(torch.compile(fresh(), dynamic=False), x, dout)
    swba_ms, got = timed(torch.compile(fresh(), backend=swba.backend, dynamic=False), x, dout)
    direct_ms, direct = timed(torch.compile(fresh(direct=True), fullgraph=True), x, dout)
    print(f"decoder layer, {SEQ} tokens, token window {WINDOW}, {HEADS}/{KV_HEADS} heads of "
          f"{HEAD_DIM}, bf16, forward+backward:")
    print(f"  eager (SDPA + mask)               {eager_ms:8.2f} ms")
    print(f"  torch.compile (Inductor)          {inductor_ms:8.2f} ms  {eager_ms / inductor_ms:5.2f}x")
    print(f"  torch.compile(backend=swba)       {swba_ms:8.2f} ms  {eager_ms / swba_ms:5.2f}x")
    print(f"  torch.compile, swba.attention     {direct_ms:8.2f} ms  {eager_ms / direct_ms:5.2f}x")
    for name, out in (("swba backend", got), ("swba.attention", direct)):
        err = ((out.float() - want.float()).norm() / want.float().norm()).item()
        print(f"  relative error of {name} vs eager: {err:.2e}")
        assert err < 2e-2, f"{name} differs from eager"


if __name__ == "__main__":
    main()
