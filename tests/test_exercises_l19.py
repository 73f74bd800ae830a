"""Lesson 19's exercise (classifier-free guidance's combination): the reference equals the
library's cfg_combine, and each planted mistake gets its hint."""

import pytest
import torch

from fromscratch.diffusion.guidance import cfg_combine
from fromscratch.exercises import check
from fromscratch.exercises import l19_cross_attention_solutions as solutions


def test_the_reference_equals_the_library():
    a, b = torch.randn(4), torch.randn(4)
    assert torch.equal(solutions.cfg_combine(a, b, 3.0), cfg_combine(a, b, 3.0))


def cfg_swapped(u, c, w):
    return c + w * (u - c)


def cfg_paper(u, c, w):
    return (1 + w) * c - w * u


@pytest.mark.parametrize("fn,key,words", [
    (cfg_swapped, "swapped", "moves away"),
    (cfg_paper, "ho_salimans", "Ho & Salimans"),
])
def test_each_planted_mistake_gets_its_hint(fn, key, words):
    result = check("cfg_combine", fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message, result.message
