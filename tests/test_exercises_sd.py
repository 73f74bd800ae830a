"""The Stable Diffusion exercises: the reference passes, each planted mistake gets its hint, and
the references equal the library (unet.timestep_embedding, guidance.cfg_combine and guided,
AutoencoderKL.kl and sample)."""

import math

import pytest
import torch

from fromscratch.diffusion.guidance import cfg_combine, guided
from fromscratch.exercises import check, list_exercises, prompt, sd_exercises, solution_source
from fromscratch.exercises import sd_solutions as solutions
from fromscratch.stable_diffusion.unet import timestep_embedding
from fromscratch.stable_diffusion.vae import AutoencoderKL

TRACK = ["timestep_embedding", "cfg_combine", "gaussian_kl", "reparameterize", "guided_eps"]


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


def test_guided_eps_equals_the_library_guided_model():
    model = sd_exercises.TwoHalvesModel(batch=3)
    x, t = torch.randn(3, 4, 2, 2), torch.tensor([5, 500, 900])
    cond, uncond = torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    for w in [2.0, 7.5]:
        assert torch.allclose(solutions.guided_eps(model, x, t, cond, uncond, w),
                              guided(model, cond, uncond, w)(x, t), atol=1e-6)


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


def guided_cond_first(model, x, t, cond, uncond, w):  # [cond; uncond] in, read as [uncond; cond]
    out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
    u, c = out.chunk(2)
    return u + w * (c - u)


def guided_paper(model, x, t, cond, uncond, w):
    u, c = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)
    return (1 + w) * c - w * u


def guided_two_calls(model, x, t, cond, uncond, w):
    u, c = model(x, t, uncond), model(x, t, cond)
    return u + w * (c - u)


def guided_t_not_doubled(model, x, t, cond, uncond, w):
    u, c = model(torch.cat([x, x]), t, torch.cat([uncond, cond])).chunk(2)
    return u + w * (c - u)


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
    ("gaussian_kl", kl_no_half, "no_half", "factor ½"),
    ("gaussian_kl", kl_log_sigma, "std_not_logvar", "not log σ"),
    ("gaussian_kl", kl_averaged, "mean_not_sum", "do not average"),
    ("gaussian_kl", kl_no_minus_one, "no_minus_one", "missing the − 1"),
    ("gaussian_kl", kl_plus_log, "log_sign", "minus sign"),
    ("reparameterize", reparam_variance, "variance", "not by the variance"),
    ("reparameterize", reparam_logvar, "logvar_as_scale", "σ = exp(½ logvar)"),
    ("reparameterize", reparam_divided, "inverted", "do not divide"),
    ("guided_eps", guided_cond_first, "swapped", "ε_u comes first"),
    ("guided_eps", guided_paper, "ho_salimans", "Ho & Salimans"),
])
def test_each_planted_mistake_gets_its_hint(name, fn, key, words, capsys):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
    assert words in capsys.readouterr().out


@pytest.mark.parametrize("fn", [guided_two_calls, guided_t_not_doubled])
def test_guidance_without_one_batched_forward_is_refused(fn, capsys):
    result = check("guided_eps", fn, seed=0)
    assert not result.ok and result.diagnosis == "error", result.message
    assert "single model call on those 2B rows" in capsys.readouterr().out
