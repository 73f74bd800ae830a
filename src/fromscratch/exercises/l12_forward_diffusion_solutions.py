"""Reference solution to lesson 12's exercise (forward diffusion).

Try the exercise first; `fromscratch lessons solution vp_sigma` prints it. Notation as in
fromscratch.diffusion: x_t = alpha(t)·x0 + sigma(t)·eps.
"""

import torch


def vp_sigma(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    """The VP SDE's marginal std: sigma(t) = √(1 − exp(−B(t))), B(t) = ∫₀ᵗ β(s) ds.

    >>> vp_sigma(torch.tensor([0.0]), 0.1, 20.0)
    tensor([0.])
    """
    integrated_beta = beta_min * t + 0.5 * (beta_max - beta_min) * t**2  # B(t)
    return torch.sqrt(1 - torch.exp(-integrated_beta))
