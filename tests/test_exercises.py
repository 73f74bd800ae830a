"""Every lesson's exercises, through the package's face: each reference solution passes its own
check, reads as a plain function, and belongs to the lesson that uses it.

What each exercise recognises (its planted mistakes and their hints) is tested beside it, one
file per lesson module: tests/test_exercises_l02.py for exercises/l02_attention.py.
"""

from pathlib import Path

import pytest

from fromscratch.exercises import check, list_exercises, prompt, solution_source
from fromscratch.exercises.checking import get_exercise
from fromscratch.lessons import find_lessons

LESSONS = find_lessons(Path(__file__).resolve().parents[1] / "notebooks")
NAMES = list_exercises()
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, get_exercise(name).reference, seed=seed)
    assert result.ok and result.diagnosis == "correct", result.message
    assert capsys.readouterr().out.startswith(f"✓ {name}: correct on all")


@pytest.mark.parametrize("name", NAMES)
def test_solution_source_and_prompt(name):
    source = solution_source(name)
    assert source.startswith(f"def {name}(")
    assert "return" in source
    assert name in prompt(name)


def test_exercises_are_listed_once_in_lesson_order():
    assert len(set(NAMES)) == len(NAMES)
    lessons = [get_exercise(name).lesson for name in NAMES]
    assert lessons == sorted(lessons)
    first_ones = ["bpe_merge", "softmax", "causal_mask", "attention", "layer_norm", "gelu"]
    assert NAMES[: len(first_ones)] == first_ones  # within a lesson: the order it meets them


def test_each_lesson_uses_exactly_the_exercises_registered_for_it():
    registered = {}
    for name in NAMES:
        registered.setdefault(get_exercise(name).lesson, []).append(name)
    used = {lesson.name: list(lesson.exercises) for lesson in LESSONS if lesson.exercises}
    assert registered == used  # no exercise without its lesson, none used but missing
