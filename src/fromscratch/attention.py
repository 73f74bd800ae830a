"""Scaled dot-product attention, written out.

Notation: queries Q (B, H, Tq, D), keys K (B, H, Tk, D), values V (B, H, Tk, D).

    Attention(Q, K, V) = softmax(Q Kᵀ / √D + M) V

where M is 0 where a query may look at a key and -∞ where it may not (causal or padding mask).
"""

import math

import torch
import torch.nn.functional as F


def causal_mask(t_query: int, t_key: int, device=None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, True where query i may attend key j.

    The queries are the *last* Tq positions of the Tk keys (what a KV cache needs), so query i
    sits at absolute position Tk - Tq + i and sees keys 0..Tk - Tq + i.
    """
    offset = t_key - t_query
    q_pos = torch.arange(t_query, device=device)[:, None] + offset  # (Tq, 1)
    k_pos = torch.arange(t_key, device=device)[None, :]  # (1, Tk)
    return k_pos <= q_pos  # (Tq, Tk)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    fast: bool = False,
) -> torch.Tensor:
    """softmax(Q Kᵀ / √D + M) V for q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv).

    mask: boolean, broadcastable to (..., Tq, Tk), True where attention is allowed.
    causal: also forbid keys after each query (queries aligned to the end of the keys).
    fast: use PyTorch's fused kernel instead of the written-out path (same numbers, less memory).
    """
    t_query, t_key = q.shape[-2], k.shape[-2]
    if causal:
        c = causal_mask(t_query, t_key, device=q.device)
        mask = c if mask is None else mask & c
    if fast:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.einsum("...qk,...kd->...qd", weights, v)  # (..., Tq, Dv)
