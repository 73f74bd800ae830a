"""Lesson 16's exercise (samplers): `ddim_step`, one deterministic DDIM step.

The cases include the last step, onto clean data (σ_s = 0), and a variance-exploding level
(α = 1).
"""

import math

import torch

from fromscratch.exercises import l16_samplers_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn, uniform


def _vp_level(gen: torch.Generator, low: float, high: float) -> tuple[float, float]:
    alpha = uniform(gen, low, high)
    return alpha, math.sqrt(1 - alpha**2)


def _ddim_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape in ((6, 2), (2, 3, 4, 4)):
        alpha_t, sigma_t = _vp_level(gen, 0.05, 0.6)
        alpha_s, sigma_s = _vp_level(gen, 0.7, 0.99)
        cases.append(Case((randn(gen, *shape), randn(gen, *shape), alpha_t, sigma_t, alpha_s,
                           sigma_s), f"x_t {shape}, VP levels α_t = {alpha_t:.2f} → "
                                     f"α_s = {alpha_s:.2f}"))
    alpha_t, sigma_t = _vp_level(gen, 0.8, 0.95)
    cases.append(Case((randn(gen, 4, 2), randn(gen, 4, 2), alpha_t, sigma_t, 1.0, 0.0),
                      "the last step, onto clean data (α_s = 1, σ_s = 0)"))
    cases.append(Case((randn(gen, 4, 2) * 5, randn(gen, 4, 2), 1.0, 5.0, 1.0, 2.0),
                      "variance exploding (α = 1): σ 5 → 2"))
    return cases


def _ddim_no_division(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x_t - sigma_t * eps) + sigma_s * eps


def _ddim_plus(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x_t + sigma_t * eps) / alpha_t + sigma_s * eps


def _ddim_squared(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return solutions.ddim_step(x_t, eps, alpha_t**2, sigma_t**2, alpha_s**2, sigma_s**2)


def _ddim_old_sigma(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s * (x_t - sigma_t * eps) / alpha_t + sigma_t * eps


def _ddim_returns_x0(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return (x_t - sigma_t * eps) / alpha_t


register(
    Exercise(
        name="ddim_step",
        lesson="16_samplers",
        prompt=(
            "ddim_step(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s) -> x_s\n"
            "One deterministic DDIM step (η = 0) from noise level (alpha_t, sigma_t) to the less\n"
            "noisy (alpha_s, sigma_s), given the predicted noise eps: first x̂0 from\n"
            "x_t = alpha_t·x̂0 + sigma_t·eps, then x_s = alpha_s·x̂0 + sigma_s·eps."
        ),
        reference=solutions.ddim_step,
        make_cases=_ddim_cases,
        mistakes=(
            Mistake("no_division", "x̂0 = (x_t − σ_t ε̂) / α_t: you forgot to divide by α_t.",
                    _ddim_no_division),
            Mistake("plus", "x_t = α_t x0 + σ_t ε, so x̂0 = (x_t − σ_t ε̂)/α_t, with a minus.",
                    _ddim_plus),
            Mistake("squared", "alpha and sigma are already the square roots (√ᾱ, √(1 − ᾱ)): "
                    "use them as they are, without squaring.", _ddim_squared),
            Mistake("old_sigma", "re-noise at the new level: x_s = α_s x̂0 + σ_s ε̂ (σ_s, not σ_t).",
                    _ddim_old_sigma),
            Mistake("returns_x0", "that is x̂0, the end of the road in one jump; the step goes to "
                    "x_s = α_s x̂0 + σ_s ε̂.", _ddim_returns_x0),
        ),
    )
)
