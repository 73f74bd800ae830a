"""Metrics, baselines and the Neural Data Transformer, on tiny simulated populations."""

import math

import pytest
import torch
from sklearn.linear_model import PoissonRegressor

from fromscratch.errors import UserError
from fromscratch.neuro.baselines import fit_poisson_glm, gaussian_smooth, glm_rates, pca_smooth
from fromscratch.neuro.metrics import bits_per_spike, null_rates, poisson_log_likelihood, r_squared
from fromscratch.neuro.ndt import (
    NDT,
    NDTConfig,
    expected_loss_at_init,
    loss_mask,
    poisson_nll,
)
from fromscratch.neuro.simulate import simulate_lorenz_population


@pytest.fixture(scope="module")
def data():
    return simulate_lorenz_population(n_trials=60, n_neurons=12, n_bins=20, burn_in=100, seed=3)


def test_bits_per_spike_of_truth_positive_and_of_null_zero(data):
    assert bits_per_spike(null_rates(data.spikes), data.spikes) == 0.0
    assert bits_per_spike(data.rates, data.spikes) > 0.05
    assert bits_per_spike(data.rates * 3, data.spikes) < 0  # wrong rates are worse than flat


def test_log_likelihood_matches_scipy(data):
    from scipy.stats import poisson

    expected = poisson.logpmf(data.spikes.numpy(), data.rates.numpy()).sum()
    assert math.isclose(poisson_log_likelihood(data.rates, data.spikes), expected, rel_tol=1e-9)


def test_r_squared():
    true = torch.rand(4, 5, 3) + 1
    assert r_squared(true, true) == 1.0
    assert abs(r_squared(true.mean((0, 1), keepdim=True).expand_as(true), true)) < 1e-12


def test_smoothing_preserves_counts_inside_and_constants():
    flat = torch.full((2, 30, 3), 0.7)
    assert torch.allclose(gaussian_smooth(flat, 3.0), flat)
    impulse = torch.zeros(1, 41, 1)
    impulse[0, 20] = 1
    assert math.isclose(gaussian_smooth(impulse, 2.0).sum().item(), 1.0, rel_tol=1e-5)


def test_pca_with_all_components_is_the_identity():
    x = torch.randn(3, 10, 4)
    reconstruction, scores = pca_smooth(x, 4)
    assert torch.allclose(reconstruction, x, atol=1e-5) and scores.shape == (3, 10, 4)


def test_poisson_glm_matches_scikit_learn():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    y = torch.poisson((x @ torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64) + 0.1).exp(),
                      generator=gen)
    weights, bias = fit_poisson_glm(x, y[:, None], alpha=0.0)
    ref = PoissonRegressor(alpha=0.0, tol=1e-10, max_iter=1000).fit(x.numpy(), y.numpy())
    assert torch.allclose(weights[:, 0], torch.tensor(ref.coef_), atol=1e-4)
    assert math.isclose(bias.item(), ref.intercept_, abs_tol=1e-4)
    assert glm_rates(x, weights, bias).shape == (500, 1)


def tiny(n_neurons=12, n_heldout=3, n_bins=20, **overrides):
    settings = dict(n_neurons=n_neurons, n_heldout=n_heldout, n_bins=n_bins, n_layer=1,
                    n_head=2, n_embd=16)
    return NDTConfig(**{**settings, **overrides})


def test_loss_at_init_is_the_null_models_poisson_nll(data):
    torch.manual_seed(0)
    model = NDT(tiny(dropout=0.0), mean_counts=data.spikes.mean((0, 1)))
    rates = model.infer_rates(data.spikes)  # W_out = 0: every bin gets the neuron's mean
    assert torch.allclose(rates, null_rates(data.spikes).float().clamp_min(1e-3), rtol=1e-5)
    everything = torch.ones(60, 20, dtype=torch.bool)  # count every entry
    loss = model.loss(data.spikes, time_mask=everything)
    assert math.isclose(loss.item(), expected_loss_at_init(data.spikes), rel_tol=1e-5)


def test_the_loss_counts_masked_held_in_bins_and_all_held_out_bins():
    time_mask = torch.tensor([[True, False, False, True]])
    counted = loss_mask(time_mask, n_heldin=2, n_neurons=3)
    assert counted[0, :, :2].tolist() == [[True, True], [False, False], [False, False],
                                          [True, True]]
    assert counted[0, :, 2].all()
    # Gradients reach the log-rates of the counted entries only.
    log_rates = torch.zeros(1, 4, 3, requires_grad=True)
    spikes = torch.full((1, 4, 3), 3.0)
    poisson_nll(log_rates[counted], spikes[counted]).mean().backward()
    assert torch.equal(log_rates.grad != 0, counted)


def test_masked_bins_reach_the_model_as_zeros(data):
    torch.manual_seed(0)
    model = NDT(tiny(dropout=0.0)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # (zero at init: a constant output)
    spikes_in = data.spikes[:2, :, :9]
    time_mask = torch.zeros(2, 20, dtype=torch.bool)
    time_mask[:, 5] = True
    changed = spikes_in.clone()
    changed[:, 5] += 7  # what is hidden cannot change the output
    assert torch.equal(model(spikes_in, time_mask), model(changed, time_mask))
    assert not torch.equal(model(spikes_in), model(changed))


def test_random_mask_rate_and_determinism():
    model = NDT(tiny(mask_ratio=0.25))
    mask = model.random_time_mask(200, 50, generator=torch.Generator().manual_seed(0))
    assert abs(mask.float().mean() - 0.25) < 0.03 and mask.any(1).all()
    again = model.random_time_mask(200, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_overfits_a_handful_of_trials(data):
    torch.manual_seed(0)
    spikes = data.spikes[:4]
    model = NDT(tiny(dropout=0.0, n_embd=32), mean_counts=spikes.mean((0, 1)))
    every = torch.ones(4, 20, dtype=torch.bool)
    start = model.loss(spikes, every).item()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(40):
        opt.zero_grad()
        model.loss(spikes, torch.zeros(4, 20, dtype=torch.bool)).backward()  # held-out only
        opt.step()
    held_out = data.spikes[:4, :, 9:]
    rates = model.infer_rates(spikes)[:, :, 9:]
    # memorized: the held-out counts' likelihood is far above the null model's
    assert bits_per_spike(rates, held_out) > 0.3
    assert model.loss(spikes, every).item() < start


def test_save_and_load_give_the_same_rates(tmp_path, data):
    model = NDT(tiny(), mean_counts=data.spikes.mean((0, 1)))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    model.save_pretrained(tmp_path / "m")
    loaded = NDT.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.infer_rates(data.spikes), model.infer_rates(data.spikes))
    with pytest.raises(UserError, match="held-in"):
        loaded(data.spikes)  # all 12 neurons given where 9 held-in are expected


def test_bad_configs_are_one_line_errors():
    with pytest.raises(UserError, match="n_heldout"):
        NDTConfig(n_neurons=5, n_heldout=5)
    with pytest.raises(UserError, match="mask_ratio"):
        NDTConfig(mask_ratio=1.0)


def test_factor_analysis_by_em_matches_scikit_learn():
    from sklearn.decomposition import FactorAnalysis as ReferenceFA

    from fromscratch.neuro.baselines import fit_factor_analysis

    gen = torch.Generator().manual_seed(0)
    loadings = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    noise_std = torch.linspace(0.3, 1.5, 8, dtype=torch.float64)  # unequal private noise
    x = (torch.randn(600, 2, generator=gen, dtype=torch.float64) @ loadings.T + 3
         + noise_std * torch.randn(600, 8, generator=gen, dtype=torch.float64))
    ours = fit_factor_analysis(x, 2, max_iter=20000, tol=1e-12)
    ref = ReferenceFA(2, tol=1e-12, max_iter=20000, svd_method="lapack").fit(x.numpy())
    # the same maximum of the likelihood, the same model covariance W Wᵀ + Ψ
    assert math.isclose(ours.log_likelihood(x), ref.score(x.numpy()), rel_tol=1e-9)
    assert torch.allclose(ours.covariance(), torch.from_numpy(ref.get_covariance()), atol=1e-4)
    assert torch.allclose(ours.noise_variance, torch.from_numpy(ref.noise_variance_), atol=1e-4)
    # W itself is fixed only up to a rotation of the factors; W E[z | x] is not
    shared = torch.from_numpy(ref.transform(x.numpy()) @ ref.components_ + ref.mean_)
    assert torch.allclose(ours.reconstruct(x), shared, atol=1e-3)
