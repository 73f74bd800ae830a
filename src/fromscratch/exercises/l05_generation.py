"""Lesson 05's exercises (generation): `top_k_filter` and `top_p_filter` on logits.

The cases include k = 1 (greedy), k ≥ V (everything kept), a tiny p (only the top token
survives) and 3-D logits (B, T, V).
"""

import torch

from fromscratch.exercises import l05_generation_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import NEG_INF, randn


def _top_k_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, k, note in [
        ((2, 10), 3, ""),
        ((1, 5), 1, " (k = 1: greedy)"),
        ((3, 7), 7, " (k = V keeps everything)"),
        ((2, 3, 6), 2, " (3-D logits (B, T, V))"),
        ((2, 4), 10, " (k > V keeps everything)"),
    ]:
        logits = randn(gen, *shape, scale=2.0)
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
        logits = randn(gen, *shape, scale=scale)
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
