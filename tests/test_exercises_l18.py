"""Lesson 18's exercise (the sinusoidal time embedding): the reference equals the UNet's
timestep_embedding, and each planted mistake, written as a learner would write it, gets its
hint."""

import math

import pytest
import torch

from fromscratch.exercises import check
from fromscratch.exercises import l18_unet_solutions as solutions
from fromscratch.stable_diffusion.unet import timestep_embedding


def test_the_reference_equals_the_library():
    t = torch.tensor([0, 7, 999])
    assert torch.allclose(solutions.timestep_embedding(t, 32), timestep_embedding(t, 32),
                          atol=1e-6)


def emb_sin_first(t, dim):
    half = dim // 2
    w = 10000 ** (-torch.arange(half) / half)
    return torch.cat([torch.sin(t[:, None] * w), torch.cos(t[:, None] * w)], dim=1)


def emb_over_dim(t, dim):
    w = torch.exp(-math.log(10000) * torch.arange(dim // 2) / dim)
    return torch.cat([torch.cos(t[:, None] * w), torch.sin(t[:, None] * w)], dim=1)


def emb_interleaved(t, dim):
    w = 10000 ** (-torch.arange(dim // 2) / (dim // 2))
    a = t[:, None] * w
    return torch.stack([torch.cos(a), torch.sin(a)], dim=2).reshape(len(t), dim)


@pytest.mark.parametrize("fn,key,words", [
    (emb_sin_first, "sin_first", "cosines first"),
    (emb_over_dim, "over_dim", "k / half"),
    (emb_interleaved, "interleaved", "interleave"),
])
def test_each_planted_mistake_gets_its_hint(fn, key, words):
    result = check("timestep_embedding", fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message, result.message
