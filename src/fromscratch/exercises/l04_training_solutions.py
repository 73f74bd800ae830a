"""Reference solutions to lesson 04's exercises (training): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: N examples, vocabulary V.
"""

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over N examples of -log softmax(logits)[target], for logits (N, V), targets (N,).

    log softmax(z)_t = z_t - log Σ_j exp(z_j), and logsumexp computes the log-sum stably.
    """
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)  # (N, V)
    picked = log_probs[torch.arange(len(targets)), targets]  # (N,), log p(correct class)
    return -picked.mean()  # () scalar
