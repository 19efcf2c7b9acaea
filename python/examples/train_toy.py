"""A few optimizer steps of a toy autoregressive video transformer layer
(frames of tokens, sliding window block attention, MLP), once with
SWBA-MLIR's `attention` and once with the naive masked reference; the losses
must match. Usage: python3 examples/train_toy.py (needs a CUDA device)."""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from swba import attention  # noqa: E402

B, FRAMES, TOKENS, DIM, HEADS, WINDOW = 2, 6, 64, 256, 4, 3


def naive(q, k, v, bs, ws, scale):
    n = q.shape[2]
    f = torch.arange(n, device=q.device) // bs
    visible = (f[None, :] <= f[:, None]) & (f[:, None] - f[None, :] < ws)
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    s = s.masked_fill(~visible, float("-inf"))
    return (torch.softmax(s, -1) @ v.float()).to(q.dtype)


class Layer(torch.nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.attn = attn
        self.norm1 = torch.nn.LayerNorm(DIM)
        self.qkv = torch.nn.Linear(DIM, 3 * DIM)
        self.proj = torch.nn.Linear(DIM, DIM)
        self.norm2 = torch.nn.LayerNorm(DIM)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, 4 * DIM), torch.nn.GELU(),
                                       torch.nn.Linear(4 * DIM, DIM))
        self.head = torch.nn.Linear(DIM, DIM)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        a = self.attn(q, k, v, TOKENS, WINDOW, 1 / math.sqrt(DIM // HEADS))
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, DIM))
        x = x + self.mlp(self.norm2(x))
        return self.head(x)


def train(attn, steps=5):
    torch.manual_seed(0)
    model = Layer(attn).cuda().half()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    gen = torch.Generator(device="cuda").manual_seed(1)
    video = torch.randn(B, (FRAMES + 1) * TOKENS, DIM, device="cuda", generator=gen).half()
    losses = []
    for _ in range(steps):
        # Predict each frame's tokens from the frames up to it.
        pred = model(video[:, :-TOKENS])
        loss = F.mse_loss(pred.float(), video[:, TOKENS:].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    ours, ref = train(attention), train(naive)
    print("step  swba-mlir   naive")
    for i, (a, b) in enumerate(zip(ours, ref)):
        print(f"{i:4d}  {a:.6f}  {b:.6f}")
    return ours, ref


if __name__ == "__main__":
    main()
