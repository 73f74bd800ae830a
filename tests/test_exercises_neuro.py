"""The bits-per-spike exercise: the reference and the library pass, each planted mistake gets
its own hint."""

import math

import pytest
import torch

from fromscratch.exercises import check, list_exercises, prompt
from fromscratch.exercises import neuro_solutions as solutions
from fromscratch.neuro.metrics import bits_per_spike as library_bits_per_spike


def test_registered_with_a_prompt():
    assert "bits_per_spike" in list_exercises()
    assert "ln 2" in prompt("bits_per_spike")


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_and_library_pass(seed):
    assert check("bits_per_spike", solutions.bits_per_spike, seed=seed).ok
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
def test_mistakes_get_their_hints(fn, key, words, capsys):
    result = check("bits_per_spike", fn, seed=0)
    assert not result.ok and result.diagnosis == key
    assert words in capsys.readouterr().out


@pytest.mark.parametrize("seed", [0, 1])
def test_fano_reference_and_library_pass(seed):
    from fromscratch.neuro.metrics import fano_factors

    assert "fano_factor" in list_exercises() and "trials − 1" in prompt("fano_factor")
    assert check("fano_factor", solutions.fano_factor, seed=seed).ok
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
def test_fano_mistakes_get_their_hints(fn, key, words, capsys):
    result = check("fano_factor", fn, seed=0)
    assert not result.ok and result.diagnosis == key
    assert words in capsys.readouterr().out
