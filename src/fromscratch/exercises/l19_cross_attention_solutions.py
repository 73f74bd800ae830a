"""Reference solution to lesson 19's exercise (cross-attention and guidance).

Try the exercise first; `fromscratch lessons solution cfg_combine` prints it.
"""

import torch


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: ε̃ = ε_u + w (ε_c − ε_u) (w = 0 unconditional, 1 conditional)."""
    return eps_uncond + w * (eps_cond - eps_uncond)
