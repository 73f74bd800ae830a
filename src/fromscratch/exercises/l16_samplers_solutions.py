"""Reference solution to lesson 16's exercise (samplers).

Try the exercise first; `fromscratch lessons solution ddim_step` prints it. Notation as in
fromscratch.diffusion.sde: x_t = alpha·x0 + sigma·eps.
"""

import torch


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_t: float, sigma_t: float,
              alpha_s: float, sigma_s: float) -> torch.Tensor:
    """One deterministic DDIM step (η = 0), noise level (alpha_t, sigma_t) → (alpha_s, sigma_s).

        x̂0 = (x_t − sigma_t · ε̂) / alpha_t          (what the predicted noise says x0 is)
        x_s = alpha_s · x̂0 + sigma_s · ε̂             (the same x̂0 and ε̂, at the new level)
    """
    x0 = (x_t - sigma_t * eps) / alpha_t
    return alpha_s * x0 + sigma_s * eps
