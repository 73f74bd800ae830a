"""Lesson 17's exercise (likelihood and flow matching): `straight_path`, the point on
flow matching's straight path and its velocity, at t = 0, ½ and 1 among others.
"""

import torch

from fromscratch.exercises import l17_likelihood_flow_matching_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _path_cases(gen: torch.Generator) -> list[Case]:
    inputs = [
        (randn(gen, 6, 2), randn(gen, 6, 2), torch.rand(6, generator=gen), "(6, 2)"),
        (randn(gen, 3, 4), randn(gen, 3, 4), torch.tensor([0.0, 0.5, 1.0]),
         "t = 0, ½ and 1"),
    ]
    return [Case((x0, eps, t), label) for x0, eps, t, label in inputs]


def _path_reversed(x0, eps, t):
    t = t[:, None]
    return t * x0 + (1 - t) * eps, x0 - eps


def _path_velocity_sign(x0, eps, t):
    x_t, v = solutions.straight_path(x0, eps, t)
    return x_t, -v


register(
    Exercise(
        name="straight_path",
        lesson="17_likelihood_flow_matching",
        prompt=(
            "straight_path(x0: Tensor, eps: Tensor, t: Tensor) -> tuple[Tensor, Tensor]\n"
            "The point x_t = (1 − t) x0 + t eps (data at t = 0, noise at t = 1) and the\n"
            "velocity dx_t/dt that flow matching regresses on. x0, eps (B, D), t (B,)."
        ),
        reference=solutions.straight_path,
        make_cases=_path_cases,
        mistakes=(
            Mistake("reversed", "data sits at t = 0 and noise at t = 1: x_t = (1 − t) x0 + t eps.",
                    _path_reversed),
            Mistake("velocity_sign", "d/dt [(1 − t) x0 + t eps] = eps − x0.", _path_velocity_sign),
        ),
    )
)
