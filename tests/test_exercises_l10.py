"""Lesson 10's exercises (framing, the mel filterbank): the references equal the library's, and
each planted mistake gets its hint.

The planted mistakes are written as a learner would write them, not copied from the catalogue.
"""

import math

import pytest
import torch

from fromscratch.exercises import check
from fromscratch.exercises import l10_audio_solutions as solutions


def test_references_equal_the_library():
    from fromscratch.beyond import audio

    x = torch.randn(2, 300)
    assert torch.equal(solutions.frame_signal(x, 32, 10), audio.frame_signal(x, 32, 10))
    assert torch.allclose(solutions.mel_filterbank(40, 256, 8000),
                          audio.mel_filterbank(40, 256, 8000), atol=1e-6)


def frames_no_overlap(x, L, hop):
    return torch.stack([x[..., s : s + L] for s in range(0, x.shape[-1] - L + 1, L)], -2)


def frames_zero_padded(x, L, hop):
    out = []
    start = 0
    while start + L - hop < x.shape[-1] and start < x.shape[-1] - L + hop:
        chunk = x[..., start : start + L]
        out.append(torch.nn.functional.pad(chunk, (0, L - chunk.shape[-1])))
        start += hop
    return torch.stack(out, -2)


def mel_linear(n_mels, n_fft, sr):
    freqs = torch.arange(n_fft // 2 + 1) * sr / n_fft
    points = torch.linspace(0, sr / 2, n_mels + 2)
    fb = torch.zeros(n_mels, n_fft // 2 + 1)
    for m in range(n_mels):
        left, mid, right = points[m], points[m + 1], points[m + 2]
        fb[m] = torch.clamp(torch.minimum((freqs - left) / (mid - left),
                                          (right - freqs) / (right - mid)), min=0)
    return fb


def mel_slaney_heights(n_mels, n_fft, sr):
    fb = solutions.mel_filterbank(n_mels, n_fft, sr)
    hz = 700 * (10 ** (torch.linspace(0, 2595 * math.log10(1 + sr / 1400), n_mels + 2) / 2595)
                - 1)
    return fb * (2.0 / (hz[2:] - hz[:-2])).unsqueeze(1)


PLANTED = [
    ("frame_signal", frames_no_overlap, "hop_is_length"),
    ("frame_signal", frames_zero_padded, "partial_last"),
    ("mel_filterbank", mel_linear, "linear_hz"),
    ("mel_filterbank", mel_slaney_heights, "area_normalised"),
]


@pytest.mark.parametrize("name,fn,key", PLANTED, ids=[p[2] for p in PLANTED])
def test_planted_mistake_gets_its_hint(name, fn, key):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
