"""Lesson 01's exercise (tokenization): one BPE merge, `bpe_merge`.

The cases include overlapping occurrences ([7, 7, 7, 7, 7]), the pair at the very end, a pair
that never occurs, a single id and an empty list.
"""

import torch

from fromscratch.exercises import l01_tokenization_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randint


def _bpe_cases(gen: torch.Generator) -> list[Case]:
    ids = torch.randint(0, 4, (24,), generator=gen).tolist()  # few symbols: pairs repeat
    start = randint(gen, 0, len(ids) - 1)
    pair = (ids[start], ids[start + 1])  # a pair that occurs at least once
    inputs = [
        (ids, pair, 256),
        ([7, 7, 7, 7, 7], (7, 7), 9),  # overlapping occurrences
        ([1, 2, 3, 4], (3, 4), 5),  # the pair at the very end
        ([1, 2, 3], (3, 1), 5),  # the pair never occurs
        ([5], (5, 5), 6),  # a single id
        ([], (1, 2), 3),  # nothing at all
    ]
    return [Case((ids, pair, new), f"bpe_merge({ids}, {pair}, {new})") for ids, pair, new in inputs]


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_without_skip(ids, pair, new_id):
    merged = []
    for i in range(len(ids)):
        starts_pair = i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair
        merged.append(new_id if starts_pair else ids[i])  # the pair's second id is not skipped
    return merged


def _merge_dropping_last(ids, pair, new_id):
    merged = []
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def _merge_right_to_left(ids, pair, new_id):
    reversed_pair = (pair[1], pair[0])
    return solutions.bpe_merge(ids[::-1], reversed_pair, new_id)[::-1]


register(
    Exercise(
        name="bpe_merge",
        lesson="01_tokenization",
        prompt=(
            "bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]\n"
            "Return a new list where every occurrence of `pair` (two neighbouring ids), found\n"
            "scanning left to right, is replaced by `new_id`. [7, 7, 7] with (7, 7) -> [new, 7]."
        ),
        reference=solutions.bpe_merge,
        make_cases=_bpe_cases,
        mistakes=(
            Mistake(
                "first_only",
                "only the first occurrence was merged: keep scanning to the end of the list.",
                _merge_first_only,
            ),
            Mistake(
                "no_skip",
                "after a merge, skip BOTH ids of the pair (i += 2): you kept the pair's second id.",
                _merge_without_skip,
            ),
            Mistake(
                "drops_last",
                "the last id went missing: when the scan reaches the final id (no neighbour to "
                "pair with), append it as it is.",
                _merge_dropping_last,
            ),
            Mistake(
                "right_to_left",
                "scan left to right: in [7, 7, 7] the leftmost (7, 7) merges, giving [new, 7].",
                _merge_right_to_left,
            ),
        ),
    )
)
