"""The GPT track's exercises (lessons 01-05): their test inputs and the mistakes we recognize.

Every `make_*_cases(gen)` returns fresh random inputs drawn from `gen`, in several shapes, plus
the edge cases where bugs hide (a single token, masked entries, inputs large enough to overflow
exp). Every `Mistake` is a short function that makes one common error on purpose: when the
learner's output equals it, `check` prints that mistake's hint.
"""

import math

import torch
import torch.nn.functional as F

from fromscratch.exercises import gpt_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register

NEG_INF = float("-inf")


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


# ---------------------------------------------------------------------------------------------
# 01 tokenization: one BPE merge
# ---------------------------------------------------------------------------------------------
def _bpe_cases(gen: torch.Generator) -> list[Case]:
    ids = torch.randint(0, 4, (24,), generator=gen).tolist()  # few symbols: pairs repeat
    start = int(torch.randint(0, len(ids) - 1, (1,), generator=gen))
    pair = (ids[start], ids[start + 1])  # a pair that occurs at least once
    inputs = [
        (ids, pair, 256),
        ([7, 7, 7, 7, 7], (7, 7), 9),  # overlapping occurrences
        ([1, 2, 3, 4], (3, 4), 5),  # the pair at the very end
        ([1, 2, 3], (3, 1), 5),  # the pair never occurs
        ([5], (5, 5), 6),  # a single id
        ([], (1, 2), 3),  # nothing at all
    ]
    return [Case((ids, pair, new), f"bpe_merge({ids}, {pair}, {new})") for ids, pair, new in inputs]


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_without_skip(ids, pair, new_id):
    merged = []
    for i in range(len(ids)):
        starts_pair = i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair
        merged.append(new_id if starts_pair else ids[i])  # the pair's second id is not skipped
    return merged


def _merge_dropping_last(ids, pair, new_id):
    merged = []
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def _merge_right_to_left(ids, pair, new_id):
    reversed_pair = (pair[1], pair[0])
    return solutions.bpe_merge(ids[::-1], reversed_pair, new_id)[::-1]


register(
    Exercise(
        name="bpe_merge",
        lesson="01_tokenization",
        prompt=(
            "bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]\n"
            "Return a new list where every occurrence of `pair` (two neighbouring ids), found\n"
            "scanning left to right, is replaced by `new_id`. [7, 7, 7] with (7, 7) -> [new, 7]."
        ),
        reference=solutions.bpe_merge,
        make_cases=_bpe_cases,
        mistakes=(
            Mistake(
                "first_only",
                "only the first occurrence was merged: keep scanning to the end of the list.",
                _merge_first_only,
            ),
            Mistake(
                "no_skip",
                "after a merge, skip BOTH ids of the pair (i += 2): you kept the pair's second id.",
                _merge_without_skip,
            ),
            Mistake(
                "drops_last",
                "the last id went missing: when the scan reaches the final id (no neighbour to "
                "pair with), append it as it is.",
                _merge_dropping_last,
            ),
            Mistake(
                "right_to_left",
                "scan left to right: in [7, 7, 7] the leftmost (7, 7) merges, giving [new, 7].",
                _merge_right_to_left,
            ),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 02 attention: softmax, causal mask, scaled dot-product attention
# ---------------------------------------------------------------------------------------------
def _softmax_cases(gen: torch.Generator) -> list[Case]:
    with_masked = _randn(gen, 3, 4)
    with_masked[0, 1] = NEG_INF  # masked entries: exp(-inf) = 0
    with_masked[2, 0] = NEG_INF
    inputs = [
        (_randn(gen, 3, 5), "x (3, 5)"),
        (_randn(gen, 2, 4, 7, scale=3.0), "x (2, 4, 7)"),
        (_randn(gen, 1, 1), "a single entry, x (1, 1)"),
        (_randn(gen, 4, 6, scale=1000.0), "large inputs, x (4, 6) with entries in the thousands"),
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
    random_length = int(torch.randint(2, 12, (1,), generator=gen))
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
        q = _randn(gen, *batch, t_q, d)
        k = _randn(gen, *batch, t_k, d)
        v = _randn(gen, *batch, t_k, d_v)
        return q, k, v

    cases = []
    for (q, k, v), causal, note in [
        (qkv((2,), 5, 5, 16, 16), False, ""),
        (qkv((2,), 5, 5, 16, 16), True, ""),
        (qkv((2,), 3, 6, 16, 8), False, " (cross-attention: Tq ≠ Tk, Dv ≠ D)"),
        (qkv((1,), 1, 1, 16, 16), True, " (a single token, T = 1)"),
        (qkv((2, 3), 4, 4, 8, 8), True, " (4-D: batch and heads, (B, H, T, D))"),
    ]:
        label = f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}, causal={causal}{note}"
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


# ---------------------------------------------------------------------------------------------
# 03 GPT: layer norm and GELU
# ---------------------------------------------------------------------------------------------
def _layer_norm_cases(gen: torch.Generator) -> list[Case]:
    def affine(c: int):
        return 1.0 + 0.5 * _randn(gen, c), 0.5 * _randn(gen, c)  # weight γ, bias β

    def shape_label(x: torch.Tensor) -> str:
        return f"x {_shape(x)}"

    cases = []
    for x, extra, note in [
        (_randn(gen, 4, 16, scale=2.0) + 1.0, (), ""),
        (_randn(gen, 2, 3, 8), (), ""),
        (_randn(gen, 1, 1, 8), (), " (a single token)"),
        (_randn(gen, 3, 8, scale=1e-3), (), " (tiny variance ~1e-6, below eps = 1e-5)"),
        (_randn(gen, 3, 8, scale=2.0), (0.1,), ", eps=0.1"),
    ]:
        cases.append(Case((x, *affine(x.shape[-1]), *extra), shape_label(x) + note))
    return cases


def _layer_norm_variant(
    x, weight, bias, eps=1e-5, *, correction=0, eps_inside=True, center=True, affine=True, dim=-1
):
    """LayerNorm with one knob turned the wrong way; the defaults give the right answer."""
    mean = x.mean(dim=dim, keepdim=True) if center else 0.0
    var = ((x - mean) ** 2).sum(dim=dim, keepdim=True) / (x.shape[dim] - correction)
    x_hat = (x - mean) / (torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps)
    return x_hat * weight + bias if affine else x_hat


register(
    Exercise(
        name="layer_norm",
        lesson="03_gpt",
        prompt=(
            "layer_norm(x, weight, bias, eps=1e-5) -> Tensor\n"
            "Normalize over the last axis (the C features): (x - mean) / sqrt(var + eps), with\n"
            "the biased variance, then multiply by weight and add bias (both shape (C,))."
        ),
        reference=solutions.layer_norm,
        make_cases=_layer_norm_cases,
        mistakes=(
            Mistake(
                "unbiased",
                "use the biased variance, dividing by C, not C - 1: x.var(dim=-1, "
                "correction=0) or ((x - mean) ** 2).mean(dim=-1).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, correction=1),
            ),
            Mistake(
                "eps_placement",
                "ε goes inside the square root: (x - μ) / √(σ² + ε), not (x - μ) / (σ + ε).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, eps_inside=False),
            ),
            Mistake(
                "eps_missing",
                "ε is missing (or not the `eps` argument): divide by √(σ² + eps).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, 0.0),
            ),
            Mistake(
                "eps_missing",
                "use the `eps` argument, not a fixed 1e-5: divide by √(σ² + eps).",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, 1e-5),
            ),
            Mistake(
                "no_affine",
                "the learned scale and shift are missing: multiply by weight (γ) and add bias "
                "(β) after normalizing.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, affine=False),
            ),
            Mistake(
                "not_centered",
                "you didn't subtract the mean (that is RMSNorm): LayerNorm centers x first.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, center=False),
            ),
            Mistake(
                "axis",
                "normalized over the wrong axis: use the last axis (each token's C features, "
                "dim=-1), not the batch.",
                lambda x, w, b, eps=1e-5: _layer_norm_variant(x, w, b, eps, dim=0),
            ),
        ),
    )
)


def _gelu_cases(gen: torch.Generator) -> list[Case]:
    inputs = [
        (torch.linspace(-6, 6, 121), "x = linspace(-6, 6, 121)"),
        (_randn(gen, 3, 7, scale=3.0), "x (3, 7)"),
        (_randn(gen, 1), "x (1,)"),
        (_randn(gen, 2, 5, scale=30.0), "large inputs, x (2, 5) with entries in the tens"),
    ]
    return [Case((x,), label) for x, label in inputs]


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _gelu_variant(x, *, half=0.5, constant=SQRT_2_OVER_PI, power=3, times_x=True):
    """The tanh GELU with one knob turned the wrong way; the defaults give the right answer."""
    gate = half * (1 + torch.tanh(constant * (x + 0.044715 * x**power)))
    return x * gate if times_x else gate


register(
    Exercise(
        name="gelu",
        lesson="03_gpt",
        prompt=(
            "gelu(x) -> Tensor\n"
            "GPT-2's GELU, the tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."
        ),
        reference=solutions.gelu,
        make_cases=_gelu_cases,
        mistakes=(
            Mistake(
                "erf_form",
                "that is the exact GELU, x·Φ(x) with erf; GPT-2 uses the tanh approximation "
                "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), which differs by up to ~5e-4.",
                lambda x: F.gelu(x),
            ),
            Mistake(
                "sigmoid_form",
                "that is the sigmoid approximation x·σ(1.702·x); use the tanh form.",
                lambda x: x * torch.sigmoid(1.702 * x),
            ),
            Mistake(
                "half",
                "the leading 0.5 is missing: 0.5·x·(1 + tanh(...)).",
                lambda x: _gelu_variant(x, half=1.0),
            ),
            Mistake(
                "constant",
                "the constant inside tanh is √(2/π) ≈ 0.7979, not 2/π ≈ 0.6366.",
                lambda x: _gelu_variant(x, constant=2 / math.pi),
            ),
            Mistake(
                "cubic",
                "the correction term is 0.044715·x³ (x cubed).",
                lambda x: _gelu_variant(x, power=2),
            ),
            Mistake(
                "times_x",
                "multiply by x: GELU(x) = x · 0.5·(1 + tanh(...)), a smooth gate applied to x.",
                lambda x: _gelu_variant(x, times_x=False),
            ),
        ),
        nan_hint=(
            "NaN or inf for large inputs: write tanh with torch.tanh (a hand-made "
            "(e^z - e^-z) / (e^z + e^-z) overflows)."
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 05 generation: top-k and top-p filtering
# ---------------------------------------------------------------------------------------------
def _top_k_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, k, note in [
        ((2, 10), 3, ""),
        ((1, 5), 1, " (k = 1: greedy)"),
        ((3, 7), 7, " (k = V keeps everything)"),
        ((2, 3, 6), 2, " (3-D logits (B, T, V))"),
        ((2, 4), 10, " (k > V keeps everything)"),
    ]:
        logits = _randn(gen, *shape, scale=2.0)
        cases.append(Case((logits, k), f"logits {shape}, k={k}{note}"))
    return cases


def _keep_top(logits, k, fill=NEG_INF, largest=True):
    k = max(1, min(k, logits.shape[-1]))
    kth = torch.topk(logits, k, dim=-1, largest=largest).values[..., -1:]
    drop = logits < kth if largest else logits > kth
    return logits.masked_fill(drop, fill)


register(
    Exercise(
        name="top_k_filter",
        lesson="05_generation",
        prompt=(
            "top_k_filter(logits, k) -> Tensor\n"
            "Same shape as logits (..., V): keep the k largest logits of each row, set all\n"
            "others to -inf. k ≥ V keeps everything."
        ),
        reference=solutions.top_k_filter,
        make_cases=_top_k_cases,
        mistakes=(
            Mistake(
                "fill_zero",
                "set the dropped logits to -∞ (float('-inf')), not 0: a logit of 0 still gets "
                "probability after softmax.",
                lambda z, k: _keep_top(z, k, fill=0.0),
            ),
            Mistake(
                "smallest",
                "you kept the k smallest logits; keep the k largest.",
                lambda z, k: _keep_top(z, k, largest=False),
            ),
            Mistake(
                "off_by_one",
                "off by one: you kept k + 1 logits per row; keep exactly k (ties aside).",
                lambda z, k: _keep_top(z, k + 1),
            ),
            Mistake(
                "off_by_one",
                "off by one: you kept k - 1 logits per row; keep exactly k (ties aside).",
                lambda z, k: _keep_top(z, k - 1),
            ),
            Mistake(
                "probabilities",
                "return logits (with -∞ for the dropped ones), not probabilities: no softmax here.",
                lambda z, k: torch.softmax(solutions.top_k_filter(z, k), dim=-1),
            ),
            Mistake(
                "values_only",
                "you returned only the k largest values; return the whole (..., V) tensor, "
                "with -∞ everywhere else.",
                lambda z, k: torch.topk(z, min(k, z.shape[-1]), dim=-1).values,
            ),
        ),
        error_hints=(
            ("selected index k out of range", "k can exceed V: use k = min(k, logits.shape[-1])."),
        ),
    )
)


def _top_p_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, scale, p, note in [
        ((2, 10), 1.0, 0.9, ""),
        ((3, 8), 3.0, 0.5, " (peaked distributions)"),
        ((1, 6), 1.0, 0.01, " (tiny p: only the top token survives)"),
        ((2, 2, 6), 2.0, 0.7, " (3-D logits (B, T, V))"),
    ]:
        logits = _randn(gen, *shape, scale=scale)
        cases.append(Case((logits, p), f"logits {shape}, p={p}{note}"))
    return cases


def _top_p_drop_crossing(logits, p):
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    drop_sorted = sorted_probs.cumsum(dim=-1) > p  # also drops the token that crosses p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), NEG_INF)


def _top_p_unsorted(logits, p):
    probs = torch.softmax(logits, dim=-1)
    mass_above = probs.cumsum(dim=-1) - probs  # in vocabulary order, not sorted
    return logits.masked_fill(mass_above >= p, NEG_INF)


def _top_p_mask_not_unsorted(logits, p):
    sorted_probs = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True).values
    drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= p
    return logits.masked_fill(drop_sorted, NEG_INF)  # sorted-order mask on unsorted logits


register(
    Exercise(
        name="top_p_filter",
        lesson="05_generation",
        prompt=(
            "top_p_filter(logits, p) -> Tensor\n"
            "Same shape as logits (..., V): keep the fewest most-likely tokens whose\n"
            "probabilities add up to at least p (the token that crosses p is kept), the rest\n"
            "-inf."
        ),
        reference=solutions.top_p_filter,
        make_cases=_top_p_cases,
        mistakes=(
            Mistake(
                "crossing_token",
                "you dropped the token that crosses p: keep tokens while the total of the ones "
                "ranked above is still below p, so the top token always survives.",
                _top_p_drop_crossing,
            ),
            Mistake(
                "unsorted",
                "sort the probabilities from largest to smallest before the cumulative sum.",
                _top_p_unsorted,
            ),
            Mistake(
                "unsort",
                "you applied the sorted-order mask to the logits in vocabulary order: map it "
                "back with the sort indices (mask.scatter(-1, order, mask)).",
                _top_p_mask_not_unsorted,
            ),
            Mistake(
                "fill_zero",
                "set the dropped logits to -∞ (float('-inf')), not 0.",
                lambda z, p: solutions.top_p_filter(z, p).nan_to_num(neginf=0.0),
            ),
            Mistake(
                "probabilities",
                "return logits (with -∞ for the dropped ones), not probabilities.",
                lambda z, p: torch.softmax(solutions.top_p_filter(z, p), dim=-1),
            ),
        ),
    )
)
