"""Distances between two sets of samples: how far a sampler's output is from the true data.

Both compare point clouds x (n, D) and y (m, D) drawn from distributions P and Q, with no density
needed, so they can score any sampler against samples of the truth.

Sliced Wasserstein-2. In one dimension, the optimal transport between two distributions matches
their quantiles, so W2² = ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du: sort both samples and compare. In D dimensions,
project on random unit directions θ and average (Bonneel et al. 2015):

    SW2(P, Q)² = E_θ [ W2(θᵀP, θᵀQ)² ],       θ uniform on the unit sphere

Maximum mean discrepancy (Gretton et al. 2012) with a fixed kernel k, here a Gaussian of width h,
k(x, y) = exp(−|x − y|² / (2h²)):

    MMD(P, Q)² = E k(x, x') + E k(y, y') − 2 E k(x, y),     x, x' ~ P,  y, y' ~ Q

estimated by the average over all pairs of the two samples (the "V-statistic": ≥ 0, exactly 0 for
two identical sets, biased upwards by O(1/n)). Both are 0 for P = Q; with finite samples they are
not, and the distance between two independent samples of the truth, the Monte Carlo floor, is
the smallest value a perfect sampler can score.

Fréchet distance (the formula of FID, Heusel et al. 2017): fit a Gaussian to each cloud, usually
of a classifier's features rather than raw pixels, and take the closed-form W2² between the two
Gaussians. It sees only means and covariances, so it is cheap in high dimension.
"""

import torch


def wasserstein2_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W2 between the empirical distributions of x (..., n) and y (..., m), along the last axis.

    Exact for any n and m: the quantile functions of both samples are step functions; between
    consecutive breakpoints (multiples of 1/n and of 1/m) both are constant, so the integral
    ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du is a finite sum.

    >>> wasserstein2_1d(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0]))
    tensor(2.)
    """
    n, m = x.shape[-1], y.shape[-1]
    x_sorted, y_sorted = x.sort(dim=-1).values, y.sort(dim=-1).values
    if n == m:
        return (x_sorted - y_sorted).pow(2).mean(-1).sqrt()
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    breaks = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                        torch.arange(1, m + 1, dtype=torch.float64) / m]).unique()  # sorted
    widths = torch.diff(breaks, prepend=breaks.new_zeros(1))  # du of each piece
    middles = breaks - widths / 2
    i = (middles * n).floor().long().clamp(max=n - 1)  # F⁻¹(u) = x_(i) for u ∈ (i/n, (i+1)/n]
    j = (middles * m).floor().long().clamp(max=m - 1)
    diff = x_sorted[..., i.to(x.device)] - y_sorted[..., j.to(x.device)]
    return (diff.to(dtype).pow(2) * widths.to(dtype=dtype, device=x.device)).sum(-1).sqrt()


def random_directions(n: int, dim: int, generator: torch.Generator | None = None,
                      dtype=torch.float32) -> torch.Tensor:
    """n directions (n, dim) uniform on the unit sphere: normalized standard Gaussians."""
    theta = torch.randn(n, dim, generator=generator, dtype=dtype)
    return theta / theta.norm(dim=1, keepdim=True)


def sliced_wasserstein2(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256,
                        seed: int = 0) -> float:
    """SW2 between samples x (n, D) and y (m, D), over `n_projections` random directions.

    The directions come from `seed`, so two calls with the same seed compare every sampler on the
    same projections.
    """
    _check_clouds(x, y)
    theta = random_directions(n_projections, x.shape[1], torch.Generator().manual_seed(seed),
                              dtype=x.dtype).to(x.device)  # (P, D)
    w2 = wasserstein2_1d(theta @ x.T, theta @ y.T)  # (P,): W2 of each projection
    return float(w2.pow(2).mean().sqrt())


def _kernel_mean(x: torch.Tensor, y: torch.Tensor, bandwidth: float, block: int) -> float:
    """mean_ij k(x_i, y_j), k(x, y) = exp(−|x − y|²/(2h²)), in blocks of rows (memory ∝ block·m).

    When y is x, only the blocks on and right of the diagonal are computed, the off-diagonal
    ones counted twice (k is symmetric): half the work.
    """
    symmetric = y is x
    total = 0.0
    for start in range(0, len(x), block):
        rows = x[start:start + block]
        cols = y[start:] if symmetric else y
        k = torch.cdist(rows, cols).pow_(2).mul_(-0.5 / bandwidth**2).exp_()  # (block, columns)
        row_sums = k[:, :len(rows)].sum(1) if symmetric else k.sum(1)  # (block,)
        total += float(row_sums.double().sum())
        if symmetric:  # the first len(rows) columns form the diagonal block; the rest count twice
            total += 2 * float(k[:, len(rows):].sum(1).double().sum())
    return total / (len(x) * len(y))


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.5, *, block: int = 1024) -> float:
    """MMD between samples x (n, D) and y (m, D), Gaussian kernel of fixed width (V-statistic).

    MMD² = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) − 2 mean_ij k(x_i, y_j); returns √MMD².
    The bandwidth is fixed (not fitted to the data), so numbers from different runs compare.
    """
    _check_clouds(x, y)
    squared = (_kernel_mean(x, x, bandwidth, block) + _kernel_mean(y, y, bandwidth, block)
               - 2 * _kernel_mean(x, y, bandwidth, block))
    return max(squared, 0.0) ** 0.5  # rounding can leave −1e-12 for identical sets


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance of Gaussians fitted to features a (N, F) and b (M, F) (FID's formula):

        ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½),

    with Tr (Σ_a Σ_b)^½ = Σ √λ_i over the eigenvalues λ_i of Σ_a^½ Σ_b Σ_a^½ (symmetric, ≥ 0,
    the same eigenvalues as Σ_a Σ_b)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    features = a.shape[1]
    cov_a = torch.cov(a.T).reshape(features, features)  # (F, F), also for F = 1
    cov_b = torch.cov(b.T).reshape(features, features)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T  # Σ_a^½
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0)
    trace = torch.trace(cov_a) + torch.trace(cov_b) - 2 * middle.sqrt().sum()
    return float(((mu_a - mu_b) ** 2).sum() + trace)


def _check_clouds(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two sample sets (n, D) and (m, D) of the same dimension D, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("need at least one sample in each set")
