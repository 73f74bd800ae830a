"""How well inferred firing rates explain spikes: the Neural Latents Benchmark's measures.

Rates r and counts y are (trials, time, neurons) tensors; rates are expected counts per bin.

    Poisson log-likelihood   LL(r; y) = Σ y log r − r − log y!
    null model               r̄_n = mean over trials and time of y_n: one constant rate per neuron
    bits per spike           bps = (LL(r; y) − LL(r̄; y)) / (n_spikes · ln 2)

Bits per spike is the information the model's rates carry about the spikes, beyond each
neuron's average rate, per spike. The null model scores exactly 0; the true rates score > 0 on
average (how much depends on how strongly the rates vary); a model worse than a flat rate
scores below 0. "Co-smoothing" scores it on held-out neurons, whose rates the model must infer
from the other (held-in) neurons only.

    R²  = 1 − Σ (r − λ)² / Σ (λ − λ̄_n)²   per neuron against the true rates λ, then averaged
"""

import torch

LN2 = 0.6931471805599453


def poisson_log_likelihood(rates: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """Σ y log r − r − log y! over all entries (float64; rates clamped at 1e-9 to stay finite)."""
    rates, spikes = rates.double().clamp_min(1e-9), spikes.double()
    return (spikes * rates.log() - rates - torch.lgamma(spikes + 1)).sum()


def null_rates(spikes: torch.Tensor) -> torch.Tensor:
    """Each neuron's mean count per bin, broadcast to the shape of `spikes`."""
    return spikes.double().mean(dim=(0, 1), keepdim=True).expand_as(spikes)


def bits_per_spike(rates: torch.Tensor, spikes: torch.Tensor) -> float:
    """(LL(rates) − LL(null)) / (n_spikes ln 2), over all neurons given."""
    n_spikes = spikes.double().sum()
    gain = poisson_log_likelihood(rates, spikes) - poisson_log_likelihood(null_rates(spikes),
                                                                          spikes)
    return float(gain / (n_spikes * LN2))


def r_squared(predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Mean over neurons of 1 − SSE / SS around the neuron's mean true rate."""
    predicted, true = predicted.double().flatten(0, 1), true.double().flatten(0, 1)  # (R·T, N)
    sse = ((predicted - true) ** 2).sum(0)
    sst = ((true - true.mean(0)) ** 2).sum(0)
    return float((1 - sse / sst).mean())
