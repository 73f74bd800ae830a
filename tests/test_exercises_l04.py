"""Lesson 04's exercises (cross-entropy, the training step): each planted mistake gets its own
hint, torch's cross-entropy and the library's train_step pass, and a wrong loss value is reported
as expected vs got.

The planted mistakes are written the way a learner would write them (loops, other ops), not
copied from the checker's catalogue.
"""

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check, l04_training, l04_training_solutions
from fromscratch.exercises.checking import get_exercise
from fromscratch.seeds import LOSS, micro_batch_seed
from fromscratch.training.loop import lr_at, train_step

SEEDS = [0, 1, 2]


def ce_loop(reduce="mean", sign=-1.0, use_log=True, dim=-1):
    def cross_entropy(logits, targets):
        losses = []
        log_probs = F.log_softmax(logits, dim=dim) if use_log else F.softmax(logits, dim=dim)
        for n in range(logits.shape[0]):
            losses.append(sign * log_probs[n, targets[n]])
        losses = torch.stack(losses)
        return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduce]

    return cross_entropy


def ce_naive(logits, targets):
    probs = logits.exp() / logits.exp().sum(-1, keepdim=True)
    return -probs[range(len(targets)), targets].log().mean()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (ce_loop(reduce="sum"), "sum", "mean"),
        (ce_loop(sign=1.0), "sign", "minus sign"),
        (ce_loop(reduce="none"), "per_example", "one number"),
        (lambda z, t: -z.gather(1, t[:, None]).mean(), "raw_logits", "log softmax"),
        (ce_loop(use_log=False), "no_log", "log of the probability"),
        (ce_loop(dim=0), "axis", "wrong axis"),
        (ce_naive, "nan", "logsumexp"),
    ],
)
def test_cross_entropy_mistakes(fn, key, words, seed):
    result = check("cross_entropy", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_a_wrong_scalar_is_reported_as_a_value_not_a_factor():
    result = check("cross_entropy", lambda z, t: F.cross_entropy(z, t) + 0.5, seed=0)
    assert not result.ok and result.diagnosis == "values"
    first_case = get_exercise("cross_entropy").make_cases(torch.Generator().manual_seed(0))[0]
    expected = F.cross_entropy(*first_case.args).item()
    assert f"expected {expected:.5g}, got {expected + 0.5:.5g}" in result.message


def test_cross_entropy_torch_builtin_is_correct():
    assert check("cross_entropy", F.cross_entropy, seed=0).ok


# ---------------------------------------------------------------------------------------------
# train_step: the check trains a tiny GPT with the learner's step and compares the weights
# ---------------------------------------------------------------------------------------------
def learner_step(*, zero=True, clip_late=False, per_epoch=False, seed=True, schedule=True):
    """A training step as a learner writes it, with the one slip asked for."""

    def train_step(model, optimizer, batches, step, cfg):
        if schedule and not per_epoch:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
        if per_epoch and step % batches.steps_per_epoch == 0:  # a new pass over the data
            epoch = step // batches.steps_per_epoch
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch, cfg)
        for m in range(cfg.grad_accum):
            if seed:
                torch.manual_seed(micro_batch_seed(cfg.seed, step, m, LOSS))
            x, y = batches(step, m)
            loss = model.loss((x, y)) / cfg.grad_accum
            loss.backward()
        if not clip_late:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        optimizer.step()
        if clip_late:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        if zero:
            for p in model.parameters():
                p.grad = None

    return train_step


def test_the_reference_step_reaches_the_librarys_weights():
    for case in get_exercise("train_step").make_cases(torch.Generator().manual_seed(0)):
        ours = l04_training._weights_after_steps(l04_training_solutions.train_step, *case.args)
        library = l04_training._weights_after_steps(train_step, *case.args)
        initial = l04_training._weights_after_steps(lambda *args: None, *case.args)
        assert (ours - library).abs().max() <= 1e-6, case.label
        assert (ours - initial).abs().max() > 1e-3  # the steps did move the weights


def test_the_librarys_train_step_and_a_written_out_one_are_correct():
    assert check("train_step", train_step, seed=0).ok
    assert check("train_step", learner_step(), seed=1).ok


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (learner_step(zero=False), "no_zero_grad", "zero_grad()"),
        (learner_step(clip_late=True), "clip_after_step", "unclipped"),
        (learner_step(per_epoch=True), "lr_per_epoch", "once per epoch"),
        (learner_step(schedule=False), "no_schedule", "stayed at cfg.lr"),
        (learner_step(seed=False), "not_seeded", "micro_batch_seed"),
    ],
)
def test_train_step_mistakes(fn, key, words, seed):
    result = check("train_step", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_an_unwritten_step_says_so_and_leaves_the_random_state_alone():
    def train_step(model, optimizer, batches, step, cfg):
        raise NotImplementedError

    state = torch.random.get_rng_state()
    assert check("train_step", train_step, seed=0).diagnosis == "not_implemented"
    check("train_step", learner_step(), seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
