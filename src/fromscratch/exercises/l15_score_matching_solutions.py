"""Reference solution to lesson 15's exercise (score matching).

Try the exercise first; `fromscratch lessons solution dsm_loss` prints it.
Shapes: batch B, dimension D.
"""

import torch


def dsm_loss(score: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Denoising score matching with λ = sigma²: mean of ‖sigma·s + eps‖² = σ²‖s − (−eps/σ)‖².

    score, eps (B, D); sigma (B,); returns a scalar (mean over every element).
    """
    return ((sigma[:, None] * score + eps) ** 2).mean()
