"""Arithmetic as sequence modelling: the text format, the answer-only targets, held-out problems
never trained on, the loss at initialisation, and a tiny GPT that memorises a few sums."""

import math

import numpy as np
import pytest
import torch

from fromscratch import arithmetic
from fromscratch.arithmetic import (
    IGNORE,
    VOCAB,
    ArithmeticBatches,
    ArithmeticTask,
    answer_targets,
    decode,
    encode,
    exact_match,
    is_held_out,
    make_model,
    sample_pairs,
    solve,
)
from fromscratch.errors import UserError


def test_text_round_trip_and_unknown_characters():
    assert encode("12+3=") == [1, 2, 10, 3, 12]
    assert decode(encode("907*41=7273;")) == "907*41=7273;"
    with pytest.raises(UserError, match="may use only"):
        encode("1-2=")


@pytest.mark.parametrize(("op", "reverse", "answer"), [
    ("+", True, "914;"), ("+", False, "419;"), ("*", True, "48532;"), ("*", False, "23584;"),
])
def test_answers_are_written_in_the_asked_order_and_read_back(op, reverse, answer):
    task = ArithmeticTask(op=op, reverse=reverse)
    assert task.prompt(352, 67) == f"352{op}67="
    assert task.answer(352, 67) == answer
    assert task.read_answer(answer + "12") == (419 if op == "+" else 23584)
    assert task.read_answer("12") is None  # no end mark
    assert task.read_answer(";") is None  # no digits
    assert task.read_answer("1+;") is None


def test_sequence_length_fits_the_longest_problem():
    for op, a, b in (("+", 999, 999), ("*", 999, 999)):
        task = ArithmeticTask(op=op, n_digits=3)
        assert len(task.prompt(a, b) + task.answer(a, b)) == task.sequence_length(3)


def test_targets_are_the_answer_only():
    inputs, targets = answer_targets(encode("12+3="), encode("51;"))
    assert inputs == encode("12+3=51")
    assert targets == [IGNORE] * 4 + encode("51;")


def test_batches_are_reproducible_padded_and_predict_the_next_answer_token():
    task = ArithmeticTask(n_digits=3)
    batches = ArithmeticBatches(task, batch_size=16, seed=5)
    idx, targets = batches(7)
    assert idx.shape == targets.shape == (16, task.sequence_length(3) - 1)
    assert torch.equal(batches(7)[0], idx) and not torch.equal(batches(8)[0], idx)
    for row_ids, row_targets in zip(idx.tolist(), targets.tolist(), strict=True):
        text = decode(row_ids)
        a, rest = text.split("+")
        b = rest.split("=")[0]
        answer = [t for t in row_targets if t != IGNORE]
        assert decode(answer) == task.answer(int(a), int(b))
        for t, target in enumerate(row_targets[:-1]):  # where supervised, target = next input
            if target != IGNORE:
                assert row_ids[t + 1] == target


def test_held_out_problems_are_never_trained_on():
    task = ArithmeticTask(n_digits=2)
    batches = ArithmeticBatches(task, batch_size=64)
    seen = set()
    for step in range(20):
        for row in batches(step)[0].tolist():
            a, rest = decode(row).split("+")
            seen.add((int(a), int(rest.split("=")[0])))
    assert not any(is_held_out(a, b) for a, b in seen)
    held = sample_pairs(task, 50, np.random.default_rng(0), digits=2, held_out=True)
    assert all(is_held_out(a, b) and 10 <= a < 100 and 10 <= b < 100 for a, b in held)
    assert 0.005 < np.mean([is_held_out(a, b) for a in range(300) for b in range(100)]) < 0.02


def test_loss_at_initialisation_is_about_ln_vocabulary():
    torch.manual_seed(0)
    task = ArithmeticTask()
    model = make_model(task, 3, n_layer=1, n_head=2, n_embd=32)
    loss = model.loss(ArithmeticBatches(task, 64)(0)).item()
    assert abs(loss - math.log(len(VOCAB))) < 0.15


def test_a_tiny_gpt_memorises_a_few_sums_and_solve_reads_its_answers(tmp_path):
    torch.manual_seed(0)
    task = ArithmeticTask(n_digits=2)
    batch = ArithmeticBatches(task, batch_size=8, seed=1)(0)
    pairs = []
    for row in batch[0].tolist():
        a, rest = decode(row).split("+")
        pairs.append((int(a), int(rest.split("=")[0])))
    model = make_model(task, 2, n_layer=1, n_head=2, n_embd=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(120):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    model.eval()
    assert solve(model, task, pairs) == [a + b for a, b in pairs]
    assert exact_match(model, task, pairs) == 1.0

    arithmetic.save(model, task, tmp_path / "run")
    loaded, loaded_task = arithmetic.load(tmp_path / "run")
    assert loaded_task == task
    assert torch.equal(loaded(batch[0]), model(batch[0]))
    with pytest.raises(UserError, match="no arithmetic.json"):
        arithmetic.load(tmp_path)


def test_problems_longer_than_the_model_reads_get_no_answer():
    task = ArithmeticTask(n_digits=1)
    model = make_model(task, 1, n_layer=1, n_head=1, n_embd=8)
    assert solve(model, task, [(12345, 67890)]) == [None]


def test_bad_tasks_are_refused():
    with pytest.raises(UserError, match="choose \\+ or \\*"):
        ArithmeticTask(op="-")
    with pytest.raises(UserError, match="at least 1"):
        ArithmeticTask(n_digits=0)
