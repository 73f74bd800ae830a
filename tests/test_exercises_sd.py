"""The Stable Diffusion exercises: the reference passes, each planted mistake gets its hint, and
the references equal the library (unet.timestep_embedding, guidance.cfg_combine)."""

import math

import pytest
import torch

from fromscratch.diffusion.guidance import cfg_combine
from fromscratch.exercises import check, list_exercises, prompt, solution_source
from fromscratch.exercises import sd_solutions as solutions
from fromscratch.unet import timestep_embedding

TRACK = ["timestep_embedding", "cfg_combine"]


def test_registered_with_prompts_and_sources():
    for name in TRACK:
        assert name in list_exercises() and name in prompt(name)
        assert solution_source(name).startswith(f"def {name}(")


@pytest.mark.parametrize("name", TRACK)
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok and result.diagnosis == "correct"


def test_references_equal_the_library():
    t = torch.tensor([0, 7, 999])
    assert torch.allclose(solutions.timestep_embedding(t, 32), timestep_embedding(t, 32),
                          atol=1e-6)
    a, b = torch.randn(4), torch.randn(4)
    assert torch.equal(solutions.cfg_combine(a, b, 3.0), cfg_combine(a, b, 3.0))


# Mistakes as a learner would write them
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


def cfg_swapped(u, c, w):
    return c + w * (u - c)


def cfg_paper(u, c, w):
    return (1 + w) * c - w * u


@pytest.mark.parametrize("name,fn,key,words", [
    ("timestep_embedding", emb_sin_first, "sin_first", "cosines first"),
    ("timestep_embedding", emb_over_dim, "over_dim", "k / half"),
    ("timestep_embedding", emb_interleaved, "interleaved", "interleave"),
    ("cfg_combine", cfg_swapped, "swapped", "moves away"),
    ("cfg_combine", cfg_paper, "ho_salimans", "Ho & Salimans"),
])
def test_each_planted_mistake_gets_its_hint(name, fn, key, words, capsys):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
    assert words in capsys.readouterr().out
