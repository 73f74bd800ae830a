"""Lesson 02's exercises (softmax, the causal mask, attention): each planted mistake gets its own
hint, and what no mistake explains is reported as a shape, a transpose or an error hint.

The planted mistakes are written the way a learner would write them (loops, other ops), not
copied from the checker's catalogue.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check
from fromscratch.exercises import l02_attention_solutions as solutions

SEEDS = [0, 1, 2]


def softmax_no_max(x):
    return x.exp() / x.exp().sum(-1, keepdim=True)


def softmax_dim0(x):
    e = (x - x.max(0, keepdim=True).values).exp()
    return e / e.sum(0, keepdim=True)


def softmax_no_division(x):
    return (x - x.max(-1, keepdim=True).values).exp()


def softmax_no_keepdim(x):
    e = (x - x.max(-1).values).exp()
    return e / e.sum(-1)


def softmax_in_place(x):
    x -= x.amax(-1, keepdim=True)
    return x.exp() / x.exp().sum(-1, keepdim=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (softmax_no_max, "overflow", "subtract"),
        (softmax_dim0, "axis", "wrong axis"),
        (softmax_no_division, "not_normalized", "sum to 1"),
        (softmax_no_keepdim, "error", "keepdim=True"),
        (softmax_in_place, "mutated_input", "in place"),
    ],
)
def test_softmax_mistakes(fn, key, words, seed):
    result = check("softmax", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def mask_float(T):
    return torch.tril(torch.ones(T, T))


def mask_upper(T):
    return torch.tensor([[j >= i for j in range(T)] for i in range(T)])


def mask_blocked(T):
    return torch.ones(T, T, dtype=torch.bool).triu(1)


def mask_strict(T):
    return torch.tensor([[j < i for j in range(T)] for i in range(T)])


def mask_everything_allowed(T):
    return torch.ones(T, T) > 0


def mask_additive(T):
    return torch.full((T, T), float("-inf")).triu(1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (mask_float, "dtype", "torch.bool"),
        (mask_upper, "transpose", "transposed"),
        (mask_blocked, "inverted", "inverted"),
        (mask_strict, "diagonal", "diagonal"),
        (mask_additive, "additive", "boolean"),
        (mask_everything_allowed, "all_allowed", "every key"),
    ],
)
def test_causal_mask_mistakes(fn, key, words, seed):
    result = check("causal_mask", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def attention_from(scores_fn, mask_fn=None, fill=float("-inf"), softmax_dim=-1, weights_t=False):
    """A learner's attention built from pieces; each test swaps in one wrong piece."""

    def attention(q, k, v, causal=False):
        scores = scores_fn(q, k)
        if causal:
            T = scores.shape[-1]
            scores = scores.masked_fill(~mask_fn(T), fill)
        weights = F.softmax(scores, dim=softmax_dim)
        if weights_t:
            weights = weights.transpose(-1, -2)
        return torch.matmul(weights, v)

    return attention


def scaled(q, k):
    return torch.einsum("...id,...jd->...ij", q, k) / q.size(-1) ** 0.5


def causal(T):
    return torch.ones(T, T).tril().bool()


def attention_mask_after_softmax(q, k, v, causal=False):
    weights = F.softmax(scaled(q, k), dim=-1)
    if causal:
        weights = weights.masked_fill(~torch.ones_like(weights).tril().bool(), 0.0)
    return weights @ v


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (attention_from(lambda q, k: q @ k.transpose(-2, -1), causal), "scale", "1/√D"),
        (attention_from(lambda q, k: q @ k.mT / q.shape[-1], causal), "scale", "by D"),
        (attention_from(scaled, causal, softmax_dim=-2), "softmax_axis", "wrong axis"),
        (attention_from(lambda q, k: scaled(k, q), causal), "transpose", "transpose"),
        (attention_from(scaled, causal, weights_t=True), "transpose", "transpose"),
        (
            attention_from(scaled, lambda T: torch.ones(T, T, dtype=torch.bool)),
            "mask_missing",
            "not applied",
        ),
        (
            attention_from(scaled, lambda T: torch.ones(T, T).triu().bool()),
            "mask_inverted",
            "inverted",
        ),
        (
            attention_from(scaled, lambda T: torch.ones(T, T).tril(-1).bool()),
            "mask_diagonal",
            "diagonal",
        ),
        (attention_from(scaled, causal, fill=0.0), "mask_zero", "-inf"),
        (attention_mask_after_softmax, "mask_after_softmax", "before softmax"),
    ],
)
def test_attention_mistakes(fn, key, words, seed):
    result = check("attention", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_attention_large_negative_fill_is_accepted():
    """Filling masked scores with -1e9 instead of -inf gives the same weights: no complaint."""
    fn = attention_from(scaled, causal, fill=-1e9)
    assert check("attention", fn, seed=0).ok


def test_attention_matmul_error_gets_a_transpose_hint():
    def attention(q, k, v, causal=False):
        return F.softmax(q @ k / math.sqrt(q.shape[-1]), -1) @ v  # forgot to transpose k

    result = check("attention", attention, seed=0)
    assert not result.ok and result.diagnosis == "error" and ".transpose(-2, -1)" in result.message


def test_attention_wrong_shape_reports_expected_and_got():
    def attention(q, k, v, causal=False):
        return solutions.attention(q, k, v, causal).mean(dim=-2)  # averaged the queries away

    result = check("attention", attention, seed=0)
    assert not result.ok and result.diagnosis == "shape"
    assert "expected (2, 5, 16), got (2, 16)" in result.message
