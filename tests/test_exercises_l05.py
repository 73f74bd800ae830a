"""Lesson 05's exercises (top-k and top-p filtering): each planted mistake gets its own hint.

The planted mistakes are written the way a learner would write them (sorting, scattering), not
copied from the checker's catalogue.
"""

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check

SEEDS = [0, 1, 2]


def top_k_sorting(keep_extra=0, fill=float("-inf"), largest=True):
    def top_k_filter(logits, k):
        k = min(k + keep_extra, logits.shape[-1])
        order = logits.argsort(dim=-1, descending=largest)
        out = torch.full_like(logits, fill)
        keep = order[..., :k]
        return out.scatter(-1, keep, logits.gather(-1, keep))

    return top_k_filter


def top_k_unclamped(logits, k):
    kth = logits.topk(k).values[..., -1:]  # fails when k > V
    return logits.masked_fill(logits < kth, float("-inf"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (top_k_sorting(fill=0.0), "fill_zero", "-∞"),
        (top_k_sorting(largest=False), "smallest", "k largest"),
        (top_k_sorting(keep_extra=1), "off_by_one", "k + 1"),
        (top_k_sorting(keep_extra=-1), "off_by_one", "k - 1"),
        (lambda z, k: F.softmax(top_k_sorting()(z, k), -1), "probabilities", "not probabilities"),
        (lambda z, k: z.topk(min(k, z.shape[-1])).values, "values_only", "whole (..., V)"),
        (top_k_unclamped, "error", "min(k, logits.shape[-1])"),
    ],
)
def test_top_k_mistakes(fn, key, words, seed):
    result = check("top_k_filter", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def top_p_from(sort=True, unsort=True, strict=False, fill=float("-inf")):
    def top_p_filter(logits, p):
        probs = logits.softmax(-1)
        if sort:
            probs, order = probs.sort(-1, descending=True)
        cumulative = probs.cumsum(-1)
        drop = cumulative > p if strict else cumulative - probs >= p
        if sort and unsort:
            drop = torch.zeros_like(drop).scatter(-1, order, drop)
        return logits.masked_fill(drop, fill)

    return top_p_filter


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (top_p_from(strict=True), "crossing_token", "crosses p"),
        (top_p_from(sort=False), "unsorted", "sort the probabilities"),
        (top_p_from(unsort=False), "unsort", "sort indices"),
        (top_p_from(fill=0.0), "fill_zero", "-∞"),
    ],
)
def test_top_p_mistakes(fn, key, words, seed):
    result = check("top_p_filter", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message
