"""Random inputs for the exercises' test cases, drawn the same way by several lessons.

`check` seeds one `torch.Generator` per call and passes it to the exercise's `make_cases`;
drawing every input from that generator makes a check repeatable with `check(..., seed=0)`.
"""

import torch

NEG_INF = float("-inf")  # a masked score or a dropped logit: exp(-inf) = 0


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Standard normal entries of the given shape, times `scale`."""
    return torch.randn(*shape, generator=gen) * scale


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """One whole number drawn uniformly from low, ..., high - 1."""
    return int(torch.randint(low, high, (1,), generator=gen))


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    """One number drawn uniformly from [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=gen))
