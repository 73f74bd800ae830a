"""Lesson 20's exercises (the VAE's KL term, the reparameterised sample): the references equal
AutoencoderKL.kl and sample and agree with a Monte Carlo estimate, and each planted mistake,
written as a learner would write it, gets its hint."""

import pytest
import torch

from fromscratch.exercises import check
from fromscratch.exercises import l20_latent_space_solutions as solutions
from fromscratch.stable_diffusion.vae import AutoencoderKL


def test_vae_references_equal_the_library_and_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    kl = solutions.gaussian_kl(mean, logvar)
    assert torch.allclose(kl, AutoencoderKL.kl(mean, logvar))
    eps = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    z = AutoencoderKL.sample(mean, logvar, torch.Generator().manual_seed(1))
    assert torch.allclose(solutions.reparameterize(mean, logvar, eps), z)
    # KL = E_q[log q(z) − log p(z)], estimated from 200,000 reparameterised draws
    eps = torch.randn(200_000, 2, 3, 4, generator=gen, dtype=torch.float64)
    draws = solutions.reparameterize(mean.double(), logvar.double(), eps)
    log_q = torch.distributions.Normal(mean.double(), (0.5 * logvar.double()).exp()).log_prob(draws)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(draws)
    estimate = (log_q - log_p).flatten(2).sum(2).mean(0)  # (2,)
    assert torch.allclose(estimate, kl.double(), rtol=0.02)


def kl_no_half(mean, logvar):
    return (mean**2 + logvar.exp() - 1 - logvar).sum(dim=tuple(range(1, mean.dim())))


def kl_log_sigma(mean, logvar):  # reads logvar as log σ
    sigma = logvar.exp()
    return 0.5 * (mean**2 + sigma**2 - 1 - torch.log(sigma**2)).reshape(len(mean), -1).sum(1)


def kl_averaged(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).reshape(len(mean), -1).mean(1)


def kl_no_minus_one(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - logvar).reshape(len(mean), -1).sum(1)


def kl_plus_log(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - 1 + logvar).reshape(len(mean), -1).sum(1)


def reparam_variance(mean, logvar, eps):
    return mean + eps * torch.exp(logvar)


def reparam_logvar(mean, logvar, eps):
    return mean + eps * logvar


def reparam_divided(mean, logvar, eps):
    return mean + eps / torch.exp(logvar / 2)


@pytest.mark.parametrize("name,fn,key,words", [
    ("gaussian_kl", kl_no_half, "no_half", "factor ½"),
    ("gaussian_kl", kl_log_sigma, "std_not_logvar", "not log σ"),
    ("gaussian_kl", kl_averaged, "mean_not_sum", "do not average"),
    ("gaussian_kl", kl_no_minus_one, "no_minus_one", "missing the − 1"),
    ("gaussian_kl", kl_plus_log, "log_sign", "minus sign"),
    ("reparameterize", reparam_variance, "variance", "not by the variance"),
    ("reparameterize", reparam_logvar, "logvar_as_scale", "σ = exp(½ logvar)"),
    ("reparameterize", reparam_divided, "inverted", "do not divide"),
])
def test_each_planted_mistake_gets_its_hint(name, fn, key, words):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message, result.message
