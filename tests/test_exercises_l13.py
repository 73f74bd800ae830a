"""Lesson 13's exercise (the score of a Gaussian mixture): the reference equals the library's
GaussianMixture, and each planted mistake (written the way a learner would write it) gets its
own hint."""

import pytest
import torch

from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.exercises import check
from fromscratch.exercises import l13_score_function_solutions as solutions


def test_the_reference_equals_the_library():
    x, w, mu = torch.randn(5, 2), torch.tensor([0.2, 0.8]), torch.randn(2, 2)
    gm = GaussianMixture(w, mu, torch.full((2,), 0.3))
    torch.testing.assert_close(solutions.mixture_score(x, w, mu, 0.3), gm.score(x),
                               rtol=1e-5, atol=1e-5)


def naive_mixture_score(x, weights, means, var, use_weights=True, sign=1.0, power=1.0):
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        dens = torch.stack([(w if use_weights else 1.0) * torch.exp(-((x[b] - m) ** 2).sum()
                                                                    / (2 * var))
                            for w, m in zip(weights, means, strict=True)])
        r = dens / dens.sum()
        for k in range(len(weights)):
            out[b] += sign * r[k] * (means[k] - x[b]) / var**power
    return out


def prior_weights(x, w, mu, var):
    return sum(w[k] * (mu[k] - x) / var for k in range(len(w)))


@pytest.mark.parametrize("fn, key", [
    (prior_weights, "prior_weights"),
    (lambda *a: naive_mixture_score(*a, sign=-1.0), "sign"),
    (lambda *a: naive_mixture_score(*a, power=0.5), "std"),
    (lambda *a: naive_mixture_score(*a, use_weights=False), "no_weights"),
    (naive_mixture_score, "nan"),  # dividing exponentials underflows for narrow components
])
def test_planted_mistake_gets_its_hint(fn, key):
    result = check("mixture_score", fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
