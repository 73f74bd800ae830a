"""Reference solutions to the Stable Diffusion lessons' exercises (18 UNet, 19 cross-attention,
20 latent space, 21 guidance).

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


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) of each example, (B,): summed over all other axes,

        KL = ½ Σ_i (μ_i² + σ_i² − 1 − log σ_i²),   σ_i² = exp(logvar_i)
    """
    return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """A draw z ~ N(μ, diag σ²) written as z = μ + σ ⊙ ε, σ = exp(½ logvar), from ε ~ N(0, I)."""
    return mean + torch.exp(0.5 * logvar) * eps


def guided_eps(model, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
               uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance with ONE forward pass on the doubled batch [uncond; cond]."""
    pred = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond]))  # (2B, ...)
    eps_uncond, eps_cond = pred.chunk(2)
    return eps_uncond + w * (eps_cond - eps_uncond)
