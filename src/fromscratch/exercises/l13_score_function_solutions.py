"""Reference solution to lesson 13's exercise (the score function).

Try the exercise first; `fromscratch lessons solution mixture_score` prints it.
Shapes: batch B, dimension D, mixture components K.
"""

import torch


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
