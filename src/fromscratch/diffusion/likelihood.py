"""Exact log-likelihood of a diffusion model through its probability flow ODE.

The probability flow ODE dx/dt = v(x, t) = f(t) x − ½ g(t)² s(x, t) moves samples of p_t to
samples of p_{t'} (sde.py). Along one of its paths the density changes by the instantaneous change
of variables (Chen et al. 2018; derived in notebooks/17_likelihood_flow_matching.py):

    d/dt log p_t(x_t) = −∇·v(x_t, t) = −tr(∂v/∂x)

so, integrating from the data x_ε (t = ε, nearly clean) up to x_T,

    log p_ε(x_ε) = log p_T(x_T) + ∫_ε^T ∇·v(x_t, t) dt                                    (1)

with p_T the Gaussian prior. The divergence is computed exactly (D backward passes; fine in low
dimension) or by Hutchinson's estimator ∇·v ≈ zᵀ (∂v/∂x) z with E[z zᵀ] = I (one backward pass,
unbiased; z ~ Rademacher, fixed along a path as in FFJORD). SciPy's RK45 integrates x and the
running integral together.
"""

from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from fromscratch.errors import UserError


def divergence_exact(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
                     ) -> torch.Tensor:
    """∇·fn(x) = Σ_i ∂fn_i/∂x_i for x (B, D), one backward pass per coordinate. (B,)"""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(x)  # (B, D)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            (grad,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=i + 1 < x.shape[1])
            div = div + grad[:, i]  # ∂fn_i/∂x_i (samples are independent, so the sum is safe)
    return div


def divergence_hutchinson(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                          z: torch.Tensor) -> torch.Tensor:
    """zᵀ (∂fn/∂x) z for x, z (B, D): unbiased for ∇·fn(x) when E[z zᵀ] = I. (B,)"""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(x)
        (vjp,) = torch.autograd.grad((out * z).sum(), x)  # zᵀ ∂fn/∂x, (B, D)
    return (vjp * z).sum(1)


def log_likelihood(x0: torch.Tensor, score_fn: Callable, sde, *, trace: str = "exact",
                   t_start: float | None = None, prior_log_prob: Callable | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x0) in nats, (B,), by equation (1), for a model whose score is `score_fn(x, t)`.

    x0 (B, D). trace: "exact" or "hutchinson". t_start: where the path starts (ε; sde.t_min by
    default), so this is log p_ε, which tends to log p_0 as ε → 0. prior_log_prob(x_T) (B,):
    log p_T; `sde.prior_log_prob` by default, which is exact only in the limit (VE's N(0, σ_T²)
    ignores the data's own spread, ~0.01 nats per dimension for data of scale 1). Divide by
    D·ln 2 for bits per dimension. Computed in float64.
    """
    if trace not in ("exact", "hutchinson"):
        raise UserError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    x0 = x0.detach().double()
    B, D = x0.shape
    z = None
    if trace == "hutchinson":
        z = torch.randint(0, 2, x0.shape, generator=generator, device=x0.device).double() * 2 - 1

    def rhs(t: float, state: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(state[: B * D]).reshape(B, D).to(x0.device)
        t_batch = torch.full((B,), t, dtype=torch.float64, device=x0.device)

        def velocity(y):
            return sde.ode_drift(y, t_batch, score_fn(y, t_batch).double())

        with torch.no_grad():
            v = velocity(x)
        div = divergence_exact(velocity, x) if z is None else divergence_hutchinson(velocity,
                                                                                    x, z)
        return np.concatenate([v.flatten().cpu().numpy(), div.detach().cpu().numpy()])

    start = sde.t_min if t_start is None else t_start
    state0 = np.concatenate([x0.flatten().cpu().numpy(), np.zeros(B)])
    sol = solve_ivp(rhs, (start, sde.T), state0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the probability flow ODE solve failed: {sol.message}")
    x_T = torch.from_numpy(sol.y[: B * D, -1]).reshape(B, D)
    integral = torch.from_numpy(sol.y[B * D :, -1])  # ∫ ∇·v dt, (B,)
    log_p_T = sde.prior_log_prob if prior_log_prob is None else prior_log_prob
    return log_p_T(x_T) + integral
