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
# # Lesson 17 — Likelihood through the probability flow ODE, and flow matching
#
# **Goal.** Diffusion models are usually judged by their samples, but they also assign an exact
# log-likelihood to any point, through the deterministic **probability flow ODE**. You will
# derive the instantaneous change of variables, compute $\log p(x)$ with it and recover a
# mixture's exact density, follow the closed-form ODE of a Gaussian, and then meet **flow
# matching**: learn the ODE's velocity directly, on straight paths from data to noise.
#
# **Prerequisites.** Lessons 12–15 (forward SDEs, scores, score matching); the change of
# variables formula for densities, $p_Y(y) = p_X(x)\, |\det \partial x/\partial y|$.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.data.toy2d import sample_toy, toy_mixture
from fromscratch.diffusion.gmm import gaussian_pf_ode_solution
from fromscratch.diffusion.likelihood import divergence_exact, log_likelihood
from fromscratch.diffusion.samplers import flow_euler
from fromscratch.diffusion.sde import VPSDE
from fromscratch.diffusion.toy import ToyFlow, train_toy
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
sde = VPSDE()
gm = toy_mixture("mixture")

# %% [markdown]
# ## 1. The probability flow ODE
#
# Lesson 12's Fokker–Planck equation for $dx = f x\,dt + g\,dw$ can be rewritten as a pure
# transport equation, because $\tfrac12 g^2 \Delta p = \nabla\cdot(\tfrac12 g^2 p \nabla \log p)$:
# $$\partial_t p_t = -\nabla\cdot(f x\, p_t) + \tfrac12 g^2 \Delta p_t =
# -\nabla\cdot\big(v\, p_t\big), \qquad v(x, t) = f x - \tfrac12 g^2 \nabla \log p_t(x).$$
# So the deterministic ODE $dx/dt = v(x, t)$ moves probability exactly as the SDE does: the same
# marginals $p_t$ at every $t$, with no noise. Run backwards from $x_T \sim$ prior it samples;
# run forwards it *encodes* a data point into a latent.
#
# ## 2. The instantaneous change of variables
#
# Along a solution $x_t$ of $dx/dt = v$, how does $\log p_t(x_t)$ change? The continuity
# equation above gives $\partial_t p = -\nabla\cdot(v p) = -p\,\nabla\cdot v - v\cdot\nabla p$,
# and the total derivative along the path adds $v \cdot \nabla p$:
# $$\frac{d}{dt} \log p_t(x_t) = \frac{\partial_t p + v\cdot \nabla p}{p} = -\nabla \cdot v(x_t, t)
# = -\operatorname{tr} \frac{\partial v}{\partial x}.$$
# Integrating from the data ($t = \varepsilon$) to the prior ($t = T$):
# $$\log p_\varepsilon(x_\varepsilon) = \log p_T(x_T) + \int_\varepsilon^T \nabla\cdot v(x_t, t)\,dt .$$
# A sanity check where everything is known: for the linear field $v = Ax$ the flow is
# $x_t = e^{tA}x_0$, whose Jacobian determinant is $e^{t \operatorname{tr} A}$, so
# $\log p_t(x_t) = \log p_0(x_0) - t \operatorname{tr} A$. The divergence of $Ax$ is
# $\operatorname{tr} A$ everywhere:

# %%
A = torch.tensor([[-0.3, 1.0], [-0.8, 0.1]], dtype=torch.float64)
pts = torch.randn(4, 2, generator=gen, dtype=torch.float64)
div = divergence_exact(lambda x: x @ A.T, pts)
assert torch.allclose(div, torch.full((4,), A.trace().item(), dtype=torch.float64))
print("∇·(Ax) = tr A =", A.trace().item())

# %% [markdown]
# ## 3. Exact likelihood of a mixture, recovered
#
# `log_likelihood` integrates $x$ and $\int \nabla\cdot v\,dt$ together with SciPy's RK45. With
# the mixture's exact score the ODE is exact, so we must get back the mixture's own
# $\log p_0(x)$ (up to $p_\varepsilon \ne p_0$ and the prior standing in for $p_T$):

# %%
x = torch.cat([gm.sample(3, gen), torch.tensor([[0.0, 0.0]], dtype=torch.float64)])
via_ode = log_likelihood(x, lambda y, t: gm.score(y, t, sde), sde, t_start=1e-5)
exact = gm.log_prob(x)
for a, b in zip(via_ode.tolist(), exact.tolist(), strict=True):
    print(f"ODE {a:8.4f}   exact {b:8.4f}   difference {a - b:+.4f} nats")
assert ((via_ode - exact).abs() / 2 < 0.01).all()  # below 0.01 nats per dimension

# %% [markdown]
# In high dimension the exact divergence costs $D$ backward passes per evaluation. Hutchinson's
# estimator uses one: for a random $z$ with $\mathbb E[zz^\top] = I$,
# $\mathbb E[z^\top (\partial v/\partial x) z] = \operatorname{tr}(\partial v/\partial x)$.
# It is unbiased but noisy (the off-diagonal entries of $\partial v/\partial x$ enter its
# variance): averaged over a few probes it lands near the exact answer, within its standard error.

# %%
probes = 6 if FAST else 20
runs = torch.stack([log_likelihood(x, lambda y, t: gm.score(y, t, sde), sde, t_start=1e-5,
                                   trace="hutchinson", generator=torch.Generator().manual_seed(i))
                    for i in range(probes)])
standard_error = runs.std(0) / probes**0.5
print("Hutchinson, mean of", probes, "runs:", runs.mean(0).numpy().round(3),
      "±", standard_error.numpy().round(3), " exact:", exact.numpy().round(3))
assert ((runs.mean(0) - exact).abs() < 4 * standard_error + 0.05).all()

# %% [markdown]
# ## 4. The probability flow of a Gaussian, in closed form
#
# For data $\mathcal N(\mu, \Sigma)$ the ODE is linear and, in the eigenbasis of $\Sigma$,
# decouples into one scalar equation per direction. With $y = x - \alpha\mu$ and
# $v_\lambda(t) = \alpha^2 \lambda + \sigma^2$ (the marginal variance along an eigenvector with
# eigenvalue $\lambda$): $\dot y = (f + g^2/(2 v_\lambda))\, y$, and since $\dot v_\lambda = 2 f
# v_\lambda + g^2$ (Lesson 12's moment ODE), $d \ln y = \tfrac12 d \ln v_\lambda$. So each
# coordinate keeps its *standardized* value:
# $$x_t = \alpha_t \mu + U \operatorname{diag}\!\big(\sqrt{v_\lambda(t)/v_\lambda(T)}\big) U^\top
# (x_T - \alpha_T \mu).$$
# The samplers' benchmark (Lesson 16) uses this to measure every sampler's error sample by sample.

# %%
mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
Sigma = torch.tensor([[0.6, 0.45], [0.45, 0.5]], dtype=torch.float64)
x_T = sde.prior_sample((2000, 2), gen, dtype=torch.float64)
grid = torch.linspace(1.0, 1e-3, 60, dtype=torch.float64)
path = torch.stack([gaussian_pf_ode_solution(x_T, 1.0, t, sde, mu, Sigma) for t in grid])
x_end = path[-1]
print("endpoint mean", x_end.mean(0).numpy().round(3), " covariance",
      torch.cov(x_end.T).numpy().round(3).tolist())
assert torch.allclose(x_end.mean(0), mu, atol=0.1)
assert torch.allclose(torch.cov(x_end.T), Sigma, atol=0.1)

fig, ax = plt.subplots(figsize=(5.5, 5))
for i in range(40):
    ax.plot(path[:, i, 0], path[:, i, 1], lw=0.7, color="C0", alpha=0.7)
ax.scatter(*x_T[:40].T, s=8, color="grey", label="$x_T$ (prior)")
ax.scatter(*x_end[:40].T, s=8, color="C3", label="$x_0$")
ax.set(aspect="equal", title="probability flow ODE paths of a Gaussian")
ax.legend()
plt.show()

# %% [markdown]
# ## 5. Flow matching
#
# The PF-ODE's paths are curved, and learning them goes through a score. **Flow matching**
# (Lipman et al. 2023; rectified flow, Liu et al. 2023) picks the simplest path between a data
# point and a noise sample, a straight line,
# $$x_t = (1 - t)\, x_0 + t\, \varepsilon, \qquad \frac{dx_t}{dt} = \varepsilon - x_0,$$
# and regresses a network $u_\theta(x_t, t)$ on that velocity. By the same argument as
# denoising score matching (Lesson 15), the minimizer is the *marginal* velocity
# $u(x, t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]$, and the ODE $dx/dt = u(x, t)$ carries
# $\mathcal N(0, I)$ at $t = 1$ to the data at $t = 0$. It is a diffusion with
# $\alpha = 1 - t$, $\sigma = t$, so for a mixture $u$ is exact too:
# $u = \mathbb E[\varepsilon\mid x_t] - \mathbb E[x_0 \mid x_t]$ from Tweedie.
#
# ### Exercise: the straight path and its velocity

# %%
@exercise("straight_path")
def straight_path(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor):
    # TODO: return (x_t, velocity) for x_t = (1 − t) x0 + t eps; t is (B,).
    raise NotImplementedError


check("straight_path", straight_path)

# %% [markdown]
# First the exact velocity of the mixture, integrated with a few Euler steps (`flow_euler`):
# the samples land on the mixture.

# %%
def exact_velocity(x, t):
    t = t.to(x)[:, None].clamp(1e-4, 1 - 1e-4)
    alpha, sigma = 1 - t[:, 0], t[:, 0]
    return gm.eps(x, alpha=alpha, sigma=sigma) - gm.x0(x, alpha=alpha, sigma=sigma)


noise = torch.randn(2000, 2, generator=gen, dtype=torch.float64)
exact_samples = flow_euler(exact_velocity, noise, 50)
print(f"exact flow, 50 Euler steps: mean log p {gm.log_prob(exact_samples).mean():.3f} "
      f"(data: {gm.log_prob(gm.sample(2000, gen)).mean():.3f})")
assert gm.log_prob(exact_samples).mean() > gm.log_prob(gm.sample(2000, gen)).mean() - 0.2

# %% [markdown]
# Now learn it from samples of the two-moons set. `ToyFlow` is the same MLP as Lesson 15's,
# predicting a velocity; its `loss` is `flow_matching_loss`, trained by the shared loop.

# %%
steps = 150 if FAST else 3000
flow = ToyFlow()
result = train_toy(flow, "moons", steps=steps, progress=not FAST)
with torch.no_grad():
    start = torch.randn(1000 if FAST else 3000, 2, generator=gen)
    few = flow_euler(flow, start, 4)
    many = flow_euler(flow, start, 100)
data = sample_toy("moons", len(start), gen)
fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), sharex=True, sharey=True)
for ax, pts_, title in zip(axes, [data, few, many],
                           ["data", "flow, 4 Euler steps", "flow, 100 Euler steps"], strict=True):
    ax.scatter(*pts_.T, s=3)
    ax.set(title=title, aspect="equal", xlim=(-3, 3), ylim=(-2.5, 2.5))
plt.show()
print(f"{result.step} steps, final flow-matching loss {result.last('loss'):.3f}")
if not FAST:  # trained flows are nearly straight: 4 steps already land close to 100
    assert (few - many).norm(dim=1).median() < 0.3
assert math.isfinite(result.last("loss"))

# %% [markdown]
# ## Summary
#
# - The probability flow ODE $dx/dt = f x - \tfrac12 g^2 \nabla\log p_t$ has the SDE's
#   marginals; along it $d \log p_t/dt = -\nabla\cdot v$, which gives exact log-likelihoods
#   (exact trace in low dimension, Hutchinson's estimator in high). With the exact mixture score
#   we recovered $\log p_0$ to better than 0.01 nats per dimension.
# - For Gaussian data the ODE has a closed form: each eigen-direction keeps its standardized value.
# - Flow matching regresses on the straight path's velocity $\varepsilon - x_0$; the minimizer is
#   the marginal velocity, and its ODE samples the data in few steps.
#
# Next: **Lesson 18** starts the Stable Diffusion part with the UNet.
