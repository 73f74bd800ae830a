"""Lesson 11's exercises (the piano-roll likelihood, MIDI's variable-length quantities): the VLQ
reference equals the library's MIDI writer, and each planted mistake gets its hint.

The planted mistakes are written as a learner would write them, not copied from the catalogue.
"""

import pytest
import torch

from fromscratch.beyond.midi import encode_vlq
from fromscratch.exercises import check
from fromscratch.exercises import l11_music_solutions as solutions


def test_the_vlq_reference_equals_the_library():
    for value in (0, 127, 128, 480, 2**28 - 1):
        assert bytes(solutions.encode_vlq(value)) == encode_vlq(value)


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
    ("piano_roll_nll", nll_mean_everything, "mean_over_keys"),
    ("piano_roll_nll", nll_positive_only, "only_sounding"),
    ("piano_roll_nll", nll_total, "sum_over_steps"),
    ("piano_roll_nll", nll_naive, "nan"),
    ("encode_vlq", vlq_reversed, "little_endian"),
    ("encode_vlq", vlq_flag_last, "flag_on_last"),
    ("encode_vlq", vlq_plain_groups, "no_flags"),
]


@pytest.mark.parametrize("name,fn,key", PLANTED, ids=[p[2] for p in PLANTED])
def test_planted_mistake_gets_its_hint(name, fn, key):
    result = check(name, fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
