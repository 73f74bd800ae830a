"""Lesson 08's exercise (image generation): `patch_tokens`, each binary patch read as a
number.

It builds on lesson 07's `patchify`. One case is an image with a single white pixel, whose token
shows which pixel is which bit.
"""

import torch

from fromscratch.exercises import l08_image_generation_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.l07_vision_transformer_solutions import patchify


def _patch_token_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for B, S, P in [(2, 4, 2), (3, 14, 2), (1, 6, 3), (2, 2, 2)]:
        binary = (torch.rand(B, 1, S, S, generator=gen) < 0.4).float()
        cases.append(Case((binary, P), f"binary ({B}, 1, {S}, {S}), P={P}"))
    one_pixel = torch.zeros(1, 1, 4, 4)
    one_pixel[0, 0, 0, 1] = 1.0  # pixel 1 of patch 0: token 2
    cases.append(Case((one_pixel, 2), "one white pixel at row 0, column 1 of a 4×4 image, P=2"))
    return cases


def _tokens_msb_first(binary, P):
    bits = patchify(binary, P).long()
    return (bits * 2 ** torch.arange(P * P - 1, -1, -1)).sum(-1)


def _tokens_sum_of_pixels(binary, P):
    return patchify(binary, P).long().sum(-1)


register(
    Exercise(
        name="patch_tokens",
        lesson="08_image_generation",
        prompt=(
            "patch_tokens(binary: Tensor, P: int) -> Tensor\n"
            "Binary images (B, 1, S, S) -> int64 token ids (B, (S/P)²): patch n (raster order)\n"
            "becomes Σ_k pixel_k · 2^k, its pixels k = 0..P²-1 read row by row."
        ),
        reference=solutions.patch_tokens,
        make_cases=_patch_token_cases,
        mistakes=(
            Mistake("msb_first", "pixel k is bit k (weight 2^k): the first pixel of a patch is "
                    "the least significant bit, not the most.", _tokens_msb_first),
            Mistake("count", "you counted the white pixels: different patterns must get "
                    "different tokens, so weight pixel k by 2^k.", _tokens_sum_of_pixels),
        ),
    )
)
