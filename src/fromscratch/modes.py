"""A module's two modes: training (dropout on) and evaluation (dropout off, no gradients).

Evaluating in the middle of training must leave the model as it found it:

    with evaluating(model):          # model.eval() and torch.no_grad() inside
        logits = model(x)
    # model.training is again what it was before the block
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: `model` in eval mode, under torch.no_grad(). After: its previous mode again."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
