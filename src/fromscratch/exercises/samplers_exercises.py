"""The sampler lessons' exercises (14 and 16): their test inputs and the mistakes we recognize.

Every `_*_cases(gen)` returns fresh random inputs drawn from `gen` plus the edge cases where bugs
hide (a step that lands on clean data, a variance-exploding level with alpha = 1, images).
Every `Mistake` makes one common error on purpose: when the learner's output equals it, `check`
prints that mistake's hint.
"""

import math

import torch

from fromscratch.exercises import samplers_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


# ---------------------------------------------------------------------------------------------
# 14 reversing diffusion: one Euler–Maruyama step of the reverse SDE
# ---------------------------------------------------------------------------------------------
def _em_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape in ((8, 2), (2, 1, 4, 4)):  # 2-D points and images
        x, score, z = _randn(gen, *shape), _randn(gen, *shape), _randn(gen, *shape)
        beta = _uniform(gen, 0.1, 20.0)  # a VP step: f(x) = −½ β x, g = √β
        h = _uniform(gen, 1e-3, 0.05)
        cases.append(Case((x, score, -0.5 * beta * x, math.sqrt(beta), h, z),
                          f"x {shape}, VP drift with β = {beta:.2f}, h = {h:.3f}"))
    x, score, z = _randn(gen, 5, 2), _randn(gen, 5, 2), _randn(gen, 5, 2)
    cases.append(Case((x, score, torch.zeros_like(x), 3.0, 0.02, z),
                      "VE: no drift (f = 0), g = 3, h = 0.02"))
    return cases


def _em_half_g2(x, score, drift, g, h, z):
    return x - (drift - 0.5 * g**2 * score) * h + g * math.sqrt(h) * z


def _em_noise_times_h(x, score, drift, g, h, z):
    return x - (drift - g**2 * score) * h + g * h * z


def _em_forward_in_time(x, score, drift, g, h, z):
    return x + (drift - g**2 * score) * h + g * math.sqrt(h) * z


def _em_no_noise(x, score, drift, g, h, z):
    return x - (drift - g**2 * score) * h


def _em_g_not_squared(x, score, drift, g, h, z):
    return x - (drift - g * score) * h + g * math.sqrt(h) * z


register(
    Exercise(
        name="euler_maruyama_step",
        lesson="14_reverse_diffusion",
        prompt=(
            "euler_maruyama_step(x, score, drift, g, h, z) -> x_next\n"
            "One step of the reverse-time SDE dx = [f(x,t) − g² ∇log p_t(x)] dt + g dw̄ from t\n"
            "back to t − h (h > 0): drift = f(x, t) and score are tensors like x, g and h\n"
            "numbers, z ~ N(0, I) like x. Return x − [f − g²·score]·h + g·√h·z."
        ),
        reference=solutions.euler_maruyama_step,
        make_cases=_em_cases,
        mistakes=(
            Mistake("half_g2", "that ½ g² belongs to the probability flow ODE; the reverse SDE "
                    "has the full g² · score (its noise needs twice the pull).", _em_half_g2),
            Mistake("noise_h", "the noise of a step of length h has standard deviation g·√h, "
                    "not g·h (Brownian increments grow like √h).", _em_noise_times_h),
            Mistake("forward", "time runs backwards here (dt = −h): subtract [f − g²·score]·h.",
                    _em_forward_in_time),
            Mistake("no_noise", "add the noise g·√h·z: without it this is an ODE step, and "
                    "with the SDE's drift it collapses the samples.", _em_no_noise),
            Mistake("g_not_squared", "the score is multiplied by g², not g.", _em_g_not_squared),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 16 samplers: one DDIM step
# ---------------------------------------------------------------------------------------------
def _vp_level(gen: torch.Generator, low: float, high: float) -> tuple[float, float]:
    alpha = _uniform(gen, low, high)
    return alpha, math.sqrt(1 - alpha**2)


def _ddim_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape in ((6, 2), (2, 3, 4, 4)):
        alpha_t, sigma_t = _vp_level(gen, 0.05, 0.6)
        alpha_s, sigma_s = _vp_level(gen, 0.7, 0.99)
        cases.append(Case((_randn(gen, *shape), _randn(gen, *shape), alpha_t, sigma_t, alpha_s,
                           sigma_s), f"x_t {shape}, VP levels α_t = {alpha_t:.2f} → "
                                     f"α_s = {alpha_s:.2f}"))
    alpha_t, sigma_t = _vp_level(gen, 0.8, 0.95)
    cases.append(Case((_randn(gen, 4, 2), _randn(gen, 4, 2), alpha_t, sigma_t, 1.0, 0.0),
                      "the last step, onto clean data (α_s = 1, σ_s = 0)"))
    cases.append(Case((_randn(gen, 4, 2) * 5, _randn(gen, 4, 2), 1.0, 5.0, 1.0, 2.0),
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
