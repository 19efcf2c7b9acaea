"""A training step of a video transformer layer whose attention is the
naive sliding window block attention (the SBA function below, as it is
commonly written: a dense mask added to the scores), compiled with
`backend=swba.backend`: the backend proves the mask is a block window and
runs the layer's attention on SWBA-MLIR's kernels, forward and backward.
Prints the step time of eager PyTorch, of plain torch.compile and of the
swba backend, and checks the losses agree.

Usage: python video_training_step.py  (a CUDA GPU; swba installed, or
python/ on PYTHONPATH; without MLIR, SWBA_KERNEL_BUNDLE names a bundle
built by `swba-compile --config-file python/tests/gpu_torch_kernels.json`).
"""

import math
import time

import torch
import torch.nn.functional as F

import swba

FRAMES, TOKENS, WINDOW = 16, 256, 4        # 4096 tokens, each frame sees 4 frames
DIM, HEADS, BATCH = 768, 12, 1


def SBA(q, k, v, bs, ws, sm_scale):
    B, NH, N, DH = q.size()
    NB = N // bs
    mask = torch.triu(torch.ones((NB, NB), device=q.device), diagonal=1) + \
        torch.tril(torch.ones((NB, NB), device=q.device), diagonal=-ws)
    mask = torch.masked_fill(mask, mask == 1.0, float('-inf'))
    mask = mask.repeat_interleave(bs, 0)
    mask = mask.repeat_interleave(bs, 1)
    mask = mask.unsqueeze(0).unsqueeze(0)
    attn = (q @ k.transpose(-2, -1)) * sm_scale
    attn = attn + mask.to(attn.dtype)
    attn = attn.softmax(dim=-1)
    return attn @ v


class VideoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(DIM)
        self.qkv = torch.nn.Linear(DIM, 3 * DIM)
        self.proj = torch.nn.Linear(DIM, DIM)
        self.norm2 = torch.nn.LayerNorm(DIM)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, 4 * DIM), torch.nn.GELU(),
                                       torch.nn.Linear(4 * DIM, DIM))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        a = SBA(q, k, v, TOKENS, WINDOW, 1 / math.sqrt(DIM // HEADS))
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, DIM))
        return x + self.mlp(self.norm2(x))


def step_time(model, video, steps=20):
    """(ms per training step, losses of the first steps)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = []

    def step():
        pred = model(video[:, :-TOKENS])   # predict each frame from the ones before
        loss = F.mse_loss(pred.float(), video[:, TOKENS:].float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):                      # compiles, warms up
        losses.append(step().item())
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1e3, losses


def main():
    torch.manual_seed(0)
    base = VideoLayer().cuda().half()
    video = torch.randn(BATCH, (FRAMES + 1) * TOKENS, DIM, device="cuda").half()

    def fresh():
        m = VideoLayer().cuda().half()
        m.load_state_dict(base.state_dict())
        return m

    eager_ms, eager_losses = step_time(fresh(), video)
    inductor_ms, _ = step_time(torch.compile(fresh(), dynamic=False), video)
    swba_ms, swba_losses = step_time(torch.compile(fresh(), backend=swba.backend,
                                                   dynamic=False), video)
    print(f"video layer, {FRAMES} frames x {TOKENS} tokens, window {WINDOW} frames, "
          f"{HEADS} heads of {DIM // HEADS}, fp16, one training step:")
    print(f"  eager (naive SBA)              {eager_ms:8.2f} ms")
    print(f"  torch.compile (Inductor)       {inductor_ms:8.2f} ms  {eager_ms / inductor_ms:5.2f}x")
    print(f"  torch.compile(backend=swba)    {swba_ms:8.2f} ms  {eager_ms / swba_ms:5.2f}x")
    print("  losses, eager vs swba (first steps): " + ", ".join(
        f"{a:.5f}/{b:.5f}" for a, b in zip(eager_losses, swba_losses)))
    for a, b in zip(eager_losses, swba_losses):
        assert abs(a - b) <= 5e-3 * abs(a), "the swba backend's losses differ from eager's"


if __name__ == "__main__":
    main()
