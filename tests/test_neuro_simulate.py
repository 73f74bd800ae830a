"""The simulator: Lorenz integration against scipy, Poisson counts against their rates, seeds."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from fromscratch.errors import UserError
from fromscratch.neuro.simulate import (
    integrate,
    lorenz,
    simulate_lorenz_population,
    split_neurons,
)


def test_rk4_matches_scipy_adaptive_solver():
    z0 = torch.tensor([[1.0, 1.0, 20.0], [-5.0, 3.0, 30.0]], dtype=torch.float64)
    h, n = 0.001, 500  # half a Lorenz time unit: before chaos amplifies the tiny errors much
    ours = integrate(z0, n, h)  # (2, n+1, 3)
    t_eval = np.arange(n + 1) * h
    for r in range(2):
        ref = solve_ivp(lambda t, z: lorenz(torch.from_numpy(z)).numpy(), (0, n * h),
                        z0[r].numpy(), method="DOP853", t_eval=t_eval, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours[r].numpy(), ref.y.T, rtol=0, atol=1e-7)


def test_rk4_is_fourth_order():
    z0 = torch.tensor([[1.0, 1.0, 20.0]], dtype=torch.float64)
    exact = integrate(z0, 800, 0.25 / 800)[:, -1]
    errors = [(integrate(z0, n, 0.25 / n)[:, -1] - exact).norm().item() for n in (25, 50)]
    assert 14 < errors[0] / errors[1] < 18  # halving h divides the error by 2⁴ = 16


def test_counts_average_to_the_rates():
    data = simulate_lorenz_population(n_trials=400, n_neurons=8, n_bins=20, burn_in=100, seed=1)
    assert data.spikes.shape == data.rates.shape == (400, 20, 8)
    assert torch.equal(data.spikes, data.spikes.round()) and data.spikes.min() >= 0
    # Poisson: E[y] = λ and Var[y] = λ, so the mean of M counts has standard error √(Σλ)/M.
    residual = (data.spikes - data.rates).sum() / data.rates.sum().sqrt()
    assert abs(residual) < 4  # a standard normal beyond 4 has probability 6e-5
    per_neuron = (data.spikes - data.rates).sum((0, 1)) / data.rates.sum((0, 1)).sqrt()
    assert per_neuron.abs().max() < 4.5
    # variance = mean: the Fano factor of (y − λ)²/λ averages 1
    fano = ((data.spikes - data.rates) ** 2).sum() / data.rates.sum()
    assert abs(fano - 1) < 0.05


def test_rates_are_in_a_realistic_range():
    data = simulate_lorenz_population(n_trials=50, n_neurons=20, n_bins=100, seed=2)
    hz = data.rates_hz()
    assert 2 < hz.mean() < 30
    assert 20 < hz.amax((0, 1)).median() < 150
    assert torch.allclose(data.latents.mean((0, 1)), torch.zeros(3), atol=1e-4)


def test_same_seed_same_data_other_seed_other_data():
    a = simulate_lorenz_population(n_trials=5, n_neurons=4, n_bins=30, burn_in=50, seed=7)
    b = simulate_lorenz_population(n_trials=5, n_neurons=4, n_bins=30, burn_in=50, seed=7)
    c = simulate_lorenz_population(n_trials=5, n_neurons=4, n_bins=30, burn_in=50, seed=8)
    assert torch.equal(a.spikes, b.spikes) and torch.equal(a.rates, b.rates)
    assert not torch.equal(a.latents, c.latents)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(UserError, match="n_neurons"):
        simulate_lorenz_population(n_neurons=0)
    with pytest.raises(UserError, match="n_heldout"):
        split_neurons(10, 10)
    held_in, held_out = split_neurons(10, 3)
    assert held_in.tolist() == list(range(7)) and held_out.tolist() == [7, 8, 9]


def test_conditions_share_a_start_and_leave_the_default_unchanged():
    plain = simulate_lorenz_population(n_trials=12, n_neurons=5, n_bins=30, burn_in=50, seed=2)
    assert plain.conditions is None
    again = simulate_lorenz_population(n_trials=12, n_neurons=5, n_bins=30, burn_in=50, seed=2,
                                       n_conditions=None)
    assert torch.equal(plain.spikes, again.spikes)
    data = simulate_lorenz_population(n_trials=40, n_neurons=5, n_bins=30, burn_in=50, seed=2,
                                      n_conditions=4, condition_jitter=0.5)
    assert data.conditions.tolist() == [r % 4 for r in range(40)]
    start = data.latents[:, 0]  # (R, 3) standardized first states
    within = torch.stack([start[data.conditions == k].std(0) for k in range(4)]).mean()
    across = torch.stack([start[data.conditions == k].mean(0) for k in range(4)]).std(0).mean()
    assert within < 0.2 * across  # trials of a condition start together, conditions apart
    late = data.latents[:, -1]
    assert torch.stack([late[data.conditions == k].std(0) for k in range(4)]).mean() > within
    with pytest.raises(UserError, match="n_conditions"):
        simulate_lorenz_population(n_trials=3, n_conditions=4)
