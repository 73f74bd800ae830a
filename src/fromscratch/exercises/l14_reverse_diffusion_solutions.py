"""Reference solution to lesson 14's exercise (reversing diffusion).

Try the exercise first; `fromscratch lessons solution euler_maruyama_step` prints it. Notation
as in fromscratch.diffusion.sde: x_t = alpha·x0 + sigma·eps.
"""

import math

import torch


def euler_maruyama_step(x: torch.Tensor, score: torch.Tensor, drift: torch.Tensor, g: float,
                        h: float, z: torch.Tensor) -> torch.Tensor:
    """One Euler–Maruyama step of the reverse-time SDE, from time t back to t − h (h > 0).

    dx = [f(x, t) − g(t)² ∇log p_t(x)] dt + g(t) dw̄, with dt = −h:
        x_{t−h} = x − [f(x, t) − g² · score] · h + g · √h · z

    drift = f(x, t) and score = ∇log p_t(x), both shaped like x; z ~ N(0, I) like x.
    """
    return x - (drift - g**2 * score) * h + g * math.sqrt(h) * z
