"""Reference solutions to lesson 02's exercises (attention): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these. Each is written
for reading, not speed, with the equation beside the line that computes it.
Shapes: batch B, query length Tq, key length Tk, head width D.
"""

import math

import torch


def softmax(x: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis, safe for large inputs.

    softmax(x)_i = exp(x_i) / Σ_j exp(x_j) = exp(x_i - m) / Σ_j exp(x_j - m)  for any m;
    m = max_j x_j makes every exponent ≤ 0, so exp never overflows.
    """
    shifted = x - x.amax(dim=-1, keepdim=True)  # (..., N), largest entry of each row is 0
    exps = torch.exp(shifted)  # (..., N), each in (0, 1]
    return exps / exps.sum(dim=-1, keepdim=True)  # (..., N), rows sum to 1


def causal_mask(T: int) -> torch.Tensor:
    """Boolean (T, T) mask, True where query i may attend key j, i.e. where j ≤ i."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))  # lower triangle, diagonal included


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False
) -> torch.Tensor:
    """softmax(Q Kᵀ / √D + M) V for q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv).

    causal (only with Tq == Tk): M = -∞ where key j comes after query i, else 0.
    """
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., Tq, Tk), S_ij = q_i · k_j / √D
    if causal:
        t = scores.shape[-1]
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool, device=q.device))  # (T, T)
        scores = scores.masked_fill(~allowed, float("-inf"))  # exp(-∞) = 0: no weight
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk), each query's row sums to 1
    return weights @ v  # (..., Tq, Dv)
