"""Reference solutions to lesson 03's exercises (the GPT block): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: features C.
"""

import math

import torch


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Normalize each feature vector (last axis, C wide) to mean 0, variance 1, then scale/shift.

    y = (x - μ) / √(σ² + ε) · γ + β,   μ, σ² the mean and (biased) variance over the C features.
    """
    mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # (..., 1), divide by C, not C - 1
    x_hat = (x - mean) / torch.sqrt(var + eps)  # (..., C)
    return x_hat * weight + bias  # (..., C), γ = weight, β = bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh form (GPT-2's): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
