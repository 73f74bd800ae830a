"""Lesson 12's exercise (the VP marginal std): the reference equals the library's VPSDE, and
each planted mistake (written the way a learner would write it) gets its own hint."""

import pytest
import torch

from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check
from fromscratch.exercises import l12_forward_diffusion_solutions as solutions


def test_the_reference_equals_the_library():
    t = torch.rand(7)
    torch.testing.assert_close(solutions.vp_sigma(t, 0.1, 20.0), VPSDE().sigma(t))


def variance(t, lo, hi):
    return 1 - torch.exp(-(lo * t + 0.5 * (hi - lo) * t * t))


def no_half(t, lo, hi):
    b = lo * t + (hi - lo) * t * t
    return (1 - (-b).exp()).sqrt()


def beta_itself(t, lo, hi):
    return (1 - torch.exp(-(lo + (hi - lo) * t))).sqrt()


def alpha(t, lo, hi):
    return torch.exp(-(lo * t + (hi - lo) * t**2 / 2) / 2)


@pytest.mark.parametrize("fn, key", [
    (variance, "variance"),
    (no_half, "no_half"),
    (beta_itself, "beta_not_integral"),
    (alpha, "alpha"),
])
def test_planted_mistake_gets_its_hint(fn, key):
    result = check("vp_sigma", fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
