"""Lesson 04's exercise (cross-entropy): each planted mistake gets its own hint, torch's own
cross-entropy passes, and a wrong loss value is reported as expected vs got.

The planted mistakes are written the way a learner would write them (loops, other ops), not
copied from the checker's catalogue.
"""

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check
from fromscratch.exercises.checking import get_exercise

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
