"""Reference solutions to the lessons' exercises: one plain function each, in the lessons' order.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these. Each is written
for reading, not speed, with the equation beside the line that computes it.
Shapes: batch B, query length Tq, key length Tk, head width D, vocabulary V, features C.
"""

import math

import torch


def bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids`, scanning left to right, by `new_id`.

    >>> bpe_merge([5, 6, 5, 6, 7], (5, 6), 99)
    [99, 99, 7]
    >>> bpe_merge([1, 1, 1], (1, 1), 9)  # occurrences overlap: the leftmost wins
    [9, 1]
    """
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            merged.append(new_id)
            i += 2  # both ids of the pair are used up
        else:
            merged.append(ids[i])
            i += 1
    return merged


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


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (last axis), set the rest to -∞."""
    k = min(k, logits.shape[-1])  # asking for more than V keeps everything
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))  # (..., V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the fewest most-likely tokens whose probabilities add up to at least p; others -∞.

    Sort probabilities from largest down; a token is dropped when the tokens ranked above it
    already add up to p or more. The top token is always kept.
    """
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # (..., V) each
    mass_above = sorted_probs.cumsum(dim=-1) - sorted_probs  # (..., V), total of higher ranks
    drop_sorted = mass_above >= p  # (..., V), in sorted order
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # (..., V), back in vocabulary order
    return logits.masked_fill(drop, float("-inf"))
