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
# # Lesson 14 — Reversing diffusion: the reverse-time SDE and the probability flow ODE
#
# **Goal.** Lesson 12 turned data into noise with a forward SDE; Lesson 13 gave us the score
# $\nabla \log p_t$. Here you derive the two ways back from noise to data — Anderson's
# **reverse-time SDE** and the deterministic **probability flow ODE** — from the Fokker–Planck
# equation, write one Euler–Maruyama step and one Euler step yourself, prove them equal to the
# library's samplers, and sample the exact 2-D mixture both ways.
#
# **Prerequisites.** Lesson 12 (forward SDEs, Fokker–Planck), Lesson 13 (the score, the exact
# mixture score).
#
# **Notation.** $x_t = \alpha(t)\, x_0 + \sigma(t)\, \varepsilon$; forward SDE
# $dx = f(t)\,x\,dt + g(t)\,dw$ on $t \in [0, T]$; $p_t$ the marginal density of $x_t$.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion import samplers
from fromscratch.diffusion.gmm import GaussianMixture, gaussian_pf_ode_solution
from fromscratch.diffusion.metrics import sliced_wasserstein2
from fromscratch.diffusion.sde import VPSDE
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
N_SAMPLES = 2000 if FAST else 10_000
STEPS = 100 if FAST else 500
torch.manual_seed(0)
sde = VPSDE()  # β from 0.1 to 20: the DDPM process in continuous time
mixture = toy_mixture("mixture")  # 3 Gaussians in 2-D, float64, with an exact score


def exact_score(x, t):
    return mixture.score(x, t, sde)


# %% [markdown]
# ## 1. Time reversal, derived
#
# The forward SDE moves probability mass by the **Fokker–Planck equation** (Lesson 12):
# $$\partial_t p_t = -\nabla\!\cdot\!\big(f\,x\, p_t\big) + \tfrac12 g^2 \Delta p_t .$$
# The trick is one identity: $\Delta p = \nabla\!\cdot\!(\nabla p) = \nabla\!\cdot\!\big(p\,
# \nabla \log p\big)$. Use it to move *all* of the diffusion term into the drift, or half of it,
# or twice of it:
# $$\tfrac12 g^2 \Delta p \;=\; \nabla\!\cdot\!\big(\tfrac12 g^2 \nabla\log p \; p\big)
# \;=\; \nabla\!\cdot\!\big(g^2 \nabla\log p \; p\big) - \tfrac12 g^2 \Delta p .$$
#
# **Probability flow ODE** (Song et al. 2021). With the first form,
# $\partial_t p_t = -\nabla\!\cdot\!\big[(f x - \tfrac12 g^2 \nabla\log p_t)\, p_t\big]$: a
# Fokker–Planck equation *without* diffusion, i.e. the continuity equation of the deterministic
# flow
# $$\frac{dx}{dt} = f(t)\,x - \tfrac12 g(t)^2\, \nabla \log p_t(x).$$
# Points moved by this ODE have the same marginals $p_t$ as the SDE, at every $t$: run it from
# $t = T$ down to 0 and noise becomes data, deterministically.
#
# **Reverse-time SDE** (Anderson 1982). With the second form,
# $\partial_t p_t = -\nabla\!\cdot\!\big[(f x - g^2 \nabla\log p_t)\, p_t\big] - \tfrac12 g^2
# \Delta p_t$. In reversed time $s = T - t$ the density $q_s = p_{T-s}$ obeys
# $\partial_s q_s = \nabla\!\cdot\!\big[(f x - g^2\nabla\log p)\,q_s\big] + \tfrac12 g^2 \Delta q_s$:
# the Fokker–Planck equation of an SDE with drift $-(f x - g^2 \nabla \log p)$ and the *same*
# noise $g$. Written back in $t$ (with $dt < 0$ and $d\bar w$ a Brownian motion running
# backwards):
# $$dx = \big[f(t)\,x - g(t)^2\, \nabla\log p_t(x)\big]\,dt + g(t)\, d\bar w .$$
# Both need only the score. Both are in `fromscratch.diffusion.sde`: `reverse_drift` and
# `ode_drift`.

# %% [markdown]
# ## 2. One Euler–Maruyama step, by hand
#
# Discretize the reverse SDE with steps of length $h > 0$ going *down* in time: the drift
# contributes $-[f x - g^2 s]\,h$ and the Brownian increment over a time $h$ has standard deviation
# $\sqrt h$:
# $$x_{t-h} = x_t - \big[f(t)\,x_t - g(t)^2 s(x_t, t)\big]\,h + g(t)\,\sqrt{h}\; z,
# \qquad z \sim \mathcal N(0, I).$$
#
# ### Exercise: write that step

# %%
@exercise("euler_maruyama_step")
def euler_maruyama_step(x, score, drift, g, h, z):
    # TODO: return x − (drift − g²·score)·h + g·√h·z
    raise NotImplementedError


check("euler_maruyama_step", euler_maruyama_step)

# %% [markdown]
# Run it over a grid from $T$ to $t_{\min}$ (the score is undefined at $t = 0$) and compare with
# the library's `euler_maruyama`, fed the same noise: equal to the last digit.

# %%
def my_euler_maruyama(x, steps, generator):
    times = torch.linspace(sde.T, sde.t_min, steps + 1, dtype=torch.float64).tolist()
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        t_batch = torch.full((len(x),), t, dtype=x.dtype)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = euler_maruyama_step(x, exact_score(x, t_batch), sde.drift(x, t),
                                float(sde.diffusion(t)), t - t_next, z)
    return x


x_T = sde.prior_sample((N_SAMPLES, 2), torch.Generator().manual_seed(1), dtype=torch.float64)
ours = my_euler_maruyama(x_T, STEPS, torch.Generator().manual_seed(2))
library = samplers.euler_maruyama(exact_score, x_T, sde, STEPS, prediction="score",
                                  generator=torch.Generator().manual_seed(2))
assert torch.allclose(ours, library, atol=1e-10)
print("hand-written Euler–Maruyama = samplers.euler_maruyama:", (ours - library).abs().max().item())

# %% [markdown]
# ## 3. The probability flow ODE, and its exact solution for a Gaussian
#
# Euler's method on the ODE: $x_{t_{k+1}} = x_{t_k} + (t_{k+1} - t_k)\,[f x - \tfrac12 g^2 s]$.
# For Gaussian data $\mathcal N(\mu, \Sigma)$ the ODE can be solved exactly: in the eigenbasis
# of $\Sigma$ each coordinate of $x - \alpha\mu$ scales by $\sqrt{v_t / v_T}$, with
# $v_t = \alpha_t^2 \lambda + \sigma_t^2$ (`gaussian_pf_ode_solution`). So we can watch Euler's
# error shrink like $1/\text{steps}$ — a first-order method.

# %%
def my_ode_euler(score, x, steps):
    times = torch.linspace(sde.T, sde.t_min, steps + 1, dtype=torch.float64).tolist()
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        t_batch = torch.full((len(x),), t, dtype=x.dtype)
        x = x + (t_next - t) * sde.ode_drift(x, t, score(x, t_batch))
    return x


mean, cov = torch.tensor([1.0, -0.5]), torch.tensor([[0.6, 0.2], [0.2, 0.3]])
gaussian = GaussianMixture(torch.ones(1), mean[None], cov[None]).to(torch.float64)


def gaussian_score(x, t):
    return gaussian.score(x, t, sde)


x_T_small = x_T[:256]
exact_end = gaussian_pf_ode_solution(x_T_small, sde.T, sde.t_min, sde, mean.double(),
                                     cov.double())
step_counts = [10, 20, 40, 80, 160]
errors = []
for steps in step_counts:
    mine = my_ode_euler(gaussian_score, x_T_small, steps)
    assert torch.allclose(mine, samplers.ode_euler(gaussian_score, x_T_small, sde, steps),
                          atol=1e-12)
    errors.append((mine - exact_end).norm(dim=1).mean().item())
slope = -torch.tensor(errors).log().diff().mean().item() / math.log(2)
print("Euler error vs steps:", [f"{e:.1e}" for e in errors], f"-> order {slope:.2f}")
assert abs(slope - 1) < 0.3

# %% [markdown]
# ## 4. Sampling the exact mixture both ways
#
# Same starting noise, the exact score, the same number of steps. The SDE's paths are jittery
# (each step adds fresh noise and the drift, twice as strong as the ODE's, pulls it back); the
# ODE's paths are smooth and each noise vector has exactly one destination. Both land on the
# mixture: the sliced Wasserstein distance to fresh samples of the truth is about as small as
# that between two samples of the truth (its Monte Carlo floor).

# %%
x_sde, path_sde = samplers.euler_maruyama(exact_score, x_T, sde, STEPS, prediction="score",
                                          generator=torch.Generator().manual_seed(3),
                                          return_trajectory=True)
x_ode, path_ode = samplers.ode_euler(exact_score, x_T, sde, STEPS, prediction="score",
                                     return_trajectory=True)
truth = mixture.marginal(sde, sde.t_min).sample(N_SAMPLES, torch.Generator().manual_seed(4))
floor = sliced_wasserstein2(mixture.sample(N_SAMPLES, torch.Generator().manual_seed(5)), truth)
sw_sde, sw_ode = sliced_wasserstein2(x_sde, truth), sliced_wasserstein2(x_ode, truth)
print(f"sliced W2 to the truth: SDE {sw_sde:.3f}, ODE {sw_ode:.3f}, floor {floor:.3f}")
assert max(sw_sde, sw_ode) < 3 * floor

fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
data = mixture.sample(3000, torch.Generator().manual_seed(6))
for ax, path, name in ((axes[0], path_sde, "reverse SDE (Euler–Maruyama)"),
                       (axes[1], path_ode, "probability flow ODE (Euler)")):
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.8")
    for i in range(40):
        ax.plot(path[:, i, 0], path[:, i, 1], lw=0.6)
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title=name)
axes[2].plot(step_counts, errors, "o-", label="Euler on the PF-ODE")
axes[2].plot(step_counts, [errors[0] * step_counts[0] / n for n in step_counts], "k:",
             label="slope −1")
axes[2].set(xscale="log", yscale="log", xlabel="steps", ylabel="mean |x − x_exact|",
            title="one Gaussian: error vs the exact solution")
axes[2].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. What each way costs
#
# - The **SDE** forgives: its noise keeps re-spreading the samples, so errors made early are
#   partly washed out; but its paths are rough, and Euler–Maruyama's strong error shrinks only
#   like $\sqrt h$ — it needs many steps.
# - The **ODE** is deterministic and smooth, so higher-order solvers apply (Heun, Runge–Kutta,
#   DPM-Solver): far fewer steps for the same accuracy. It also maps each noise vector to one
#   sample, which gives exact likelihoods (Lesson 17) and lets us measure a solver's error
#   against an exact answer, as above.
#
# ## Summary
#
# - Moving the diffusion term of the Fokker–Planck equation into the drift with
#   $\Delta p = \nabla\cdot(p\nabla\log p)$ gives both ways back: the reverse SDE
#   $dx = [f x - g^2\nabla\log p_t]dt + g\,d\bar w$ and the probability flow ODE
#   $dx/dt = f x - \tfrac12 g^2 \nabla\log p_t$. Both need only the score.
# - One Euler–Maruyama step is $x - [f x - g^2 s] h + g\sqrt h z$; one Euler step drops the
#   noise and halves $g^2$. Ours equal `samplers.euler_maruyama` and `samplers.ode_euler`.
# - With the exact score both sample the mixture to within the Monte Carlo floor; on a Gaussian
#   the ODE's exact solution shows Euler's first-order error.
#
# Next: **Lesson 15** learns the score from data; **Lesson 16** compares samplers, from DDPM to
# DPM-Solver, by their error against the number of score evaluations.
