"""Reference solutions to the Stable Diffusion lessons' exercises (18 UNet, 19 cross-attention).

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
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


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: ε̃ = ε_u + w (ε_c − ε_u) (w = 0 unconditional, 1 conditional)."""
    return eps_uncond + w * (eps_cond - eps_uncond)
