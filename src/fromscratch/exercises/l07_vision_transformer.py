"""Lesson 07's exercise (the vision transformer): `patchify`, images cut into flattened
patches.

The cases mix channel counts and patch sizes, down to a single patch per image (P = S).
"""

import torch

from fromscratch.exercises import l07_vision_transformer_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _patchify_cases(gen: torch.Generator) -> list[Case]:
    shapes = [(2, 1, 8, 8, 4), (3, 3, 6, 6, 2), (1, 2, 12, 12, 3), (2, 1, 4, 4, 4)]
    return [Case((torch.randn(B, K, S, S, generator=gen), P), f"x ({B}, {K}, {S}, {S}), P={P}")
            for B, K, S, _, P in shapes]


def _patchify_plain_reshape(x, P):
    B, K, S, _ = x.shape
    return x.reshape(B, (S // P) ** 2, K * P * P)


def _patchify_channels_last(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 2, 4, 3, 5, 1).reshape(B, G * G, K * P * P)


def _patchify_column_major(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 4, 2, 1, 3, 5).reshape(B, G * G, K * P * P)


def _patchify_transposed_patch(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 2, 4, 1, 5, 3).reshape(B, G * G, K * P * P)


register(
    Exercise(
        name="patchify",
        lesson="07_vision_transformer",
        prompt=(
            "patchify(x: Tensor, P: int) -> Tensor\n"
            "Cut images x (B, K, S, S) into (S/P)² patches of P × P pixels, in raster order\n"
            "(left to right, then top to bottom), each flattened channel-major as (K, P, P):\n"
            "output (B, (S/P)², K·P·P)."
        ),
        reference=solutions.patchify,
        make_cases=_patchify_cases,
        mistakes=(
            Mistake("plain_reshape", "a reshape alone does not cut patches: the first P² numbers "
                    "of the image are part of its first row. Split each side into (grid, offset) "
                    "with reshape, then permute so the two grid axes come first.",
                    _patchify_plain_reshape),
            Mistake("channels_last", "flatten each patch channel-major, as (K, P, P) like a Conv2d "
                    "weight, not (P, P, K): put the channel axis before the two offsets.",
                    _patchify_channels_last),
            Mistake("column_major", "patches are in raster order: patch n = row r · G + column c, "
                    "so the grid-row axis comes before the grid-column axis.",
                    _patchify_column_major),
            Mistake("transposed_patch", "inside a patch, read pixels row by row: the row offset "
                    "comes before the column offset.", _patchify_transposed_patch),
        ),
    )
)
