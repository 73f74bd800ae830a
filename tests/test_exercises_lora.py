"""The LoRA exercise: the reference passes, the library's LoRALinear passes, and each planted
mistake (written the way a learner might write it) gets its own hint."""

import pytest
import torch
from torch import nn

from fromscratch.exercises import check, list_exercises, prompt, solution_source
from fromscratch.exercises import lora_solutions as solutions
from fromscratch.language.lora import LoRALinear

SEEDS = [0, 1, 2]


def test_registered_with_a_prompt_and_a_readable_solution():
    assert "lora_forward" in list_exercises()
    assert solution_source("lora_forward").startswith("def lora_forward(")
    assert "alpha / r" in prompt("lora_forward")


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(seed, capsys):
    result = check("lora_forward", solutions.lora_forward, seed=seed)
    assert result.ok and result.diagnosis == "correct"
    assert capsys.readouterr().out.startswith("✓ lora_forward: correct on all")


def library_lora(x, W, b, A, B, alpha, r):
    """The library's LoRALinear with these weights."""
    base = nn.Linear(W.shape[1], W.shape[0])
    layer = LoRALinear(base, rank=r, alpha=alpha)
    with torch.no_grad():
        for param, value in ((layer.weight, W), (layer.bias, b), (layer.lora_A, A),
                             (layer.lora_B, B)):
            param.copy_(value)
        return layer(x)


def test_the_library_passes_the_exercise():
    assert check("lora_forward", library_lora, seed=0).ok


# planted mistakes -----------------------------------------------------------------------------
def forgot_scaling(x, W, b, A, B, alpha, r):
    return torch.nn.functional.linear(x, W, b) + (x @ A.T) @ B.T


def alpha_only(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha * torch.einsum("...i,ri,or->...o", x, A, B)


def r_over_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + x @ A.T @ B.T * r / alpha


def swapped(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha / r * (x @ B @ A)  # runs for square layers only


def dropped_base(x, W, b, A, B, alpha, r):
    return alpha / r * (x @ A.T @ B.T)


def no_bias(x, W, b, A, B, alpha, r):
    return x @ W.T + alpha / r * (x @ A.T @ B.T)


def wrong_order_shapes(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha / r * (x @ B.T @ A.T)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn, key, words", [
    (forgot_scaling, "no_scaling", "alpha / r"),
    (alpha_only, "scaled_by_alpha", "divide by r"),
    (r_over_alpha, "scaled_r_over_alpha", "upside down"),
    (swapped, "delta_transposed", "swapped or transposed"),
    (dropped_base, "update_only", "frozen layer's output is missing"),
    (no_bias, "no_bias", "bias b"),
])
def test_each_mistake_gets_its_hint(fn, key, words, seed, capsys):
    result = check("lora_forward", fn, seed=seed)
    assert not result.ok and result.diagnosis == key
    assert words in capsys.readouterr().out


def test_a_shape_error_gets_the_shape_hint(capsys):
    result = check("lora_forward", wrong_order_shapes, seed=0)
    assert not result.ok
    assert "A is (r, in) and B is (out, r)" in capsys.readouterr().out
