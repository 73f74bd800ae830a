"""Lesson 02's exercises (attention): `softmax`, `causal_mask` and scaled dot-product
`attention`.

The cases include a single token (T = 1), masked (-inf) entries, inputs large enough to overflow
exp, cross-attention (Tq ≠ Tk, Dv ≠ D) and 4-D inputs (B, H, T, D).
"""

import math

import torch

from fromscratch.exercises import l02_attention_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import NEG_INF, randint, randn


def _softmax_cases(gen: torch.Generator) -> list[Case]:
    with_masked = randn(gen, 3, 4)
    with_masked[0, 1] = NEG_INF  # masked entries: exp(-inf) = 0
    with_masked[2, 0] = NEG_INF
    inputs = [
        (randn(gen, 3, 5), "x (3, 5)"),
        (randn(gen, 2, 4, 7, scale=3.0), "x (2, 4, 7)"),
        (randn(gen, 1, 1), "a single entry, x (1, 1)"),
        (randn(gen, 4, 6, scale=1000.0), "large inputs, x (4, 6) with entries in the thousands"),
        (with_masked, "x (3, 4) with some entries -inf (masked)"),
    ]
    return [Case((x,), label) for x, label in inputs]


def _softmax_naive(x):
    return torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)


def _softmax_global_max(x):
    exps = torch.exp(x - x.max())
    return exps / exps.sum(dim=-1, keepdim=True)


def _softmax_unnormalized(x):
    return torch.exp(x - x.amax(dim=-1, keepdim=True))


register(
    Exercise(
        name="softmax",
        lesson="02_attention",
        prompt=(
            "softmax(x: Tensor) -> Tensor\n"
            "Softmax over the last axis, exp(x_i) / Σ_j exp(x_j), that does not overflow for\n"
            "large inputs (hint: softmax(x) = softmax(x - c) for any constant c)."
        ),
        reference=solutions.softmax,
        make_cases=_softmax_cases,
        mistakes=(
            Mistake(
                "overflow",
                "exp overflows for large inputs (exp(1000) = inf, inf / inf = NaN): subtract "
                "each row's maximum before exp; softmax(x) = softmax(x - max(x)).",
                _softmax_naive,
            ),
            Mistake(
                "global_max",
                "subtract each row's own maximum (x.amax(dim=-1, keepdim=True)), not the maximum "
                "of the whole tensor: a row far below it underflows to all zeros, 0 / 0 = NaN.",
                _softmax_global_max,
            ),
            Mistake(
                "axis",
                "softmax over the wrong axis: normalize over the last axis (dim=-1), so that "
                "each row sums to 1.",
                lambda x: torch.softmax(x, dim=0),
            ),
            Mistake(
                "axis",
                "softmax over the wrong axis: normalize over the last axis (dim=-1), so that "
                "each row sums to 1.",
                lambda x: torch.softmax(x, dim=-2),
            ),
            Mistake(
                "not_normalized",
                "the rows don't sum to 1: divide the exponentials by their sum over the last axis.",
                _softmax_unnormalized,
            ),
        ),
        nan_hint=(
            "NaN or inf in your output: exp overflows for large inputs (exp(1000) = inf). "
            "Subtract each row's maximum before exp."
        ),
    )
)


def _causal_mask_cases(gen: torch.Generator) -> list[Case]:
    random_length = randint(gen, 2, 12)
    return [Case((t,), f"causal_mask({t})") for t in (1, 2, 5, random_length)]


def _lower(t: int, diagonal: int = 0) -> torch.Tensor:
    return torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=diagonal)


register(
    Exercise(
        name="causal_mask",
        lesson="02_attention",
        prompt=(
            "causal_mask(T: int) -> Tensor\n"
            "A boolean (T, T) mask, True where query i (row) may attend key j (column): j ≤ i."
        ),
        reference=solutions.causal_mask,
        make_cases=_causal_mask_cases,
        mistakes=(
            Mistake(
                "inverted",
                "inverted: True must mark what a query MAY attend (keys j ≤ i), False what it "
                "may not.",
                lambda t: ~_lower(t),
            ),
            Mistake(
                "transpose",
                "transposed: row i is the query and column j the key; query i sees keys j ≤ i, "
                "the lower triangle (torch.tril), not the upper one.",
                lambda t: _lower(t).T,
            ),
            Mistake(
                "diagonal",
                "the diagonal is missing: a position may attend to itself (j = i); "
                "use torch.tril(..., diagonal=0).",
                lambda t: _lower(t, diagonal=-1),
            ),
            Mistake(
                "all_allowed",
                "True everywhere: that allows every key. Query i may only see keys j ≤ i, "
                "the lower triangle (torch.tril).",
                lambda t: torch.ones(t, t, dtype=torch.bool),
            ),
            Mistake(
                "additive",
                "you returned an additive mask (0 / -inf); this exercise asks for a boolean one, "
                "True = may attend.",
                lambda t: torch.zeros(t, t).masked_fill(~_lower(t), NEG_INF),
            ),
        ),
    )
)


def _attention_cases(gen: torch.Generator) -> list[Case]:
    def qkv(batch: tuple, t_q: int, t_k: int, d: int, d_v: int):
        q = randn(gen, *batch, t_q, d)
        k = randn(gen, *batch, t_k, d)
        v = randn(gen, *batch, t_k, d_v)
        return q, k, v

    cases = []
    for (q, k, v), causal, note in [
        (qkv((2,), 5, 5, 16, 16), False, ""),
        (qkv((2,), 5, 5, 16, 16), True, ""),
        (qkv((2,), 3, 6, 16, 8), False, " (cross-attention: Tq ≠ Tk, Dv ≠ D)"),
        (qkv((1,), 1, 1, 16, 16), True, " (a single token, T = 1)"),
        (qkv((2, 3), 4, 4, 8, 8), True, " (4-D: batch and heads, (B, H, T, D))"),
    ]:
        shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        label = f"{shapes}, causal={causal}{note}"
        cases.append(Case((q, k, v, causal), label))
    return cases


def _attention_variant(
    q,
    k,
    v,
    causal,
    *,
    scale=None,
    softmax_dim=-1,
    allowed=_lower,
    fill=NEG_INF,
    swap_scores=False,
    swap_weights=False,
):
    """Attention with one knob turned the wrong way; the defaults give the right answer."""
    d = q.shape[-1]
    scale = 1 / math.sqrt(d) if scale is None else scale(d)
    scores = (k @ q.mT if swap_scores else q @ k.mT) * scale  # (..., Tq, Tk)
    if causal:
        scores = scores.masked_fill(~allowed(scores.shape[-1]), fill)
    weights = torch.softmax(scores, dim=softmax_dim)
    return (weights.mT if swap_weights else weights) @ v


def _attention_masked_after_softmax(q, k, v, causal):
    weights = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
    if causal:
        weights = weights * _lower(weights.shape[-1])
    return weights @ v


_MASK_INVERTED = (
    "the causal mask is inverted or transposed: query i must see keys j ≤ i (the lower "
    "triangle, torch.tril) and not the future."
)
_TRANSPOSED = (
    "off by a transpose: the scores are Q Kᵀ (row i = query i, column j = key j) and the "
    "output is weights @ V; you swapped one of them."
)


register(
    Exercise(
        name="attention",
        lesson="02_attention",
        prompt=(
            "attention(q, k, v, causal=False) -> Tensor\n"
            "softmax(Q Kᵀ / √D) V for q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv), softmax\n"
            "over the keys. With causal=True (Tq == Tk), query i may only attend keys j ≤ i."
        ),
        reference=solutions.attention,
        make_cases=_attention_cases,
        mistakes=(
            Mistake(
                "scale",
                "missing the 1/√D scale: divide the scores Q Kᵀ by √D, D = q.shape[-1]. Without "
                "it their spread grows like √D and softmax saturates.",
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, scale=lambda d: 1.0),
            ),
            Mistake(
                "scale",
                "wrong scale: you divided the scores by D; divide by √D (the standard deviation "
                "of q·k grows like √D, not D).",
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, scale=lambda d: 1 / d),
            ),
            Mistake(
                "softmax_axis",
                "softmax over the wrong axis: normalize each query's row of scores over the "
                "keys (dim=-1), not over the queries.",
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, softmax_dim=-2),
            ),
            Mistake(
                "transpose",
                _TRANSPOSED,
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, swap_scores=True),
            ),
            Mistake(
                "transpose",
                _TRANSPOSED,
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, swap_weights=True),
            ),
            Mistake(
                "mask_missing",
                "the causal mask is not applied: with causal=True, set the scores of keys after "
                "the query (j > i) to -∞ before softmax.",
                lambda q, k, v, causal: solutions.attention(q, k, v, causal=False),
            ),
            Mistake(
                "mask_inverted",
                _MASK_INVERTED,
                lambda q, k, v, causal: _attention_variant(
                    q, k, v, causal, allowed=lambda t: ~_lower(t)
                ),
            ),
            Mistake(
                "mask_inverted",
                _MASK_INVERTED,
                lambda q, k, v, causal: _attention_variant(
                    q, k, v, causal, allowed=lambda t: _lower(t).T
                ),
            ),
            Mistake(
                "mask_diagonal",
                "the diagonal is masked: query i may attend its own key (j = i); otherwise the "
                "first query sees nothing and softmax gives 0 / 0 = NaN.",
                lambda q, k, v, causal: _attention_variant(
                    q, k, v, causal, allowed=lambda t: _lower(t, diagonal=-1)
                ),
            ),
            Mistake(
                "mask_zero",
                "masked scores set to 0 still get weight exp(0) = 1 after softmax: fill them "
                "with float('-inf') instead.",
                lambda q, k, v, causal: _attention_variant(q, k, v, causal, fill=0.0),
            ),
            Mistake(
                "mask_after_softmax",
                "you zeroed weights after softmax, so rows no longer sum to 1: set the masked "
                "scores to -∞ before softmax instead.",
                _attention_masked_after_softmax,
            ),
        ),
        nan_hint=(
            "NaN in your output: a query whose scores are all -∞ gives softmax 0 / 0. With "
            "causal=True every query must at least see its own key (j = i)."
        ),
    )
)
