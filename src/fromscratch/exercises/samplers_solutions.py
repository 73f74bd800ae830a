"""Reference solutions to the sampler lessons' exercises (14 reversing diffusion, 16 samplers).

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Notation as in fromscratch.diffusion.sde: x_t = alpha·x0 + sigma·eps.
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


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_t: float, sigma_t: float,
              alpha_s: float, sigma_s: float) -> torch.Tensor:
    """One deterministic DDIM step (η = 0), noise level (alpha_t, sigma_t) → (alpha_s, sigma_s).

        x̂0 = (x_t − sigma_t · ε̂) / alpha_t          (what the predicted noise says x0 is)
        x_s = alpha_s · x̂0 + sigma_s · ε̂             (the same x̂0 and ε̂, at the new level)
    """
    x0 = (x_t - sigma_t * eps) / alpha_t
    return alpha_s * x0 + sigma_s * eps
