"""Lesson 04's exercises (training): the cross-entropy loss, its test inputs and the mistakes
we recognise."""

import torch

from fromscratch.exercises import l04_training_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _cross_entropy_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for n, v, scale, note in [
        (4, 10, 1.0, ""),
        (8, 3, 2.0, ""),
        (1, 5, 1.0, " (a single example)"),
        (3, 6, 100.0, " (large logits, in the hundreds)"),
    ]:
        logits = randn(gen, n, v, scale=scale)
        targets = torch.randint(0, v, (n,), generator=gen)
        cases.append(Case((logits, targets), f"logits ({n}, {v}), targets ({n},){note}"))
    return cases


def _log_softmax_picked(logits, targets, dim=-1):
    log_probs = logits - torch.logsumexp(logits, dim=dim, keepdim=True)
    return log_probs[torch.arange(len(targets)), targets]  # (N,)


register(
    Exercise(
        name="cross_entropy",
        lesson="04_training",
        prompt=(
            "cross_entropy(logits, targets) -> Tensor\n"
            "For logits (N, V) and integer targets (N,): the mean over the N examples of\n"
            "-log softmax(logits)[target], as a 0-d tensor. Stable for large logits."
        ),
        reference=solutions.cross_entropy,
        make_cases=_cross_entropy_cases,
        mistakes=(
            Mistake(
                "sum",
                "take the mean over the N examples, not the sum.",
                lambda z, t: -_log_softmax_picked(z, t).sum(),
            ),
            Mistake(
                "sign",
                "the minus sign is missing: the loss is -log p(target), a positive number.",
                lambda z, t: _log_softmax_picked(z, t).mean(),
            ),
            Mistake(
                "per_example",
                "return one number, the mean over examples (shape ()), not one loss per example.",
                lambda z, t: -_log_softmax_picked(z, t),
            ),
            Mistake(
                "raw_logits",
                "you used the raw logit; take log softmax first: "
                "-log p_t = -(z_t - log Σ_j exp z_j).",
                lambda z, t: -z[torch.arange(len(t)), t].mean(),
            ),
            Mistake(
                "no_log",
                "take the log of the probability: -log p(target), not -p(target).",
                lambda z, t: -torch.softmax(z, dim=-1)[torch.arange(len(t)), t].mean(),
            ),
            Mistake(
                "axis",
                "softmax over the wrong axis: normalize over the V classes (dim=-1) of each "
                "example.",
                lambda z, t: -_log_softmax_picked(z, t, dim=0).mean(),
            ),
        ),
        nan_hint=(
            "NaN or inf for large logits: exp overflows, or a probability underflows to 0 and "
            "log 0 = -∞. Compute log softmax directly: z - torch.logsumexp(z, dim=-1, "
            "keepdim=True)."
        ),
    )
)
