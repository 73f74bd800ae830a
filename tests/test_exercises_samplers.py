"""The sampler exercises: the reference passes, each planted mistake gets its own hint, and the
reference solutions agree with the library's samplers on a one-step run."""

import math

import pytest
import torch

from fromscratch.diffusion import samplers
from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check, list_exercises, prompt, solution_source
from fromscratch.exercises import samplers_solutions as solutions

SEEDS = [0, 1, 2]
TRACK = ["euler_maruyama_step", "ddim_step"]


def test_the_exercises_are_registered():
    assert all(name in list_exercises() for name in TRACK)


@pytest.mark.parametrize("name", TRACK)
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok and result.diagnosis == "correct"
    assert capsys.readouterr().out.startswith(f"✓ {name}: correct on all")


@pytest.mark.parametrize("name", TRACK)
def test_solution_source_and_prompt(name):
    assert solution_source(name).startswith(f"def {name}(")
    assert name in prompt(name)


def test_ddim_step_is_one_step_of_the_library_ddim():
    sde = VPSDE()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (_, a_t, s_t), (_, a_s, s_s) = samplers.time_grid(sde, 1)
    ours = samplers.ddim(lambda x_t, t: eps, x, sde, 1, prediction="eps")
    assert torch.allclose(solutions.ddim_step(x, eps, a_t, s_t, a_s, s_s), ours, atol=1e-12)


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


# ---------------------------------------------------------------------------------------------
# planted mistakes, written as a learner would write them
# ---------------------------------------------------------------------------------------------
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


def ddim_forgot_alpha(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    x0 = x_t - sigma_t * eps
    return alpha_s * x0 + sigma_s * eps


def ddim_wrong_sign(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return alpha_s / alpha_t * (x_t + sigma_t * eps) + sigma_s * eps


def ddim_same_sigma(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    x0 = (x_t - sigma_t * eps) / alpha_t
    return alpha_s * x0 + sigma_t * eps


def ddim_jump(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    return (x_t - eps * sigma_t) / alpha_t


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,fn,key,words", [
    ("euler_maruyama_step", em_probability_flow, "half_g2", "probability flow"),
    ("euler_maruyama_step", em_noise_h, "noise_h", "√h"),
    ("euler_maruyama_step", em_forward, "forward", "backwards"),
    ("euler_maruyama_step", em_deterministic, "no_noise", "add the noise"),
    ("euler_maruyama_step", em_g, "g_not_squared", "g²"),
    ("ddim_step", ddim_forgot_alpha, "no_division", "divide by α_t"),
    ("ddim_step", ddim_wrong_sign, "plus", "minus"),
    ("ddim_step", ddim_same_sigma, "old_sigma", "σ_s, not σ_t"),
    ("ddim_step", ddim_jump, "returns_x0", "x̂0"),
])
def test_each_planted_mistake_gets_its_hint(name, fn, key, words, seed, capsys):
    result = check(name, fn, seed=seed)
    assert not result.ok and result.diagnosis == key, result.message
    assert words in capsys.readouterr().out


def test_squaring_alpha_and_sigma_is_recognized(capsys):
    """σ² in place of σ (treating √ᾱ as ᾱ): the squared-levels hint, on every seed."""
    def squared(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
        a_t, s_t, a_s, s_s = alpha_t * alpha_t, sigma_t * sigma_t, alpha_s * alpha_s, sigma_s**2
        return a_s * (x_t - s_t * eps) / a_t + s_s * eps

    for seed in SEEDS:
        assert check("ddim_step", squared, seed=seed).diagnosis == "squared"
    assert "without squaring" in capsys.readouterr().out
