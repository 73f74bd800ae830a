"""The LoRA exercise of lesson 06: the forward pass of a linear layer with a low-rank adapter.

    h = x Wᵀ + b + (α / r) x Aᵀ Bᵀ        W (out, in), b (out,), A (r, in), B (out, r)

The cases mix rectangular layers (in ≠ out) with square ones (in = out), where a transposed or
swapped A and B still has the right shape and only the values give it away.
"""

import torch

from fromscratch.exercises import lora_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _lora_cases(gen: torch.Generator) -> list[Case]:
    shapes = [  # (leading dims of x, in, out, r, alpha)
        ((5,), 12, 8, 4, 6.0),
        ((2, 7), 10, 10, 2, 5.0),  # square: a transposed ΔW keeps the shape
        ((3, 4), 16, 16, 4, 4.0),  # square, rank = in / 4, α = r (scaling 1 would hide α / r)
        ((1,), 6, 20, 1, 3.0),  # rank 1, a single row
    ]
    cases = []
    for lead, n_in, n_out, r, alpha in shapes:
        x = torch.randn(*lead, n_in, generator=gen)
        W = torch.randn(n_out, n_in, generator=gen) / n_in**0.5
        b = torch.randn(n_out, generator=gen)
        A = torch.randn(r, n_in, generator=gen) / n_in**0.5
        B = torch.randn(n_out, r, generator=gen)
        label = f"x {tuple(x.shape)}, W {tuple(W.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}"
        cases.append(Case((x, W, b, A, B, alpha, r), f"{label}, alpha={alpha}, r={r}"))
    return cases


def _no_scaling(x, W, b, A, B, alpha, r):
    return x @ W.T + b + x @ A.T @ B.T


def _scaled_by_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha * (x @ A.T @ B.T)


def _scaled_r_over_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + (r / alpha) * (x @ A.T @ B.T)


def _delta_transposed(x, W, b, A, B, alpha, r):
    return x @ W.T + b + (alpha / r) * (x @ (B @ A))  # ΔW used as (in, out)


def _update_only(x, W, b, A, B, alpha, r):
    return (alpha / r) * (x @ A.T @ B.T)


def _no_bias(x, W, b, A, B, alpha, r):
    return x @ W.T + (alpha / r) * (x @ A.T @ B.T)


register(
    Exercise(
        name="lora_forward",
        lesson="06_pretrained_bert",
        prompt=(
            "lora_forward(x, W, b, A, B, alpha, r) -> h\n"
            "A frozen linear layer (W (out, in), b (out,)) plus a low-rank update: return\n"
            "h = x Wᵀ + b + (alpha / r) · x Aᵀ Bᵀ for x (..., in), with A (r, in), B (out, r).\n"
            "Do not form the (out, in) product B A: go down to r numbers with A, then up with B."
        ),
        reference=solutions.lora_forward,
        make_cases=_lora_cases,
        mistakes=(
            Mistake("no_scaling", "the update is missing its scale: multiply x Aᵀ Bᵀ by "
                    "alpha / r (that keeps the update's size when you change the rank).",
                    _no_scaling),
            Mistake("scaled_by_alpha", "the update is scaled by alpha alone: divide by r too "
                    "(scaling = alpha / r).", _scaled_by_alpha),
            Mistake("scaled_r_over_alpha", "the scale is upside down: use alpha / r, not "
                    "r / alpha.", _scaled_r_over_alpha),
            Mistake("delta_transposed", "A and B are swapped or transposed: ΔW = B A is (out, "
                    "in) like W, so apply it as x Aᵀ Bᵀ (first A: in → r, then B: r → out).",
                    _delta_transposed),
            Mistake("update_only", "the frozen layer's output is missing: LoRA adds the update "
                    "to x Wᵀ + b, it does not replace it.", _update_only),
            Mistake("no_bias", "the bias b of the frozen layer is missing: h = x Wᵀ + b + ...",
                    _no_bias),
        ),
        error_hints=(
            ("mat1 and mat2 shapes cannot be multiplied",
             "check the shapes: A is (r, in) and B is (out, r), so x (..., in) needs A "
             "transposed first (x @ A.T), then B transposed (@ B.T)."),
        ),
    )
)
