"""The diffusion track's exercises: reference solutions pass, each planted mistake (written the
way a learner would write it) gets its own hint, and the references agree with the library."""

import pytest
import torch

from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check, list_exercises, solution_source
from fromscratch.exercises import diffusion_solutions as solutions

DIFFUSION = ["vp_sigma", "mixture_score", "dsm_loss", "straight_path"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered_in_lesson_order():
    names = list_exercises()
    assert all(name in names for name in DIFFUSION)
    assert sorted(DIFFUSION, key=names.index) == DIFFUSION


@pytest.mark.parametrize("name", DIFFUSION)
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok and result.diagnosis == "correct"
    assert solution_source(name).startswith(f"def {name}(")


def test_references_agree_with_the_library():
    t = torch.rand(7)
    torch.testing.assert_close(solutions.vp_sigma(t, 0.1, 20.0), VPSDE().sigma(t))
    x, w, mu = torch.randn(5, 2), torch.tensor([0.2, 0.8]), torch.randn(2, 2)
    gm = GaussianMixture(w, mu, torch.full((2,), 0.3))
    torch.testing.assert_close(solutions.mixture_score(x, w, mu, 0.3), gm.score(x),
                               rtol=1e-5, atol=1e-5)


def diagnosis(name, fn):
    result = check(name, fn, seed=0)
    assert not result.ok
    return result.diagnosis


def test_vp_sigma_mistakes():
    def variance(t, lo, hi):
        return 1 - torch.exp(-(lo * t + 0.5 * (hi - lo) * t * t))

    def no_half(t, lo, hi):
        b = lo * t + (hi - lo) * t * t
        return (1 - (-b).exp()).sqrt()

    def beta_itself(t, lo, hi):
        return (1 - torch.exp(-(lo + (hi - lo) * t))).sqrt()

    def alpha(t, lo, hi):
        return torch.exp(-(lo * t + (hi - lo) * t**2 / 2) / 2)

    assert diagnosis("vp_sigma", variance) == "variance"
    assert diagnosis("vp_sigma", no_half) == "no_half"
    assert diagnosis("vp_sigma", beta_itself) == "beta_not_integral"
    assert diagnosis("vp_sigma", alpha) == "alpha"


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


def test_mixture_score_mistakes():
    def prior_weights(x, w, mu, var):
        return sum(w[k] * (mu[k] - x) / var for k in range(len(w)))

    assert diagnosis("mixture_score", prior_weights) == "prior_weights"
    assert diagnosis("mixture_score", lambda *a: naive_mixture_score(*a, sign=-1.0)) == "sign"
    assert diagnosis("mixture_score", lambda *a: naive_mixture_score(*a, power=0.5)) == "std"
    assert diagnosis("mixture_score",
                     lambda *a: naive_mixture_score(*a, use_weights=False)) == "no_weights"
    # dividing exponentials underflows for narrow components
    assert diagnosis("mixture_score", naive_mixture_score) == "nan"


def test_dsm_loss_mistakes():
    def sign(score, eps, sigma):
        return torch.mean((sigma.unsqueeze(1) * score - eps) ** 2)

    def unweighted(score, eps, sigma):
        target = -eps / sigma.unsqueeze(1)
        return torch.mean((score - target) ** 2)

    def squared(score, eps, sigma):
        target = -eps / sigma.unsqueeze(1) ** 2
        return torch.mean(sigma.unsqueeze(1) ** 2 * (score - target) ** 2 * sigma.unsqueeze(1) ** 2)

    assert diagnosis("dsm_loss", sign) == "sign"
    assert diagnosis("dsm_loss", unweighted) == "unweighted"
    assert diagnosis("dsm_loss", squared) == "sigma_squared"


def test_straight_path_mistakes():
    def reversed_path(x0, eps, t):
        return t.view(-1, 1) * x0 + (1 - t.view(-1, 1)) * eps, x0 - eps

    def velocity_sign(x0, eps, t):
        return (1 - t.view(-1, 1)) * x0 + t.view(-1, 1) * eps, x0 - eps

    assert diagnosis("straight_path", reversed_path) == "reversed"
    assert diagnosis("straight_path", velocity_sign) == "velocity_sign"
