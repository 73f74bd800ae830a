"""Lesson 14's exercise (reversing diffusion): `euler_maruyama_step`, one step of the
reverse-time SDE, on 2-D points and images, with a VP drift and a variance-exploding step
without drift.
"""

import math

import torch

from fromscratch.exercises import l14_reverse_diffusion_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn, uniform


def _em_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape in ((8, 2), (2, 1, 4, 4)):  # 2-D points and images
        x, score, z = randn(gen, *shape), randn(gen, *shape), randn(gen, *shape)
        beta = uniform(gen, 0.1, 20.0)  # a VP step: f(x) = −½ β x, g = √β
        h = uniform(gen, 1e-3, 0.05)
        cases.append(Case((x, score, -0.5 * beta * x, math.sqrt(beta), h, z),
                          f"x {shape}, VP drift with β = {beta:.2f}, h = {h:.3f}"))
    x, score, z = randn(gen, 5, 2), randn(gen, 5, 2), randn(gen, 5, 2)
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
