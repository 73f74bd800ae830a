"""Population spiking driven by known latent dynamics: the Lorenz benchmark of LFADS and NDT.

Notation: trials R, time bins T, neurons N, latent dimension 3, bin width Δ seconds.

    dz/dt = f(z) = (σ (z₂ − z₁),  z₁ (ρ − z₃) − z₂,  z₁ z₂ − β z₃)       the Lorenz system
    z₀ random per trial, then `burn_in` steps so that every trial starts on the attractor
    z̃ = (z − mean) / std                                              each latent standardized
    log λ_n(t) = log b_n + g · w_nᵀ z̃(t)          λ in Hz; b_n baseline, ‖w_n‖ = 1, gain g
    y_n(t) ~ Poisson(λ_n(t) Δ)                     spike counts in bin t

The equations are integrated with the classical fourth-order Runge-Kutta step (written out in
`rk4_step`, proven against scipy's adaptive solver in tests/test_neuro_simulate.py). Everything
random is drawn from one `torch.Generator` seeded with `seed`: same seed, same data.
The true latents and rates are kept, so a model's inferred rates can be scored against the truth.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fromscratch.errors import UserError

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0  # Lorenz's classical chaotic parameters


def lorenz(z: torch.Tensor) -> torch.Tensor:
    """dz/dt for states z (..., 3)."""
    x, y, w = z.unbind(-1)
    return torch.stack([SIGMA * (y - x), x * (RHO - w) - y, x * y - BETA * w], dim=-1)


def rk4_step(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, h: float) -> torch.Tensor:
    """One Runge-Kutta 4 step of dz/dt = f(z): local error O(h⁵), global error O(h⁴).

        k₁ = f(z)   k₂ = f(z + h/2 k₁)   k₃ = f(z + h/2 k₂)   k₄ = f(z + h k₃)
        z ← z + h/6 (k₁ + 2 k₂ + 2 k₃ + k₄)
    """
    k1 = f(z)
    k2 = f(z + 0.5 * h * k1)
    k3 = f(z + 0.5 * h * k2)
    k4 = f(z + h * k3)
    return z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate(z0: torch.Tensor, n_steps: int, h: float) -> torch.Tensor:
    """The Lorenz trajectory from z0 (R, 3): states at steps 0..n_steps, shape (R, n_steps+1, 3)."""
    states = [z0]
    for _ in range(n_steps):
        states.append(rk4_step(lorenz, states[-1], h))
    return torch.stack(states, dim=1)


@dataclass
class PopulationData:
    """Simulated trials; every tensor has trials first and time second."""

    spikes: torch.Tensor  # (R, T, N) spike counts per bin (float, whole numbers)
    rates: torch.Tensor  # (R, T, N) true expected counts per bin, λ Δ
    latents: torch.Tensor  # (R, T, 3) standardized Lorenz state z̃
    bin_size: float  # Δ in seconds
    conditions: torch.Tensor | None = None  # (R,) condition index of each trial, if any

    @property
    def n_trials(self) -> int:
        return self.spikes.shape[0]

    def rates_hz(self) -> torch.Tensor:
        return self.rates / self.bin_size


def simulate_lorenz_population(
    n_trials: int = 200,
    n_neurons: int = 50,
    n_bins: int = 100,
    bin_size: float = 0.01,
    dt: float = 0.01,
    steps_per_bin: int = 1,
    burn_in: int = 500,
    base_rate: tuple[float, float] = (5.0, 15.0),
    gain: float = 0.6,
    n_conditions: int | None = None,
    condition_jitter: float = 2.0,
    seed: int = 0,
) -> PopulationData:
    """Trials of Poisson spiking from N neurons reading out one Lorenz system.

    Each bin advances the Lorenz system by `steps_per_bin` RK4 steps of size `dt` (Lorenz time,
    dimensionless). Baselines b_n ~ Uniform(base_rate) Hz; with gain 0.6 a neuron's rate spans
    about b_n e^{±1.8}, so peaks of 30–90 Hz on baselines of 5–15 Hz.

    n_conditions K: trial r belongs to condition r mod K and starts near that condition's fixed
    state (`condition_jitter` is the std of the offset, in the Lorenz system's units, where the
    attractor spans about ±20). Like trials of a stimulus, a condition's trials share a time
    course (its PSTH) and differ from trial to trial, more so as the chaos amplifies the offsets.
    """
    for name, value in (("n_trials", n_trials), ("n_neurons", n_neurons), ("n_bins", n_bins),
                        ("steps_per_bin", steps_per_bin)):
        if value < 1:
            raise UserError(f"{name} must be a positive integer, got {value}")
    if bin_size <= 0 or dt <= 0:
        raise UserError("bin_size and dt must be positive numbers of seconds / Lorenz time")
    if n_conditions is not None and not 1 <= n_conditions <= n_trials:
        raise UserError(f"n_conditions must be between 1 and n_trials ({n_trials}), "
                        f"got {n_conditions}")
    gen = torch.Generator().manual_seed(seed)
    # Random initial conditions around the attractor, then a burn-in that forgets them.
    z0 = torch.randn(n_trials if n_conditions is None else n_conditions, 3, generator=gen,
                     dtype=torch.float64) * 10.0
    z0[:, 2] += 25.0
    z0 = integrate(z0, burn_in, dt)[:, -1]  # (R, 3), or (K, 3) condition states
    conditions = None
    if n_conditions is not None:
        conditions = torch.arange(n_trials) % n_conditions  # (R,)
        jitter = torch.randn(n_trials, 3, generator=gen, dtype=torch.float64)
        z0 = z0[conditions] + condition_jitter * jitter  # (R, 3)
    z = integrate(z0, n_bins * steps_per_bin - 1, dt)[:, ::steps_per_bin]  # (R, T, 3)
    z = (z - z.mean((0, 1))) / z.std((0, 1))  # standardized latents z̃
    w = torch.randn(n_neurons, 3, generator=gen, dtype=torch.float64)
    w = w / w.norm(dim=1, keepdim=True)  # (N, 3) unit readout directions
    low, high = base_rate
    base = low + (high - low) * torch.rand(n_neurons, generator=gen, dtype=torch.float64)
    log_rate_hz = base.log() + gain * z @ w.T  # (R, T, N)
    rates = (log_rate_hz.exp() * bin_size).float()  # expected counts per bin
    spikes = torch.poisson(rates, generator=gen)
    return PopulationData(spikes=spikes, rates=rates, latents=z.float(), bin_size=bin_size,
                          conditions=conditions)


def split_neurons(n_neurons: int, n_heldout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of held-in and held-out neurons: the last `n_heldout` are held out.

    The readout weights are random, so which neurons are held out is arbitrary; a fixed rule keeps
    the split the same in training, evaluation and the benchmark.
    """
    if not 0 < n_heldout < n_neurons:
        raise UserError(f"n_heldout must be between 1 and {n_neurons - 1}, got {n_heldout}")
    return torch.arange(n_neurons - n_heldout), torch.arange(n_neurons - n_heldout, n_neurons)
