"""Exponential moving average (EMA) of a model's weights.

Training moves the weights θ_k with noisy steps; their running average is often a better model
than the last iterate (diffusion models and GANs are sampled from it). After every optimizer step:

    θ̄ ← d · θ̄ + (1 − d) · θ            d = decay, e.g. 0.999: an average over ~1 / (1 − d) steps

so θ̄_k = (1 − d) Σ_j d^(k−j) θ_j + d^k θ_0, a weighted average whose weights fall off
geometrically into the past. With `warmup=True` the decay of update n (n = 0, 1, ...) is
min(d, (1 + n) / (10 + n)): early averages then forget the random initialisation quickly,
which matters for short runs with a large d.

Only parameters are averaged. Buffers (BatchNorm's running statistics, fixed position tables)
are *copied*: a running mean already is an average, and averaging an integer counter such as
`num_batches_tracked` would make no sense.

    ema = EMA(model, decay=0.999)
    for step in ...:
        ...; optimizer.step(); ema.update(model)
    with ema.swap(model):            # model holds θ̄ inside, θ again after
        evaluate(model)
    ema.copy_to(model)               # or: θ̄ for good
"""

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fromscratch.errors import UserError


class EMA:
    """The averaged weights θ̄ of `model` (a copy: the model itself is not changed)."""

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise UserError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        # named_parameters lists a tied weight once, so it is averaged once. Frozen parameters
        # are kept too: they never change, so for them θ̄ = θ.
        self.params = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def decay_at(self, n: int) -> float:
        """The decay d used by update number n (0-based)."""
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """θ̄ ← d θ̄ + (1 − d) θ for parameters; buffers ← model's buffers."""
        d = self.decay_at(self.num_updates)
        averaged, current = [], []
        for name, p in model.named_parameters():
            averaged.append(self.params[name])
            current.append(p.detach())
        # lerp(a, b, w) = a + w (b − a) = (1 − w) a + w b, with w = 1 − d
        torch._foreach_lerp_(averaged, current, 1.0 - d)
        for name, b in model.named_buffers():
            self.buffers[name].copy_(b)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters and buffers with the averaged ones."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name])
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name])

    @contextmanager
    def swap(self, model: nn.Module) -> Iterator[nn.Module]:
        """Inside the block the model holds θ̄; on leaving, its own weights come back."""
        saved = {name: t.detach().clone() for name, t in _tensors(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, t in _tensors(model):
                    t.copy_(saved[name])

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A new copy of `model` holding θ̄ (the model itself is not changed)."""
        averaged = copy.deepcopy(model)
        self.copy_to(averaged)
        return averaged

    def to(self, device: torch.device | str) -> "EMA":
        self.params = {k: v.to(device) for k, v in self.params.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def state_dict(self) -> dict:
        """{"decay", "warmup", "num_updates", "params": {name: θ̄}, "buffers": {name: tensor}}."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "params": dict(self.params), "buffers": dict(self.buffers)}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for kind in ("params", "buffers"):
            mine, theirs = getattr(self, kind), state[kind]
            if mine.keys() != theirs.keys():
                missing, extra = sorted(mine.keys() - theirs.keys()), sorted(theirs.keys() - mine)
                raise ValueError(f"EMA {kind} do not match the model: missing {missing}, "
                                 f"unexpected {extra}")
            for name, tensor in theirs.items():
                if tensor.shape != mine[name].shape:
                    raise ValueError(f"EMA tensor '{name}' has shape {tuple(tensor.shape)}, the "
                                     f"model's has {tuple(mine[name].shape)}")
                mine[name].copy_(tensor)
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])


def _tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()
