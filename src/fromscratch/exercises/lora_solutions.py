"""Reference solutions of the LoRA exercise (lesson 06). Try the exercise before reading on."""

import torch


def lora_forward(
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    alpha: float,
    r: int,
) -> torch.Tensor:
    base = x @ W.T + b  # the frozen layer: (..., out)
    update = x @ A.T @ B.T  # down to r numbers, then up to out: (..., out)
    return base + (alpha / r) * update
