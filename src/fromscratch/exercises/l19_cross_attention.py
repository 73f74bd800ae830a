"""Lesson 19's exercise (cross-attention and guidance): `cfg_combine`, classifier-free
guidance's combination of two predictions, with w = 0 and w = 1 among the cases.
"""

import torch

from fromscratch.exercises import l19_cross_attention_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _cfg_cases(gen: torch.Generator) -> list[Case]:
    cases = [((2, 4, 8, 8), 7.5, "latents (2, 4, 8, 8), w = 7.5"),
             ((3, 5), 0.0, "w = 0: the unconditional model"),
             ((3, 5), 1.0, "w = 1: the conditional model"),
             ((3, 5), 2.5, "w = 2.5")]
    return [Case((randn(gen, *shape), randn(gen, *shape), w), label) for shape, w, label in cases]


def _swapped(eps_uncond, eps_cond, w):
    return eps_cond + w * (eps_uncond - eps_cond)


def _ho_salimans(eps_uncond, eps_cond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def _average(eps_uncond, eps_cond, w):
    return (1 - w) * eps_cond + w * eps_uncond


register(
    Exercise(
        name="cfg_combine",
        lesson="19_cross_attention",
        prompt=(
            "cfg_combine(eps_uncond, eps_cond, w) -> eps\n"
            "Classifier-free guidance: start from the unconditional prediction and move w times\n"
            "along (eps_cond − eps_uncond). w = 0 gives eps_uncond, w = 1 gives eps_cond."
        ),
        reference=solutions.cfg_combine,
        make_cases=_cfg_cases,
        mistakes=(
            Mistake("swapped", "start from ε_u and move toward ε_c: ε_u + w (ε_c − ε_u); yours "
                    "moves away from the prompt.", _swapped),
            Mistake("ho_salimans", "that is Ho & Salimans' convention (1 + w) ε_c − w ε_u, where "
                    "their w is ours minus 1; here w = 1 must give ε_c.", _ho_salimans),
            Mistake("average", "with w = 1 the result must be ε_c: ε_u + w (ε_c − ε_u).",
                    _average),
        ),
    )
)
