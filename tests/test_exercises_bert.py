"""Lesson 06's exercises: the reference solutions pass, and each planted mistake gets its hint.

The planted mistakes are written the way a learner might write them (other loops, other ops),
not copied from the checker's catalog.
"""

import pytest
import torch

from fromscratch.exercises import bert_solutions as solutions
from fromscratch.exercises import check, list_exercises, prompt, solution_source
from fromscratch.tokenizers.wordpiece import wordpiece

SEEDS = [0, 1, 2]
BERT_TRACK = ["wordpiece_greedy", "mean_pool"]


def test_registered_in_lesson_order():
    names = list_exercises()
    assert [n for n in names if n in BERT_TRACK] == BERT_TRACK


@pytest.mark.parametrize("name", BERT_TRACK)
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok and result.diagnosis == "correct"
    assert capsys.readouterr().out.startswith(f"✓ {name}: correct on all")
    assert solution_source(name).startswith(f"def {name}(") and name in prompt(name)


def test_the_library_passes_its_own_exercises():
    assert check("wordpiece_greedy", wordpiece, seed=0).ok


# ---------------------------------------------------------------------------------------------
# planted mistakes
# ---------------------------------------------------------------------------------------------
def greedy_shortest(word, vocab):
    out, i = [], 0
    while i < len(word):
        j = i + 1
        while j <= len(word) and (word[i:j] if i == 0 else "##" + word[i:j]) not in vocab:
            j += 1
        if j > len(word):
            return ["[UNK]"]
        out.append(word[i:j] if i == 0 else "##" + word[i:j])
        i = j
    return out


def greedy_without_hashes(word, vocab):
    stripped = {v[2:] if v.startswith("##") else v for v in vocab}
    out = []
    while word:
        for n in range(len(word), 0, -1):
            if word[:n] in stripped:
                out.append(word[:n])
                word = word[n:]
                break
        else:
            return ["[UNK]"]
    return out


def greedy_keeping_pieces(word, vocab):
    out, i = [], 0
    while i < len(word):
        match = next(
            (j for j in range(len(word), i, -1)
             if (word[i:j] if i == 0 else "##" + word[i:j]) in vocab),
            None,
        )
        if match is None:
            out.append("[UNK]")
            break
        out.append(word[i:match] if i == 0 else "##" + word[i:match])
        i = match
    return out


def pool_all_positions(hidden, attention_mask):
    return hidden.sum(1) / hidden.shape[1]


def pool_sum(hidden, attention_mask):
    return torch.einsum("btc,bt->bc", hidden, attention_mask.float())


def pool_masked_over_T(hidden, attention_mask):
    return hidden.masked_fill(attention_mask[..., None] == 0, 0).mean(dim=1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name, fn, key, words",
    [
        ("wordpiece_greedy", greedy_shortest, "shortest_first", "LONGEST"),
        ("wordpiece_greedy", greedy_without_hashes, "no_prefix", "'##able'"),
        ("wordpiece_greedy", greedy_keeping_pieces, "partial_unknown", "WHOLE word"),
        ("mean_pool", pool_all_positions, "padding_included", "padding was averaged"),
        ("mean_pool", pool_sum, "sum", "sum of the real vectors"),
        ("mean_pool", pool_masked_over_T, "divide_by_T", "not out of the count"),
    ],
)
def test_planted_mistake_gets_its_hint(name, fn, key, words, seed, capsys):
    result = check(name, fn, seed=seed)
    assert not result.ok and result.diagnosis == key, result.message
    assert words in capsys.readouterr().out
