"""The neuroscience exercise of lesson 23: co-smoothing bits per spike.

    bps = (LL(rates) − LL(null)) / (n_spikes · ln 2),   LL(r) = Σ y log r − r − log y!

with the null model r̄_n = each neuron's mean count per bin over trials and time. The cases use
neurons with very different mean rates, so a null model pooled over neurons gives itself away.
"""

import math

import torch

from fromscratch.exercises import neuro_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for trials, bins, neurons in ((5, 20, 4), (2, 50, 1), (8, 10, 6)):
        base = torch.linspace(0.05, 1.5, neurons).double()  # neurons with different rates
        wave = 1 + 0.8 * torch.sin(torch.linspace(0, 6, bins)).double()[:, None]
        rates = (base * wave).expand(trials, bins, neurons).contiguous()
        spikes = torch.poisson(rates, generator=gen)
        spikes[0, 0] += 1  # at least one spike for every neuron
        cases.append(Case((rates, spikes), f"rates and spikes of shape {tuple(spikes.shape)}"))
    return cases


def _loglik(r, y):
    return (y * torch.log(r) - r - torch.lgamma(y + 1)).sum()


def _nats(rates, spikes):
    rates, spikes = rates.double(), spikes.double()
    null = spikes.mean((0, 1), keepdim=True)
    return (_loglik(rates, spikes) - _loglik(null, spikes)) / spikes.sum()


def _pooled_null(rates, spikes):
    rates, spikes = rates.double(), spikes.double()
    null = spikes.mean()  # one rate for all neurons
    return (_loglik(rates, spikes) - _loglik(null, spikes)) / (spikes.sum() * math.log(2))


def _per_bin(rates, spikes):
    rates, spikes = rates.double(), spikes.double()
    null = spikes.mean((0, 1), keepdim=True)
    return (_loglik(rates, spikes) - _loglik(null, spikes)) / (spikes.numel() * math.log(2))


def _reversed(rates, spikes):
    return -solutions.bits_per_spike(rates, spikes)


register(
    Exercise(
        name="bits_per_spike",
        lesson="23_neuroscience",
        prompt=(
            "bits_per_spike(rates, spikes) -> 0-d tensor\n"
            "rates and spikes are (trials, time, neurons): expected and observed counts per bin.\n"
            "Return (LL(rates) − LL(null)) / (n_spikes · ln 2), with the Poisson log-likelihood\n"
            "LL(r) = Σ y log r − r − log y! (torch.lgamma(y + 1) = log y!) and the null model\n"
            "r̄_n = each neuron's mean count over trials and time."
        ),
        reference=solutions.bits_per_spike,
        make_cases=_cases,
        mistakes=(
            Mistake("nats", "that is nats per spike: divide by ln 2 to get bits.", _nats),
            Mistake("pooled_null", "the null model must have one rate per neuron (mean over "
                    "trials and time, dims (0, 1)), not one rate for the whole population.",
                    _pooled_null),
            Mistake("per_bin", "divide by the number of spikes (spikes.sum()), not the number "
                    "of bins × neurons.", _per_bin),
            Mistake("reversed", "the sign is reversed: it is LL(model) − LL(null), so better "
                    "rates give more bits.", _reversed),
        ),
    )
)
