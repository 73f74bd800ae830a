"""Forward processes: each SDE's alpha and sigma against a numerical solution of its moment ODEs,
closed forms against their definitions, and the discrete schedules against their formulas."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from fromscratch.diffusion.sde import (
    EDMSDE,
    VESDE,
    VPSDE,
    DiscreteSchedule,
    SubVPSDE,
    cosine_betas,
    edm_sigmas,
    expand_like,
    linear_betas,
    scaled_linear_betas,
)
from fromscratch.errors import UserError

SDES = [VESDE(), VESDE(sigma=5.0), VPSDE(), VPSDE(beta_min=0.5, beta_max=10.0), SubVPSDE(),
        EDMSDE()]
TIMES = [1e-4, 0.01, 0.1, 0.3, 0.5, 0.77, 1.0]


def scalar(fn, t: float) -> float:
    return float(fn(torch.tensor([t], dtype=torch.float64))[0])


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_marginal_mean_and_std_solve_the_moment_odes(sde):
    """dm/dt = f m, m(0) = 1 and dv/dt = 2 f v + g², v(0) = 0, integrated by RK45 at rtol 1e-10,
    give alpha(t) and sigma(t)² (only f and g enter the ODEs, not the closed forms)."""

    def moments(t, y):
        f, g = scalar(sde.drift_coefficient, t), scalar(sde.diffusion, t)
        return [f * y[0], 2 * f * y[1] + g**2]

    sol = solve_ivp(moments, (0.0, 1.0), [1.0, 0.0], t_eval=TIMES, rtol=1e-10, atol=1e-13,
                    method="RK45")
    t = torch.tensor(TIMES, dtype=torch.float64)
    np.testing.assert_allclose(sde.alpha(t).numpy(), sol.y[0], rtol=1e-7)
    np.testing.assert_allclose(sde.sigma(t).numpy(), np.sqrt(sol.y[1]), rtol=1e-6)


def test_closed_forms_from_their_definitions():
    t = torch.tensor(TIMES, dtype=torch.float64)
    ve = VESDE(25.0)
    torch.testing.assert_close(ve.sigma(t) ** 2, (25.0 ** (2 * t) - 1) / (2 * math.log(25.0)))
    torch.testing.assert_close(ve.diffusion(t), 25.0**t)
    vp, sub = VPSDE(), SubVPSDE()
    B = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.alpha(t) ** 2 + vp.sigma(t) ** 2, torch.ones_like(t))
    torch.testing.assert_close(sub.sigma(t), 1 - torch.exp(-B))
    torch.testing.assert_close(sub.diffusion(t) ** 2, vp.beta(t) * (1 - torch.exp(-2 * B)))
    assert (sub.sigma(t) <= vp.sigma(t)).all()  # "sub"-VP: never more variance than VP
    assert ve.prior_std() == pytest.approx(math.sqrt((25.0**2 - 1) / (2 * math.log(25.0))))


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_perturb_matches_monte_carlo_of_the_sde(sde):
    """Euler–Maruyama on dx = f x dt + g dw from x0 = 1 (4000 paths, 400 steps): sample mean and
    std at t = 0.5 agree with alpha and sigma within 5 standard errors plus the O(dt) step bias."""
    gen = torch.Generator().manual_seed(0)
    n, steps, t_end = 4000, 400, 0.5
    dt = t_end / steps
    x = torch.ones(n, dtype=torch.float64)
    for k in range(steps):
        t = torch.full((n,), k * dt, dtype=torch.float64)
        noise = torch.randn(n, generator=gen, dtype=torch.float64)
        x = x + sde.drift(x, t) * dt + sde.diffusion(t) * math.sqrt(dt) * noise
    alpha, sigma = scalar(sde.alpha, t_end), scalar(sde.sigma, t_end)
    bias = 0.02 * (abs(alpha) + sigma)  # Euler–Maruyama is first order: error ~ dt · (f, g' terms)
    assert abs(x.mean().item() - alpha) < 5 * sigma / math.sqrt(n) + bias
    assert abs(x.std().item() - sigma) < 5 * sigma / math.sqrt(2 * n) + bias


def test_drift_reverse_drift_and_ode_drift():
    sde = VPSDE()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    score = torch.randn_like(x)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    f = (-0.5 * sde.beta(t)).view(3, 1, 1, 1)
    g2 = sde.beta(t).view(3, 1, 1, 1)
    torch.testing.assert_close(sde.drift(x, t), f * x)
    torch.testing.assert_close(sde.reverse_drift(x, t, score), f * x - g2 * score)
    torch.testing.assert_close(sde.ode_drift(x, t, score), f * x - 0.5 * g2 * score)
    # a scalar time broadcasts over the batch
    torch.testing.assert_close(sde.drift(x, 0.5), -0.5 * float(sde.beta(0.5)) * x)


def test_prior_sample_and_log_prob():
    sde = VESDE()
    gen = torch.Generator().manual_seed(1)
    x = sde.prior_sample((20000, 2), gen, dtype=torch.float64)
    assert x.std().item() == pytest.approx(sde.prior_std(), rel=0.02)
    y = torch.randn(5, 3, dtype=torch.float64)
    exact = torch.distributions.Normal(0.0, sde.prior_std()).log_prob(y).sum(1)
    torch.testing.assert_close(sde.prior_log_prob(y), exact)


def test_expand_like():
    x = torch.zeros(4, 3, 8, 8)
    assert expand_like(torch.arange(4.0), x).shape == (4, 1, 1, 1)
    assert expand_like(0.5, x).shape == ()


def test_discrete_schedules_follow_their_formulas():
    N = 1000
    lin = DiscreteSchedule(linear_betas(N), dtype=torch.float64)
    assert lin.num_train_timesteps == N
    assert lin.betas[0].item() == pytest.approx(1e-4)
    assert lin.betas[-1].item() == pytest.approx(0.02)
    n = torch.tensor([0, 10, 999])
    expected = torch.stack([torch.prod(1 - lin.betas[: i + 1]) for i in n.tolist()])
    torch.testing.assert_close(lin.alpha(n) ** 2, expected)
    one = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(lin.alpha(n) ** 2 + lin.sigma(n) ** 2, one)
    sd = scaled_linear_betas(N)
    assert sd[0].item() == pytest.approx(0.00085) and sd[-1].item() == pytest.approx(0.012)
    root = sd.sqrt()
    torch.testing.assert_close(root.diff(), torch.full((N - 1,), root[1].item() - root[0].item(),
                                                      dtype=torch.float64))
    cos = DiscreteSchedule(cosine_betas(N), dtype=torch.float64)
    u = (torch.arange(N, dtype=torch.float64) + 1) / N
    f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    target = f / math.cos(0.008 / 1.008 * math.pi / 2) ** 2  # ᾱ_n = f(u) / f(0)
    # the cap β ≤ 0.999 only touches the last step
    torch.testing.assert_close(cos.alphas_cumprod[:-1], target[:-1], rtol=1e-9, atol=1e-12)
    with pytest.raises(TypeError):
        lin.alpha(torch.tensor([0.5]))
    with pytest.raises(UserError, match="every beta must lie in"):
        DiscreteSchedule(torch.tensor([0.1, 1.0]))
    try:  # a setting a user chose: UserError, which `except ValueError` also catches
        VPSDE(beta_min=1.0, beta_max=0.5)
    except ValueError as error:
        assert isinstance(error, UserError) and "beta_min <= beta_max" in str(error)
    else:
        raise AssertionError("VPSDE accepted beta_min > beta_max")


def test_edm_sigmas():
    s = edm_sigmas(18)
    assert s.shape == (18,)
    assert s[0].item() == pytest.approx(80.0) and s[-1].item() == pytest.approx(0.002)
    assert (s.diff() < 0).all()
    torch.testing.assert_close(s ** (1 / 7), torch.linspace(80 ** (1 / 7), 0.002 ** (1 / 7), 18,
                                                            dtype=torch.float64))
    # Karras et al.'s eq. 5 at i = 9 of 18, written out
    i, n = 9, 18
    eq5 = (80 ** (1 / 7) + i / (n - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert s[i].item() == pytest.approx(eq5, rel=1e-12)
