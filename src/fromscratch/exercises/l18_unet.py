"""Lesson 18's exercise (the UNet): `timestep_embedding`, the sinusoidal embedding of
integer timesteps, at Stable Diffusion's width of 320 among others.
"""

import math

import torch

from fromscratch.exercises import l18_unet_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _embedding_cases(gen: torch.Generator) -> list[Case]:
    random_t = torch.randint(0, 1000, (5,), generator=gen)
    return [Case((random_t, 16), f"t = {random_t.tolist()}, dim 16"),
            Case((torch.tensor([0, 1, 999]), 8), "t = 0, 1, 999, dim 8"),
            Case((torch.tensor([500]), 320), "t = 500, dim 320 (Stable Diffusion's width)")]


def _omega(dim, denominator):
    half = dim // 2
    return torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / denominator)


def _sin_first(t, dim):
    return solutions.timestep_embedding(t, dim).roll(dim // 2, dims=-1)


def _over_dim(t, dim):
    angles = t.float()[:, None] * _omega(dim, dim)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def _interleaved(t, dim):
    emb = solutions.timestep_embedding(t, dim)
    half = dim // 2
    return torch.stack([emb[:, :half], emb[:, half:]], dim=-1).flatten(1)


register(
    Exercise(
        name="timestep_embedding",
        lesson="18_unet",
        prompt=(
            "timestep_embedding(t, dim) -> (B, dim)\n"
            "t: integer timesteps (B,); dim even. With half = dim/2 and frequencies\n"
            "ω_k = 10000^(−k/half), k = 0..half−1, return [cos(ω t) ..., sin(ω t) ...]\n"
            "(all the cosines, then all the sines)."
        ),
        reference=solutions.timestep_embedding,
        make_cases=_embedding_cases,
        mistakes=(
            Mistake("sin_first", "Stable Diffusion puts the cosines first (flip_sin_to_cos): "
                    "concatenate [cos, sin].", _sin_first),
            Mistake("over_dim", "the exponent is k / half (half = dim / 2), not k / dim: the "
                    "slowest frequency must reach 10000^(−(half−1)/half).", _over_dim),
            Mistake("interleaved", "concatenate the blocks, [cos_0..cos_{h−1}, sin_0..sin_{h−1}], "
                    "do not interleave cos and sin.", _interleaved),
        ),
    )
)
