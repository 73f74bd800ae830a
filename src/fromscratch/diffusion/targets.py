"""What a diffusion network predicts, and how to turn one prediction into another.

With x_t = alpha · x0 + sigma · eps (see sde.py), a network that sees x_t may be trained to output

    "eps"    the noise eps                                         (DDPM, Stable Diffusion)
    "x0"     the clean data x0                                     (EDM's denoiser D)
    "score"  ∇log p_t(x_t) = −E[eps | x_t] / sigma                 (score SDEs, Song et al.)
    "v"      v = alpha · eps − sigma · x0                           (progressive distillation, SD 2)

All four carry the same information: given x_t, alpha and sigma, each one fixes the other three,
because x_t = alpha·x0 + sigma·eps is one linear equation linking x0 and eps (Tweedie's formula
links eps and the score; derived in notebooks/13_score_function.py). `convert` goes through the
pair (x0, eps):

    from eps:    x0 = (x_t − sigma·eps) / alpha
    from x0:     eps = (x_t − alpha·x0) / sigma
    from score:  eps = −sigma · score
    from v:      x0  = (alpha·x_t − sigma·v) / (alpha² + sigma²)
                 eps = (sigma·x_t + alpha·v) / (alpha² + sigma²)

(the v formulas solve the 2×2 system x_t = alpha·x0 + sigma·eps, v = alpha·eps − sigma·x0; for VP
alpha² + sigma² = 1).

Data convention: images live in [-1, 1] (pixels p ∈ [0, 1] map to 2p − 1), so that uniform pixels
have mean 0 and the noise eps ~ N(0, I) is on the data's scale. EDM's preconditioning assumes data
of standard deviation SIGMA_DATA = 0.5 (≈ 1/√3 ≈ 0.577 for uniform pixels in [-1, 1]).
"""

from collections.abc import Callable

import torch

from fromscratch.diffusion.sde import expand_like
from fromscratch.errors import UserError

KINDS = ("score", "eps", "x0", "v")
SIGMA_DATA = 0.5  # EDM (Karras et al. 2022): the standard deviation their preconditioning assumes


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] → model space [-1, 1]: x = 2p − 1."""
    return pixels * 2 - 1


def to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] → pixels in [0, 1], clipped (samples can overshoot): p = (x + 1)/2."""
    return ((x + 1) / 2).clamp(0, 1)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown prediction kind {kind!r}: use one of {', '.join(KINDS)}")


def x0_and_eps(pred: torch.Tensor, kind: str, x_t: torch.Tensor, alpha, sigma
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x0, eps) pair that `pred`, a prediction of `kind`, stands for at (x_t, alpha, sigma)."""
    _check_kind(kind)
    a, s = expand_like(alpha, x_t), expand_like(sigma, x_t)
    if kind == "x0":
        return pred, (x_t - a * pred) / s
    if kind == "v":
        norm = a**2 + s**2
        return (a * x_t - s * pred) / norm, (s * x_t + a * pred) / norm
    eps = pred if kind == "eps" else -s * pred  # score = −eps / sigma
    return (x_t - s * eps) / a, eps


def from_x0_and_eps(x0: torch.Tensor, eps: torch.Tensor, kind: str, alpha, sigma
                    ) -> torch.Tensor:
    """The prediction of `kind` that the pair (x0, eps) stands for: x0, eps, −eps/sigma or
    v = alpha·eps − sigma·x0. (With the true pair, what a perfect network outputs.)"""
    _check_kind(kind)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    a, s = expand_like(alpha, x0), expand_like(sigma, x0)
    if kind == "score":
        return -eps / s
    return a * eps - s * x0  # v


def convert(pred: torch.Tensor, source: str, target: str, x_t: torch.Tensor, alpha, sigma
            ) -> torch.Tensor:
    """Turn a prediction of kind `source` into one of kind `target` (kinds: KINDS).

    alpha, sigma: numbers or per-sample tensors (B,), as returned by `sde.alpha(t)`.

    >>> x0, eps = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    >>> x_t = 0.6 * x0 + 0.8 * eps
    >>> convert(eps, "eps", "x0", x_t, 0.6, 0.8)
    tensor([[1.0000]])
    """
    _check_kind(target)
    if source == target:
        _check_kind(source)
        return pred
    x0, eps = x0_and_eps(pred, source, x_t, alpha, sigma)
    return from_x0_and_eps(x0, eps, target, alpha, sigma)


def predict(model: Callable, predicts: str, want: str, x_t: torch.Tensor, t, process
            ) -> torch.Tensor:
    """Call `model(x_t, t)`, which predicts `predicts`, and return the prediction of kind `want`.

    `process` is an SDE (t: float times (B,)) or a DiscreteSchedule (t: int indices (B,)); its
    alpha(t) and sigma(t) do the conversion.
    """
    return convert(model(x_t, t), predicts, want, x_t, process.alpha(t), process.sigma(t))
