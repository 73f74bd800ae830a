"""Forward diffusion processes: continuous-time SDEs and discrete noise schedules.

Notation (used by every file of `fromscratch.diffusion`): clean data x0, noise eps ~ N(0, I),

    x_t = alpha(t) · x0 + sigma(t) · eps                                   (the marginal)

so that, given x0, x_t is Gaussian with mean alpha(t)·x0 and standard deviation sigma(t).

Continuous time (Song et al., 2021): t runs from 0 (data) to T = 1 (noise) along the Itô SDE

    dx = f(t) x dt + g(t) dw                                               (forward SDE)

with a drift linear in x. Its marginal mean m and per-coordinate variance v given x0 solve the
moment ODEs (derived in notebooks/12_forward_diffusion.py)

    dm/dt = f(t) m,            m(0) = x0      =>  alpha(t) = exp(∫₀ᵗ f(s) ds)
    dv/dt = 2 f(t) v + g(t)²,  v(0) = 0       =>  sigma(t)² = v(t)

and time runs backwards along (Anderson 1982; Song et al. 2021)

    dx = [f(t) x − g(t)² ∇log p_t(x)] dt + g(t) dw̄                        (reverse SDE)
    dx/dt = f(t) x − ½ g(t)² ∇log p_t(x)                                   (probability flow ODE)

Three SDEs, with β(t) = β_min + t (β_max − β_min) and B(t) = ∫₀ᵗ β(s) ds:

    VE      f = 0        g = σ^t                   alpha = 1         sigma² = (σ^{2t} − 1)/(2 ln σ)
    VP      f = −½ β(t)  g = √β(t)                 alpha = e^{−B/2}  sigma² = 1 − e^{−B}
    sub-VP  f = −½ β(t)  g = √(β(t)(1 − e^{−2B}))  alpha = e^{−B/2}  sigma  = 1 − e^{−B}
    EDM     f = 0        g = √(2t)                 alpha = 1         sigma  = t,  t ∈ [0.002, 80]

Discrete time (DDPM): N steps with noise levels β_1..β_N, ᾱ_n = Π_{i≤n} (1 − β_i), and

    x_n = √ᾱ_n · x0 + √(1 − ᾱ_n) · eps,     n = 0 .. N−1 (0-based timestep index, as in diffusers)

Shapes: t is a float tensor (B,) (or a Python float / 0-d tensor) for SDEs and an int tensor (B,)
of timestep indices for discrete schedules; x is (B, ...). Every per-sample quantity of shape (B,)
is broadcast against x by `expand_like`.
"""

import math

import torch

from fromscratch.errors import UserError


def expand_like(values, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample `values` (B,) to (B, 1, ..., 1) so they broadcast against x (B, ...).

    A Python number or 0-d tensor broadcasts as is. The result takes x's dtype and device.
    """
    values = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if values.dim() == 0:
        return values
    return values.reshape(values.shape + (1,) * (x.dim() - values.dim()))


def _as_time(t, dtype=None) -> torch.Tensor:
    """Time as a floating tensor (keeps a tensor's dtype; Python numbers become float64)."""
    if isinstance(t, torch.Tensor):
        return t if t.is_floating_point() else t.to(dtype or torch.get_default_dtype())
    return torch.tensor(float(t), dtype=dtype or torch.float64)


class SDE:
    """A forward SDE dx = f(t) x dt + g(t) dw on t ∈ [0, T] with a Gaussian prior at T.

    Subclasses give `drift_coefficient` f(t), `diffusion` g(t), `alpha` and `sigma`; everything
    else follows from them.
    """

    T: float = 1.0
    t_min: float = 1e-5  # samplers stop here: at t = 0 the score of data is undefined

    def drift_coefficient(self, t) -> torch.Tensor:
        """f(t), the scalar with drift f(x, t) = f(t) · x. Shape like t."""
        raise NotImplementedError

    def diffusion(self, t) -> torch.Tensor:
        """g(t), the noise amplitude. Shape like t."""
        raise NotImplementedError

    def alpha(self, t) -> torch.Tensor:
        """Mean scale of the marginal: E[x_t | x0] = alpha(t) · x0. Shape like t."""
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:
        """Standard deviation of the marginal given x0. Shape like t."""
        raise NotImplementedError

    def prior_std(self) -> float:
        """Standard deviation of the prior N(0, prior_std² I) that stands in for p_T."""
        raise NotImplementedError

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """f(x, t) = f(t) · x, shape like x."""
        return expand_like(self.drift_coefficient(_as_time(t, x.dtype)), x) * x

    def reverse_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """Drift of the reverse-time SDE: f(x, t) − g(t)² · ∇log p_t(x)."""
        g = expand_like(self.diffusion(_as_time(t, x.dtype)), x)
        return self.drift(x, t) - g**2 * score

    def ode_drift(self, x: torch.Tensor, t, score: torch.Tensor) -> torch.Tensor:
        """Velocity of the probability flow ODE: f(x, t) − ½ g(t)² · ∇log p_t(x)."""
        g = expand_like(self.diffusion(_as_time(t, x.dtype)), x)
        return self.drift(x, t) - 0.5 * g**2 * score

    def prior_sample(self, shape, generator: torch.Generator | None = None,
                     dtype=None, device=None) -> torch.Tensor:
        """x_T ~ N(0, prior_std² I) of the given shape."""
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self.prior_std() * z

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, prior_std² I) summed over all but the batch axis: shape (B,)."""
        s = self.prior_std()
        d = x[0].numel()
        sq = x.flatten(1).pow(2).sum(1)
        return -0.5 * sq / s**2 - d * math.log(s) - 0.5 * d * math.log(2 * math.pi)

    def perturb(self, x0: torch.Tensor, t, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample x_t = alpha(t)·x0 + sigma(t)·eps; returns (x_t, eps)."""
        t = _as_time(t, x0.dtype)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return expand_like(self.alpha(t), x0) * x0 + expand_like(self.sigma(t), x0) * eps, eps

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class VESDE(SDE):
    """Variance exploding, in the σ^t form: dx = σ^t dw (f = 0, g = σ^t).

    sigma(t)² = ∫₀ᵗ σ^{2s} ds = (σ^{2t} − 1) / (2 ln σ); the mean never moves (alpha = 1).
    The prior N(0, sigma(1)² I) is wide enough to hide any data of scale ≪ sigma(1) ≈ σ/√(2 ln σ).
    """

    t_min = 1e-5

    def __init__(self, sigma: float = 25.0):
        if sigma <= 1:
            raise UserError(f"VESDE needs sigma > 1 (the noise grows as sigma^t), got {sigma}")
        self.sigma_base = float(sigma)

    def drift_coefficient(self, t):
        return torch.zeros_like(_as_time(t))

    def diffusion(self, t):
        return self.sigma_base ** _as_time(t)  # g = σ^t

    def alpha(self, t):
        return torch.ones_like(_as_time(t))

    def sigma(self, t):
        log_s = math.log(self.sigma_base)
        # (σ^{2t} − 1) / (2 ln σ), with expm1 so small t keeps its digits
        return torch.sqrt(torch.expm1(2 * _as_time(t) * log_s) / (2 * log_s))

    def prior_std(self) -> float:
        return float(self.sigma(torch.tensor(self.T, dtype=torch.float64)))


class VPSDE(SDE):
    """Variance preserving (the continuous limit of DDPM): dx = −½ β(t) x dt + √β(t) dw.

    With B(t) = ∫₀ᵗ β = β_min t + ½ (β_max − β_min) t²:  alpha = e^{−B/2},  sigma² = 1 − e^{−B},
    so alpha² + sigma² = 1 at every t and unit-variance data keeps unit variance.
    """

    t_min = 1e-3

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 <= beta_min <= beta_max:
            raise UserError(f"need 0 <= beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def beta(self, t) -> torch.Tensor:
        """β(t) = β_min + t (β_max − β_min)."""
        return self.beta_min + _as_time(t) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t) -> torch.Tensor:
        """B(t) = ∫₀ᵗ β(s) ds = β_min t + ½ (β_max − β_min) t²."""
        t = _as_time(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift_coefficient(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        return torch.sqrt(self.beta(t))

    def alpha(self, t):
        return torch.exp(-0.5 * self.integrated_beta(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))  # √(1 − e^{−B})

    def prior_std(self) -> float:
        return 1.0


class SubVPSDE(VPSDE):
    """Sub-VP: the VP drift with less noise, g² = β(t) (1 − e^{−2B(t)}).

    Same alpha as VP; sigma = 1 − e^{−B} ≤ √(1 − e^{−B}), so its variance stays below VP's.
    """

    def diffusion(self, t):
        return torch.sqrt(self.beta(t) * -torch.expm1(-2 * self.integrated_beta(t)))

    def sigma(self, t):
        return -torch.expm1(-self.integrated_beta(t))  # 1 − e^{−B}


class EDMSDE(SDE):
    """Karras et al. (2022)'s choice: sigma(t) = t and alpha = 1, so time *is* the noise level.

    dx = √(2t) dw (f = 0, g² = d sigma²/dt = 2t). T = sigma_max = 80 and t_min = sigma_min = 0.002
    suit data in [-1, 1]; a model of this process takes σ itself as its time input.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise UserError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.t_min = float(sigma_min)
        self.T = float(sigma_max)

    def drift_coefficient(self, t):
        return torch.zeros_like(_as_time(t))

    def diffusion(self, t):
        return torch.sqrt(2 * _as_time(t))

    def alpha(self, t):
        return torch.ones_like(_as_time(t))

    def sigma(self, t):
        return _as_time(t).clone()

    def prior_std(self) -> float:
        return self.T


# ---------------------------------------------------------------------------------------------
# Discrete schedules (DDPM and its descendants)
# ---------------------------------------------------------------------------------------------
class DiscreteSchedule:
    """N noise levels β_n; x_n = √ᾱ_n x0 + √(1 − ᾱ_n) eps with ᾱ_n = Π_{i≤n} (1 − β_i).

    `betas` and `alphas_cumprod` are kept in `dtype` (float32 by default, like diffusers), the
    product itself is taken in float64. `alpha(t)` and `sigma(t)` take an int tensor of timestep
    indices (B,) in 0..N−1.
    """

    def __init__(self, betas: torch.Tensor, dtype: torch.dtype = torch.float32):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or len(betas) == 0:
            raise UserError(f"betas must be a non-empty 1-D tensor, got {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise UserError("every beta must lie in (0, 1)")
        self.betas = betas.to(dtype)  # (N,)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0).to(dtype)  # ᾱ_n, (N,)

    @property
    def num_train_timesteps(self) -> int:
        return len(self.betas)

    def to(self, device=None, dtype=None) -> "DiscreteSchedule":
        """Move the tables (in place) to another device or dtype; returns self."""
        self.betas = self.betas.to(device=device, dtype=dtype)
        self.alphas_cumprod = self.alphas_cumprod.to(device=device, dtype=dtype)
        return self

    def _lookup(self, t_index) -> torch.Tensor:
        t_index = torch.as_tensor(t_index, device=self.alphas_cumprod.device)
        if t_index.is_floating_point():
            raise TypeError("a discrete schedule takes integer timestep indices, not float times")
        return self.alphas_cumprod[t_index.long()]

    def alpha(self, t_index) -> torch.Tensor:
        """√ᾱ_t, shape like t_index."""
        return self._lookup(t_index).sqrt()

    def sigma(self, t_index) -> torch.Tensor:
        """√(1 − ᾱ_t), shape like t_index."""
        return (1 - self._lookup(t_index)).sqrt()

    def prior_std(self) -> float:
        return 1.0

    def prior_sample(self, shape, generator: torch.Generator | None = None,
                     dtype=None, device=None) -> torch.Tensor:
        """x_{N−1} ~ N(0, I): the last noise level is taken to have forgotten the data."""
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def perturb(self, x0: torch.Tensor, t_index, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample x_t = √ᾱ_t x0 + √(1 − ᾱ_t) eps; returns (x_t, eps)."""
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        a = expand_like(self.alpha(t_index), x0)
        s = expand_like(self.sigma(t_index), x0)
        return a * x0 + s * eps, eps

    def __repr__(self) -> str:
        return f"DiscreteSchedule(N={self.num_train_timesteps}, dtype={self.betas.dtype})"


def linear_betas(N: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM (Ho et al. 2020): β evenly spaced from beta_start to beta_end. (N,) float64."""
    return torch.linspace(beta_start, beta_end, N, dtype=torch.float64)


def scaled_linear_betas(N: int = 1000, beta_start: float = 0.00085,
                        beta_end: float = 0.012) -> torch.Tensor:
    """Stable Diffusion: √β evenly spaced, β_n = (√β_start + n/(N−1) (√β_end − √β_start))²."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, N, dtype=torch.float64) ** 2


def cosine_alpha_bar(u: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Improved DDPM (Nichol & Dhariwal 2021): ᾱ(u) = cos²(π/2 · (u + s)/(1 + s)), u ∈ [0, 1].

    (Their f(u)/f(0) normalisation is left out, as in diffusers: f(0) = cos²(π/2 · s/(1+s))
    differs from 1 by 1.5e-4, and only ratios of ᾱ enter the betas.)
    """
    return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def cosine_betas(N: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_n = min(1 − ᾱ((n+1)/N) / ᾱ(n/N), max_beta): ᾱ follows a cosine. (N,) float64.

    The clip at max_beta stops the last step from being β = 1, which would make x_{N−1} pure
    noise with a 1/√(1 − β) = ∞ in the reverse step.
    """
    u = torch.arange(N + 1, dtype=torch.float64) / N
    alpha_bar = cosine_alpha_bar(u, s)
    return torch.clamp(1 - alpha_bar[1:] / alpha_bar[:-1], max=max_beta)


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
               rho: float = 7.0) -> torch.Tensor:
    """The EDM noise levels (Karras et al. 2022, eq. 5), from sigma_max down to sigma_min:

        σ_i = (σ_max^{1/ρ} + i/(steps−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,   i = 0 .. steps−1

    Evenly spaced in σ^{1/ρ}; ρ = 7 puts most steps at small σ, where detail is decided.
    Returns (steps,) float64 WITHOUT a final σ = 0: a sampler that ends on clean data appends it.
    """
    if steps < 2:
        raise UserError(f"edm_sigmas needs at least 2 steps, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (inv_max + ramp * (inv_min - inv_max)) ** rho
