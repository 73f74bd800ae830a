"""Lesson 22's exercises (averaging gradients, an EMA step): the library's EMA and autograd of
the global mean pass, and each mistake is named."""

import pytest
import torch
from torch import nn

from fromscratch.exercises import check
from fromscratch.training.ema import EMA


def library_ema(averaged, current, decay):
    """The library's EMA, started at `averaged` and updated once with `current`."""
    model = nn.ParameterList([nn.Parameter(a.clone()) for a in averaged])
    ema = EMA(model, decay)
    with torch.no_grad():
        for p, t in zip(model, current, strict=True):
            p.copy_(t)
    ema.update(model)
    return [ema.params[str(i)] for i in range(len(averaged))]


def test_the_library_ema_passes_the_exercise():
    assert check("ema_update", library_ema, seed=0).ok


def global_gradient_by_autograd(grads, counts):
    """Not a formula: build per-example losses whose per-process mean gradients are `grads`,
    then differentiate the mean over all examples."""
    theta = torch.zeros_like(grads[0], requires_grad=True)
    losses = []
    for g, n in zip(grads, counts, strict=True):
        losses += [(g * theta).sum()] * n  # each of the n examples has gradient g
    torch.stack(losses).mean().backward()
    return theta.grad


def test_autograd_of_the_global_mean_passes_the_exercise():
    assert check("allreduce_mean", global_gradient_by_autograd, seed=0).ok


def ema_backwards(averaged, current, decay):
    return [a * (1 - decay) + t * decay for a, t in zip(averaged, current, strict=True)]


def ema_unscaled(averaged, current, decay):
    return [a.mul(decay).add(t) for a, t in zip(averaged, current, strict=True)]


def mean_of_grads(grads, counts):
    return sum(grads) / len(grads)


def summed(grads, counts):
    total = torch.zeros_like(grads[0])
    for g in grads:
        total += g
    return total


def weighted_not_divided(grads, counts):
    return torch.einsum("r,rij->ij", torch.tensor(counts, dtype=torch.float), torch.stack(grads))


@pytest.mark.parametrize("name, fn, words", [
    ("ema_update", ema_backwards, "multiplies the wrong term"),
    ("ema_update", ema_unscaled, "(1 − decay)"),
    ("ema_update", lambda a, c, d: c, "returned the current weights"),
    ("allreduce_mean", mean_of_grads, "weight grads[r] by counts[r]"),
    ("allreduce_mean", summed, "you added the gradients"),
    ("allreduce_mean", weighted_not_divided, "divide by the total"),
])
def test_each_mistake_gets_its_hint(name, fn, words):
    result = check(name, fn, seed=0)
    assert not result.ok and words in result.message
