"""Classical ways to get firing rates from spikes: the baselines an NDT must beat.

    Gaussian smoothing   r(t) = Σ_s k(t − s) y(s) / Σ_s k(t − s),  k(u) = exp(−u² / 2w²)
                         (the kernel renormalized at the trial's edges, where part of it is cut off)
    PCA + smoothing      smoothed held-in counts projected on their top d principal components
                         and back: the shared, low-dimensional part of the population activity
    Poisson GLM          held-out rates from held-in features x:  r = exp(x·β + c), β fitted by
                         maximum likelihood with a ridge penalty α‖β‖² (L-BFGS)

Co-smoothing with a baseline: features from the held-in neurons (smoothed, or their principal
components), then one Poisson GLM per held-out neuron.
"""

import torch


def gaussian_smooth(spikes: torch.Tensor, width_bins: float) -> torch.Tensor:
    """Smooth (R, T, N) counts along time with a Gaussian of std `width_bins`."""
    R, T, N = spikes.shape
    lags = torch.arange(T, dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((lags[:, None] - lags[None, :]) / width_bins) ** 2)  # (T, T)
    kernel = kernel / kernel.sum(1, keepdim=True)  # each output bin: a weighted mean
    return torch.einsum("ts,rsn->rtn", kernel, spikes.double()).float()


def pca_smooth(smoothed: torch.Tensor, n_components: int,
               fit_on: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction (R, T, N), scores (R, T, d)) of smoothed rates on their top-d PCs.

    fit_on: the smoothed rates the components are computed from (default: `smoothed` itself).
    """
    reference = (smoothed if fit_on is None else fit_on).double().flatten(0, 1)  # (M, N)
    mean = reference.mean(0)
    _, _, vt = torch.linalg.svd(reference - mean, full_matrices=False)
    components = vt[:n_components]  # (d, N), orthonormal rows
    scores = (smoothed.double() - mean) @ components.T  # (R, T, d)
    return (scores @ components + mean).float(), scores.float()


def fit_poisson_glm(x: torch.Tensor, y: torch.Tensor, alpha: float = 1e-2,
                    steps: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (F, K) and bias (K,) of r = exp(x β + c) for features x (M, F), counts y (M, K).

    Minimizes mean over rows of Σ_k r − y log r, plus alpha ‖β‖²; the problem is convex, so
    L-BFGS finds the one optimum.
    """
    x, y = x.double(), y.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std  # standardized features: one alpha suits every scale
    beta = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    bias = y.mean(0).clamp_min(1e-6).log().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([beta, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        log_r = z @ beta + bias
        loss = (log_r.exp() - y * log_r).mean(0).sum() + alpha * (beta**2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    weights = (beta / std[:, None]).detach()  # back to the raw features' scale
    return weights, (bias - mean @ weights).detach()


def glm_rates(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """exp(x β + c) for features x (..., F): rates (..., K)."""
    return (x.double() @ weights + bias).exp().float()
