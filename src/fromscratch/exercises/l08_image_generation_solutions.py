"""Reference solution to lesson 08's exercise (image generation).

Try the exercise first; `fromscratch lessons solution patch_tokens` prints it.
Shapes: batch B, image side S, patch side P, G = S / P patches per side.
"""

import torch

from fromscratch.exercises.l07_vision_transformer_solutions import patchify  # lesson 07


def patch_tokens(binary: torch.Tensor, P: int) -> torch.Tensor:
    """Binary images (B, 1, S, S) of 0./1. -> token ids (B, G·G), int64.

    Each P × P patch (raster order) becomes the number whose bit k is its pixel k, pixels read
    row by row inside the patch: token = Σ_k pixel_k · 2^k.
    """
    bits = patchify(binary, P).long()  # (B, G·G, P·P): pixel k of each patch
    weights = 2 ** torch.arange(P * P)  # (P·P,): 1, 2, 4, 8, ...
    return (bits * weights).sum(dim=-1)  # (B, G·G)
