"""Gaussian mixtures: data whose noisy marginals and scores are known exactly at every t.

Data p_0(x) = Σ_k w_k N(x; μ_k, Σ_k). The forward process (sde.py) maps x0 to
x_t = alpha·x0 + sigma·eps, an affine map of x0 plus independent Gaussian noise, so each component
stays Gaussian and the marginal is again a mixture with the same weights:

    p_t(x) = Σ_k w_k N(x; alpha·μ_k, alpha²·Σ_k + sigma²·I)                        (1)

Its score, with responsibilities r_k(x) = w_k N_k(x) / Σ_j w_j N_j(x) (a softmax over k), is

    ∇log p_t(x) = Σ_k r_k(x) · C_k⁻¹ (alpha·μ_k − x),   C_k = alpha²·Σ_k + sigma²·I    (2)

and the optimal denoiser follows by Tweedie's formula, E[x0 | x_t] = (x_t + sigma²·∇log p_t)/alpha
(derivations in notebooks/13_score_function.py). These are the ground truth that learned scores
(toy.py), samplers and likelihoods are measured against.

Computation: each Σ_k = U_k diag(λ_k) U_kᵀ is diagonalized once; then C_k = U_k diag(alpha²λ_k +
sigma²) U_kᵀ for every (alpha, sigma) without another factorization, and every time in a batch
can differ. Shapes: batch B, components K, dimension D.
"""

import math

import torch

from fromscratch.diffusion.sde import expand_like
from fromscratch.errors import UserError


def _alpha_sigma(x: torch.Tensor, t, sde, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (alpha, sigma), each (B,), from `sde` at `t` or given directly."""
    if (alpha is None) != (sigma is None):
        raise ValueError("give alpha and sigma together")
    if alpha is None:
        if sde is None or t is None:
            raise ValueError("give either (t, sde) or (alpha=..., sigma=...)")
        alpha, sigma = sde.alpha(t), sde.sigma(t)
    batch = x.shape[0]
    a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).expand(batch)
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(batch)
    return a, s


class GaussianMixture:
    """Σ_k w_k N(μ_k, Σ_k) in D dimensions.

    weights (K,) (normalized here), means (K, D), covs (K, D, D) full, (K, D) diagonal or (K,)
    isotropic. The dtype and device of `means` are used throughout.

    >>> gm = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-2.0], [2.0]]),
    ...                      torch.tensor([0.25, 0.25]))
    >>> gm.score(torch.tensor([[0.0]]), alpha=1.0, sigma=0.0)  # halfway: the pulls cancel
    tensor([[0.]])
    """

    def __init__(self, weights, means, covs):
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2:
            raise UserError(f"means must be (K, D), got shape {tuple(means.shape)}")
        K, D = means.shape
        weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
        covs = torch.as_tensor(covs, dtype=means.dtype, device=means.device)
        if covs.shape == (K,):
            covs = covs[:, None, None] * torch.eye(D, dtype=means.dtype, device=means.device)
        elif covs.shape == (K, D):
            covs = torch.diag_embed(covs)
        if covs.shape != (K, D, D) or weights.shape != (K,):
            raise UserError(f"with means (K, D) = {(K, D)}, weights must be (K,) and covs "
                            f"(K, D, D), (K, D) or (K,); got {tuple(weights.shape)}, "
                            f"{tuple(covs.shape)}")
        if (weights < 0).any() or weights.sum() <= 0:
            raise UserError("weights must be non-negative and not all 0")
        self.weights = weights / weights.sum()  # (K,)
        self.means = means  # (K, D)
        self.covs = 0.5 * (covs + covs.transpose(-1, -2))  # (K, D, D), exactly symmetric
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(self.covs)  # (K, D), (K, D, D)
        if (self.eigenvalues <= 0).any():
            raise UserError("every covariance must be positive definite")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def to(self, dtype=None, device=None) -> "GaussianMixture":
        """A copy in another dtype or on another device."""
        return GaussianMixture(*(v.to(dtype=dtype, device=device)
                                 for v in (self.weights, self.means, self.covs)))

    def mean(self) -> torch.Tensor:
        """E[x] = Σ_k w_k μ_k, (D,)."""
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Cov[x] = Σ_k w_k (Σ_k + μ_k μ_kᵀ) − E[x] E[x]ᵀ, (D, D)."""
        m = self.mean()
        second = torch.einsum("k,kij->ij", self.weights,
                              self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - m[:, None] * m[None, :]

    # -- the core: every component's log density and pull, at any (alpha, sigma) ---------------
    def _components(self, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log(w_k N(x; a μ_k, C_k)) (B, K) and C_k⁻¹ (a μ_k − x) (B, K, D), C_k = a²Σ_k + s²I."""
        variances = a[:, None, None] ** 2 * self.eigenvalues + s[:, None, None] ** 2  # (B, K, D)
        diff = x[:, None, :] - a[:, None, None] * self.means  # (B, K, D)
        z = torch.einsum("kde,bkd->bke", self.eigenvectors, diff)  # Uᵀ(x − aμ) (B, K, D)
        log_n = -0.5 * ((z**2 / variances).sum(-1) + variances.log().sum(-1)
                        + self.dim * math.log(2 * math.pi))  # (B, K)
        pull = -torch.einsum("kde,bke->bkd", self.eigenvectors, z / variances)  # (B, K, D)
        return self.weights.log() + log_n, pull

    def _at(self, x: torch.Tensor, t, sde, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """`_components` at the time asked for; no time at all means the data (alpha 1, sigma 0)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be (B, {self.dim}), got shape {tuple(x.shape)}")
        if t is None and alpha is None and sigma is None:
            alpha, sigma = 1.0, 0.0
        return self._components(x, *_alpha_sigma(x, t, sde, alpha, sigma))

    def log_prob(self, x: torch.Tensor, t=None, sde=None, *, alpha=None, sigma=None
                 ) -> torch.Tensor:
        """log p_t(x), (B,): of the data itself when no time is given (alpha = 1, sigma = 0)."""
        log_joint, _ = self._at(x, t, sde, alpha, sigma)
        return torch.logsumexp(log_joint, dim=1)

    def responsibilities(self, x: torch.Tensor, t=None, sde=None, *, alpha=None, sigma=None
                         ) -> torch.Tensor:
        """r_k(x) = P(component k | x_t = x), (B, K)."""
        return torch.softmax(self._at(x, t, sde, alpha, sigma)[0], dim=1)

    def score(self, x: torch.Tensor, t=None, sde=None, *, alpha=None, sigma=None
              ) -> torch.Tensor:
        """∇_x log p_t(x), (B, D), equation (2). t (B,) or a number; or alpha=, sigma= directly
        (e.g. from a DiscreteSchedule, or alpha=1, sigma=σ for EDM). No time: the data's score."""
        log_joint, pull = self._at(x, t, sde, alpha, sigma)
        r = torch.softmax(log_joint, dim=1)  # (B, K)
        return torch.einsum("bk,bkd->bd", r, pull)

    def eps(self, x: torch.Tensor, t=None, sde=None, *, alpha=None, sigma=None) -> torch.Tensor:
        """The optimal noise prediction E[eps | x_t = x] = −sigma · ∇log p_t(x), (B, D)."""
        a, s = _alpha_sigma(x, t, sde, alpha, sigma)
        return -expand_like(s, x) * self.score(x, alpha=a, sigma=s)

    def x0(self, x: torch.Tensor, t=None, sde=None, *, alpha=None, sigma=None) -> torch.Tensor:
        """The optimal denoiser E[x0 | x_t = x] = (x + sigma²·∇log p_t(x)) / alpha (Tweedie)."""
        a, s = _alpha_sigma(x, t, sde, alpha, sigma)
        a_, s_ = expand_like(a, x), expand_like(s, x)
        return (x + s_**2 * self.score(x, alpha=a, sigma=s)) / a_

    def marginal(self, sde=None, t=None, *, alpha=None, sigma=None) -> "GaussianMixture":
        """p_t as a GaussianMixture, equation (1), at one time t (a number or 0-d tensor)."""
        if alpha is None:
            alpha, sigma = sde.alpha(torch.as_tensor(t, dtype=self.means.dtype)), sde.sigma(
                torch.as_tensor(t, dtype=self.means.dtype))
        a = torch.as_tensor(alpha, dtype=self.means.dtype, device=self.means.device)
        s = torch.as_tensor(sigma, dtype=self.means.dtype, device=self.means.device)
        eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
        return GaussianMixture(self.weights, a * self.means, a**2 * self.covs + s**2 * eye)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws, (n, D): pick component k with probability w_k, then μ_k + U_k √λ_k z."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype,
                        device=self.means.device)
        scaled = z * self.eigenvalues[k].sqrt()  # (n, D), in each component's eigenbasis
        return self.means[k] + torch.einsum("nde,ne->nd", self.eigenvectors[k], scaled)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, D={self.dim}, dtype={self.means.dtype})"


def gaussian_pf_ode_solution(x_T: torch.Tensor, T, t, sde, mean: torch.Tensor,
                             cov: torch.Tensor) -> torch.Tensor:
    """Where the probability flow ODE carries x_T (at time T) to time t, for data N(mean, cov).

    p_t = N(alpha_t·μ, alpha_t²Σ + sigma_t²I). In the eigenbasis of Σ = U diag(λ) Uᵀ, the ODE
    dx/dt = f x − ½ g² ∇log p_t decouples; for y = Uᵀ(x − alpha·μ) and v = alpha²λ + sigma² it reads
    dy/dt = (f + g²/(2v)) y, and since dv/dt = 2 f v + g², that is d ln y = ½ d ln v:

        x_t = alpha_t·μ + U diag(√(v_t / v_T)) Uᵀ (x_T − alpha_T·μ)

    (derived in notebooks/17_likelihood_flow_matching.py). Works for t < T (sampling) and t > T
    (encoding). x_T (B, D); T and t numbers; mean (D,); cov (D, D).
    """
    dtype = x_T.dtype
    T, t = torch.as_tensor(T, dtype=dtype), torch.as_tensor(t, dtype=dtype)
    lam, U = torch.linalg.eigh(torch.as_tensor(cov, dtype=dtype))  # (D,), (D, D)
    mean = torch.as_tensor(mean, dtype=dtype)
    v_T = sde.alpha(T) ** 2 * lam + sde.sigma(T) ** 2  # (D,)
    v_t = sde.alpha(t) ** 2 * lam + sde.sigma(t) ** 2  # (D,)
    y = (x_T - sde.alpha(T) * mean) @ U  # (B, D) in the eigenbasis
    return sde.alpha(t) * mean + (y * (v_t / v_T).sqrt()) @ U.T
