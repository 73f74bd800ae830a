"""Reference solution to lesson 21's exercise (guidance).

Try the exercise first; `fromscratch lessons solution guided_eps` prints it.
"""

import torch


def guided_eps(model, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
               uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance with ONE forward pass on the doubled batch [uncond; cond]."""
    pred = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond]))  # (2B, ...)
    eps_uncond, eps_cond = pred.chunk(2)
    return eps_uncond + w * (eps_cond - eps_uncond)
