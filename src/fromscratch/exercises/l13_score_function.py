"""Lesson 13's exercise (the score function): `mixture_score`, the score of an isotropic
Gaussian mixture.

The cases include a single component (the Gaussian score) and narrow components far from every
point, where each exp(−‖x − μ‖²/2var) underflows to 0.
"""

import torch

from fromscratch.exercises import l13_score_function_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _mixture_cases(gen: torch.Generator) -> list[Case]:
    def make(B, K, D, var, label, spread=2.0):
        weights = torch.rand(K, generator=gen) + 0.1
        return Case((randn(gen, B, D, scale=spread), weights / weights.sum(),
                     randn(gen, K, D, scale=2.0), var), label)

    return [
        make(5, 3, 2, 0.5, "x (5, 2), 3 components, var 0.5"),
        make(4, 4, 3, 0.2, "x (4, 3), 4 components, var 0.2"),
        make(3, 1, 2, 1.0, "a single component: the Gaussian score (μ − x)/var"),
        make(6, 2, 2, 0.01, "narrow components (var 0.01), points far from all of them: every "
             "exp(−‖x − μ‖²/2var) underflows to 0", spread=8.0),
    ]


def _mixture_prior_weights(x, weights, means, var):
    pulls = (means[None] - x[:, None]) / var
    return (weights[None, :, None] * pulls).sum(1)


def _mixture_sign(x, weights, means, var):
    return -solutions.mixture_score(x, weights, means, var)


def _mixture_std(x, weights, means, var):
    return solutions.mixture_score(x, weights, means, var) * var**0.5


def _mixture_no_weights(x, weights, means, var):
    return solutions.mixture_score(x, torch.ones_like(weights) / len(weights), means, var)


register(
    Exercise(
        name="mixture_score",
        lesson="13_score_function",
        prompt=(
            "mixture_score(x: Tensor, weights: Tensor, means: Tensor, var: float) -> Tensor\n"
            "∇ log p(x) for p = Σ_k w_k N(μ_k, var·I); x (B, D), weights (K,), means (K, D).\n"
            "Returns (B, D)."
        ),
        reference=solutions.mixture_score,
        make_cases=_mixture_cases,
        mistakes=(
            Mistake("prior_weights", "weight each component's pull by its posterior r_k(x) = "
                    "w_k N_k(x) / Σ_j w_j N_j(x), not by the prior weight w_k alone.",
                    _mixture_prior_weights),
            Mistake("sign", "the score points toward the data: (μ_k − x)/var, not (x − μ_k)/var.",
                    _mixture_sign),
            Mistake("std", "divide by the variance, not the standard deviation.", _mixture_std),
            Mistake("no_weights", "the responsibilities need the weights too: "
                    "r_k ∝ w_k N_k(x) (add log w_k before the softmax).", _mixture_no_weights),
        ),
        nan_hint="NaN or inf: exp(−‖x − μ‖²/2var) underflows to 0 for narrow components; take the "
                 "softmax of log w_k − ‖x − μ_k‖²/(2 var) instead of dividing exponentials.",
    )
)
