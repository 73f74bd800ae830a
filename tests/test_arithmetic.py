"""Arithmetic as sequence modelling: the text format, the answer-only targets, held-out problems
never trained on, the loss at initialisation, and a tiny GPT that memorises a few sums."""

import json
import math

import numpy as np
import pytest
import torch

from fromscratch.beyond import arithmetic
from fromscratch.beyond.arithmetic import (
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


@pytest.mark.parametrize(("op", "reverse", "pad", "prompt", "answer"), [
    ("+", True, False, "352+67=", "914;"), ("+", False, False, "352+67=", "419;"),
    ("*", True, False, "352*67=", "48532;"), ("*", False, False, "352*67=", "23584;"),
    ("+", True, True, "352+067=", "9140;"), ("+", False, True, "352+067=", "0419;"),
    ("*", True, True, "352*067=", "485320;"), ("*", False, True, "352*067=", "023584;"),
])
def test_answers_are_written_in_the_asked_order_and_read_back(op, reverse, pad, prompt, answer):
    task = ArithmeticTask(op=op, reverse=reverse, pad=pad)
    assert task.prompt(352, 67) == prompt
    assert task.answer(352, 67) == answer
    assert task.read_answer(answer) == (419 if op == "+" else 23584)
    assert task.read_answer(answer + "12") == (419 if op == "+" else 23584)
    assert task.read_answer("12") is None  # no end mark
    assert task.read_answer(";") is None  # no digits
    assert task.read_answer("1+;") is None


def test_padding_puts_every_digit_at_a_fixed_position():
    task = ArithmeticTask(n_digits=3)
    assert task.prompt(3, 4) + task.answer(3, 4) == "003+004=7000;"
    assert len(task.prompt(3, 4) + task.answer(3, 4)) == task.sequence_length(3)
    assert task.prompt(12345, 6) == "12345+00006="  # longer than trained: as long as needed
    idx, targets = ArithmeticBatches(task, batch_size=32)(0)
    assert (idx[:, 3] == VOCAB.index("+")).all() and (idx[:, 7] == VOCAB.index("=")).all()
    assert (targets[:, -1] == VOCAB.index(";")).all()  # no row is shorter


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
    pairs = [(3, 4), (7, 95), (12, 5), (99, 99), (40, 7), (0, 0), (58, 61), (9, 9)]
    rows = [answer_targets(encode(task.prompt(a, b)), encode(task.answer(a, b)))
            for a, b in pairs]  # all of one length: padded
    batch = tuple(torch.tensor(column) for column in zip(*rows, strict=True))
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


def test_a_task_file_without_the_pad_field_is_read_as_unpadded(tmp_path):
    task = ArithmeticTask(n_digits=2)
    arithmetic.save(make_model(task, 2, n_layer=1, n_head=1, n_embd=8), task, tmp_path)
    fields = json.loads((tmp_path / "arithmetic.json").read_text())
    del fields["pad"]  # as written before operands were padded
    (tmp_path / "arithmetic.json").write_text(json.dumps(fields))
    _, loaded_task = arithmetic.load(tmp_path)
    assert loaded_task.pad is False
    assert loaded_task.prompt(3, 45) == "3+45="


def test_problems_longer_than_the_model_reads_get_no_answer():
    task = ArithmeticTask(n_digits=1)
    model = make_model(task, 1, n_layer=1, n_head=1, n_embd=8)
    assert solve(model, task, [(12345, 67890)]) == [None]


def test_bad_tasks_are_refused():
    with pytest.raises(UserError, match="choose \\+ or \\*"):
        ArithmeticTask(op="-")
    with pytest.raises(UserError, match="at least 1"):
        ArithmeticTask(n_digits=0)
