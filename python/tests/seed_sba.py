"""The seed's naive SBA function, as written there (shared/seed.md): the
form a user already has in a model, which the raising backend must find."""

import torch


def seed_sba(q, k, v, bs, ws, sm_scale):
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
