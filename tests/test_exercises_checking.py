"""The checking machinery: unknown names, the `@exercise` switch, an unwritten exercise and the
printed verdict.
"""

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.exercises import SOLUTIONS_ENV, check, exercise, solution_source
from fromscratch.exercises import l02_attention_solutions as solutions


def test_unknown_name_lists_the_available_ones():
    expected = "no exercise named 'atention'; available: .*attention, .*bpe_merge"
    with pytest.raises(UserError, match=expected):
        check("atention", solutions.attention)
    with pytest.raises(UserError, match="available:"):
        solution_source("nope")


def test_exercise_decorator_swaps_in_the_reference_only_when_asked(monkeypatch):
    def mine(x):
        raise NotImplementedError

    monkeypatch.delenv(SOLUTIONS_ENV, raising=False)
    assert exercise("softmax")(mine) is mine
    monkeypatch.setenv(SOLUTIONS_ENV, "1")
    assert exercise("softmax")(mine) is solutions.softmax


def test_todo_body_says_not_written_yet(capsys):
    def softmax(x):
        raise NotImplementedError

    result = check("softmax", softmax, seed=0)
    assert not result.ok and result.diagnosis == "not_implemented"
    assert "raise NotImplementedError" in capsys.readouterr().out


def test_result_is_falsy_and_printed_once(capsys):
    result = check("gelu", torch.tanh, seed=0)
    assert not result
    assert capsys.readouterr().out == result.message + "\n"
    assert result.message.startswith("✗ gelu: ")
