"""Lesson 09's exercise (answer targets): the library's answer_targets passes, and each planted
mistake (written as a learner would, with a loop) gets its hint."""

import pytest

from fromscratch.beyond import arithmetic
from fromscratch.exercises import check


def test_the_library_passes_the_exercise():
    assert check("answer_targets", arithmetic.answer_targets, seed=0).ok


def targets_by_loop(prompt_ids, answer_ids, mask_prompt=True, shift=1):
    sequence = prompt_ids + answer_ids
    inputs, targets = [], []
    for t in range(len(sequence) - 1):
        inputs.append(sequence[t])
        nxt = t + shift
        in_prompt = nxt < len(prompt_ids)
        targets.append(-100 if (mask_prompt and in_prompt) or nxt >= len(sequence)
                       else sequence[nxt])
    return inputs, targets


@pytest.mark.parametrize(("options", "key", "words"), [
    ({"mask_prompt": False}, "unmasked", "the prompt is given"),
    ({"shift": 0}, "not_shifted", "off by one"),
])
def test_answer_targets_mistakes(options, key, words):
    assert check("answer_targets", targets_by_loop, seed=0).ok
    result = check("answer_targets", lambda p, a: targets_by_loop(p, a, **options), seed=0)
    assert not result.ok and result.diagnosis == key and words in result.message
