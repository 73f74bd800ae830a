"""Lesson 21's exercise (guidance): `guided_eps`, the guided prediction from one forward
pass on the doubled batch.

The model of the cases (`TwoHalvesModel`) accepts only the doubled batch, so a function that
calls it twice gets a hint instead of an answer.
"""

from dataclasses import dataclass

import torch

from fromscratch.exercises import l21_guidance_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn

ONE_FORWARD = "call the model once"


@dataclass(frozen=True)
class TwoHalvesModel:
    """A stand-in for the UNet, ε(x, t, c) = tanh(x + mean(c) + t/1000), that accepts only the
    doubled batch of 2B rows (x, t and the context alike): guidance runs one forward pass."""

    batch: int

    def __call__(self, x, t, context):
        rows = {"x": x.shape[0], "t": t.shape[0], "context": context.shape[0]}
        if any(n != 2 * self.batch for n in rows.values()):
            raise ValueError(f"{ONE_FORWARD}, on 2B = {2 * self.batch} rows; got {rows}")
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.tanh(x + context.mean(dim=(1, 2)).view(shape) + t.view(shape) / 1000)


def _guided_cases(gen: torch.Generator) -> list[Case]:
    def case(batch, image, tokens, w, label):
        t = torch.randint(0, 1000, (batch,), generator=gen)
        x = randn(gen, batch, *image)
        cond, uncond = randn(gen, batch, tokens, 8), randn(gen, batch, tokens, 8)
        return Case((TwoHalvesModel(batch), x, t, cond, uncond, w), label)

    return [case(2, (4, 8, 8), 5, 7.5, "latents (2, 4, 8, 8), 5 tokens, w = 7.5"),
            case(3, (2,), 3, 2.0, "points (3, 2), w = 2"),
            case(1, (4, 4, 4), 7, 0.0, "one latent, w = 0"),
            case(2, (2,), 2, 1.0, "w = 1")]


def _guided_parts(model, x, t, cond, uncond):
    return model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)


def _guided_swapped(model, x, t, cond, uncond, w):
    eps_uncond, eps_cond = _guided_parts(model, x, t, cond, uncond)
    return eps_cond + w * (eps_uncond - eps_cond)


def _guided_ho_salimans(model, x, t, cond, uncond, w):
    eps_uncond, eps_cond = _guided_parts(model, x, t, cond, uncond)
    return (1 + w) * eps_cond - w * eps_uncond


register(
    Exercise(
        name="guided_eps",
        lesson="21_guidance",
        prompt=(
            "guided_eps(model, x, t, cond, uncond, w) -> eps\n"
            "model(x, t, context) predicts ε. Call it ONCE, on the doubled batch: x, t and the\n"
            "contexts concatenated as [unconditional; conditional] along dim 0; split its output\n"
            "into ε_u and ε_c and return ε_u + w (ε_c − ε_u)."
        ),
        reference=solutions.guided_eps,
        make_cases=_guided_cases,
        mistakes=(
            Mistake("swapped", "the first half of the output belongs to the first half of the "
                    "batch: with [uncond; cond] in, ε_u comes first; yours moves away from the "
                    "prompt.", _guided_swapped),
            Mistake("ho_salimans", "that is Ho & Salimans' (1 + w) ε_c − w ε_u, where their w is "
                    "ours minus 1: here w = 1 must give ε_c.", _guided_ho_salimans),
        ),
        error_hints=((ONE_FORWARD, "concatenate x with x, t with t and uncond with cond along "
                      "dim 0, and make a single model call on those 2B rows."),),
    )
)
