"""Lesson 15's exercise (score matching): `dsm_loss`, denoising score matching weighted
by sigma², down to a tiny sigma.
"""

import torch

from fromscratch.exercises import l15_score_matching_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _dsm_cases(gen: torch.Generator) -> list[Case]:
    def make(B, D, label, sigma=None):
        s = sigma if sigma is not None else torch.rand(B, generator=gen) * 2 + 0.01
        return Case((randn(gen, B, D), randn(gen, B, D), s), label)

    return [
        make(8, 2, "score, eps (8, 2), sigma (8,)"),
        make(3, 5, "score, eps (3, 5)"),
        make(4, 2, "tiny sigma (1e-3)", sigma=torch.full((4,), 1e-3)),
    ]


def _dsm_plus(score, eps, sigma):
    return ((sigma[:, None] * score - eps) ** 2).mean()


def _dsm_unweighted(score, eps, sigma):
    return ((score + eps / sigma[:, None]) ** 2).mean()


def _dsm_sigma_squared(score, eps, sigma):
    return ((sigma[:, None] ** 2 * score + eps) ** 2).mean()


register(
    Exercise(
        name="dsm_loss",
        lesson="15_score_matching",
        prompt=(
            "dsm_loss(score: Tensor, eps: Tensor, sigma: Tensor) -> Tensor\n"
            "Denoising score matching with weight λ = sigma²: the mean over all elements of\n"
            "sigma² ‖score − ∇log p(x_t | x0)‖², where ∇log p(x_t | x0) = −eps/sigma."
        ),
        reference=solutions.dsm_loss,
        make_cases=_dsm_cases,
        mistakes=(
            Mistake("sign", "the conditional score is −eps/sigma (it points back toward x0): "
                    "the residual is sigma·score + eps.", _dsm_plus),
            Mistake("unweighted", "weight by λ = sigma²: without it the small-sigma terms "
                    "(target ~ 1/sigma) swamp the loss.", _dsm_unweighted),
            Mistake("sigma_squared", "∇log p(x_t | x0) = −(x_t − alpha x0)/sigma² = −eps/sigma: "
                    "one power of sigma, not two.", _dsm_sigma_squared),
        ),
    )
)
