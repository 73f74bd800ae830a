"""The samplers, driven by exact scores (gmm.py), against exact answers.

Deterministic samplers: on Gaussian data the probability flow ODE has a closed-form solution
(`gaussian_pf_ode_solution`); each solver's error against it must shrink at the solver's order
(a fitted log-log slope within ±0.3 of 1 or 2). Stochastic samplers: their samples must have the
moments of the true marginal, and split between two modes by the mixture's weights.
(The DDPM, DDIM and DPM-Solver++ updates are also proven equal to diffusers' step for step in
tests/equivalence/test_samplers_diffusers.py.)
"""

import math

import numpy as np
import pytest
import torch

from fromscratch.diffusion import samplers as S
from fromscratch.diffusion.gmm import GaussianMixture, gaussian_pf_ode_solution
from fromscratch.diffusion.sde import VESDE, VPSDE, DiscreteSchedule, SubVPSDE, linear_betas
from fromscratch.diffusion.targets import convert
from fromscratch.errors import UserError

MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.6, 0.2], [0.2, 0.3]], dtype=torch.float64)
GAUSSIAN = GaussianMixture(torch.ones(1), MEAN[None], COV[None])


def gen(seed):
    return torch.Generator().manual_seed(seed)


def exact_model(data: GaussianMixture, process, kind: str = "score"):
    """model(x_t, t) predicting `kind`, from the exact score of `data` under `process`."""

    def model(x, t):
        a, s = process.alpha(t), process.sigma(t)
        score = data.score(x, alpha=a, sigma=s)
        return convert(score, "score", kind, x, a.to(x.dtype), s.to(x.dtype))

    return model


def gaussian_x0(x, alpha, sigma):
    """E[x0 | x_t] for x0 ~ N(μ, Σ): μ + αΣ(α²Σ + σ²I)⁻¹(x − αμ), finite even at alpha = 0."""
    C = alpha**2 * COV + sigma**2 * torch.eye(2, dtype=torch.float64)
    return MEAN + (x - alpha * MEAN) @ torch.linalg.solve(C, alpha * COV)


def flow_x0_model(x, t):
    return gaussian_x0(x, 1 - float(t[0]), float(t[0]))


DETERMINISTIC = [  # (sampler, order, evaluations per step)
    ("ode_euler", 1, 1),
    ("ode_heun", 2, 2),
    ("ddim", 1, 1),
    ("dpm_solver_2m", 2, 1),
    ("heun_edm", 2, 2),
]
NFES = [20, 40, 80, 160]


def fitted_order(nfes, errors) -> float:
    return -np.polyfit(np.log(nfes), np.log(errors), 1)[0]


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["VP", "VE"])
@pytest.mark.parametrize("name,order,per_step", DETERMINISTIC)
def test_deterministic_samplers_converge_at_their_order(sde, name, order, per_step):
    x_T = sde.prior_sample((64, 2), gen(0), dtype=torch.float64)
    end = 0.0 if name == "heun_edm" else sde.t_min  # Heun (EDM) ends on σ = 0
    exact = gaussian_pf_ode_solution(x_T, sde.T, end, sde, MEAN, COV)
    errors = []
    for nfe in NFES:
        x0 = S.SAMPLERS[name](exact_model(GAUSSIAN, sde), x_T, sde, nfe // per_step,
                              prediction="score")
        errors.append(float((x0 - exact).norm(dim=1).mean()))
    assert abs(fitted_order(NFES, errors) - order) <= 0.3, errors
    assert errors[-1] < 0.05  # and small in absolute terms (data scale ~1)


@pytest.mark.parametrize("name,order", [("flow_euler", 1), ("flow_heun", 2)])
def test_flow_samplers_converge_on_the_straight_path(name, order):
    """The flow ODE from t = 1 to 0 equals the probability flow ODE of the straight path, whose
    Gaussian solution the same closed form gives."""
    x_T = torch.randn(64, 2, generator=gen(1), dtype=torch.float64)
    exact = gaussian_pf_ode_solution(x_T, 1.0, 0.0, S.StraightPath(), MEAN, COV)
    sampler = getattr(S, name)
    errors = [float((sampler(flow_x0_model, x_T, n, prediction="x0") - exact).norm(dim=1).mean())
              for n in NFES]
    assert abs(fitted_order(NFES, errors) - order) <= 0.3, errors


def test_flow_velocity_model_equals_x0_model():
    x_T = torch.randn(16, 2, generator=gen(2), dtype=torch.float64)

    def velocity_model(x, t):  # u = eps − x0 = (x − x0) / t on the straight path
        return (x - flow_x0_model(x, t)) / t[:, None]

    assert torch.allclose(S.flow_heun(velocity_model, x_T, 10),
                          S.flow_heun(flow_x0_model, x_T, 10, prediction="x0"), atol=1e-12)


def test_rk45_reaches_the_exact_solution():
    sde = VPSDE()
    x_T = sde.prior_sample((32, 2), gen(3), dtype=torch.float64)
    exact = gaussian_pf_ode_solution(x_T, sde.T, sde.t_min, sde, MEAN, COV)
    x0, path = S.ode_rk45(exact_model(GAUSSIAN, sde), x_T, sde, rtol=1e-7, return_trajectory=True)
    assert (x0 - exact).abs().max() < 1e-5
    assert torch.equal(path[0], x_T) and torch.equal(path[-1], x0)
    loose = S.ode_rk45(exact_model(GAUSSIAN, sde), x_T, sde, rtol=1e-2)
    assert (loose - exact).abs().max() > (x0 - exact).abs().max()


@pytest.mark.parametrize("name", ["ode_heun", "ddim", "dpm_solver_2m", "heun_edm", "ddpm"])
@pytest.mark.parametrize("kind", ["eps", "x0", "v"])
def test_every_prediction_kind_gives_the_same_samples(name, kind):
    """A model predicting eps, x0 or v is the score model in disguise: same samples."""
    sde = SubVPSDE()
    x_T = sde.prior_sample((16, 2), gen(4), dtype=torch.float64)
    runs = [S.SAMPLERS[name](exact_model(GAUSSIAN, sde, k), x_T, sde, 12, prediction=k,
                             generator=gen(5)) for k in ("score", kind)]
    assert torch.allclose(runs[0], runs[1], atol=1e-8)


def moments_close(x, mean, cov, tol):
    return ((x.mean(0) - mean).abs().max() < tol
            and (torch.cov(x.T) - cov).abs().max() < tol)


STOCHASTIC = [
    ("euler_maruyama", {}),
    ("predictor_corrector", {}),
    ("ddpm", {}),
    ("ddim", {"eta": 1.0}),
    ("heun_edm", {"churn": 10.0}),
]


@pytest.mark.parametrize("name,options", STOCHASTIC)
def test_stochastic_samplers_draw_the_true_distribution(name, options):
    sde = VPSDE()
    x_T = sde.prior_sample((6000, 2), gen(6), dtype=torch.float64)
    x0 = S.SAMPLERS[name](exact_model(GAUSSIAN, sde), x_T, sde, 150, prediction="score",
                          generator=gen(7), **options)
    target = GAUSSIAN.marginal(sde, sde.t_min)  # ≈ the data: sigma(t_min) = 0.01
    assert moments_close(x0, target.means[0], target.covs[0], tol=0.05)


@pytest.mark.parametrize("name", ["euler_maruyama", "predictor_corrector", "ddpm", "ode_heun",
                                  "dpm_solver_2m"])
def test_samples_split_between_modes_by_the_weights(name):
    """Two far-apart modes weighted 0.25 / 0.75: the share of samples on each side must match,
    which only an exact score that weighs the modes right can achieve."""
    data = GaussianMixture(torch.tensor([0.25, 0.75]), torch.tensor([[-2.0, 0.0], [2.0, 0.0]]),
                           torch.tensor([0.1, 0.1])).to(torch.float64)
    sde = VPSDE()
    x_T = sde.prior_sample((4000, 2), gen(8), dtype=torch.float64)
    x0 = S.SAMPLERS[name](exact_model(data, sde), x_T, sde, 60, prediction="score",
                          generator=gen(9))
    share_left = float((x0[:, 0] < 0).double().mean())
    assert share_left == pytest.approx(0.25, abs=0.03)  # binomial std 0.007


def test_ddim_on_a_schedule_is_seeded_and_keeps_the_shape():
    schedule = DiscreteSchedule(linear_betas(1000))
    x_T = torch.randn(3, 1, 4, 4, generator=gen(10))

    def eps_model(x, t):
        assert t.dtype == torch.long and t.shape == (3,)
        return 0.1 * x

    a = S.ddim(eps_model, x_T, schedule, 10, eta=1.0, generator=gen(11))
    b = S.ddim(eps_model, x_T, schedule, 10, eta=1.0, generator=gen(11))
    _, trajectory = S.ddim(eps_model, x_T, schedule, 10, return_trajectory=True)
    assert torch.equal(a, b) and a.shape == x_T.shape
    assert trajectory.shape == (11, 3, 1, 4, 4) and torch.equal(trajectory[0], x_T)


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_evaluations_counts_the_model_calls(name):
    sde = VPSDE()
    calls = []

    def counting_model(x, t):
        calls.append(1)
        return GAUSSIAN.score(x, t, sde)

    x_T = sde.prior_sample((4, 2), gen(12), dtype=torch.float64)
    S.SAMPLERS[name](counting_model, x_T, sde, 7, prediction="score", generator=gen(13))
    assert len(calls) == S.evaluations(name, 7)


def test_time_of_noise_level_inverts_noise_level():
    for sde in (VPSDE(), VESDE(), SubVPSDE()):
        t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
        assert torch.allclose(S.time_of_noise_level(sde, S.noise_level(sde, t)), t, atol=1e-12)


def test_logsnr_grid_is_even_in_log_snr():
    grid = S.time_grid(VPSDE(), 8, "logsnr")
    log_snr = [math.log(a / s) for _, a, s in grid]
    assert np.allclose(np.diff(log_snr), np.diff(log_snr)[0])
    assert grid[0][0] == 1.0 and grid[-1][0] == VPSDE.t_min


def test_bad_arguments_are_refused():
    sde, schedule = VPSDE(), DiscreteSchedule(linear_betas(100))
    x = torch.zeros(2, 2)
    with pytest.raises(TypeError, match="continuous-time SDE"):
        S.euler_maruyama(lambda x, t: x, x, schedule, 10)
    with pytest.raises(UserError, match="unknown prediction"):
        S.ddim(lambda x, t: x, x, sde, 10, prediction="noise")
    with pytest.raises(UserError, match="between 1 and the 100"):
        S.ddim(lambda x, t: x, x, schedule, 101)
    with pytest.raises(UserError, match="unknown spacing"):
        S.ddim(lambda x, t: x, x, schedule, 10, spacing="uniform")
