"""Reference solution to lesson 17's exercise (likelihood and flow matching).

Try the exercise first; `fromscratch lessons solution straight_path` prints it.
Shapes: batch B, dimension D.
"""

import torch


def straight_path(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow matching's path and target: x_t = (1 − t)·x0 + t·eps and its velocity eps − x0.

    x0, eps (B, D); t (B,); returns (x_t, velocity), both (B, D).
    """
    t = t[:, None]
    return (1 - t) * x0 + t * eps, eps - x0
