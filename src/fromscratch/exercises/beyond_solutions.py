"""Reference solutions to the exercises of lessons 07-09 (transformers beyond language).

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: batch B, channels K, image side S, patch side P, G = S / P patches per side.
"""

import torch


def patchify(x: torch.Tensor, P: int) -> torch.Tensor:
    """Images x (B, K, S, S) -> patches (B, G·G, K·P·P), raster order, each flattened as (K, P, P).

    Patch n = r·G + c covers rows rP..rP+P-1 and columns cP..cP+P-1.
    """
    B, K, S, _ = x.shape
    G = S // P
    x = x.reshape(B, K, G, P, G, P)  # pixel (i, j) = (grid row r, offset a), (grid col c, offset b)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, r, c, K, a, b): patches first, then their contents
    return x.reshape(B, G * G, K * P * P)


def patch_tokens(binary: torch.Tensor, P: int) -> torch.Tensor:
    """Binary images (B, 1, S, S) of 0./1. -> token ids (B, G·G), int64.

    Each P × P patch (raster order) becomes the number whose bit k is its pixel k, pixels read
    row by row inside the patch: token = Σ_k pixel_k · 2^k.
    """
    bits = patchify(binary, P).long()  # (B, G·G, P·P): pixel k of each patch
    weights = 2 ** torch.arange(P * P)  # (P·P,): 1, 2, 4, 8, ...
    return (bits * weights).sum(dim=-1)  # (B, G·G)


def answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
    """(inputs, targets) to train a GPT on one problem: the model reads `inputs` and at each
    position is asked for the next token, but only where that token belongs to the answer.

    inputs = (prompt + answer) without its last token; targets[t] = the token after position t,
    or -100 (ignored by the loss) while that token is still part of the prompt.
    """
    sequence = prompt_ids + answer_ids
    targets = [-100] * (len(prompt_ids) - 1) + answer_ids
    return sequence[:-1], targets
