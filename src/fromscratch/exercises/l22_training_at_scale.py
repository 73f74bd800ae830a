"""Lesson 22's exercises (training at scale): averaging gradients across processes, and
an EMA step of the weights.

    allreduce_mean:  ∇ of the global mean loss = Σ_r n_r g_r / Σ_r n_r
    ema_update:      θ̄ ← d θ̄ + (1 − d) θ, for a list of tensors

The allreduce cases include shares of unequal size, where a plain mean of the gradients is wrong.
"""

import torch

from fromscratch.exercises import l22_training_at_scale_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _allreduce_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for counts in [[4, 4], [8, 8, 8, 8], [3, 5], [1, 6, 2]]:
        grads = [torch.randn(5, 3, generator=gen) for _ in counts]
        cases.append(Case((grads, counts), f"{len(counts)} processes with {counts} examples"))
    return cases


def _plain_mean(grads, counts):
    return torch.stack(grads).mean(0)


def _sum(grads, counts):
    return torch.stack(grads).sum(0)


def _weighted_sum(grads, counts):
    return sum(n * g for n, g in zip(counts, grads, strict=True))


register(
    Exercise(
        name="allreduce_mean",
        lesson="22_training_at_scale",
        prompt=(
            "allreduce_mean(grads: list[Tensor], counts: list[int]) -> Tensor\n"
            "Process r computed grads[r], the gradient of the MEAN loss over its counts[r]\n"
            "examples. Return the gradient of the mean loss over all the examples together."
        ),
        reference=solutions.allreduce_mean,
        make_cases=_allreduce_cases,
        mistakes=(
            Mistake("plain_mean", "a plain mean of the gradients is right only when every "
                    "process has as many examples: weight grads[r] by counts[r] and divide by "
                    "the total.", _plain_mean),
            Mistake("sum", "you added the gradients: each is already a mean over its examples, "
                    "so average them (weighted by counts).", _sum),
            Mistake("weighted_sum", "weighted by counts but not divided: divide by the total "
                    "number of examples.", _weighted_sum),
        ),
    )
)


def _ema_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shapes, decay in [([(3, 4), (4,)], 0.9), ([(2, 2, 3)], 0.999), ([(5,), (1,)], 0.5)]:
        averaged = [torch.randn(s, generator=gen) for s in shapes]
        current = [torch.randn(s, generator=gen) * 3 for s in shapes]
        cases.append(Case((averaged, current, decay), f"tensors {shapes}, decay {decay}"))
    return cases


def _decay_on_new(averaged, current, decay):
    return [decay * t + (1 - decay) * a for a, t in zip(averaged, current, strict=True)]


def _no_one_minus(averaged, current, decay):
    return [decay * a + t for a, t in zip(averaged, current, strict=True)]


def _just_current(averaged, current, decay):
    return [t.clone() for t in current]


register(
    Exercise(
        name="ema_update",
        lesson="22_training_at_scale",
        prompt=(
            "ema_update(averaged: list[Tensor], current: list[Tensor], decay: float) -> list\n"
            "Return the new averaged weights θ̄ ← decay · θ̄ + (1 − decay) · θ, one tensor per\n"
            "pair (averaged[i], current[i])."
        ),
        reference=solutions.ema_update,
        make_cases=_ema_cases,
        mistakes=(
            Mistake("decay_on_new", "the decay multiplies the wrong term: the old average keeps "
                    "the weight decay (≈ 1), the new weights get 1 − decay.", _decay_on_new),
            Mistake("no_one_minus", "the new weights must be scaled by (1 − decay), or the "
                    "average grows without bound.", _no_one_minus),
            Mistake("just_current", "you returned the current weights: mix in the old average.",
                    _just_current),
        ),
    )
)
