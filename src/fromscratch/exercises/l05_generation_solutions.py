"""Reference solutions to lesson 05's exercises (generation): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: vocabulary V, the last axis of the logits.
"""

import torch


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
