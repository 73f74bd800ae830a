"""Reference solutions to lesson 04's exercises (training): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
Shapes: N examples, vocabulary V.
"""

import torch

from fromscratch.seeds import LOSS, micro_batch_seed
from fromscratch.training.loop import lr_at


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over N examples of -log softmax(logits)[target], for logits (N, V), targets (N,).

    log softmax(z)_t = z_t - log Σ_j exp(z_j), and logsumexp computes the log-sum stably.
    """
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)  # (N, V)
    picked = log_probs[torch.arange(len(targets)), targets]  # (N,), log p(correct class)
    return -picked.mean()  # () scalar


def train_step(model, optimizer, batches, step, cfg) -> float:
    """Optimizer step k = `step` as `train` makes it on one device (training/loop.py's
    train_step without the machinery for scale): the scheduled learning rate, the gradient
    accumulated over the micro-batches, clipping, the AdamW update. Returns the step's loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)  # warmup, then cosine decay
    step_loss = 0.0
    for micro in range(cfg.grad_accum):
        torch.manual_seed(micro_batch_seed(cfg.seed, step, micro, LOSS))  # dropout: fixed by (k, m)
        loss = model.loss(batches(step, micro))
        (loss / cfg.grad_accum).backward()  # the micro-batches' gradients add up to their mean
        step_loss += loss.item() / cfg.grad_accum
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # ‖g‖ ≤ grad_clip
    optimizer.step()
    optimizer.zero_grad()  # the next step starts from zero gradients
    return step_loss  # the mean loss of the micro-batches
