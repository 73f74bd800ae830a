"""Lesson 17's exercise (the straight path of flow matching): each planted mistake (written the
way a learner would write it) gets its own hint."""

import pytest

from fromscratch.exercises import check


def reversed_path(x0, eps, t):
    return t.view(-1, 1) * x0 + (1 - t.view(-1, 1)) * eps, x0 - eps


def velocity_sign(x0, eps, t):
    return (1 - t.view(-1, 1)) * x0 + t.view(-1, 1) * eps, x0 - eps


@pytest.mark.parametrize("fn, key", [
    (reversed_path, "reversed"),
    (velocity_sign, "velocity_sign"),
])
def test_planted_mistake_gets_its_hint(fn, key):
    result = check("straight_path", fn, seed=0)
    assert not result.ok and result.diagnosis == key, result.message
