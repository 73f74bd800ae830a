"""Reference solutions to lesson 20's exercises (the latent space): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
"""

import torch


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) of each example, (B,): summed over all other axes,

        KL = ½ Σ_i (μ_i² + σ_i² − 1 − log σ_i²),   σ_i² = exp(logvar_i)
    """
    return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """A draw z ~ N(μ, diag σ²) written as z = μ + σ ⊙ ε, σ = exp(½ logvar), from ε ~ N(0, I)."""
    return mean + torch.exp(0.5 * logvar) * eps
