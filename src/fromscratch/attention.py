"""Scaled dot-product attention, written out, and multi-head attention built on it.

Notation: batch B, heads H, query length Tq, key length Tk, model width C = H·D, head width D.
Queries Q (B, H, Tq, D), keys K (B, H, Tk, D), values V (B, H, Tk, Dv).

    Attention(Q, K, V) = softmax(Q Kᵀ / √D + M) V

where M is 0 where a query may look at a key and -∞ where it may not (causal or padding mask).

Masks in this file are boolean and True means "may attend". Two exceptions follow PyTorch's
`nn.MultiheadAttention`, so code written for it carries over: `key_padding_mask` is True at PAD
tokens. `padding_mask()` turns a tokenizer's 1 = real / 0 = pad `attention_mask` into ours.

A query row that may attend no key at all (say, every key is padding) would be softmax over only
-∞, i.e. 0/0 = NaN. We define its weights as all 0, so its output is 0 (before `out_proj`), in both
the written-out and the fast path. (PyTorch's `nn.MultiheadAttention` gives NaN or 0 there,
depending on its code path and version.)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.errors import UserError


def causal_mask(t_query: int, t_key: int, device=None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, True where query i may attend key j.

    The queries are the *last* Tq positions of the Tk keys (what a KV cache needs), so query i
    sits at absolute position Tk - Tq + i and sees keys 0..Tk - Tq + i.

    >>> causal_mask(2, 4).int()
    tensor([[1, 1, 1, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    offset = t_key - t_query
    q_pos = torch.arange(t_query, device=device)[:, None] + offset  # (Tq, 1)
    k_pos = torch.arange(t_key, device=device)[None, :]  # (1, Tk)
    return k_pos <= q_pos  # (Tq, Tk)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, 1, Tk) mask, True at real tokens, from a (B, Tk) 1 = real / 0 = pad tensor.

    The two singleton axes let it broadcast against attention scores (B, H, Tq, Tk): every head and
    every query ignores the same padded keys.

    >>> padding_mask(torch.tensor([[1, 1, 0]])).shape
    torch.Size([1, 1, 1, 3])
    """
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be (batch, keys), got shape {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, Tk)


def _with_causal(mask: torch.Tensor | None, causal: bool, t_query: int, t_key: int, device):
    """The mask to apply: `mask`, further restricted to the past when `causal`."""
    if not causal:
        return mask
    c = causal_mask(t_query, t_key, device=device)  # (Tq, Tk)
    return c if mask is None else mask & c


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """softmax(Q Kᵀ / √D + M) for q (..., Tq, D), k (..., Tk, D): the (..., Tq, Tk) weights.

    Row i says how much query i takes from each key; it sums to 1, or is all 0 when `mask` lets
    query i see no key. Arguments as in `scaled_dot_product_attention`.
    """
    mask = _with_causal(mask, causal, q.shape[-2], k.shape[-2], q.device)
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))  # M = -∞ where not allowed
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the allowed keys
    return weights.masked_fill(~mask, 0.0)  # rows with no allowed key: NaN (0/0) -> 0


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
    dropout_p: probability of zeroing each attention weight (always applied: pass 0.0 in eval).
    fast: use PyTorch's fused kernel instead of the written-out path (same numbers, less memory).
    """
    t_query, t_key = q.shape[-2], k.shape[-2]
    if fast and mask is None and (not causal or t_query in (1, t_key)):
        # No mask tensor needed: a causal square block is the fused kernel's is_causal flag (it
        # then skips the masked half), and a lone newest query (KV cache) may see every key.
        is_causal = causal and t_query == t_key > 1
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
    mask = _with_causal(mask, causal, t_query, t_key, q.device)
    if fast:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        if mask is None:
            return out
        # Older PyTorch gives NaN for a query that sees no key; we promise 0, as below.
        return out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # (..., Tq, Dv)

    weights = attention_weights(q, k, mask=mask)  # (..., Tq, Tk)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)  # zero some weights, scale the rest by 1/(1-p)
    return torch.einsum("...qk,...kd->...qd", weights, v)  # (..., Tq, Dv)


class MultiHeadAttention(nn.Module):
    """H attention heads side by side, each on its own D = C / H slice of projected queries/keys.

        head_h = Attention(X_q W_qʰ, X_k W_kʰ, X_v W_vʰ)        out = concat(head_1..head_H) W_o

    Inputs are batch-first (B, T, C). Layer names (`q_proj`, `k_proj`, `v_proj`, `out_proj`) follow
    most checkpoints; `load_torch_weights` copies PyTorch's `nn.MultiheadAttention` into it.

    embed_dim: C, the width of queries and of the output. num_heads: H (must divide C).
    kdim, vdim: widths of the key and value inputs for cross-attention (default C).
    dropout: probability of dropping attention weights, in training mode only.
    fast: use PyTorch's fused kernel (not when `need_weights`, which needs the weights written out).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        fast: bool = False,
    ):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise UserError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.fast = fast
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # (B, T, C)
        x = x.view(batch, length, self.num_heads, self.head_dim)  # (B, T, H, D)
        return x.transpose(1, 2)  # (B, H, T, D)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ):
        """Attend from `query` (B, Tq, C) to `key` (B, Tk, kdim) / `value` (B, Tk, vdim).

        key None: self-attention (key = value = query). value None: value = key.
        mask: boolean, broadcastable to (B, H, Tq, Tk), e.g. (Tq, Tk); True = may attend.
            (PyTorch's `attn_mask` is the opposite, True = blocked: pass `~attn_mask`.)
        key_padding_mask: boolean (B, Tk), True at PAD keys, as in PyTorch. From a tokenizer's
            1 = real / 0 = pad `attention_mask`, pass `attention_mask == 0`.
        causal: each query sees only keys at its own position or earlier.
        need_weights: also return the per-head attention weights (B, H, Tq, Tk), before dropout.

        Returns out (B, Tq, C), or (out, weights) when `need_weights`.
        """
        key = query if key is None else key
        value = key if value is None else value
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            raise ValueError("query, key and value must be batch-first (batch, length, channels)")
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                raise ValueError(
                    "key_padding_mask must be boolean with True at PAD tokens; "
                    "from a 1 = real / 0 = pad attention_mask pass attention_mask == 0"
                )
            not_pad = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
            mask = not_pad if mask is None else mask & not_pad

        q = self._split_heads(self.q_proj(query))  # (B, H, Tq, D)
        k = self._split_heads(self.k_proj(key))  # (B, H, Tk, D)
        v = self._split_heads(self.v_proj(value))  # (B, H, Tk, D)
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            weights = attention_weights(q, k, mask=mask, causal=causal)  # (B, H, Tq, Tk)
            out = F.dropout(weights, p=dropout_p) @ v  # (B, H, Tq, D)
        else:
            out = scaled_dot_product_attention(
                q, k, v, mask=mask, causal=causal, dropout_p=dropout_p, fast=self.fast
            )  # (B, H, Tq, D)

        batch, t_query, _ = query.shape
        out = out.transpose(1, 2)  # (B, Tq, H, D)
        out = out.reshape(batch, t_query, self.embed_dim)  # concatenate the heads: (B, Tq, C)
        out = self.out_proj(out)  # (B, Tq, C)
        return (out, weights) if need_weights else out

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> None:
        """Copy the weights of PyTorch's `nn.MultiheadAttention` (same sizes) into this module.

        PyTorch stacks W_q, W_k, W_v into one `in_proj_weight` (3C, C) when all inputs are C wide,
        and keeps them apart as `q/k/v_proj_weight` when kdim or vdim differ; the biases are always
        stacked in `in_proj_bias` (3C,).
        """
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn are not supported")
        theirs = (mha.embed_dim, mha.num_heads, mha.kdim, mha.vdim, mha.in_proj_bias is not None)
        ours = (
            self.embed_dim,
            self.num_heads,
            self.k_proj.in_features,
            self.v_proj.in_features,
            self.q_proj.bias is not None,
        )
        if theirs != ours:
            raise ValueError(f"nn.MultiheadAttention (C, H, kdim, vdim, bias) {theirs} != {ours}")
        if mha.in_proj_weight is not None:
            w_q, w_k, w_v = mha.in_proj_weight.chunk(3)  # each (C, C)
        else:
            w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        self.q_proj.weight.copy_(w_q)
        self.k_proj.weight.copy_(w_k)
        self.v_proj.weight.copy_(w_v)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.in_proj_bias is not None:
            b_q, b_k, b_v = mha.in_proj_bias.chunk(3)  # each (C,)
            self.q_proj.bias.copy_(b_q)
            self.k_proj.bias.copy_(b_k)
            self.v_proj.bias.copy_(b_v)
            self.out_proj.bias.copy_(mha.out_proj.bias)
