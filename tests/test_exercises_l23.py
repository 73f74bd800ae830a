"""Lesson 23's exercises (bits per spike, the Fano factor): the library's metrics pass, the
prompts state the units and the variance, and each planted mistake gets its own hint."""

import math

import pytest
import torch

from fromscratch.exercises import check, prompt
from fromscratch.exercises import l23_neuroscience_solutions as solutions
from fromscratch.neuro.metrics import bits_per_spike as library_bits_per_spike


def test_the_prompts_state_the_units_and_the_variance():
    assert "ln 2" in prompt("bits_per_spike")
    assert "trials − 1" in prompt("fano_factor")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_library_bits_per_spike_passes(seed):
    library = lambda r, y: torch.tensor(library_bits_per_spike(r, y), dtype=torch.float64)  # noqa: E731
    assert check("bits_per_spike", library, seed=seed).ok


def in_nats(rates, spikes):
    return solutions.bits_per_spike(rates, spikes) * math.log(2)


def one_null_rate(rates, spikes):
    y = spikes.double()
    def ll(r):
        return (y * torch.log(r) - r - torch.lgamma(y + 1)).sum()
    return (ll(rates.double()) - ll(y.mean())) / (y.sum() * math.log(2))


def divided_by_entries(rates, spikes):
    return solutions.bits_per_spike(rates, spikes) * spikes.sum() / spikes.numel()


def backwards(rates, spikes):
    return solutions.bits_per_spike(rates, spikes) * -1


@pytest.mark.parametrize("fn, key, words", [
    (in_nats, "nats", "ln 2"),
    (one_null_rate, "pooled_null", "one rate per neuron"),
    (divided_by_entries, "per_bin", "number of spikes"),
    (backwards, "reversed", "sign is reversed"),
])
def test_mistakes_get_their_hints(fn, key, words):
    result = check("bits_per_spike", fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message


@pytest.mark.parametrize("seed", [0, 1])
def test_the_library_fano_factors_pass(seed):
    from fromscratch.neuro.metrics import fano_factors

    def library(spikes):  # one condition holding every trial
        return fano_factors(spikes, torch.zeros(len(spikes), dtype=torch.long), 1)[0]
    assert check("fano_factor", library, seed=seed).ok


def divided_by_n(spikes):
    counts = spikes.double().sum(1)
    return counts.var(0, unbiased=False) / counts.mean(0)


def bins_not_trials(spikes):
    counts = spikes.double().reshape(-1, spikes.shape[-1])
    return counts.var(0) / counts.mean(0)


def std_not_var(spikes):
    return solutions.fano_factor(spikes).sqrt() * spikes.double().sum(1).mean(0).rsqrt()


def across_neurons(spikes):
    counts = spikes.double().sum(1)
    return counts.var(-1) / counts.mean(-1)


@pytest.mark.parametrize("fn, key, words", [
    (divided_by_n, "biased", "unbiased"),
    (bins_not_trials, "per_bin", "whole trial"),
    (std_not_var, "std", "not the standard deviation"),
    (across_neurons, "over_neurons", "over trials"),
])
def test_fano_mistakes_get_their_hints(fn, key, words):
    result = check("fano_factor", fn, seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message
