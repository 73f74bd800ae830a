"""Reference solutions to lesson 24's exercises (a modern decoder): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these. Each is written
for reading, not speed, with the equation beside the line that computes it.
Shapes: batch B, query heads H, key/value heads K, sequence length T, head width D, model width
C, MLP width F.
"""

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x / √(mean(x²) + ε) ⊙ g over the last axis: no mean taken away, no bias added."""
    mean_square = (x * x).mean(dim=-1, keepdim=True)  # (..., 1)
    return x / torch.sqrt(mean_square + eps) * weight  # (..., C)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Turn each pair (x_i, x_{i+D/2}) of x (..., T, D) by the angle p·ω_i, ω_i = θ^(-2i/D).

    positions: (T,) the position p of each of the T rows.
    """
    D = x.shape[-1]
    i = torch.arange(D // 2, dtype=torch.float32)  # (D/2,) the pair's number
    omega = theta ** (-2 * i / D)  # (D/2,) from one turn per ~6 positions to one per ~2πθ
    angle = positions.float()[:, None] * omega  # (T, D/2): p·ω_i
    cos, sin = torch.cos(angle), torch.sin(angle)
    first, second = x[..., : D // 2], x[..., D // 2 :]  # (..., T, D/2) each
    # (a, b) -> (a cos - b sin, b cos + a sin): a rotation by the angle in the plane of the pair
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


def swiglu(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """(SiLU(x W_gateᵀ) ⊙ x W_upᵀ) W_downᵀ for x (..., C); w_gate, w_up (F, C), w_down (C, F)."""
    gate = x @ w_gate.T  # (..., F)
    up = x @ w_up.T  # (..., F)
    return (F.silu(gate) * up) @ w_down.T  # (..., C), SiLU(z) = z·σ(z)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, K, T, D) -> (B, K·n_rep, T, D): each key/value head n_rep times in a row, so query
    head h reads key/value head h // n_rep."""
    return torch.repeat_interleave(x, n_rep, dim=1)  # heads (0, 0, 1, 1, ...) for n_rep = 2
