"""Training objectives: Vincent's identity (DSM = explicit score matching + a constant) with the
exact mixture score, the weight each prediction space implies, EDM's unit-variance design, and
the flow-matching regression target."""

import pytest
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion.losses import (
    EDMPrecond,
    dsm_loss,
    dsm_weight,
    edm_loss,
    edm_scalings,
    flow_matching_loss,
    implied_weight,
    sample_times,
)
from fromscratch.diffusion.sde import VESDE, VPSDE, DiscreteSchedule, SubVPSDE, linear_betas
from fromscratch.diffusion.targets import KINDS, convert
from fromscratch.diffusion.toy import ToyDiffusion, score_error_vs_time, train_toy
from fromscratch.errors import UserError

SDES = [VESDE(), VPSDE(), SubVPSDE()]
N = 40_000


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_dsm_equals_explicit_score_matching_plus_a_constant(sde):
    """Equation (1): for the exact score s* and a wrong score s* + c (c a constant vector),
    DSM(s* + c) − DSM(s*) = ESM(s* + c) − ESM(s*) = E λ ‖c‖²: the conditional-score target
    shifts the loss by the same constant for every model. Common random numbers, 40k draws;
    the tolerance is 5 Monte Carlo standard errors."""
    gm = toy_mixture("mixture")
    gen = torch.Generator().manual_seed(0)
    x0 = gm.sample(N, gen)
    t = sample_times(N, sde, gen, dtype=torch.float64)
    c = torch.tensor([0.3, -0.2], dtype=torch.float64)
    exact = lambda x, t: gm.score(x, t, sde)  # noqa: E731
    shifted = lambda x, t: gm.score(x, t, sde) + c / sde.sigma(t)[:, None]  # noqa: E731

    def per_sample(model):
        g = torch.Generator().manual_seed(1)  # the same noise for both models
        x_t, eps = sde.perturb(x0, t, g)
        lam = sde.sigma(t)[:, None] ** 2
        return (lam * (model(x_t, t) + eps / sde.sigma(t)[:, None]) ** 2).sum(1)

    diff = per_sample(shifted) - per_sample(exact)
    expected = (c**2).sum()  # λ ‖c/σ‖² with λ = σ²
    assert abs(diff.mean() - expected) < 5 * diff.std() / N**0.5 + 1e-12
    # and dsm_loss computes the same quantity (mean over the 2 coordinates)
    loss = dsm_loss(exact, "score", x0[:1000], sde, weighting="sigma2", t=t[:1000],
                    generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    x_t, eps = sde.perturb(x0[:1000], t[:1000], g)
    by_hand = ((sde.sigma(t[:1000])[:, None] * exact(x_t, t[:1000]) + eps) ** 2).mean()
    torch.testing.assert_close(loss, by_hand)


@pytest.mark.parametrize("prediction", KINDS)
def test_each_prediction_space_is_dsm_with_its_implied_weight(prediction):
    """MSE in eps/x0/v/score space = λ‖s − (−eps/σ)‖² with λ from `implied_weight`, per sample,
    for any model output (here a random one), on the same draws."""
    sde = VPSDE()
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = sample_times(64, sde, gen, dtype=torch.float64)
    out = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    model = lambda x, t: out  # noqa: E731
    plain = dsm_loss(model, prediction, x0, sde, t=t, generator=torch.Generator().manual_seed(5))
    x_t, eps = sde.perturb(x0, t, torch.Generator().manual_seed(5))
    a, s = sde.alpha(t), sde.sigma(t)
    score = convert(out, prediction, "score", x_t, a, s)
    weighted = (implied_weight(prediction, a, s)[:, None] * (score + eps / s[:, None]) ** 2)
    torch.testing.assert_close(plain, weighted.mean(), rtol=1e-10, atol=1e-12)


def test_weightings_and_times():
    sde = VPSDE()
    t = torch.tensor([0.1, 0.5], dtype=torch.float64)
    torch.testing.assert_close(dsm_weight("sigma2", sde, t), sde.sigma(t) ** 2)
    torch.testing.assert_close(dsm_weight("likelihood", sde, t), sde.beta(t))
    torch.testing.assert_close(dsm_weight("uniform", sde, t), torch.ones(2, dtype=torch.float64))
    with pytest.raises(UserError, match="unknown weighting"):
        dsm_weight("snr", sde, t)
    times = sample_times(10000, sde, torch.Generator().manual_seed(0))
    assert times.min() >= sde.t_min and times.max() <= sde.T
    assert times.mean().item() == pytest.approx((sde.t_min + sde.T) / 2, abs=0.01)
    sched = DiscreteSchedule(linear_betas(100))
    idx = sample_times(5000, sched, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and idx.min() == 0 and idx.max() == 99


def test_dsm_on_a_discrete_schedule():
    """The exact eps of a mixture has a lower loss than a 10 % perturbation of it."""
    gm = toy_mixture("eight_gaussians")
    sched = DiscreteSchedule(linear_betas(), dtype=torch.float64)
    x0 = gm.sample(20000, torch.Generator().manual_seed(0))

    def exact(x, t):
        return gm.eps(x, alpha=sched.alpha(t), sigma=sched.sigma(t))

    losses = [dsm_loss(lambda x, t: scale * exact(x, t), "eps", x0, sched,  # noqa: B023
                       generator=torch.Generator().manual_seed(1)) for scale in (1.0, 1.1, 0.9)]
    assert losses[0] < losses[1] and losses[0] < losses[2]


def test_edm_preconditioning_makes_unit_variance():
    """EDM's design: for data of std σ_d, the network input c_in·y and its regression target
    (x0 − c_skip·y)/c_out both have variance 1 at every σ (exact for Gaussian data: the
    variances are c_in²(σ_d² + σ²) and ((1 − c_skip)² σ_d² + c_skip² σ²)/c_out²); and the loss
    weight λ = 1/c_out²."""
    sd = 0.5
    sigma = torch.tensor([0.002, 0.1, 0.5, 2.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    torch.testing.assert_close(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma))
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(sigma))
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    torch.testing.assert_close(lam * c_out**2, torch.ones_like(sigma))


def test_edm_loss_is_unit_mse_on_the_raw_network():
    class Raw(torch.nn.Module):
        def forward(self, x, c_noise):
            return torch.sin(3 * x) + c_noise[:, None]

    den = EDMPrecond(Raw(), sigma_data=0.5)
    x0 = 0.5 * torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = edm_loss(den, x0, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # replay the same draws
    sigma = (-1.2 + 1.2 * torch.randn(256, generator=gen, dtype=torch.float64)).exp()
    y = x0 + sigma[:, None] * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = (c[:, None] for c in edm_scalings(sigma, 0.5))
    raw = torch.sin(3 * c_in * y) + c_noise
    torch.testing.assert_close(loss, ((raw - (x0 - c_skip * y) / c_out) ** 2).mean())


def test_flow_matching_is_minimized_by_the_marginal_velocity():
    """The exact velocity E[eps − x0 | x_t] of a mixture (x_t = (1 − t) x0 + t eps: alpha = 1 − t,
    sigma = t) beats any perturbation of it; and the loss is the MSE against eps − x0."""
    gm = toy_mixture("mixture")
    x0 = gm.sample(20000, torch.Generator().manual_seed(0))

    def velocity(x, t):
        return gm.eps(x, alpha=1 - t, sigma=t) - gm.x0(x, alpha=1 - t, sigma=t)

    t = 0.02 + 0.96 * torch.rand(20000, generator=torch.Generator().manual_seed(2),
                                 dtype=torch.float64)
    base = flow_matching_loss(velocity, x0, t=t, generator=torch.Generator().manual_seed(1))
    for scale, shift in [(1.05, 0.0), (0.95, 0.0), (1.0, 0.05)]:
        other = flow_matching_loss(lambda x, t: scale * velocity(x, t) + shift,  # noqa: B023
                                   x0, t=t, generator=torch.Generator().manual_seed(1))
        assert other > base
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    torch.testing.assert_close(base, ((velocity(x_t, t) - (eps - x0)) ** 2).mean())


# ---------------------------------------------------------------------------------------------
# toy.py: the MLP score model, its training through the shared loop, its error against the truth
# ---------------------------------------------------------------------------------------------
def test_score_error_measures_the_distance_to_the_exact_score():
    """The exact score has error 0; a score 10 % too long has relative error exactly 0.01 and
    eps-space error 0.01 · σ² E‖s‖² / D."""
    gm = toy_mixture("mixture")
    sde = VPSDE()
    times = torch.tensor([0.01, 0.5])
    exact = score_error_vs_time(lambda x, t: gm.to(torch.float32).score(x, t, sde), gm, sde,
                                times, n=500)
    assert exact["relative"].abs().max() < 1e-10 and exact["eps_mse"].abs().max() < 1e-10
    long = score_error_vs_time(lambda x, t: 1.1 * gm.to(torch.float32).score(x, t, sde), gm,
                               sde, times, n=500)
    torch.testing.assert_close(long["relative"], torch.full((2,), 0.01, dtype=torch.float64),
                               rtol=1e-4, atol=0)


def test_toy_model_predictions_convert_to_its_score():
    sde = VESDE()
    x = torch.randn(8, 2)
    t = torch.rand(8) * 0.9 + 0.05
    for prediction in KINDS:
        model = ToyDiffusion(sde, prediction, hidden=16, depth=2)
        torch.testing.assert_close(
            model.score(x, t), convert(model(x, t), prediction, "score", x, sde.alpha(t),
                                       sde.sigma(t)))
    with pytest.raises(UserError, match="unknown prediction"):
        ToyDiffusion(sde, "noise")


def test_training_learns_the_score_of_a_mixture():
    """300 steps of the shared training loop bring the learned score of the 3-component mixture
    within 10 % (relative squared error) of the exact one at moderate noise, from ≥ 50 %."""
    torch.manual_seed(0)
    gm = toy_mixture("mixture")
    sde = VPSDE()
    model = ToyDiffusion(sde, "eps", hidden=64, depth=3)
    times = torch.tensor([0.3, 0.6])
    before = score_error_vs_time(model.score, gm, sde, times, n=1000)
    result = train_toy(model, "mixture", steps=300, batch_size=256, lr=1e-2, progress=False)
    after = score_error_vs_time(model.score, gm, sde, times, n=1000)
    assert result.step == 300
    assert before["relative"].min() > 0.5
    assert after["relative"].max() < 0.1, after
