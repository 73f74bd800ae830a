"""Lesson 03's exercises (layer norm, GELU): each planted mistake gets its own hint, and torch's
own layer norm and tanh GELU pass.

The planted mistakes are written the way a learner would write them, not copied from the
checker's catalogue.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check
from fromscratch.exercises import l03_gpt_solutions as solutions

SEEDS = [0, 1, 2]


def layer_norm_from(var_fn, eps_inside=True, center=True, affine=True, fixed_eps=None):
    def layer_norm(x, weight, bias, eps=1e-5):
        eps = eps if fixed_eps is None else fixed_eps
        mu = x.mean(-1, keepdim=True) if center else 0
        var = var_fn(x)
        x_hat = (x - mu) / ((var + eps).sqrt() if eps_inside else var.sqrt() + eps)
        return weight * x_hat + bias if affine else x_hat

    return layer_norm


def layer_norm_over_batch(x, weight, bias, eps=1e-5):
    mu = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return weight * (x - mu) / torch.sqrt(var + eps) + bias


def biased(x):
    return x.var(-1, keepdim=True, unbiased=False)


def mean_square(x):
    return x.pow(2).mean(-1, keepdim=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (layer_norm_from(lambda x: x.var(-1, keepdim=True)), "unbiased", "C - 1"),
        (layer_norm_from(biased, eps_inside=False), "eps_placement", "inside the square root"),
        (layer_norm_from(biased, fixed_eps=0.0), "eps_missing", "ε"),
        (layer_norm_from(biased, fixed_eps=1e-5), "eps_missing", "`eps` argument"),
        (layer_norm_from(biased, affine=False), "no_affine", "weight"),
        (layer_norm_from(mean_square, center=False), "not_centered", "RMSNorm"),
        (layer_norm_over_batch, "axis", "last axis"),
    ],
)
def test_layer_norm_mistakes(fn, key, words, seed):
    result = check("layer_norm", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_layer_norm_torch_builtin_is_correct():
    def layer_norm(x, weight, bias, eps=1e-5):
        return F.layer_norm(x, x.shape[-1:], weight, bias, eps)

    assert check("layer_norm", layer_norm, seed=0).ok


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu_tanh(c=SQRT_2_OVER_PI, cube=3, half=0.5):
    return lambda x: half * x * (1 + torch.tanh(c * (x + 0.044715 * x**cube)))


def gelu_handmade_tanh(x):
    z = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + (z.exp() - (-z).exp()) / (z.exp() + (-z).exp()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "erf_form", "tanh approximation"),
        (lambda x: x / (1 + torch.exp(-1.702 * x)), "sigmoid_form", "sigmoid"),
        (gelu_tanh(half=1.0), "half", "0.5"),
        (gelu_tanh(c=2 / math.pi), "constant", "√(2/π)"),
        (gelu_tanh(cube=2), "cubic", "x³"),
        (
            lambda x: 0.5 * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x**3))),
            "times_x",
            "multiply by x",
        ),
        (gelu_handmade_tanh, "nan", "torch.tanh"),
    ],
)
def test_gelu_mistakes(fn, key, words, seed):
    result = check("gelu", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_gelu_torch_builtin_tanh_is_correct():
    assert check("gelu", lambda x: F.gelu(x, approximate="tanh"), seed=0).ok


def test_gelu_constant_factor_is_named():
    result = check("gelu", lambda x: 3 * solutions.gelu(x), seed=0)
    assert not result.ok and result.diagnosis == "factor" and "3 × the answer" in result.message
