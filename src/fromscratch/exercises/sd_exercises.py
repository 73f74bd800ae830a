"""The Stable Diffusion lessons' exercises (18 and 19): test inputs and recognized mistakes."""

import math

import torch

from fromscratch.exercises import sd_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


# ---------------------------------------------------------------------------------------------
# 18 UNet: the sinusoidal time embedding
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 19 cross-attention and guidance: classifier-free guidance's combination
# ---------------------------------------------------------------------------------------------
def _cfg_cases(gen: torch.Generator) -> list[Case]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    return [Case((randn(2, 4, 8, 8), randn(2, 4, 8, 8), 7.5), "latents (2, 4, 8, 8), w = 7.5"),
            Case((randn(3, 5), randn(3, 5), 0.0), "w = 0: the unconditional model"),
            Case((randn(3, 5), randn(3, 5), 1.0), "w = 1: the conditional model"),
            Case((randn(3, 5), randn(3, 5), 2.5), "w = 2.5")]


def _swapped(eps_uncond, eps_cond, w):
    return eps_cond + w * (eps_uncond - eps_cond)


def _ho_salimans(eps_uncond, eps_cond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def _average(eps_uncond, eps_cond, w):
    return (1 - w) * eps_cond + w * eps_uncond


register(
    Exercise(
        name="cfg_combine",
        lesson="19_cross_attention",
        prompt=(
            "cfg_combine(eps_uncond, eps_cond, w) -> eps\n"
            "Classifier-free guidance: start from the unconditional prediction and move w times\n"
            "along (eps_cond − eps_uncond). w = 0 gives eps_uncond, w = 1 gives eps_cond."
        ),
        reference=solutions.cfg_combine,
        make_cases=_cfg_cases,
        mistakes=(
            Mistake("swapped", "start from ε_u and move toward ε_c: ε_u + w (ε_c − ε_u); yours "
                    "moves away from the prompt.", _swapped),
            Mistake("ho_salimans", "that is Ho & Salimans' convention (1 + w) ε_c − w ε_u, where "
                    "their w is ours minus 1; here w = 1 must give ε_c.", _ho_salimans),
            Mistake("average", "with w = 1 the result must be ε_c: ε_u + w (ε_c − ε_u).",
                    _average),
        ),
    )
)
