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
# # Lesson 16 — Samplers compared: from DDPM to DPM-Solver
#
# **Goal.** Every network evaluation (NFE) costs a forward pass of a big network, so a sampler is
# judged by how close to the data it gets for a given NFE. You derive DDPM's ancestral step,
# DDIM, Heun's method, the predictor–corrector sampler, Karras et al.'s σ-parametrized Heun and
# DPM-Solver++(2M), write a DDIM step yourself, check the library's versions against the
# reference library diffusers, and measure all of them with the **exact** score of a 2-D mixture
# — so that every error you see is the sampler's own.
#
# **Prerequisites.** Lesson 14 (reverse SDE, probability flow ODE, Euler–Maruyama), Lesson 13
# (exact mixture score, Tweedie's formula).
#
# **Notation.** $x_t = \alpha_t x_0 + \sigma_t \varepsilon$. A step goes from a noisier level
# $t$ to a less noisy level $s$. $\hat x_0$, $\hat\varepsilon$ are the model's predictions at
# $x_t$; $\lambda = \log(\alpha/\sigma)$ is half the log signal-to-noise ratio.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion import samplers
from fromscratch.diffusion.gmm import GaussianMixture, gaussian_pf_ode_solution
from fromscratch.diffusion.metrics import sliced_wasserstein2
from fromscratch.diffusion.sde import VPSDE, DiscreteSchedule, linear_betas
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
N_SAMPLES = 1000 if FAST else 10_000
NFES = [5, 10, 20] if FAST else [5, 10, 20, 50, 100, 200]
torch.manual_seed(0)
sde = VPSDE()
mixture = toy_mixture("mixture")  # 3 Gaussians in 2-D, float64, exact score


def exact_score(x, t):
    return mixture.score(x, t, sde)


# %% [markdown]
# ## 1. DDPM: ancestral sampling
#
# The forward step from $s$ to $t$ is $x_t = \alpha_{t|s} x_s + \sigma_{t|s} z$ with
# $\alpha_{t|s} = \alpha_t/\alpha_s$ and $\sigma_{t|s}^2 = \sigma_t^2 - \alpha_{t|s}^2\sigma_s^2$
# ($\beta_t$ in DDPM's notation). Given $x_0$, the pair $(x_s, x_t)$ is jointly Gaussian, and
# conditioning one Gaussian on another (Bayes) gives the **posterior**
# $$q(x_s \mid x_t, x_0) = \mathcal N\!\Big(\tfrac{\alpha_s \sigma_{t|s}^2}{\sigma_t^2}\, x_0
# + \tfrac{\alpha_{t|s}\sigma_s^2}{\sigma_t^2}\, x_t,\;
# \tfrac{\sigma_{t|s}^2 \sigma_s^2}{\sigma_t^2} I\Big).$$
# DDPM (Ho et al. 2020) samples it with the model's $\hat x_0$ in place of $x_0$, step after
# step: `samplers.ddpm`. On a DiscreteSchedule it equals diffusers' `DDPMScheduler` step for
# step, noise included (tests/equivalence/test_samplers_diffusers.py); we check it here too when
# diffusers is installed.

# %%
schedule = DiscreteSchedule(linear_betas(1000), dtype=torch.float64)  # float64: see below


def exact_eps_discrete(x, t_index):
    """ε̂ = −σ ∇log p_t for the mixture, on the discrete schedule (t: int indices)."""
    return mixture.eps(x, alpha=schedule.alpha(t_index), sigma=schedule.sigma(t_index))


x_T = torch.randn(N_SAMPLES, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
x_ddpm = samplers.ddpm(exact_eps_discrete, x_T, schedule, 100,
                       generator=torch.Generator().manual_seed(2))
try:
    from diffusers import DDPMScheduler
except ImportError:
    print("diffusers not installed: skipping the comparison (pip install diffusers)")
else:
    reference = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    # Its table in float64 too: in float32, 1 − ᾱ_t/ᾱ_prev loses digits where β ≈ 1e-4.
    reference.alphas_cumprod = schedule.alphas_cumprod.clone()
    reference.set_timesteps(100)
    x, generator = x_T.clone(), torch.Generator().manual_seed(2)
    for t in reference.timesteps:
        x = reference.step(exact_eps_discrete(x, t.expand(len(x))), t, x,
                           generator=generator).prev_sample
    print("samplers.ddpm vs diffusers' DDPMScheduler, max difference:",
          (x - x_ddpm).abs().max().item())
    assert torch.allclose(x, x_ddpm, atol=1e-8)

# %% [markdown]
# ## 2. DDIM: the same marginals, without the noise
#
# Song, Meng & Ermon (2021) notice that DDPM's *loss* only constrains the marginals
# $q(x_t\mid x_0)$, not the chain between them; a family of non-Markovian chains shares those
# marginals:
# $$x_s = \alpha_s \hat x_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c\,z, \qquad
# c = \eta\, \sigma_s\sqrt{1 - \big(\tfrac{\alpha_t \sigma_s}{\alpha_s\sigma_t}\big)^2}.$$
# $\eta = 1$ is DDPM's posterior variance; $\eta = 0$ is deterministic: keep $\hat x_0$, re-noise
# with the *same* $\hat\varepsilon$. In $y = x/\alpha$ and $\rho = \sigma/\alpha$ the $\eta = 0$
# step reads $y_s = y_t + (\rho_s - \rho_t)\,\hat\varepsilon$: Euler's method on the probability
# flow ODE $dy/d\rho = \hat\varepsilon$ — first order, but exact when $\hat\varepsilon$ does not
# change along the way.
#
# ### Exercise: one DDIM step (η = 0)

# %%
@exercise("ddim_step")
def ddim_step(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    # TODO: x0_hat from x_t = alpha_t·x0 + sigma_t·eps, then alpha_s·x0_hat + sigma_s·eps
    raise NotImplementedError


check("ddim_step", ddim_step)

# %% [markdown]
# Run over the library's grid, it reproduces `samplers.ddim`:

# %%
grid = samplers.time_grid(schedule, 50)
x = x_T
for (t, a_t, s_t), (_, a_s, s_s) in zip(grid[:-1], grid[1:], strict=True):
    x = ddim_step(x, exact_eps_discrete(x, torch.full((len(x),), t)), a_t, s_t, a_s, s_s)
assert torch.allclose(x, samplers.ddim(exact_eps_discrete, x_T, schedule, 50), atol=1e-10)
print("hand-written DDIM = samplers.ddim")

# %% [markdown]
# ## 3. Heun's method on the probability flow ODE
#
# Euler uses the slope at the start of the step; Heun averages it with the slope at Euler's
# landing point (the trapezoid rule): two evaluations a step, error $O(h^2)$ instead of $O(h)$:
# $$\tilde x = x_t + h\,v(x_t, t), \qquad x_{t+h} = x_t + \tfrac h2\big[v(x_t, t) +
# v(\tilde x, t + h)\big].$$
#
# ## 4. Predictor–corrector
#
# At a fixed $t$, Langevin dynamics $x \leftarrow x + \epsilon\, s(x, t) + \sqrt{2\epsilon}\, z$
# leaves $p_t$ invariant. Song et al. (2021) alternate one such **corrector** step (with
# $\epsilon$ set by a target signal-to-noise ratio,
# $\epsilon = 2(r\,\|z\|/\|s\|)^2$, $r = 0.16$) with one Euler–Maruyama **predictor** step:
# errors of the predictor are pulled back towards $p_t$ before they accumulate. 2 NFE per step.
#
# ## 5. Heun on the EDM noise levels (Karras et al. 2022)
#
# Divide by $\alpha$: $y = x/\alpha = x_0 + \sigma_{\mathrm{edm}}\,\varepsilon$ with
# $\sigma_{\mathrm{edm}} = \sigma/\alpha$. The probability flow ODE becomes
# $$\frac{dy}{d\sigma} = \frac{y - D(y;\sigma)}{\sigma}, \qquad D = \hat x_0 \text{ (the
# denoiser)},$$
# whose trajectories are nearly straight lines pointing at $D$. Karras et al. solve it with Heun
# on levels $\sigma_i = (\sigma_{\max}^{1/\rho} + \tfrac{i}{N-1}(\sigma_{\min}^{1/\rho} -
# \sigma_{\max}^{1/\rho}))^\rho$, $\rho = 7$: most steps where $\sigma$ is small and detail is
# decided. (Their optional "churn" adds a little noise before each step, then removes it.)
#
# ## 6. DPM-Solver++(2M)
#
# Write the ODE in $\lambda$ with the data prediction $\hat x_0$ (Lu et al. 2022):
# $\frac{d}{d\lambda}\big(\tfrac{x}{\sigma}\big) = e^{\lambda}\hat x_0$, so exactly
# $$x_s = \frac{\sigma_s}{\sigma_t} x_t + \sigma_s \int_{\lambda_t}^{\lambda_s} e^{\lambda}\,
# \hat x_0(\lambda)\, d\lambda .$$
# The linear part is solved exactly; only $\hat x_0$ is approximated. Constant $\hat x_0$ gives
# $x_s = \frac{\sigma_s}{\sigma_t}x_t - \alpha_s(e^{-h}-1)\hat x_0$, $h = \lambda_s - \lambda_t$:
# DDIM again. A linear $\hat x_0$ through the previous step's value (free: it was computed
# already) gives second order with one NFE per step:
# $$D = \big(1 + \tfrac{1}{2r}\big)\hat x_0^{(t)} - \tfrac{1}{2r}\hat x_0^{(\text{prev})},\quad
# r = h_{\text{prev}}/h, \qquad x_s = \frac{\sigma_s}{\sigma_t}x_t - \alpha_s(e^{-h}-1)\,D.$$
#
# ## 7. Flow matching
#
# Rectified flow / flow matching trains the velocity $u = \varepsilon - x_0$ of the straight path
# $x_t = (1-t)x_0 + t\varepsilon$; sampling is Euler or Heun on $dx/dt = u(x, t)$ from $t = 1$ to
# $0$. Its velocity is the probability flow ODE of that path (for the exact model:
# $u = \dot\alpha \hat x_0 + \dot\sigma\hat\varepsilon$), so the same solvers apply.

# %% [markdown]
# ## 8. The comparison
#
# Every sampler, the exact score, the same starting noise; the distance of its samples to the
# true mixture (sliced Wasserstein-2) against the NFE. The dotted line is the Monte Carlo floor:
# two samples of the truth are this far apart.

# %%
def straight_path_x0(x, t):
    """E[x0 | x_t] on the straight path, in a form that is finite at t = 1 (alpha = 0)."""
    a, s = 1 - float(t[0]), float(t[0])
    r = mixture.responsibilities(x, alpha=a, sigma=s)  # (B, K)
    gain = torch.linalg.solve(a**2 * mixture.covs + s**2 * torch.eye(2, dtype=x.dtype),
                              a * mixture.covs)  # (K, D, D)
    means = mixture.means + torch.einsum("bkd,kde->bke", x[:, None] - a * mixture.means, gain)
    return torch.einsum("bk,bkd->bd", r, means)


def run(name, steps, x_T):
    if name.startswith("flow"):
        return getattr(samplers, name)(straight_path_x0, x_T, steps, prediction="x0")
    return samplers.SAMPLERS[name](exact_score, x_T, sde, steps, prediction="score",
                                   generator=torch.Generator().manual_seed(3))


names = ["euler_maruyama", "predictor_corrector", "ddpm", "ddim", "ode_euler", "ode_heun",
         "heun_edm", "dpm_solver_2m", "flow_euler", "flow_heun"]
truth = mixture.sample(N_SAMPLES, torch.Generator().manual_seed(4))
floor = sliced_wasserstein2(mixture.sample(N_SAMPLES, torch.Generator().manual_seed(5)), truth)
table = {}
for name in names:
    for nfe in NFES:
        steps = (nfe + 1) // 2 if name in ("heun_edm", "flow_heun") else (
            nfe // 2 if name in ("ode_heun", "predictor_corrector") else nfe)
        if steps >= 2 or (steps == 1 and name != "heun_edm"):
            table[name, nfe] = sliced_wasserstein2(run(name, steps, x_T), truth)

fig, (ax_dist, ax_order) = plt.subplots(1, 2, figsize=(13, 4.5))
for i, name in enumerate(names):
    points = [(nfe, table[name, nfe]) for nfe in NFES if (name, nfe) in table]
    ax_dist.plot(*zip(*points, strict=True), "o-" if not name.startswith("flow") else "o--",
                 label=name, color=f"C{i}", ms=3)
ax_dist.axhline(floor, color="k", ls=":", lw=0.8, label="Monte Carlo floor")
ax_dist.set(xscale="log", yscale="log", xlabel="NFE", ylabel="sliced W2 to the truth",
            title="exact mixture score")
ax_dist.legend(fontsize=7, ncol=2)
print("sliced W2 at NFE 20:", {n: round(table[n, 20], 3) for n in names})

# %% [markdown]
# Distances between sample sets are noisy and hit the floor quickly. To see each solver's
# **order**, use one Gaussian, where the ODE has an exact solution, and the mean distance of each
# sample to its exact destination. A slope of $-k$ on log–log axes is order $k$.

# %%
mean, cov = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor(
    [[0.6, 0.2], [0.2, 0.3]], dtype=torch.float64)
gaussian = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], cov[None])
x_T_small = x_T[:200]
orders = {"ode_euler": (1, 1), "ddim": (1, 1), "ode_heun": (2, 2), "dpm_solver_2m": (2, 1)}
order_nfes = [20, 40, 80, 160]
fitted = {}
for i, (name, (order, per_step)) in enumerate(orders.items()):
    exact = gaussian_pf_ode_solution(x_T_small, sde.T, sde.t_min, sde, mean, cov)
    errors = [(samplers.SAMPLERS[name](lambda x, t: gaussian.score(x, t, sde), x_T_small, sde,
                                       nfe // per_step, prediction="score") - exact)
              .norm(dim=1).mean().item() for nfe in order_nfes]
    fitted[name] = -np.polyfit(np.log(order_nfes), np.log(errors), 1)[0]
    ax_order.plot(order_nfes, errors, "o-", label=f"{name}: order {fitted[name]:.2f}",
                  color=f"C{i}")
    assert abs(fitted[name] - order) <= 0.3, (name, fitted[name])
ax_order.set(xscale="log", yscale="log", xlabel="NFE", ylabel="mean |x − x_exact|",
             title="one Gaussian: error vs the exact ODE solution")
ax_order.legend(fontsize=8)
plt.tight_layout()
plt.show()
print("fitted orders:", {k: round(float(v), 2) for k, v in fitted.items()})

# %% [markdown]
# How to read it:
#
# - **Stochastic samplers** (Euler–Maruyama, predictor–corrector, DDPM) need the most steps:
#   their noise must be integrated, at order ½ in the strong sense.
# - **DDIM** and **Euler** are first order; **Heun** is second order but pays 2 NFE a step;
#   **DPM-Solver++(2M)** is second order at 1 NFE a step: on the Gaussian it has the smallest
#   per-sample error of these four at every NFE, which is why it is a default in practice.
#   Distances between sample *sets* can rank them differently at 5–10 NFE (here the plain Euler
#   on even time steps does well on the mixture): a sampler can land on the right distribution
#   while each sample lands far from its exact destination.
# - **EDM's Heun** diverges with very few steps on a VP process (its first σ is ≈ 150) but is
#   among the most accurate once it has ~20 NFE; **flow matching**'s nearly straight paths make
#   even Euler good at small NFE.
# - With a *learned* score, every sampler stops improving at the network's own error:
#   `python benchmarks/sampler_error.py` prints the same table for a trained MLP next to the
#   exact score (docs/benchmarks.md, "Diffusion samplers").
#
# ## Summary
#
# - DDPM samples the posterior $q(x_s|x_t,\hat x_0)$; DDIM keeps the marginals and drops the
#   noise ($\eta = 0$): Euler on the ODE in $(\sigma/\alpha)$. Both equal diffusers' schedulers.
# - Heun (2 NFE/step) and DPM-Solver++(2M) (1 NFE/step, exponential integrator in $\lambda$) are
#   second order; Euler and DDIM first — measured here as log–log slopes against an exact answer.
# - The exact mixture score separates solver error from learning error.
#
# Next: **Lesson 17** uses the probability flow ODE for exact likelihoods and trains a flow.
