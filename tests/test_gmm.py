"""The Gaussian-mixture oracle: density against torch.distributions, score against autograd,
denoiser against the posterior mean written per component, marginals against Monte Carlo of the
forward process (Kolmogorov–Smirnov), and the Gaussian PF-ODE solution against a numerical solve."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.special import ndtr
from scipy.stats import kstest

from fromscratch.diffusion.gmm import GaussianMixture, gaussian_pf_ode_solution
from fromscratch.diffusion.sde import VESDE, VPSDE, DiscreteSchedule, SubVPSDE, linear_betas
from fromscratch.errors import UserError

SDES = [VESDE(), VPSDE(), SubVPSDE()]


def random_mixture(K=3, D=2, seed=0, dtype=torch.float64) -> GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=gen, dtype=dtype) + 0.2
    means = 3 * torch.randn(K, D, generator=gen, dtype=dtype)
    A = torch.randn(K, D, D, generator=gen, dtype=dtype)
    covs = A @ A.transpose(1, 2) * 0.3 + 0.05 * torch.eye(D, dtype=dtype)  # full, correlated
    return GaussianMixture(weights, means, covs)


@pytest.mark.parametrize("D", [1, 2, 5])
def test_log_prob_equals_torch_distributions(D):
    gm = random_mixture(K=4, D=D)
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=gm.weights),
        torch.distributions.MultivariateNormal(gm.means, covariance_matrix=gm.covs))
    x = 3 * torch.randn(50, D, dtype=torch.float64)
    torch.testing.assert_close(gm.log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sde", SDES, ids=repr)
@pytest.mark.parametrize("D", [2, 3])
def test_score_equals_autograd_of_the_marginal_log_density(sde, D):
    """∇ log p_t from equation (2) = autograd through log p_t built as a torch.distributions
    mixture of N(alpha μ_k, alpha² Σ_k + sigma² I): ≤ 1e-8 relative, each sample at its own t."""
    gm = random_mixture(K=3, D=D, seed=D)
    t = torch.tensor([1e-3, 0.05, 0.2, 0.5, 0.8, 1.0], dtype=torch.float64)
    x = (3 * torch.randn(len(t), D, dtype=torch.float64)).requires_grad_(True)
    a, s = sde.alpha(t)[:, None, None], sde.sigma(t)[:, None, None]
    covs = a[..., None] ** 2 * gm.covs + s[..., None] ** 2 * torch.eye(D, dtype=torch.float64)
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=gm.weights.expand(len(t), -1)),
        torch.distributions.MultivariateNormal(a * gm.means, covariance_matrix=covs))
    (grad,) = torch.autograd.grad(ref.log_prob(x).sum(), x)
    ours = gm.score(x.detach(), t, sde)
    assert ((ours - grad).norm(dim=1) / grad.norm(dim=1)).max() < 1e-8
    torch.testing.assert_close(gm.log_prob(x.detach(), t, sde), ref.log_prob(x).detach())
    # one time for the whole batch, and the marginal mixture at that time, agree too
    m = gm.marginal(sde, 0.3)
    torch.testing.assert_close(gm.score(x.detach(), 0.3, sde), m.score(x.detach()))


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_denoiser_is_the_posterior_mean(sde):
    """Tweedie's x0 = (x + sigma² score)/alpha equals E[x0 | x_t] computed the Bayesian way:
    Σ_k r_k (μ_k + alpha Σ_k C_k⁻¹ (x_t − alpha μ_k)); and eps = (x_t − alpha x0)/sigma."""
    gm = random_mixture(K=3, D=2, seed=5)
    t = torch.tensor([0.01, 0.3, 0.9], dtype=torch.float64)
    x = 2 * torch.randn(3, 2, dtype=torch.float64)
    a, s = sde.alpha(t), sde.sigma(t)
    r = gm.responsibilities(x, t, sde)  # (B, K)
    posterior = torch.zeros_like(x)
    for b in range(3):
        for k in range(gm.n_components):
            C = a[b] ** 2 * gm.covs[k] + s[b] ** 2 * torch.eye(2, dtype=torch.float64)
            gain = a[b] * gm.covs[k] @ torch.linalg.inv(C)
            posterior[b] += r[b, k] * (gm.means[k] + gain @ (x[b] - a[b] * gm.means[k]))
    torch.testing.assert_close(gm.x0(x, t, sde), posterior, rtol=1e-9, atol=1e-10)
    eps = (x - a[:, None] * posterior) / s[:, None]
    torch.testing.assert_close(gm.eps(x, t, sde), eps, rtol=1e-8, atol=1e-9)


def test_discrete_schedule_through_alpha_sigma_and_float32():
    gm = random_mixture(K=2, D=2, seed=3)
    sched = DiscreteSchedule(linear_betas(), dtype=torch.float64)
    idx = torch.tensor([0, 500, 999])
    x = torch.randn(3, 2, dtype=torch.float64)
    via = gm.score(x, idx, sched)
    direct = gm.score(x, alpha=sched.alpha(idx), sigma=sched.sigma(idx))
    torch.testing.assert_close(via, direct)
    g32 = gm.to(torch.float32)
    out = g32.score(x.float(), idx, DiscreteSchedule(linear_betas()))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, via.float(), rtol=1e-4, atol=1e-5)


def mixture_cdf_along(gm: GaussianMixture, u: torch.Tensor):
    """CDF of uᵀx for x ~ gm: a 1-D mixture of N(uᵀμ_k, uᵀΣ_k u)."""
    m = (gm.means @ u).numpy()
    sd = torch.einsum("d,kde,e->k", u, gm.covs, u).sqrt().numpy()
    w = gm.weights.numpy()
    return lambda y: (w * ndtr((np.asarray(y)[:, None] - m) / sd)).sum(1)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_marginal_matches_monte_carlo_of_the_forward_process(sde):
    """x0 ~ gm, x_t = alpha x0 + sigma eps (4000 draws, seed 0) is distributed as
    gm.marginal(sde, t): a Kolmogorov–Smirnov test along three directions at each t must not
    reject at level 1e-3 (a correct implementation fails it with probability ≤ 0.9 %)."""
    gm = random_mixture(K=3, D=2, seed=1)
    gen = torch.Generator().manual_seed(0)
    for t in [0.0, 0.1, 0.5, 1.0]:
        x0 = gm.sample(4000, gen)
        x_t, _ = sde.perturb(x0, torch.full((4000,), t, dtype=torch.float64), generator=gen)
        marginal = gm.marginal(sde, t)
        for angle in [0.0, 1.0, 2.2]:
            u = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
            p = kstest((x_t @ u).numpy(), mixture_cdf_along(marginal, u)).pvalue
            assert p > 1e-3, (t, angle, p)


def test_ks_test_has_power():
    """The same test rejects a marginal built with sigma² in place of sigma (a typical slip): the
    check above can fail."""
    gm = random_mixture(K=3, D=2, seed=1)
    sde = VPSDE()
    gen = torch.Generator().manual_seed(0)
    x_t, _ = sde.perturb(gm.sample(4000, gen), torch.full((4000,), 0.1, dtype=torch.float64),
                         generator=gen)
    t = torch.tensor(0.1, dtype=torch.float64)
    wrong = gm.marginal(alpha=sde.alpha(t), sigma=sde.sigma(t) ** 2)
    u = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert kstest((x_t @ u).numpy(), mixture_cdf_along(wrong, u)).pvalue < 1e-3


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_gaussian_pf_ode_solution_equals_a_numerical_solve(sde):
    """The closed form against DOP853 (rtol 1e-10) on dx/dt = f x − ½ g² ∇log p_t, from T = 1 down
    to t = 0.01, with the exact Gaussian score; and encoding (t > T) inverts decoding."""
    gen = torch.Generator().manual_seed(2)
    mean = torch.tensor([1.0, -0.5], dtype=torch.float64)
    A = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    cov = A @ A.T + 0.1 * torch.eye(2, dtype=torch.float64)
    gauss = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], cov[None])
    x_T = sde.prior_sample((3, 2), gen, dtype=torch.float64)

    def velocity(t, y):
        x = torch.from_numpy(y).reshape(3, 2)
        return sde.ode_drift(x, t, gauss.score(x, t, sde)).flatten().numpy()

    sol = solve_ivp(velocity, (1.0, 0.01), x_T.flatten().numpy(), method="DOP853", rtol=1e-10,
                    atol=1e-10)
    numeric = torch.from_numpy(sol.y[:, -1]).reshape(3, 2)
    closed = gaussian_pf_ode_solution(x_T, 1.0, 0.01, sde, mean, cov)
    torch.testing.assert_close(closed, numeric, rtol=1e-6, atol=1e-6)
    back = gaussian_pf_ode_solution(closed, 0.01, 1.0, sde, mean, cov)
    torch.testing.assert_close(back, x_T)


def test_sample_moments_and_shapes():
    gm = random_mixture(K=2, D=3, seed=4)
    x = gm.sample(50000, torch.Generator().manual_seed(0))
    assert x.shape == (50000, 3) and x.dtype == torch.float64
    torch.testing.assert_close(x.mean(0), gm.mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), gm.covariance(), atol=0.1, rtol=0.02)
    same = gm.sample(10, torch.Generator().manual_seed(7))
    torch.testing.assert_close(same, gm.sample(10, torch.Generator().manual_seed(7)))


def test_covariance_forms_and_errors():
    means = torch.zeros(2, 2)
    iso = GaussianMixture([1, 1], means, torch.tensor([2.0, 3.0]))
    diag = GaussianMixture([1, 1], means, torch.tensor([[2.0, 2.0], [3.0, 3.0]]))
    torch.testing.assert_close(iso.covs, diag.covs)
    torch.testing.assert_close(iso.weights, torch.tensor([0.5, 0.5]))
    with pytest.raises(UserError, match="positive definite"):
        GaussianMixture([1], torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"must be \(B, 2\)"):
        iso.log_prob(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="alpha and sigma together") as contradiction:
        iso.score(torch.zeros(1, 2), alpha=1.0)
    assert not isinstance(contradiction.value, UserError)  # a bug in the calling code
