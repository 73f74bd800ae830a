"""The exercise checker: reference solutions pass, and each planted mistake gets its own hint.

The planted mistakes are written the way a learner would write them (loops, other ops), not
copied from the checker's catalog, so they test that the diagnosis recognizes the bug by its
output and not by its code.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.errors import UserError
from fromscratch.exercises import (
    SOLUTIONS_ENV,
    check,
    exercise,
    list_exercises,
    prompt,
    solution_source,
)
from fromscratch.exercises import gpt_solutions as solutions

SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True)
def one_thread():
    """The inputs are tiny: on a busy machine, torch's thread pool costs more than the math."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GPT_TRACK = [
    "bpe_merge",
    "softmax",
    "causal_mask",
    "attention",
    "layer_norm",
    "gelu",
    "top_k_filter",
    "top_p_filter",
]


def test_registry_lists_the_gpt_track_in_lesson_order():
    names = list_exercises()
    assert [n for n in names if n in GPT_TRACK] == GPT_TRACK
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", GPT_TRACK)
@pytest.mark.parametrize("seed", SEEDS)
def test_reference_solution_is_correct(name, seed, capsys):
    result = check(name, getattr(solutions, name), seed=seed)
    assert result.ok and result.diagnosis == "correct"
    assert capsys.readouterr().out.startswith(f"✓ {name}: correct on all")


@pytest.mark.parametrize("name", GPT_TRACK)
def test_solution_source_and_prompt(name):
    source = solution_source(name)
    assert source.startswith(f"def {name}(")
    assert "return" in source
    assert name in prompt(name)


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


def diagnose(name, fn, seed):
    result = check(name, fn, seed=seed)
    assert not result.ok
    return result


# ---------------------------------------------------------------------------------------------
# planted mistakes, one per known hint
# ---------------------------------------------------------------------------------------------
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
    result = diagnose("softmax", fn, seed)
    assert result.diagnosis == key and words in result.message


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
    result = diagnose("causal_mask", fn, seed)
    assert result.diagnosis == key and words in result.message


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
    result = diagnose("attention", fn, seed)
    assert result.diagnosis == key and words in result.message


def test_attention_large_negative_fill_is_accepted():
    """Filling masked scores with -1e9 instead of -inf gives the same weights: no complaint."""
    fn = attention_from(scaled, causal, fill=-1e9)
    assert check("attention", fn, seed=0).ok


def test_attention_matmul_error_gets_a_transpose_hint():
    def attention(q, k, v, causal=False):
        return F.softmax(q @ k / math.sqrt(q.shape[-1]), -1) @ v  # forgot to transpose k

    result = diagnose("attention", attention, seed=0)
    assert result.diagnosis == "error" and ".transpose(-2, -1)" in result.message


def test_attention_wrong_shape_reports_expected_and_got():
    def attention(q, k, v, causal=False):
        return solutions.attention(q, k, v, causal).mean(dim=-2)  # averaged the queries away

    result = diagnose("attention", attention, seed=0)
    assert result.diagnosis == "shape"
    assert "expected (2, 5, 16), got (2, 16)" in result.message


def layer_norm_from(var_fn, eps_inside=True, center=True, affine=True, fixed_eps=None):
    def layer_norm(x, weight, bias, eps=1e-5):
        eps = eps if fixed_eps is None else fixed_eps
        mu = x.mean(-1, keepdim=True) if center else 0
        var = var_fn(x)
        x_hat = (x - mu) / ((var + eps).sqrt() if eps_inside else var.sqrt() + eps)
        return weight * x_hat + bias if affine else x_hat

    return layer_norm


def layer_norm_over_batch(x, weight, bias, eps=1e-5):
    mu = x.mean(0, keepdim=True)
    var = x.var(0, keepdim=True, unbiased=False)
    return weight * (x - mu) / torch.sqrt(var + eps) + bias


def biased(x):
    return x.var(-1, keepdim=True, unbiased=False)


def mean_square(x):
    return x.pow(2).mean(-1, keepdim=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (layer_norm_from(lambda x: x.var(-1, keepdim=True)), "unbiased", "C - 1"),
        (layer_norm_from(biased, eps_inside=False), "eps_placement", "inside the square root"),
        (layer_norm_from(biased, fixed_eps=0.0), "eps_missing", "ε"),
        (layer_norm_from(biased, fixed_eps=1e-5), "eps_missing", "`eps` argument"),
        (layer_norm_from(biased, affine=False), "no_affine", "weight"),
        (layer_norm_from(mean_square, center=False), "not_centered", "RMSNorm"),
        (layer_norm_over_batch, "axis", "last axis"),
    ],
)
def test_layer_norm_mistakes(fn, key, words, seed):
    result = diagnose("layer_norm", fn, seed)
    assert result.diagnosis == key and words in result.message


def test_layer_norm_torch_builtin_is_correct():
    def layer_norm(x, weight, bias, eps=1e-5):
        return F.layer_norm(x, x.shape[-1:], weight, bias, eps)

    assert check("layer_norm", layer_norm, seed=0).ok


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu_tanh(c=SQRT_2_OVER_PI, cube=3, half=0.5):
    return lambda x: half * x * (1 + torch.tanh(c * (x + 0.044715 * x**cube)))


def gelu_handmade_tanh(x):
    z = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + (z.exp() - (-z).exp()) / (z.exp() + (-z).exp()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), "erf_form", "tanh approximation"),
        (lambda x: x / (1 + torch.exp(-1.702 * x)), "sigmoid_form", "sigmoid"),
        (gelu_tanh(half=1.0), "half", "0.5"),
        (gelu_tanh(c=2 / math.pi), "constant", "√(2/π)"),
        (gelu_tanh(cube=2), "cubic", "x³"),
        (
            lambda x: 0.5 * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x**3))),
            "times_x",
            "multiply by x",
        ),
        (gelu_handmade_tanh, "nan", "torch.tanh"),
    ],
)
def test_gelu_mistakes(fn, key, words, seed):
    result = diagnose("gelu", fn, seed)
    assert result.diagnosis == key and words in result.message


def test_gelu_torch_builtin_tanh_is_correct():
    assert check("gelu", lambda x: F.gelu(x, approximate="tanh"), seed=0).ok


def test_gelu_constant_factor_is_named():
    result = diagnose("gelu", lambda x: 3 * solutions.gelu(x), seed=0)
    assert result.diagnosis == "factor" and "3 × the answer" in result.message


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
    result = diagnose("top_k_filter", fn, seed)
    assert result.diagnosis == key and words in result.message


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
    result = diagnose("top_p_filter", fn, seed)
    assert result.diagnosis == key and words in result.message


def bpe_first_only(ids, pair, new_id):
    text = list(ids)
    for i in range(len(text) - 1):
        if text[i] == pair[0] and text[i + 1] == pair[1]:
            return text[:i] + [new_id] + text[i + 2 :]
    return text


def bpe_no_skip(ids, pair, new_id):
    out = []
    for i, token in enumerate(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
        else:
            out.append(token)
    return out


def bpe_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            out.insert(0, new_id)
            i -= 2
        else:
            out.insert(0, ids[i])
            i -= 1
    return out


def bpe_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (bpe_first_only, "first_only", "first occurrence"),
        (bpe_no_skip, "no_skip", "skip BOTH"),
        (bpe_drops_last, "drops_last", "last id"),
        (bpe_right_to_left, "right_to_left", "left to right"),
        (bpe_in_place, "mutated_input", "in place"),
        (
            lambda ids, pair, new_id: tuple(solutions.bpe_merge(ids, pair, new_id)),
            "type",
            "return a list",
        ),
    ],
)
def test_bpe_merge_mistakes(fn, key, words, seed):
    result = diagnose("bpe_merge", fn, seed)
    assert result.diagnosis == key and words in result.message
