"""Classical ways to get firing rates from spikes: the baselines an NDT must beat.

    Gaussian smoothing   r(t) = Σ_s k(t − s) y(s) / Σ_s k(t − s),  k(u) = exp(−u² / 2w²)
                         (the kernel renormalized at the trial's edges, where part of it is cut off)
    PCA + smoothing      smoothed held-in counts projected on their top d principal components
                         and back: the shared, low-dimensional part of the population activity
    factor analysis      the same with a probabilistic model, fitted by EM (`fit_factor_analysis`):
                         each neuron also gets its own private noise variance, so a noisy neuron
                         pulls the shared factors less than in PCA
    Poisson GLM          held-out rates from held-in features x:  r = exp(x·β + c), β fitted by
                         maximum likelihood with a ridge penalty α‖β‖² (L-BFGS)

Co-smoothing with a baseline: features from the held-in neurons (smoothed, or their principal
components), then one Poisson GLM per held-out neuron.
"""

import math
from dataclasses import dataclass

import torch

from fromscratch.errors import UserError


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


@dataclass
class FactorAnalysis:
    """x = μ + W z + e with z ~ N(0, I_d), e ~ N(0, Ψ), Ψ diagonal: x ~ N(μ, C), C = W Wᵀ + Ψ.

    Posterior of the factors given x (Gaussian, so exact):
        G = (I + Wᵀ Ψ⁻¹ W)⁻¹,   E[z | x] = G Wᵀ Ψ⁻¹ (x − μ),   Cov[z | x] = G
    """

    mean: torch.Tensor  # μ (D,)
    loadings: torch.Tensor  # W (D, d)
    noise_variance: torch.Tensor  # diag Ψ (D,)

    def covariance(self) -> torch.Tensor:
        """C = W Wᵀ + Ψ, (D, D)."""
        return self.loadings @ self.loadings.T + torch.diag(self.noise_variance)

    def factors(self, x: torch.Tensor) -> torch.Tensor:
        """E[z | x] for x (..., D): (..., d)."""
        W, psi = self.loadings, self.noise_variance
        G = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ (W / psi[:, None]))
        return ((x.double() - self.mean) / psi) @ W @ G  # G symmetric: (G Wᵀ Ψ⁻¹ (x − μ))ᵀ

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """μ + W E[z | x]: the shared part of x, (..., D)."""
        return self.mean + self.factors(x) @ self.loadings.T

    def log_likelihood(self, x: torch.Tensor) -> float:
        """Mean over rows of log N(x; μ, C), for x (M, D)."""
        return _gaussian_log_likelihood(_covariance_of(x.double() - self.mean), self.covariance())


def _covariance_of(centered: torch.Tensor) -> torch.Tensor:
    return centered.T @ centered / len(centered)  # S = 1/M Σ (x − μ)(x − μ)ᵀ


def _gaussian_log_likelihood(S: torch.Tensor, C: torch.Tensor) -> float:
    """Mean log N(x; μ, C) of data with covariance S around μ: −½ (D log 2π + log|C| + tr C⁻¹S)."""
    D = S.shape[0]
    return float(-0.5 * (D * math.log(2 * math.pi) + torch.logdet(C)
                         + torch.linalg.solve(C, S).trace()))


def fit_factor_analysis(x: torch.Tensor, n_factors: int, max_iter: int = 1000,
                        tol: float = 1e-8) -> FactorAnalysis:
    """Maximum-likelihood factor analysis of x (M, D) by EM (Rubin & Thayer 1982).

    With S the sample covariance and β = Wᵀ C⁻¹ (d, D) (so E[z | x] = β (x − μ)), one EM step is

        E:  E[z zᵀ] averaged over the data = I − β W + β S βᵀ
        M:  W ← S βᵀ (I − β W + β S βᵀ)⁻¹,     Ψ ← diag(S − W β S)

    Each step cannot lower the likelihood; stop when it rises by less than `tol` per row.
    Start: W from the top principal components, Ψ the variance they leave unexplained.
    """
    x = x.double()
    M, D = x.shape
    if not 0 < n_factors < D:
        raise UserError(f"n_factors must be between 1 and {D - 1}, got {n_factors}")
    mean = x.mean(0)
    S = _covariance_of(x - mean)  # (D, D)
    eigenvalues, eigenvectors = torch.linalg.eigh(S)  # ascending
    W = eigenvectors[:, -n_factors:] * eigenvalues[-n_factors:].clamp_min(0).sqrt()  # (D, d)
    psi = (S.diagonal() - (W**2).sum(1)).clamp_min(1e-6 * S.diagonal().mean())
    identity = torch.eye(n_factors, dtype=torch.float64)
    previous = -math.inf
    for _ in range(max_iter):
        C = W @ W.T + torch.diag(psi)
        beta = torch.linalg.solve(C, W).T  # Wᵀ C⁻¹ (C symmetric), (d, D)
        second_moment = identity - beta @ W + beta @ S @ beta.T  # (d, d)
        W = torch.linalg.solve(second_moment, beta @ S).T  # S βᵀ E[zzᵀ]⁻¹, (D, d)
        psi = (S.diagonal() - (W * (S @ beta.T)).sum(1)).clamp_min(1e-12)  # diag(S − W β S)
        current = _gaussian_log_likelihood(S, W @ W.T + torch.diag(psi))
        if current - previous < tol:
            break
        previous = current
    return FactorAnalysis(mean=mean, loadings=W, noise_variance=psi)


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
