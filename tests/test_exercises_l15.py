"""Lesson 15's exercise (the denoising score matching loss): each planted mistake (written the
way a learner would write it) gets its own hint."""

import pytest
import torch

from fromscratch.exercises import check


def sign(score, eps, sigma):
    return torch.mean((sigma.unsqueeze(1) * score - eps) ** 2)


def unweighted(score, eps, sigma):
    target = -eps / sigma.unsqueeze(1)
    return torch.mean((score - target) ** 2)


def squared(score, eps, sigma):
    target = -eps / sigma.unsqueeze(1) ** 2
    return torch.mean(sigma.unsqueeze(1) ** 2 * (score - target) ** 2 * sigma.unsqueeze(1) ** 2)


@pytest.mark.parametrize("fn, key", [
    (sign, "sign"),
    (unweighted, "unweighted"),
    (squared, "sigma_squared"),
])
def test_planted_mistake_gets_its_hint(fn, key):
    result = check("dsm_loss", fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
