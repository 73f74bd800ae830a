"""Lesson 21's exercise (the guided prediction from one forward pass): the reference equals
the library's guided model, each planted mistake gets its hint, and guidance that does not run
one batched forward pass is refused."""

import pytest
import torch

from fromscratch.diffusion.guidance import guided
from fromscratch.exercises import check
from fromscratch.exercises import l21_guidance_solutions as solutions
from fromscratch.exercises.l21_guidance import TwoHalvesModel


def test_guided_eps_equals_the_library_guided_model():
    model = TwoHalvesModel(batch=3)
    x, t = torch.randn(3, 4, 2, 2), torch.tensor([5, 500, 900])
    cond, uncond = torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    for w in [2.0, 7.5]:
        assert torch.allclose(solutions.guided_eps(model, x, t, cond, uncond, w),
                              guided(model, cond, uncond, w)(x, t), atol=1e-6)


def guided_cond_first(model, x, t, cond, uncond, w):  # [cond; uncond] in, read as [uncond; cond]
    out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
    u, c = out.chunk(2)
    return u + w * (c - u)


def guided_paper(model, x, t, cond, uncond, w):
    u, c = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)
    return (1 + w) * c - w * u


def guided_two_calls(model, x, t, cond, uncond, w):
    u, c = model(x, t, uncond), model(x, t, cond)
    return u + w * (c - u)


def guided_t_not_doubled(model, x, t, cond, uncond, w):
    u, c = model(torch.cat([x, x]), t, torch.cat([uncond, cond])).chunk(2)
    return u + w * (c - u)


@pytest.mark.parametrize("fn,key,words", [
    (guided_cond_first, "swapped", "ε_u comes first"),
    (guided_paper, "ho_salimans", "Ho & Salimans"),
])
def test_each_planted_mistake_gets_its_hint(fn, key, words):
    result = check("guided_eps", fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message, result.message


@pytest.mark.parametrize("fn", [guided_two_calls, guided_t_not_doubled])
def test_guidance_without_one_batched_forward_is_refused(fn):
    result = check("guided_eps", fn, seed=0)
    assert not result.ok and result.diagnosis == "error", result.message
    assert "single model call on those 2B rows" in result.message
