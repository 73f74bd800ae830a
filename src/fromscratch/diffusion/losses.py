"""Training objectives: denoising score matching, its weightings, EDM, and flow matching.

Denoising score matching (Vincent 2011; derived in notebooks/15_score_matching.py). We want a
network s_θ(x, t) ≈ ∇log p_t(x), but ∇log p_t is unknown. The conditional score of the forward
process is known, ∇log p(x_t | x0) = −(x_t − alpha·x0)/sigma² = −eps/sigma, and

    E_{x0, eps} ‖s_θ(x_t, t) − (−eps/sigma)‖² = E_{x_t} ‖s_θ(x_t, t) − ∇log p_t(x_t)‖² + C     (1)

with C free of θ: regressing on the noise gives the true score. Averaged over t ~ U[t_min, T]
with a weight λ(t):

    L(θ) = E_t λ(t) E_{x0, eps} ‖s_θ(x_t, t) + eps/sigma(t)‖²                                  (2)

Weightings (`weighting=`): "sigma2" λ = sigma² (Song & Ermon: each t contributes equally),
"likelihood" λ = g² (Song et al. 2021: the loss bounds −log p_0), "uniform" λ = 1.

A network that predicts eps, x0 or v instead, trained with a plain MSE in its own space
(`weighting=None`), minimizes (2) with the λ that its space implies, because each prediction is an
affine function of the score at fixed (x_t, t) (targets.py):

    score: λ = 1      eps: λ = sigma²      x0: λ = sigma⁴/alpha²
    v: λ = sigma² (alpha² + sigma²)² / alpha²

Losses are means over every element (batch and data dimensions), as diffusers reduces them.
"""

from collections.abc import Callable

import torch
from torch import nn

from fromscratch.diffusion.sde import SDE, DiscreteSchedule, expand_like
from fromscratch.diffusion.targets import SIGMA_DATA, convert, from_x0_and_eps
from fromscratch.errors import UserError

WEIGHTINGS = ("sigma2", "likelihood", "uniform")


def sample_times(n: int, process, generator: torch.Generator | None = None, *,
                 dtype=torch.float32, device=None) -> torch.Tensor:
    """n training times: t ~ U[t_min, T] (float) for an SDE, n ~ U{0..N−1} (int) for a schedule."""
    if isinstance(process, DiscreteSchedule):
        return torch.randint(0, process.num_train_timesteps, (n,), generator=generator,
                             device=device)
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return process.t_min + (process.T - process.t_min) * u


def dsm_weight(weighting: str, sde: SDE, t: torch.Tensor) -> torch.Tensor:
    """λ(t) of a named weighting (WEIGHTINGS), shape like t."""
    if weighting == "sigma2":
        return sde.sigma(t) ** 2
    if weighting == "likelihood":
        return sde.diffusion(t) ** 2
    if weighting == "uniform":
        return torch.ones_like(t)
    raise UserError(f"unknown weighting {weighting!r}: use one of {', '.join(WEIGHTINGS)}")


def implied_weight(prediction: str, alpha, sigma):
    """λ(t) that a plain MSE on a `prediction` network puts on the score error (see top)."""
    weights = {"score": sigma**0, "eps": sigma**2, "x0": sigma**4 / alpha**2,
               "v": sigma**2 * (alpha**2 + sigma**2) ** 2 / alpha**2}
    return weights[prediction]


def dsm_loss(model: Callable, prediction: str, x0: torch.Tensor, process, *,
             weighting: str | None = None, t: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching, equation (2), for `model(x_t, t)` predicting `prediction`.

    weighting None: a plain MSE against `from_x0_and_eps` in the model's own space (the usual
    choice; λ as in the table);
    a name from WEIGHTINGS: the model's output is turned into a score and weighted by λ(t).
    t: the times (B,) to use; drawn by `sample_times` when None. `process`: an SDE or a
    DiscreteSchedule (then t are timestep indices, and only weighting=None applies).
    """
    if t is None:
        t = sample_times(x0.shape[0], process, generator, dtype=x0.dtype, device=x0.device)
    x_t, eps = process.perturb(x0, t, generator)  # x_t = alpha x0 + sigma eps
    alpha, sigma = process.alpha(t), process.sigma(t)
    pred = model(x_t, t)
    if weighting is None:
        return (pred - from_x0_and_eps(x0, eps, prediction, alpha, sigma)).pow(2).mean()
    score = convert(pred, prediction, "score", x_t, alpha, sigma)
    lam = expand_like(dsm_weight(weighting, process, t), x0)
    return (lam * (score + eps / expand_like(sigma, x0)) ** 2).mean()  # λ ‖s_θ + eps/σ‖²


# ---------------------------------------------------------------------------------------------
# EDM (Karras et al. 2022): preconditioning and loss, in the noise level σ (alpha = 1)
# ---------------------------------------------------------------------------------------------
def edm_scalings(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM's Table 1, each shaped like sigma.

    For data of standard deviation σ_d and y = x0 + σ n: c_in makes the network's input c_in·y
    unit-variance; c_skip and c_out make its regression target (x0 − c_skip·y)/c_out
    unit-variance with c_out as small as possible.

        c_skip = σ_d² / (σ² + σ_d²)     c_out = σ σ_d / √(σ² + σ_d²)
        c_in   = 1 / √(σ² + σ_d²)       c_noise = ¼ ln σ
    """
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), \
        sigma.log() / 4


class EDMPrecond(nn.Module):
    """The denoiser D(y; σ) = c_skip·y + c_out·F(c_in·y, c_noise) around a raw network F(x, c).

    A model of "x0" kind on `EDMSDE` (t = σ): call it as `denoiser(x_t, sigma)`.
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def forward(self, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).expand(y.shape[0])
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        raw = self.net(expand_like(c_in, y) * y, c_noise)  # F(c_in y, c_noise)
        return expand_like(c_skip, y) * y + expand_like(c_out, y) * raw


def edm_loss(denoiser: EDMPrecond, x0: torch.Tensor, *, p_mean: float = -1.2,
             p_std: float = 1.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """E λ(σ) ‖D(x0 + σ n; σ) − x0‖² with ln σ ~ N(p_mean, p_std²), λ = (σ² + σ_d²)/(σ σ_d)².

    λ = 1/c_out², so this is a plain unit-weight MSE on F's own target (x0 − c_skip y)/c_out.
    """
    B = x0.shape[0]
    log_sigma = p_mean + p_std * torch.randn(B, generator=generator, dtype=x0.dtype,
                                             device=x0.device)
    sigma = log_sigma.exp()  # (B,)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    y = x0 + expand_like(sigma, x0) * noise
    sd = denoiser.sigma_data
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    return (expand_like(lam, x0) * (denoiser(y, sigma) - x0) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023)
# ---------------------------------------------------------------------------------------------
def flow_matching_loss(model: Callable, x0: torch.Tensor, *, t: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """E ‖u_θ(x_t, t) − (eps − x0)‖² on the straight path x_t = (1 − t)·x0 + t·eps, t ~ U[0, 1].

    The target is the path's velocity dx_t/dt = eps − x0. As in (1), regressing on it gives the
    marginal velocity E[eps − x0 | x_t], the field whose ODE dx/dt = u(x, t), run from t = 1
    (x ~ N(0, I)) to t = 0, carries noise to data (samplers.flow_euler).
    """
    B = x0.shape[0]
    if t is None:
        t = torch.rand(B, generator=generator, dtype=x0.dtype, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    t_ = expand_like(t, x0)
    x_t = (1 - t_) * x0 + t_ * eps
    return (model(x_t, t) - (eps - x0)).pow(2).mean()

