"""Lesson 03's exercises (the GPT block): `layer_norm` and GPT-2's tanh `gelu`.

The cases include a single token, a variance below eps, an eps other than the default, and
inputs large enough that a tanh written with exp overflows.
"""

import math

import torch
import torch.nn.functional as F

from fromscratch.exercises import l03_gpt_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _layer_norm_cases(gen: torch.Generator) -> list[Case]:
    def affine(c: int):
        return 1.0 + 0.5 * randn(gen, c), 0.5 * randn(gen, c)  # weight γ, bias β

    cases = []
    for x, extra, note in [
        (randn(gen, 4, 16, scale=2.0) + 1.0, (), ""),
        (randn(gen, 2, 3, 8), (), ""),
        (randn(gen, 1, 1, 8), (), " (a single token)"),
        (randn(gen, 3, 8, scale=1e-3), (), " (tiny variance ~1e-6, below eps = 1e-5)"),
        (randn(gen, 3, 8, scale=2.0), (0.1,), ", eps=0.1"),
    ]:
        cases.append(Case((x, *affine(x.shape[-1]), *extra), f"x {tuple(x.shape)}{note}"))
    return cases


def _layer_norm_variant(
    x, weight, bias, eps=1e-5, *, correction=0, eps_inside=True, center=True, affine=True, dim=-1
):
    """LayerNorm with one knob turned the wrong way; the defaults give the right answer."""
    mean = x.mean(dim=dim, keepdim=True) if center else 0.0
    var = ((x - mean) ** 2).sum(dim=dim, keepdim=True) / (x.shape[dim] - correction)
    x_hat = (x - mean) / (torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps)
    return x_hat * weight + bias if affine else x_hat


register(
    Exercise(
        name="layer_norm",
        lesson="03_gpt",
        prompt=(
            "layer_norm(x, weight, bias, eps=1e-5) -> Tensor\n"
            "Normalize over the last axis (the C features): (x - mean) / sqrt(var + eps), with\n"
            "the biased variance, then multiply by weight and add bias (both shape (C,))."
        ),
        reference=solutions.layer_norm,
        make_cases=_layer_norm_cases,
        mistakes=(
            Mistake(
                "unbiased",
                "use the biased variance, dividing by C, not C - 1: x.var(dim=-1, "
                "correction=0) or ((x - mean) ** 2).mean(dim=-1).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, correction=1),
            ),
            Mistake(
                "eps_placement",
                "ε goes inside the square root: (x - μ) / √(σ² + ε), not (x - μ) / (σ + ε).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, eps_inside=False),
            ),
            Mistake(
                "eps_missing",
                "ε is missing (or not the `eps` argument): divide by √(σ² + eps).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, 0.0),
            ),
            Mistake(
                "eps_missing",
                "use the `eps` argument, not a fixed 1e-5: divide by √(σ² + eps).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, 1e-5),
            ),
            Mistake(
                "no_affine",
                "the learned scale and shift are missing: multiply by weight (γ) and add bias "
                "(β) after normalizing.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, affine=False),
            ),
            Mistake(
                "not_centered",
                "you didn't subtract the mean (that is RMSNorm): LayerNorm centers x first.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, center=False),
            ),
            Mistake(
                "axis",
                "normalized over the wrong axis: use the last axis (each token's C features, "
                "dim=-1), not the batch.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, dim=0),
            ),
        ),
    )
)


def _gelu_cases(gen: torch.Generator) -> list[Case]:
    inputs = [
        (torch.linspace(-6, 6, 121), "x = linspace(-6, 6, 121)"),
        (randn(gen, 3, 7, scale=3.0), "x (3, 7)"),
        (randn(gen, 1), "x (1,)"),
        (randn(gen, 2, 5, scale=30.0), "large inputs, x (2, 5) with entries in the tens"),
    ]
    return [Case((x,), label) for x, label in inputs]


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _gelu_variant(x, *, half=0.5, constant=SQRT_2_OVER_PI, power=3, times_x=True):
    """The tanh GELU with one knob turned the wrong way; the defaults give the right answer."""
    gate = half * (1 + torch.tanh(constant * (x + 0.044715 * x**power)))
    return x * gate if times_x else gate


register(
    Exercise(
        name="gelu",
        lesson="03_gpt",
        prompt=(
            "gelu(x) -> Tensor\n"
            "GPT-2's GELU, the tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."
        ),
        reference=solutions.gelu,
        make_cases=_gelu_cases,
        mistakes=(
            Mistake(
                "erf_form",
                "that is the exact GELU, x·Φ(x) with erf; GPT-2 uses the tanh approximation "
                "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), which differs by up to ~5e-4.",
                lambda x: F.gelu(x),
            ),
            Mistake(
                "sigmoid_form",
                "that is the sigmoid approximation x·σ(1.702·x); use the tanh form.",
                lambda x: x * torch.sigmoid(1.702 * x),
            ),
            Mistake(
                "half",
                "the leading 0.5 is missing: 0.5·x·(1 + tanh(...)).",
                lambda x: _gelu_variant(x, half=1.0),
            ),
            Mistake(
                "constant",
                "the constant inside tanh is √(2/π) ≈ 0.7979, not 2/π ≈ 0.6366.",
                lambda x: _gelu_variant(x, constant=2 / math.pi),
            ),
            Mistake(
                "cubic",
                "the correction term is 0.044715·x³ (x cubed).",
                lambda x: _gelu_variant(x, power=2),
            ),
            Mistake(
                "times_x",
                "multiply by x: GELU(x) = x · 0.5·(1 + tanh(...)), a smooth gate applied to x.",
                lambda x: _gelu_variant(x, times_x=False),
            ),
        ),
        nan_hint=(
            "NaN or inf for large inputs: write tanh with torch.tanh (a hand-made "
            "(e^z - e^-z) / (e^z + e^-z) overflows)."
        ),
    )
)
