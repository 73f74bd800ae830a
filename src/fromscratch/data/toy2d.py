"""Two-dimensional toy data sets for diffusion models, seeded and drawn on the fly.

    eight_gaussians   8 equal Gaussians (std 0.15) on a circle of radius 2: an exact mixture
    mixture           3 unequal, correlated Gaussians: an exact mixture with no symmetry to lean on
    moons             two interleaving half circles (as scikit-learn's make_moons), noise 0.05
    swiss_roll        a 2-D spiral r = θ, θ ∈ [1.5π, 4.5π], scaled by 1/5, centred, noise 0.05
    checkerboard      uniform on the 8 dark squares of a 4 × 4 board on [-2, 2]²

All are centred near 0 with a spread of about 1 to 2, so that one noise schedule suits them all.
The two mixtures come with their exact density (`toy_mixture`), so scores learned on them can be
compared with the truth at every noise level (fromscratch.diffusion.toy).

>>> x = sample_toy("moons", 500, torch.Generator().manual_seed(0))
>>> x.shape, x.dtype
(torch.Size([500, 2]), torch.float32)
"""

import math

import torch

from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.errors import UserError

TOY_DATASETS = ("eight_gaussians", "mixture", "moons", "swiss_roll", "checkerboard")
MIXTURES = ("eight_gaussians", "mixture")


def toy_mixture(name: str, dtype: torch.dtype = torch.float64) -> GaussianMixture:
    """The exact GaussianMixture behind a mixture data set ("eight_gaussians" or "mixture")."""
    if name == "eight_gaussians":
        angles = torch.arange(8, dtype=dtype) * (2 * math.pi / 8)
        means = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)  # (8, 2)
        return GaussianMixture(torch.ones(8, dtype=dtype), means, torch.full((8,), 0.15**2,
                                                                             dtype=dtype))
    if name == "mixture":
        weights = torch.tensor([0.5, 0.3, 0.2], dtype=dtype)
        means = torch.tensor([[-1.5, -0.5], [1.5, 1.0], [0.5, -1.8]], dtype=dtype)
        covs = torch.tensor([[[0.30, 0.20], [0.20, 0.30]],  # a tilted ellipse
                             [[0.05, 0.00], [0.00, 0.40]],  # tall and thin
                             [[0.02, 0.00], [0.00, 0.02]]],  # small and round
                            dtype=dtype)
        return GaussianMixture(weights, means, covs)
    raise UserError(f"{name!r} is not a mixture data set: choose one of {', '.join(MIXTURES)}")


def _moons(n: int, gen: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """Upper arc (cos θ, sin θ) and lower arc (1 − cos θ, ½ − sin θ), θ ~ U[0, π], shifted to 0."""
    theta = torch.rand(n, generator=gen) * math.pi
    upper = torch.rand(n, generator=gen) < 0.5
    x = torch.where(upper, theta.cos(), 1 - theta.cos())
    y = torch.where(upper, theta.sin(), 0.5 - theta.sin())
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.5  # centred, spread ~ 1
    return points + noise * torch.randn(n, 2, generator=gen)


def _swiss_roll(n: int, gen: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    theta = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=gen))  # θ ∈ [1.5π, 4.5π]
    points = torch.stack([theta * theta.cos(), theta * theta.sin()], dim=1) / 5
    # E[θ cos θ, θ sin θ] = [θ sin θ + cos θ, sin θ − θ cos θ] over [1.5π, 4.5π], / 3π = [2, 2/(3π)]
    centre = torch.tensor([2.0, 2 / (3 * math.pi)]) / 5
    return points - centre + noise * torch.randn(n, 2, generator=gen)


def _checkerboard(n: int, gen: torch.Generator) -> torch.Tensor:
    """Square (i, j) of the 4 × 4 board (cells of side 1 from -2) is dark when i + j is even."""
    cell = torch.randint(0, 8, (n,), generator=gen)  # which of the 8 dark squares
    row = cell // 2  # 0..3
    col = 2 * (cell % 2) + row % 2  # the dark columns of that row
    corner = torch.stack([col, row], dim=1).float() - 2  # lower-left corner of the square
    return corner + torch.rand(n, 2, generator=gen)


def sample_toy(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n points (n, 2) float32 of toy data set `name` (one of TOY_DATASETS)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if name in MIXTURES:
        return toy_mixture(name, torch.float32).sample(n, gen)
    if name == "moons":
        return _moons(n, gen)
    if name == "swiss_roll":
        return _swiss_roll(n, gen)
    if name == "checkerboard":
        return _checkerboard(n, gen)
    raise UserError(f"unknown toy data set {name!r}: choose one of {', '.join(TOY_DATASETS)}")
