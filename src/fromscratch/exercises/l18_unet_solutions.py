"""Reference solution to lesson 18's exercise (the UNet).

Try the exercise first; `fromscratch lessons solution timestep_embedding` prints it.
"""

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (B,) into (B, dim), dim even, cosines first:

        ω_k = 10000^(−k / half),  k = 0 .. half − 1,  half = dim / 2
        emb(t) = [cos(ω_0 t), ..., cos(ω_{half−1} t), sin(ω_0 t), ..., sin(ω_{half−1} t)]
    """
    half = dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * omega[None, :]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
