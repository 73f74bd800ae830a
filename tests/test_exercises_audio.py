"""The audio and music exercises: references pass, and each planted mistake gets its hint.

The planted mistakes are written as a learner would write them, not copied from the catalogue.
"""

import math

import pytest
import torch

from fromscratch.beyond.midi import encode_vlq
from fromscratch.exercises import audio_solutions as solutions
from fromscratch.exercises import check, list_exercises, solution_source

TRACK = ["frame_signal", "mel_filterbank", "piano_roll_nll", "encode_vlq"]
SEEDS = [0, 1]


def test_the_track_is_registered_in_lesson_order():
    names = list_exercises()
    assert [n for n in names if n in TRACK] == TRACK


@pytest.mark.parametrize("name", TRACK)
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok, result.message
    assert solution_source(name).startswith(f"def {name}(")


def test_references_equal_the_library():
    from fromscratch.beyond import audio

    x = torch.randn(2, 300)
    assert torch.equal(solutions.frame_signal(x, 32, 10), audio.frame_signal(x, 32, 10))
    assert torch.allclose(solutions.mel_filterbank(40, 256, 8000),
                          audio.mel_filterbank(40, 256, 8000), atol=1e-6)
    for value in (0, 127, 128, 480, 2**28 - 1):
        assert bytes(solutions.encode_vlq(value)) == encode_vlq(value)


# ---------------------------------------------------------------------------------------------
# planted mistakes
# ---------------------------------------------------------------------------------------------
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


def nll_mean_everything(logits, roll):
    p = torch.sigmoid(logits)
    return -(roll * torch.log(p) + (1 - roll) * torch.log1p(-p)).mean()


def nll_positive_only(logits, roll):
    return -(roll * torch.nn.functional.logsigmoid(logits)).sum(1).mean()


def nll_total(logits, roll):
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, roll, reduction="sum")


def nll_naive(logits, roll):
    p = torch.sigmoid(logits)
    return -(roll * torch.log(p) + (1 - roll) * torch.log(1 - p)).sum(-1).mean()


def vlq_reversed(value):
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return out


def vlq_flag_last(value):
    out = []
    while True:
        out.insert(0, value & 0x7F)
        value >>= 7
        if not value:
            break
    out[-1] |= 0x80
    return out


def vlq_plain_groups(value):
    out = [value & 0x7F]
    while value >> 7:
        value >>= 7
        out.insert(0, value & 0x7F)
    return out


PLANTED = [
    ("frame_signal", frames_no_overlap, "hop_is_length"),
    ("frame_signal", frames_zero_padded, "partial_last"),
    ("mel_filterbank", mel_linear, "linear_hz"),
    ("mel_filterbank", mel_slaney_heights, "area_normalised"),
    ("piano_roll_nll", nll_mean_everything, "mean_over_keys"),
    ("piano_roll_nll", nll_positive_only, "only_sounding"),
    ("piano_roll_nll", nll_total, "sum_over_steps"),
    ("piano_roll_nll", nll_naive, "nan"),
    ("encode_vlq", vlq_reversed, "little_endian"),
    ("encode_vlq", vlq_flag_last, "flag_on_last"),
    ("encode_vlq", vlq_plain_groups, "no_flags"),
]


@pytest.mark.parametrize("name,fn,key", PLANTED, ids=[p[2] for p in PLANTED])
def test_planted_mistake_gets_its_hint(name, fn, key, capsys):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
