"""Reference solutions to lesson 22's exercises (training at scale): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
"""

import torch


def allreduce_mean(grads: list[torch.Tensor], counts: list[int]) -> torch.Tensor:
    """The gradient of the mean loss over all examples, from each process's own gradient.

    Process r computed g_r = ∇ (1/n_r) Σ_{i in its share} ℓ_i over its n_r examples. The global
    mean loss is (1/N) Σ_i ℓ_i with N = Σ_r n_r, so its gradient is Σ_r n_r g_r / N: a plain mean
    of the g_r only when every share has the same size (which is what DDP assumes).
    """
    total = sum(counts)
    return sum(n * g for n, g in zip(counts, grads, strict=True)) / total


def ema_update(averaged: list[torch.Tensor], current: list[torch.Tensor],
               decay: float) -> list[torch.Tensor]:
    """One step of an exponential moving average of weights: θ̄ ← d θ̄ + (1 − d) θ.

    >>> ema_update([torch.tensor(0.0)], [torch.tensor(10.0)], 0.9)
    [tensor(1.)]
    """
    return [decay * avg + (1 - decay) * theta for avg, theta in zip(averaged, current,
                                                                    strict=True)]
