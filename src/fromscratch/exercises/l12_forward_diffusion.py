"""Lesson 12's exercise (forward diffusion): `vp_sigma`, the VP SDE's marginal standard
deviation, checked at t = 0, near 0 and at 1.
"""

import torch

from fromscratch.exercises import l12_forward_diffusion_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _vp_sigma_cases(gen: torch.Generator) -> list[Case]:
    t = torch.rand(6, generator=gen)
    inputs = [
        (t, 0.1, 20.0, "t (6,) in [0, 1], β from 0.1 to 20"),
        (torch.tensor([0.0, 1e-3, 1.0]), 0.1, 20.0, "t = 0, 1e-3 and 1"),
        (torch.rand(4, generator=gen), 1.0, 5.0, "t (4,), β from 1 to 5"),
    ]
    return [Case((t, lo, hi), label) for t, lo, hi, label in inputs]


def _vp_variance(t, beta_min, beta_max):
    return solutions.vp_sigma(t, beta_min, beta_max) ** 2


def _vp_no_half(t, beta_min, beta_max):
    return torch.sqrt(1 - torch.exp(-(beta_min * t + (beta_max - beta_min) * t**2)))


def _vp_beta_not_integral(t, beta_min, beta_max):
    return torch.sqrt(1 - torch.exp(-(beta_min + t * (beta_max - beta_min))))


def _vp_mean_scale(t, beta_min, beta_max):
    return torch.exp(-0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


register(
    Exercise(
        name="vp_sigma",
        lesson="12_forward_diffusion",
        prompt=(
            "vp_sigma(t: Tensor, beta_min: float, beta_max: float) -> Tensor\n"
            "The standard deviation sigma(t) of x_t given x0 under the VP SDE\n"
            "dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,\n"
            "beta(t) = beta_min + t (beta_max - beta_min)."
        ),
        reference=solutions.vp_sigma,
        make_cases=_vp_sigma_cases,
        mistakes=(
            Mistake("variance", "that is sigma²: take the square root, sigma = √(1 − e^{−B(t)}).",
                    _vp_variance),
            Mistake("no_half", "∫₀ᵗ s ds = t²/2: B(t) = β_min t + ½ (β_max − β_min) t².",
                    _vp_no_half),
            Mistake("beta_not_integral", "the exponent is the integral B(t) = ∫₀ᵗ β(s) ds, not "
                    "β(t) itself.", _vp_beta_not_integral),
            Mistake("alpha", "that is alpha(t) = e^{−B/2}, the mean's scale; sigma² = 1 − alpha².",
                    _vp_mean_scale),
        ),
    )
)
