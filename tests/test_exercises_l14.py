"""Lesson 14's exercise (one Euler–Maruyama step): the reference is one step of the library's
sampler, and each planted mistake, written as a learner would write it, gets its own hint."""

import math

import pytest
import torch

from fromscratch.diffusion import samplers
from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check
from fromscratch.exercises import l14_reverse_diffusion_solutions as solutions

SEEDS = [0, 1, 2]


def test_euler_maruyama_step_is_one_step_of_the_library_sampler():
    sde = VPSDE()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = -x / 2
    steps = 10
    T, t_next = sde.T, sde.T - (sde.T - sde.t_min) / steps
    _, trajectory = samplers.euler_maruyama(lambda x_t, t: -x_t / 2, x, sde, steps,
                                            generator=torch.Generator().manual_seed(3),
                                            return_trajectory=True)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    step = solutions.euler_maruyama_step(x, score, sde.drift(x, T), float(sde.diffusion(T)),
                                         T - t_next, z)
    assert torch.allclose(step, trajectory[1], atol=1e-12)


def em_probability_flow(x, score, drift, g, h, z):
    velocity = drift - g * g * score / 2
    return x - velocity * h + g * h**0.5 * z


def em_noise_h(x, score, drift, g, h, z):
    return x - h * drift + h * g * g * score + g * h * z


def em_forward(x, score, drift, g, h, z):
    return x + h * (drift - score * g**2) + z * g * math.sqrt(h)


def em_deterministic(x, score, drift, g, h, z):
    return x - h * (drift - g**2 * score)


def em_g(x, score, drift, g, h, z):
    return x - h * (drift - g * score) + g * math.sqrt(h) * z


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn,key,words", [
    (em_probability_flow, "half_g2", "probability flow"),
    (em_noise_h, "noise_h", "√h"),
    (em_forward, "forward", "backwards"),
    (em_deterministic, "no_noise", "add the noise"),
    (em_g, "g_not_squared", "g²"),
])
def test_each_planted_mistake_gets_its_hint(fn, key, words, seed):
    result = check("euler_maruyama_step", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message
