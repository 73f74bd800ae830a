"""Reference solutions to the diffusion lessons' exercises, in the lessons' order.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these. Notation as in
fromscratch.diffusion: x_t = alpha(t)·x0 + sigma(t)·eps. Shapes: batch B, dimension D,
mixture components K.
"""

import torch


# 12 forward diffusion ----------------------------------------------------------------------
def vp_sigma(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    """The VP SDE's marginal std: sigma(t) = √(1 − exp(−B(t))), B(t) = ∫₀ᵗ β(s) ds.

    >>> vp_sigma(torch.tensor([0.0]), 0.1, 20.0)
    tensor([0.])
    """
    integrated_beta = beta_min * t + 0.5 * (beta_max - beta_min) * t**2  # B(t)
    return torch.sqrt(1 - torch.exp(-integrated_beta))


# 13 the score function ---------------------------------------------------------------------
def mixture_score(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                  var: float) -> torch.Tensor:
    """∇log p(x) for p = Σ_k w_k N(μ_k, var·I): Σ_k r_k(x) (μ_k − x)/var, r = posterior weights.

    x (B, D), weights (K,), means (K, D); returns (B, D).
    """
    sq_dist = ((x[:, None, :] - means[None, :, :]) ** 2).sum(-1)  # ‖x − μ_k‖², (B, K)
    log_joint = weights.log() - 0.5 * sq_dist / var  # log w_k N_k(x) + const, (B, K)
    r = torch.softmax(log_joint, dim=1)  # P(k | x), (B, K)
    pulls = (means[None, :, :] - x[:, None, :]) / var  # each component's score, (B, K, D)
    return (r[:, :, None] * pulls).sum(1)


# 15 score matching -------------------------------------------------------------------------
def dsm_loss(score: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Denoising score matching with λ = sigma²: mean of ‖sigma·s + eps‖² = σ²‖s − (−eps/σ)‖².

    score, eps (B, D); sigma (B,); returns a scalar (mean over every element).
    """
    return ((sigma[:, None] * score + eps) ** 2).mean()


# 17 likelihood and flow matching -----------------------------------------------------------
def straight_path(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow matching's path and target: x_t = (1 − t)·x0 + t·eps and its velocity eps − x0.

    x0, eps (B, D); t (B,); returns (x_t, velocity), both (B, D).
    """
    t = t[:, None]
    return (1 - t) * x0 + t * eps, eps - x0
