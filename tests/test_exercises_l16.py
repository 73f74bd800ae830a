"""Lesson 16's exercise (one DDIM step): the reference is one step of the library's DDIM, and
each planted mistake, written as a learner would write it, gets its own hint."""

import pytest
import torch

from fromscratch.diffusion import samplers
from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check
from fromscratch.exercises import l16_samplers_solutions as solutions

SEEDS = [0, 1, 2]


def test_ddim_step_is_one_step_of_the_library_ddim():
    sde = VPSDE()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (_, a_t, s_t), (_, a_s, s_s) = samplers.time_grid(sde, 1)
    ours = samplers.ddim(lambda x_t, t: eps, x, sde, 1, prediction="eps")
    assert torch.allclose(solutions.ddim_step(x, eps, a_t, s_t, a_s, s_s), ours, atol=1e-12)


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
@pytest.mark.parametrize("fn,key,words", [
    (ddim_forgot_alpha, "no_division", "divide by α_t"),
    (ddim_wrong_sign, "plus", "minus"),
    (ddim_same_sigma, "old_sigma", "σ_s, not σ_t"),
    (ddim_jump, "returns_x0", "x̂0"),
])
def test_each_planted_mistake_gets_its_hint(fn, key, words, seed):
    result = check("ddim_step", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_squaring_alpha_and_sigma_is_recognized(capsys):
    """σ² in place of σ (treating √ᾱ as ᾱ): the squared-levels hint, on every seed."""
    def squared(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
        a_t, s_t, a_s, s_s = alpha_t * alpha_t, sigma_t * sigma_t, alpha_s * alpha_s, sigma_s**2
        return a_s * (x_t - s_t * eps) / a_t + s_s * eps

    for seed in SEEDS:
        assert check("ddim_step", squared, seed=seed).diagnosis == "squared"
    assert "without squaring" in capsys.readouterr().out
