"""The conditional diffusion model of population activity and the statistics it is judged by."""

import math

import numpy as np
import pytest
import torch

from fromscratch.diffusion.samplers import ddim
from fromscratch.errors import UserError
from fromscratch.neuro.generative import (
    ConditionalDenoiser,
    GenerativeConfig,
    train_generative,
)
from fromscratch.neuro.metrics import (
    compare_statistics,
    fano_factors,
    mean_rates,
    pairwise_correlations,
    pearson,
    psths,
)
from fromscratch.neuro.ndt import TrialBatches


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = dict(n_neurons=4, n_bins=6, n_conditions=3, n_layer=1, n_head=2, n_embd=16)
    model = ConditionalDenoiser(GenerativeConfig(**{**config, **overrides}))
    for p in model.head.parameters():  # a non-trivial output (the default init is near zero)
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


def test_loss_is_the_written_out_v_prediction_mse():
    model = tiny_model(cond_dropout=0.5)
    x0 = torch.randn(8, 6, 4)
    condition = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss = model.loss((x0, condition), generator=torch.Generator().manual_seed(5))

    gen = torch.Generator().manual_seed(5)
    dropped = torch.rand(8, generator=gen) < 0.5
    c = torch.where(dropped, torch.full_like(condition, 3), condition)  # 3 = ∅
    t = torch.randint(0, 1000, (8,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    s_ = 0.008
    f = lambda n: math.cos(((n / 1000) + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f(n + 1) / f(n), 0.999) for n in range(1000)]  # the cosine schedule
    alpha_bar = torch.tensor(np.cumprod(1 - np.array(betas)), dtype=torch.float32)[t]
    a, s = alpha_bar.sqrt()[:, None, None], (1 - alpha_bar).sqrt()[:, None, None]
    x_t = a * x0 + s * eps
    v = a * eps - s * x0  # the v target: α ε − σ x0
    expected = ((model(x_t, t, c) - v) ** 2).mean()
    assert dropped.any() and not dropped.all()
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-7)


def test_sampling_is_deterministic_with_a_seed():
    model = tiny_model()
    condition = torch.tensor([0, 2, 1])
    first = model.sample(condition, 2.0, steps=10, generator=torch.Generator().manual_seed(0))
    again = model.sample(condition, 2.0, steps=10, generator=torch.Generator().manual_seed(0))
    other = model.sample(condition, 2.0, steps=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    rates, spikes = model.generate(condition, steps=10, generator=torch.Generator().manual_seed(0))
    rates2, spikes2 = model.generate(condition, steps=10,
                                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(spikes, spikes2) and torch.equal(spikes, spikes.round())
    assert torch.allclose(rates, model.to_rates(model.sample(
        condition, 1.0, steps=10, generator=torch.Generator().manual_seed(0))))


def test_guidance_zero_is_unconditional_and_two_extrapolates():
    model = tiny_model()
    condition = torch.tensor([0, 1, 2, 0])
    x_T = torch.randn(4, 6, 4, generator=torch.Generator().manual_seed(3))
    null = torch.full((4,), 3)

    def run(fn):
        return ddim(fn, x_T, model.schedule, 5, prediction="v")

    def sample(w):
        return model.sample(condition, w, steps=5, generator=torch.Generator().manual_seed(3))

    unconditional = run(lambda x, t: model(x, t, null))
    conditional = run(lambda x, t: model(x, t, condition))
    guided_by_hand = run(lambda x, t: model(x, t, null)
                         + 2.0 * (model(x, t, condition) - model(x, t, null)))
    assert torch.allclose(sample(0.0), unconditional, atol=1e-5)
    assert torch.allclose(sample(1.0), conditional, atol=1e-5)
    assert torch.allclose(sample(2.0), guided_by_hand, atol=1e-4)
    assert not torch.allclose(unconditional, conditional, atol=1e-3)


def test_standardize_and_to_rates_are_inverses():
    model = ConditionalDenoiser(GenerativeConfig(n_neurons=3, n_bins=4, n_conditions=2),
                                log_rate_mean=torch.tensor([-2.0, -1.0, 0.5]),
                                log_rate_std=torch.tensor([0.5, 1.0, 2.0]))
    rates = torch.rand(5, 4, 3) + 0.05
    x = model.standardize(rates)
    assert torch.allclose(x, (rates.log() - model.log_rate_mean) / model.log_rate_std)
    assert torch.allclose(model.to_rates(x), rates, rtol=1e-5)


def test_learns_a_condition_dependent_pattern():
    """Each condition is one fixed log-rate pattern plus a little noise: the generated trials of
    a condition must come back to that condition's pattern."""
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randn(2, 6, 4, generator=gen) * 0.7 - 1.5  # log-rates (K, T, N)
    conditions = torch.arange(128) % 2
    log_rates = patterns[conditions] + 0.05 * torch.randn(128, 6, 4, generator=gen)
    model, _ = train_generative(log_rates.exp(), conditions, 2, max_steps=150, progress=False,
                                model_overrides=dict(n_layer=1, n_embd=32), lr=3e-3)
    rates, _ = model.generate(torch.arange(64) % 2, steps=25,
                              generator=torch.Generator().manual_seed(1))
    for k in range(2):
        error = (rates[k::2].log().mean(0) - patterns[k]).abs().max()
        assert error < 0.25, (k, error)


def test_save_and_load_sample_the_same(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    loaded = ConditionalDenoiser.from_pretrained(tmp_path / "m")
    condition = torch.tensor([1, 2])
    assert torch.equal(model.sample(condition, 1.5, 5, torch.Generator().manual_seed(0)),
                       loaded.sample(condition, 1.5, 5, torch.Generator().manual_seed(0)))
    with pytest.raises(UserError, match="conditions must be in 0..2"):
        loaded.sample(torch.tensor([3]))
    with pytest.raises(UserError, match="config.json"):
        ConditionalDenoiser.from_pretrained(tmp_path / "nothing")


def test_trial_batches_index_a_tuple_alike():
    x, c = torch.arange(20.0)[:, None] * 10, torch.arange(20)
    batches = TrialBatches((x, c), batch_size=5, seed=1)
    bx, bc = batches(3, 0)
    assert torch.equal(bx[:, 0], bc.float() * 10) and len(set(bc.tolist())) == 5
    assert torch.equal(batches(3, 0)[1], bc)


# --- the statistics, against written-out numpy -------------------------------------------------
@pytest.fixture(scope="module")
def trials():
    gen = torch.Generator().manual_seed(0)
    shared = torch.rand(30, 1, 1, generator=gen) * 2  # a trial-wide gain: correlated neurons
    rates = shared * torch.linspace(0.1, 0.6, 5)[None, None, :] * torch.ones(30, 8, 5)
    spikes = torch.poisson(rates, generator=gen)
    return spikes, torch.arange(30) % 3


def test_statistics_equal_numpy(trials):
    spikes, conditions = trials
    y, c = spikes.numpy().astype(np.float64), conditions.numpy()
    for k in range(3):
        counts = y[c == k].sum(1)  # (R_k, N)
        np.testing.assert_allclose(mean_rates(spikes, conditions, 3, 0.02)[k],
                                   y[c == k].mean((0, 1)) / 0.02)
        np.testing.assert_allclose(fano_factors(spikes, conditions, 3)[k],
                                   counts.var(0, ddof=1) / counts.mean(0))
        np.testing.assert_allclose(pairwise_correlations(spikes, conditions, 3)[k],
                                   np.corrcoef(counts.T)[np.triu_indices(5, 1)], atol=1e-12)
        np.testing.assert_allclose(psths(spikes, conditions, 3, 0.02)[k],
                                   y[c == k].mean(0) / 0.02)
    a, b = torch.randn(40).double(), torch.randn(40).double()
    assert math.isclose(pearson(a, b), np.corrcoef(a, b)[0, 1], rel_tol=1e-12)
    a[3] = math.nan  # ignored
    assert math.isclose(pearson(a, b), np.corrcoef(np.delete(a, 3), np.delete(b, 3))[0, 1],
                        rel_tol=1e-12)


def test_compare_statistics_of_identical_and_shifted_trials(trials):
    spikes, conditions = trials
    same = compare_statistics(spikes, conditions, spikes, conditions, 3, 0.02)
    assert same["rate_r"] == pytest.approx(1) and same["fano_r"] == pytest.approx(1)
    assert same["corr_r"] == pytest.approx(1) and same["psth_r2"] == 1.0
    assert same["rate_mae"] == 0.0 and same["fano_gen"] == same["fano_real"] > 1
    doubled = compare_statistics(spikes, conditions, spikes * 2, conditions, 3, 0.02)
    real_rates = mean_rates(spikes, conditions, 3, 0.02)
    assert doubled["rate_mae"] == pytest.approx(float(real_rates.mean()))
    assert doubled["fano_gen"] == pytest.approx(2 * same["fano_real"])  # var ×4, mean ×2
    assert doubled["corr_r"] == pytest.approx(1)  # correlations ignore scale
    a = psths(spikes, conditions, 3, 0.02, smooth_bins=2.0)
    expected = 1 - (a**2).sum() / ((a - a.mean(1, keepdim=True)) ** 2).sum()
    assert doubled["psth_r2"] == pytest.approx(float(expected))
