"""Reference solutions to lesson 06's exercises (pretrained BERT): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: batch B, sequence length T, width C.
"""

import torch


def wordpiece_greedy(word: str, vocab: set[str]) -> list[str]:
    """Cut `word` into pieces of `vocab`, longest match first; ["[UNK]"] if any part fails.

    A piece that continues the word is looked up with "##" in front.

    >>> wordpiece_greedy("unaffable", {"un", "##aff", "##able"})
    ['un', '##aff', '##able']
    """
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:  # shrink the candidate from the right until it is a vocabulary piece
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # not even one character matched: the whole word is unknown
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' vectors: Σ_t m_t h_t / Σ_t m_t, for hidden (B, T, C), mask (B, T).

    Padding (m_t = 0) must not count, neither in the sum nor in the number of tokens.
    """
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1)  # (B, C)


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
