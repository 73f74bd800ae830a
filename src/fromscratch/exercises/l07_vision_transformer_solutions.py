"""Reference solution to lesson 07's exercise (the vision transformer).

Try the exercise first; `fromscratch lessons solution patchify` prints it.
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
