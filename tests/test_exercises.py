"""Every lesson's exercises, through the package's face: each reference solution passes its own
check, reads as a plain function, and belongs to the lesson that uses it.

What each exercise recognises (its planted mistakes and their hints) is tested beside it, one
file per lesson module: tests/test_exercises_l02.py for exercises/l02_attention.py.
"""

import os
import subprocess
import sys
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


@pytest.mark.parametrize("name", NAMES)
def test_each_exercise_lives_in_its_lessons_module(name):
    ex = get_exercise(name)
    module = f"fromscratch.exercises.l{ex.lesson}"  # 02_attention → l02_attention
    assert ex.make_cases.__module__ == module
    assert ex.reference.__module__ == f"{module}_solutions"


def test_a_seed_gives_the_same_inputs_in_every_process():
    """Python's hash seed changes from one process to the next (set and dict orders with it),
    so the inputs drawn for `check(..., seed=0)` must not depend on it."""
    digests = set()
    for hash_seed in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-c", DIGEST_ALL_CASES], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        digests.add(run.stdout)
    assert len(digests) == 1


DIGEST_ALL_CASES = """
import hashlib, torch
from fromscratch.exercises import list_exercises
from fromscratch.exercises.checking import get_exercise

def plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)

for name in list_exercises():
    cases = get_exercise(name).make_cases(torch.Generator().manual_seed(0))
    text = repr([(case.label, plain(case.args)) for case in cases])
    print(name, hashlib.sha256(text.encode()).hexdigest())
"""
