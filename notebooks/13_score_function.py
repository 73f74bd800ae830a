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
# # Lesson 13 — The score function and the exact Gaussian-mixture score
#
# **Goal.** Running diffusion backwards needs one quantity: the **score** $\nabla_x \log p_t(x)$,
# the direction in which the noisy density grows fastest. You will compute it for a Gaussian and
# for a Gaussian mixture, at every noise level, prove your formula equal to automatic
# differentiation, draw score fields, and derive Tweedie's formula, which turns a score into a
# denoiser. Mixtures are our *ground truth*: later lessons measure learned scores, samplers and
# likelihoods against them.
#
# **Prerequisites.** Lesson 12 (the forward process $x_t = \alpha x_0 + \sigma \varepsilon$);
# the multivariate Gaussian density; softmax (Lesson 02).

# %%
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.data.toy2d import toy_mixture
from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.diffusion.sde import VPSDE
from fromscratch.diffusion.targets import KINDS, convert
from fromscratch.diffusion.toy import plot_score_field
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## 1. The score of a Gaussian
#
# The score is the gradient of the log density, $s(x) = \nabla_x \log p(x)$. It never needs
# the normalizing constant of $p$ (the log turns it into an additive constant, and the gradient
# removes it), which is why it is a convenient thing to learn. For $\mathcal N(\mu, \Sigma)$,
# $\log p(x) = -\tfrac12 (x - \mu)^\top \Sigma^{-1} (x - \mu) + \text{const}$, so
# $$ s(x) = -\Sigma^{-1}(x - \mu):$$
# a linear pull back toward the mean, stronger where the Gaussian is narrow.

# %%
mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
Sigma = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)
x = torch.randn(5, 2, generator=gen, dtype=torch.float64).requires_grad_(True)
log_p = torch.distributions.MultivariateNormal(mu, Sigma).log_prob(x)
(autograd_score,) = torch.autograd.grad(log_p.sum(), x)
by_hand = -(x.detach() - mu) @ torch.linalg.inv(Sigma)  # Σ is symmetric: row form of −Σ⁻¹(x − μ)
assert torch.allclose(by_hand, autograd_score)
print("Gaussian score = autograd ✓")

# %% [markdown]
# ## 2. The score of a mixture
#
# For $p(x) = \sum_k w_k \mathcal N_k(x)$ the gradient of the log of a sum is
# $$\nabla \log p(x) = \frac{\sum_k w_k \nabla \mathcal N_k(x)}{\sum_j w_j \mathcal N_j(x)} =
# \sum_k \underbrace{\frac{w_k \mathcal N_k(x)}{\sum_j w_j \mathcal N_j(x)}}_{r_k(x)}\;
# \nabla \log \mathcal N_k(x),$$
# using $\nabla \mathcal N_k = \mathcal N_k \nabla \log \mathcal N_k$. So the mixture's score is
# each component's Gaussian score, weighted by the **responsibility** $r_k(x)$ — the posterior
# probability that $x$ came from component $k$. The $r_k$ are a softmax of
# $\log w_k + \log \mathcal N_k(x)$; computing them that way never underflows, even far from
# every component.
#
# ### Exercise: the score of an isotropic mixture
# All components share the covariance $\mathrm{var}\cdot I$.

# %%
@exercise("mixture_score")
def mixture_score(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                  var: float) -> torch.Tensor:
    # TODO: log w_k − ‖x − μ_k‖² / (2 var) → softmax over k → Σ_k r_k (μ_k − x) / var.
    raise NotImplementedError


check("mixture_score", mixture_score)

# %% [markdown]
# The library's `GaussianMixture` does the same for full covariances (diagonalizing each
# $\Sigma_k$ once). Check it against your function, and against autograd through
# `torch.distributions` for a mixture with correlated components:

# %%
gm8 = toy_mixture("eight_gaussians")  # 8 Gaussians of std 0.15 on a circle of radius 2
pts = 3 * torch.randn(7, 2, generator=gen, dtype=torch.float64)
assert torch.allclose(gm8.score(pts), mixture_score(pts, gm8.weights, gm8.means, 0.15**2))

gm = toy_mixture("mixture")  # 3 unequal, correlated components
reference = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(probs=gm.weights),
    torch.distributions.MultivariateNormal(gm.means, covariance_matrix=gm.covs))
pts.requires_grad_(True)
(auto,) = torch.autograd.grad(reference.log_prob(pts).sum(), pts)
assert torch.allclose(gm.score(pts.detach()), auto, rtol=1e-10, atol=1e-12)
print("mixture score = autograd ✓")

# %% [markdown]
# ## 3. The score at every noise level
#
# Under the forward process each component stays Gaussian (Lesson 12):
# $$p_t(x) = \sum_k w_k\, \mathcal N\!\big(x;\ \alpha \mu_k,\ \alpha^2 \Sigma_k + \sigma^2 I\big),$$
# so the score of $p_t$ is the formula above with these means and covariances:
# `gm.score(x, t, sde)`. Watch the field change with $t$ under the VP SDE: at small $t$ it points
# sharply into each component; as $t$ grows the components blur into one and the field becomes
# the linear pull $-x$ of $\mathcal N(0, I)$.

# %%
sde = VPSDE()
times = [0.01, 0.1, 0.3, 1.0]
fig, axes = plt.subplots(1, len(times), figsize=(15, 4))
for ax, t in zip(axes, times, strict=True):
    marginal = gm.marginal(sde, t)
    grid = torch.linspace(-3, 3, 120, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    dens = marginal.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(120, 120)
    ax.contourf(xx, yy, dens, levels=20, cmap="Greys")
    plot_score_field(lambda x, tt: gm.to(torch.float32).score(x, tt, sde), t, ax=ax,
                     grid=15 if FAST else 21, color="C3")
    ax.set_title(f"VP, t = {t}: $p_t$ and $\\nabla \\log p_t$")
fig.tight_layout()
plt.show()

# %% [markdown]
# At $t = 1$ the score is almost exactly that of the prior, $-x$:

# %%
far = torch.randn(1000, 2, generator=gen, dtype=torch.float64)
print("max |score(x, 1) + x| =", (gm.score(far, 1.0, sde) + far).abs().max().item())
assert (gm.score(far, 1.0, sde) + far).abs().max() < 0.05

# %% [markdown]
# ## 4. Tweedie's formula: a score is a denoiser
#
# Given a noisy $x_t$, the best guess (in mean squared error) of the clean $x_0$ is the posterior
# mean $\mathbb E[x_0 \mid x_t]$. Tweedie's formula says it is read off the score:
# $$\mathbb E[x_0 \mid x_t] = \frac{x_t + \sigma^2 \nabla \log p_t(x_t)}{\alpha},
# \qquad \mathbb E[\varepsilon \mid x_t] = -\sigma\, \nabla \log p_t(x_t).$$
# *Derivation.* $p_t(x) = \int p(x_0)\, \mathcal N(x; \alpha x_0, \sigma^2 I)\, dx_0$, and
# $\nabla_x \mathcal N(x; \alpha x_0, \sigma^2 I) = \mathcal N \cdot (\alpha x_0 - x)/\sigma^2$.
# So $\nabla p_t(x) = \int p(x_0) \mathcal N \,(\alpha x_0 - x)/\sigma^2\, dx_0 = p_t(x)\,
# (\alpha \mathbb E[x_0 \mid x] - x)/\sigma^2$; divide by $p_t(x)$ and solve for
# $\mathbb E[x_0 \mid x]$. The second form follows from $x_t = \alpha x_0 + \sigma \varepsilon$.
#
# For one Gaussian $\mathcal N(\mu, s^2)$ in 1-D we know the posterior mean independently
# (a Gaussian conditioned on a noisy observation): $\mathbb E[x_0 \mid x_t] = \mu +
# \frac{\alpha s^2}{\alpha^2 s^2 + \sigma^2}(x_t - \alpha \mu)$. Tweedie agrees:

# %%
m0, s0 = 0.7, 0.4
one = GaussianMixture(torch.ones(1), torch.tensor([[m0]]), torch.tensor([s0**2])).to(torch.float64)
t = torch.tensor(0.2, dtype=torch.float64)
a, s = sde.alpha(t), sde.sigma(t)
xt = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
bayes = m0 + a * s0**2 / (a**2 * s0**2 + s**2) * (xt - a * m0)
assert torch.allclose(one.x0(xt, t, sde), bayes)
print("Tweedie = Bayes ✓")

# %% [markdown]
# The denoiser of the mixture pulls each noisy point toward the component it most likely came
# from. Draw noisy points at $t = 0.2$ and connect each to its $\mathbb E[x_0 \mid x_t]$:

# %%
x0 = gm.sample(300 if FAST else 1000, gen)
xt, _ = sde.perturb(x0, torch.full((len(x0),), 0.2, dtype=torch.float64), gen)
den = gm.x0(xt, 0.2, sde)
fig, ax = plt.subplots(figsize=(5.5, 5.5))
ax.scatter(*xt.T, s=4, color="C0", label="$x_t$ (t = 0.2)")
ax.scatter(*den.T, s=4, color="C3", label=r"$\mathbb{E}[x_0 \mid x_t]$")
for i in range(0, len(xt), 6):
    ax.plot([xt[i, 0], den[i, 0]], [xt[i, 1], den[i, 1]], color="grey", lw=0.4)
ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title="the optimal denoiser")
ax.legend()
plt.show()
# the denoiser beats the noisy point itself as a guess of x0 (alpha x_t is not even in range)
assert ((den - x0) ** 2).sum(1).mean() < ((xt / sde.alpha(torch.tensor(0.2)) - x0) ** 2).sum(1).mean()

# %% [markdown]
# ## 5. Four ways to say the same thing
#
# A network may output the score, the noise $\varepsilon$, the clean $x_0$, or the "velocity"
# $v = \alpha \varepsilon - \sigma x_0$. Given $x_t$, $\alpha$ and $\sigma$, any one determines
# the others (`fromscratch.diffusion.targets.convert`). Starting from the mixture's exact score,
# every round trip returns where it started:

# %%
xt = xt[:50]
exact = {"score": gm.score(xt, 0.2, sde)}
for kind in KINDS:
    exact[kind] = convert(exact["score"], "score", kind, xt, a, s)
    back = convert(exact[kind], kind, "score", xt, a, s)
    assert torch.allclose(back, exact["score"])
assert torch.allclose(exact["eps"], gm.eps(xt, 0.2, sde))
assert torch.allclose(exact["x0"], gm.x0(xt, 0.2, sde))
print("score ↔ eps ↔ x0 ↔ v round trips ✓")

# %% [markdown]
# ## Summary
#
# - The score $\nabla \log p$ needs no normalizing constant; for a Gaussian it is
#   $-\Sigma^{-1}(x - \mu)$, for a mixture the responsibility-weighted average of the
#   components' scores (a softmax keeps it stable).
# - Under any forward SDE a mixture stays a mixture, so its score is exact at every $t$:
#   `GaussianMixture.score(x, t, sde)`, proven equal to autograd.
# - Tweedie: $\mathbb E[x_0 \mid x_t] = (x_t + \sigma^2 \nabla \log p_t)/\alpha$ — a score *is*
#   a denoiser; score, $\varepsilon$, $x_0$ and $v$ predictions are interchangeable.
#
# Next: **Lesson 14** runs the process backwards with this score; **Lesson 15** learns the
# score from samples alone.
