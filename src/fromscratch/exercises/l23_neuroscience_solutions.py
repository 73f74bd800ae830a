"""Reference solutions to lesson 23's exercises (neuroscience): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: spikes and rates (trials, time, neurons).
"""

import math

import torch


def bits_per_spike(rates: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    rates, spikes = rates.double(), spikes.double()  # (trials, time, neurons)
    null = spikes.mean(dim=(0, 1), keepdim=True)  # each neuron's mean count per bin

    def log_likelihood(r):  # Σ y log r − r − log y!
        return (spikes * torch.log(r) - r - torch.lgamma(spikes + 1)).sum()

    return (log_likelihood(rates) - log_likelihood(null)) / (spikes.sum() * math.log(2))


def fano_factor(spikes: torch.Tensor) -> torch.Tensor:
    counts = spikes.double().sum(1)  # (trials, neurons): each trial's spike count
    return counts.var(0) / counts.mean(0)  # unbiased variance over trials / mean, per neuron
