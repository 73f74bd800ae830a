"""Lesson 01's exercise (a BPE merge): each planted mistake gets its own hint.

The planted mistakes are written the way a learner would write them (loops, other ops), not
copied from the checker's catalogue, so they test that the diagnosis recognises the bug by its
output and not by its code.
"""

import pytest

from fromscratch.exercises import check
from fromscratch.exercises import l01_tokenization_solutions as solutions

SEEDS = [0, 1, 2]


def bpe_first_only(ids, pair, new_id):
    text = list(ids)
    for i in range(len(text) - 1):
        if text[i] == pair[0] and text[i + 1] == pair[1]:
            return text[:i] + [new_id] + text[i + 2 :]
    return text


def bpe_no_skip(ids, pair, new_id):
    out = []
    for i, token in enumerate(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
        else:
            out.append(token)
    return out


def bpe_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            out.insert(0, new_id)
            i -= 2
        else:
            out.insert(0, ids[i])
            i -= 1
    return out


def bpe_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (bpe_first_only, "first_only", "first occurrence"),
        (bpe_no_skip, "no_skip", "skip BOTH"),
        (bpe_drops_last, "drops_last", "last id"),
        (bpe_right_to_left, "right_to_left", "left to right"),
        (bpe_in_place, "mutated_input", "in place"),
        (
            lambda ids, pair, new_id: tuple(solutions.bpe_merge(ids, pair, new_id)),
            "type",
            "return a list",
        ),
    ],
)
def test_bpe_merge_mistakes(fn, key, words, seed):
    result = check("bpe_merge", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message
