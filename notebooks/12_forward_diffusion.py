# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 12 — Forward diffusion and SDEs
#
# **Goal.** A diffusion model learns to undo a process that slowly turns data into noise. This
# lesson builds that *forward* process: first as a chain of small noisy steps (DDPM), then as its
# continuous-time limit, a stochastic differential equation (SDE). You will derive the marginal
# $p(x_t \mid x_0)$ of the three SDEs of Song et al. (VE, VP, sub-VP) from their moment ODEs, check
# them against simulated paths, see the density flow by the Fokker–Planck equation, and compare
# the discrete noise schedules used in practice (DDPM's linear, iDDPM's cosine, Stable
# Diffusion's scaled-linear, EDM's $\sigma$ ladder).
#
# **Prerequisites.** Gaussian distributions (means and variances add under independent sums);
# derivatives and integrals. No neural networks today.
#
# **Notation** (used by the whole diffusion track): data $x_0$, noise $\varepsilon \sim
# \mathcal N(0, I)$, and
# $$x_t = \alpha(t)\, x_0 + \sigma(t)\, \varepsilon .$$

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.diffusion.sde import (
    VESDE,
    VPSDE,
    DiscreteSchedule,
    SubVPSDE,
    cosine_betas,
    edm_sigmas,
    linear_betas,
    scaled_linear_betas,
)
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## 1. Noise, one small step at a time
#
# DDPM (Ho et al. 2020) corrupts data in $N$ steps. Step $n$ shrinks the point a little and adds
# a little Gaussian noise:
# $$x_n = \sqrt{1 - \beta_n}\; x_{n-1} + \sqrt{\beta_n}\; z_n, \qquad z_n \sim \mathcal N(0, I).$$
# The shrink factor is chosen so that unit-variance data stays unit-variance: $\mathrm{Var}[x_n]
# = (1 - \beta_n) \cdot 1 + \beta_n = 1$. Unrolling the chain, the $x_0$ part is scaled by
# $\prod_i \sqrt{1 - \beta_i}$ and the noises add up to one Gaussian whose variance makes the
# total 1:
# $$x_n = \sqrt{\bar\alpha_n}\, x_0 + \sqrt{1 - \bar\alpha_n}\, \varepsilon, \qquad \bar\alpha_n =
# \prod_{i \le n} (1 - \beta_i).$$
# So we can jump to any step at once, which is what makes training cheap. Let us check it: run
# the chain step by step from a fixed $x_0 = 1.5$ and compare with the closed form.

# %%
N = 1000
betas = linear_betas(N)  # DDPM: β from 1e-4 to 0.02
schedule = DiscreteSchedule(betas, dtype=torch.float64)

n_paths = 4000 if FAST else 40000
x = torch.full((n_paths,), 1.5, dtype=torch.float64)
checkpoints = {100: None, 300: None, 999: None}
for n in range(N):
    z = torch.randn(n_paths, generator=gen, dtype=torch.float64)
    x = (1 - betas[n]).sqrt() * x + betas[n].sqrt() * z  # one DDPM step
    if n in checkpoints:
        checkpoints[n] = x.clone()

for n, xs in checkpoints.items():
    mean, std = 1.5 * schedule.alpha(torch.tensor(n)), schedule.sigma(torch.tensor(n))
    print(f"step {n:4d}: chain mean {xs.mean():+.3f} std {xs.std():.3f}   "
          f"closed form {mean.item():+.3f} {std.item():.3f}")
    assert abs(xs.mean() - mean) < 5 * std / math.sqrt(n_paths)  # 5 standard errors
    assert abs(xs.std() - std) < 5 * std / math.sqrt(2 * n_paths)

# %% [markdown]
# ## 2. From steps to an SDE
#
# Let the steps shrink: $N \to \infty$ with $\beta_n = \beta(t)\,\Delta t$ at time $t = n/N$,
# $\Delta t = 1/N$. Since $\sqrt{1 - \beta\Delta t} \approx 1 - \tfrac12 \beta \Delta t$,
# $$x_{t + \Delta t} - x_t \approx -\tfrac12 \beta(t)\, x_t\, \Delta t + \sqrt{\beta(t)}\,
# \sqrt{\Delta t}\, z,$$
# and a Gaussian increment of variance $\Delta t$ is exactly what Brownian motion $w$ gives. The
# limit is the **variance-preserving (VP) SDE**
# $$dx = f(t)\, x\, dt + g(t)\, dw, \qquad f = -\tfrac12 \beta(t),\quad g = \sqrt{\beta(t)} .$$
# Every SDE of this linear form has a Gaussian marginal given $x_0$. Its mean $m$ and
# variance $v$ obey two ODEs (take expectations of $dx$, and of $d(x^2)$ by Itô's rule
# $d(x^2) = 2x\,dx + g^2 dt$):
# $$\frac{dm}{dt} = f\, m, \qquad \frac{dv}{dt} = 2 f\, v + g^2, \qquad m(0) = x_0,\ v(0) = 0 .$$
# Solving them: $\alpha(t) = e^{\int_0^t f}$ and $\sigma(t)^2 = v(t)$. With $B(t) = \int_0^t
# \beta$, VP gives $\alpha = e^{-B/2}$, $\sigma^2 = 1 - e^{-B}$. Two more choices of $(f, g)$
# are common:
#
# | SDE | $f(t)$ | $g(t)$ | $\alpha(t)$ | $\sigma(t)$ |
# |---|---|---|---|---|
# | VE (variance exploding) | 0 | $\sigma^t$ | 1 | $\sqrt{(\sigma^{2t} - 1)/(2 \ln \sigma)}$ |
# | VP | $-\tfrac12\beta(t)$ | $\sqrt{\beta(t)}$ | $e^{-B/2}$ | $\sqrt{1 - e^{-B}}$ |
# | sub-VP | $-\tfrac12\beta(t)$ | $\sqrt{\beta(t)(1 - e^{-2B})}$ | $e^{-B/2}$ | $1 - e^{-B}$ |
#
# Let us integrate the moment ODEs by hand (many tiny Euler steps) and compare with the
# library's closed forms.

# %%
sdes = {"VE (σ = 25)": VESDE(25.0), "VP": VPSDE(), "sub-VP": SubVPSDE()}
steps = 20000
dt = 1.0 / steps
for name, sde in sdes.items():
    t_mid = (torch.arange(steps, dtype=torch.float64) + 0.5) * dt  # midpoints of the steps
    fs, gs = sde.drift_coefficient(t_mid).tolist(), sde.diffusion(t_mid).tolist()
    m, v = 1.0, 0.0
    for f, g in zip(fs, gs, strict=True):
        m, v = m + f * m * dt, v + (2 * f * v + g**2) * dt  # dm = f m dt, dv = (2 f v + g²) dt
    one = torch.tensor(1.0, dtype=torch.float64)
    print(f"{name:12s} ODE: alpha {m:.5f} sigma {math.sqrt(v):.5f}   closed form: "
          f"{sde.alpha(one).item():.5f} {sde.sigma(one).item():.5f}")
    assert abs(m - sde.alpha(one).item()) < 1e-3 * max(1.0, m)
    assert abs(math.sqrt(v) - sde.sigma(one).item()) < 1e-3 * sde.sigma(one).item()

# %% [markdown]
# ### Exercise: the VP marginal standard deviation
#
# Write $\sigma(t)$ of the VP SDE for $\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})$.

# %%
@exercise("vp_sigma")
def vp_sigma(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    # TODO: B(t) = ∫₀ᵗ β(s) ds; then sigma = √(1 − exp(−B)).
    raise NotImplementedError


check("vp_sigma", vp_sigma)

# %% [markdown]
# ## 3. Simulated paths against the exact marginal
#
# Take 1-D data from a two-component Gaussian mixture. Since $x_t$ is $\alpha x_0$ plus
# independent Gaussian noise, each component stays Gaussian: $p_t = \sum_k w_k\, \mathcal
# N(\alpha \mu_k, \alpha^2 s_k^2 + \sigma^2)$ (`GaussianMixture.marginal`). We simulate the SDE
# itself with Euler–Maruyama, $x \leftarrow x + f x\,\Delta t + g \sqrt{\Delta t}\, z$, which
# knows nothing of $\alpha$ or $\sigma$, and compare histograms with the exact density.

# %%
data = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0], [1.5]]),
                       torch.tensor([0.1, 0.3])).to(torch.float64)
times = [0.0, 0.1, 0.3, 1.0]
n_paths, n_steps = (3000, 200) if FAST else (20000, 1000)

fig, axes = plt.subplots(len(sdes), len(times), figsize=(13, 7.5), sharey="row")
for row, (name, sde) in enumerate(sdes.items()):
    x = data.sample(n_paths, gen)[:, 0]
    t, dt = 0.0, 1.0 / n_steps
    for col, t_show in enumerate(times):
        while t < t_show - 1e-9:  # Euler–Maruyama up to the next time shown
            tt = torch.tensor(t, dtype=torch.float64)
            z = torch.randn(n_paths, generator=gen, dtype=torch.float64)
            x = x + sde.drift_coefficient(tt) * x * dt + sde.diffusion(tt) * math.sqrt(dt) * z
            t += dt
        marginal = data.marginal(sde, t_show)
        lo, hi = x.quantile(0.001).item(), x.quantile(0.999).item()
        grid = torch.linspace(lo - 0.5, hi + 0.5, 300, dtype=torch.float64)[:, None]
        ax = axes[row, col]
        ax.hist(x.numpy(), bins=60, density=True, alpha=0.5, color="C0", label="simulated")
        ax.plot(grid[:, 0], marginal.log_prob(grid).exp(), "k", lw=1.5, label="exact $p_t$")
        ax.set_title(f"{name}, t = {t_show}", fontsize=10)
        # the simulated mean and std agree with the exact marginal's
        exact_sd = marginal.covariance()[0, 0].sqrt()
        tolerance = 5 * exact_sd / math.sqrt(n_paths) + 0.02 * exact_sd  # + Euler's O(Δt) bias
        assert abs(x.mean() - marginal.mean()[0]) < tolerance
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# VE keeps the data where it is and buries it under ever wider noise ($\sigma(1) \approx 9.8$):
# the prior is $\mathcal N(0, \sigma(1)^2)$. VP shrinks the data toward 0 while adding noise,
# ending at $\mathcal N(0, 1)$. Sub-VP ends there too, with less noise on the way.
#
# ## 4. The density flows: Fokker–Planck
#
# Individual paths are random; their density $p_t(x)$ evolves deterministically, by the
# Fokker–Planck equation of $dx = f x\, dt + g\, dw$:
# $$\frac{\partial p_t}{\partial t} = -\frac{\partial}{\partial x}\big(f\,x\,p_t\big) +
# \frac{g^2}{2} \frac{\partial^2 p_t}{\partial x^2}.$$
# (The drift term moves probability like a fluid with velocity $f x$; the second term spreads
# it like heat.) Our exact mixture marginal must satisfy it. We check with finite differences on
# a grid: the two sides agree to the differencing error.

# %%
sde = VPSDE()
xs = torch.linspace(-4, 4, 801, dtype=torch.float64)[:, None]
dx, dt_fd = (xs[1] - xs[0]).item(), 1e-4


def density(t: float) -> torch.Tensor:
    return data.log_prob(xs, torch.tensor(t, dtype=torch.float64), sde).exp()


for t in [0.05, 0.2, 0.5]:
    dp_dt = (density(t + dt_fd) - density(t - dt_fd)) / (2 * dt_fd)
    tt = torch.tensor(t, dtype=torch.float64)
    f, g2 = sde.drift_coefficient(tt), sde.diffusion(tt) ** 2
    flux = f * xs[:, 0] * density(t)
    p = density(t)
    d2p = torch.zeros_like(p)
    d2p[1:-1] = (p[2:] - 2 * p[1:-1] + p[:-2]) / dx**2
    rhs = -torch.gradient(flux, spacing=dx)[0] + 0.5 * g2 * d2p
    inner = slice(2, -2)
    error = (dp_dt[inner] - rhs[inner]).abs().max() / dp_dt[inner].abs().max()
    print(f"t = {t}: max |∂p/∂t − Fokker–Planck| / max |∂p/∂t| = {error:.1e}")
    assert error < 1e-3

# %% [markdown]
# ## 5. Discrete schedules used in practice
#
# A discrete model only needs $\bar\alpha_n$ at its $N$ training steps. Three choices:
#
# - **linear** (DDPM): $\beta_n$ evenly spaced from $10^{-4}$ to $0.02$;
# - **cosine** (improved DDPM): $\bar\alpha(u) = \cos^2\!\big(\tfrac{\pi}{2}\tfrac{u + s}{1 + s}\big)$,
#   $u = n/N$, $s = 0.008$, so that $\bar\alpha$ falls gently at both ends (with $\beta \le 0.999$);
# - **scaled-linear** (Stable Diffusion): $\sqrt{\beta_n}$ evenly spaced from $\sqrt{0.00085}$ to
#   $\sqrt{0.012}$ — far less total noise, because its latents are already small.
#
# The test suite proves each equal to diffusers' `DDPMScheduler` (`tests/equivalence/`). What a
# model sees is best read from the signal-to-noise ratio $\mathrm{SNR} = \alpha^2/\sigma^2 =
# \bar\alpha/(1 - \bar\alpha)$. EDM (Karras et al. 2022) instead fixes the noise levels a
# *sampler* visits, $\sigma_i = \big(\sigma_{\max}^{1/\rho} + \tfrac{i}{n-1}(\sigma_{\min}^{1/\rho}
# - \sigma_{\max}^{1/\rho})\big)^\rho$, $\rho = 7$, which crowds the steps at small $\sigma$.

# %%
schedules = {"linear (DDPM)": linear_betas(), "cosine (iDDPM)": cosine_betas(),
             "scaled-linear (SD)": scaled_linear_betas()}
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.6))
for name, b in schedules.items():
    ab = DiscreteSchedule(b, dtype=torch.float64).alphas_cumprod
    ax1.plot(ab, label=name)
    ax2.plot(torch.log10(ab / (1 - ab)), label=name)
ax1.set(xlabel="step n", ylabel=r"$\bar\alpha_n$", title="signal kept")
ax2.set(xlabel="step n", ylabel="log10 SNR", title="signal-to-noise ratio")
ax1.legend(fontsize=8)
sig = edm_sigmas(18)
ax3.semilogy(sig, "o-")
ax3.set(xlabel="sampler step i", ylabel="σ_i", title="EDM noise levels (18 steps, ρ = 7)")
fig.tight_layout()
plt.show()

ab_sd = DiscreteSchedule(scaled_linear_betas(), dtype=torch.float64).alphas_cumprod
assert ab_sd[-1] > 0.004  # SD's last step still keeps a little signal (√ᾱ ≈ 0.068)
assert DiscreteSchedule(linear_betas(), dtype=torch.float64).alphas_cumprod[-1] < 1e-4

# %% [markdown]
# ## Summary
#
# - The forward process is $x_t = \alpha(t) x_0 + \sigma(t)\varepsilon$: many small noisy steps
#   compose into one Gaussian jump, so training can sample any $t$ directly.
# - In continuous time it is a linear SDE $dx = f x\,dt + g\,dw$; its mean and variance solve
#   $\dot m = f m$, $\dot v = 2 f v + g^2$, which gives $\alpha$ and $\sigma$ for VE, VP and
#   sub-VP (`fromscratch.diffusion.sde`). Simulated paths match the exact mixture marginals.
# - The density flows by Fokker–Planck, a drift term plus a diffusion term.
# - Practical schedules (linear, cosine, scaled-linear, EDM) differ in how fast the SNR falls.
#
# Next: **Lesson 13** — the score $\nabla_x \log p_t(x)$, the one quantity needed to run this
# process backwards, computed exactly for Gaussian mixtures.
