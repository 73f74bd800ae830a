"""Lesson 23's exercises (neuroscience).

bits_per_spike: co-smoothing bits per spike,

    bps = (LL(rates) − LL(null)) / (n_spikes · ln 2),   LL(r) = Σ y log r − r − log y!

with the null model r̄_n = each neuron's mean count per bin over trials and time. The cases use
neurons with very different mean rates, so a null model pooled over neurons gives itself away.

fano_factor: each neuron's Fano factor of its trial spike counts Y_rn = Σ_t y_rn(t),

    F_n = var_r(Y_rn) / mean_r(Y_rn)      (the unbiased variance, with n − 1)

The cases have few trials (so n and n − 1 differ) and rates that vary from trial to trial.
"""

import math

import torch

from fromscratch.exercises import l23_neuroscience_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _bits_per_spike_cases(gen: torch.Generator) -> list[Case]:
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


def _divided_by_bins(rates, spikes):
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
        make_cases=_bits_per_spike_cases,
        mistakes=(
            Mistake("nats", "that is nats per spike: divide by ln 2 to get bits.", _nats),
            Mistake("pooled_null", "the null model must have one rate per neuron (mean over "
                    "trials and time, dims (0, 1)), not one rate for the whole population.",
                    _pooled_null),
            Mistake("per_bin", "divide by the number of spikes (spikes.sum()), not the number "
                    "of bins × neurons.", _divided_by_bins),
            Mistake("reversed", "the sign is reversed: it is LL(model) − LL(null), so better "
                    "rates give more bits.", _reversed),
        ),
    )
)


def _fano_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for trials, bins, neurons in ((5, 12, 3), (8, 30, 5), (4, 6, 2)):
        gain = 0.5 + 1.5 * torch.rand(trials, 1, 1, generator=gen, dtype=torch.float64)
        rates = gain * torch.linspace(0.2, 1.2, neurons, dtype=torch.float64)
        spikes = torch.poisson(rates.expand(trials, bins, neurons).contiguous(), generator=gen)
        spikes[0] += 1  # every neuron fires
        cases.append(Case((spikes,), f"spikes of shape {tuple(spikes.shape)}"))
    return cases


def _trial_counts(spikes):
    return spikes.double().sum(1)  # (trials, neurons)


def _biased_variance(spikes):
    counts = _trial_counts(spikes)
    return counts.var(0, correction=0) / counts.mean(0)


def _fano_of_single_bins(spikes):
    counts = spikes.double().flatten(0, 1)  # every bin a sample: the counts of 10 ms, not a trial
    return counts.var(0) / counts.mean(0)


def _std_over_mean(spikes):
    counts = _trial_counts(spikes)
    return counts.std(0) / counts.mean(0)


def _over_neurons(spikes):
    counts = _trial_counts(spikes)
    return (counts.var(1) / counts.mean(1))  # across neurons, one value per trial


register(
    Exercise(
        name="fano_factor",
        lesson="23_neuroscience",
        prompt=(
            "fano_factor(spikes) -> (neurons,) tensor\n"
            "spikes are (trials, time, neurons) counts of one condition. Sum each trial's counts\n"
            "over time, Y (trials, neurons); return var(Y) / mean(Y) over trials for each neuron,\n"
            "with the unbiased variance (denominator trials − 1: torch's default)."
        ),
        reference=solutions.fano_factor,
        make_cases=_fano_cases,
        mistakes=(
            Mistake("biased", "use the unbiased variance (divide by trials − 1, torch's "
                    "default var), not correction=0.", _biased_variance),
            Mistake("per_bin", "count spikes over the whole trial first (sum over time, dim 1): "
                    "the Fano factor of single bins is nearly 1 whatever the trials do.",
                    _fano_of_single_bins),
            Mistake("std", "the Fano factor divides the variance, not the standard deviation, "
                    "by the mean.", _std_over_mean),
            Mistake("over_neurons", "take the variance over trials (dim 0) for each neuron, not "
                    "over neurons.", _over_neurons),
        ),
    )
)
