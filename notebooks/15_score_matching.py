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
# # Lesson 15 — Learning the score: denoising score matching
#
# **Goal.** In Lesson 13 the score was known because the data was a Gaussian mixture. For real
# data it is not. Here you derive **denoising score matching** — regress a network on the
# noise that was added — from the score matching objective we would *like* to minimize, check
# the key identity numerically with the exact mixture score, train a small MLP on 2-D data with
# the library's training loop, sample from it, and measure its error against the exact score at
# every noise level.
#
# **Prerequisites.** Lessons 12–13 (forward process, score, Tweedie); Lesson 04 (training loop).

# %%
import os

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from fromscratch.data.toy2d import sample_toy, toy_mixture
from fromscratch.diffusion.losses import dsm_loss
from fromscratch.diffusion.samplers import euler_maruyama
from fromscratch.diffusion.sde import VPSDE
from fromscratch.diffusion.toy import (
    ToyDiffusion,
    plot_score_error,
    score_error_vs_time,
    train_toy,
)
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
sde = VPSDE()
gm = toy_mixture("mixture")  # the data, with its exact score for reference

# %% [markdown]
# ## 1. From explicit to denoising score matching
#
# We want $s_\theta(x, t) \approx \nabla \log p_t(x)$. The natural objective, **explicit score
# matching**, at one noise level:
# $$J_{\mathrm{ESM}}(\theta) = \mathbb E_{x_t \sim p_t} \big\| s_\theta(x_t) - \nabla \log
# p_t(x_t) \big\|^2 ,$$
# is useless as it stands: it contains the unknown $\nabla \log p_t$. Vincent (2011) noticed
# that the forward process hands us a *conditional* score that we do know,
# $\nabla_{x_t} \log p(x_t \mid x_0) = -(x_t - \alpha x_0)/\sigma^2 = -\varepsilon/\sigma$, and
# that regressing on it is just as good:
# $$J_{\mathrm{DSM}}(\theta) = \mathbb E_{x_0, \varepsilon} \big\| s_\theta(x_t) -
# \nabla \log p(x_t \mid x_0)\big\|^2 = J_{\mathrm{ESM}}(\theta) + C, \qquad C \text{ free of }
# \theta .$$
# *Derivation.* Expand both squares. The $\|s_\theta\|^2$ terms are equal (both average over the
# same $x_t$), and the $\|\text{target}\|^2$ terms do not involve $\theta$. What remains are the
# cross terms; they are equal because
# $$\mathbb E_{p_t}\!\big[s_\theta^\top \nabla \log p_t\big] = \int s_\theta^\top \nabla p_t\,dx
# = \int s_\theta^\top \!\! \int p(x_0) \nabla_x p(x \mid x_0)\, dx_0\, dx =
# \mathbb E_{x_0, x_t}\!\big[s_\theta^\top \nabla \log p(x_t \mid x_0)\big],$$
# using $p_t \nabla \log p_t = \nabla p_t$, $p_t(x) = \int p(x_0) p(x \mid x_0) dx_0$, and the
# same trick backwards. So the minimizer of DSM is the true score: on average over the $x_0$
# that could have produced $x_t$, the noise direction *is* the score (Tweedie again).
#
# Check it: for three candidate score functions, DSM − ESM comes out as the same constant.

# %%
n = 20000 if FAST else 200000
t = torch.full((n,), 0.2, dtype=torch.float64)
x0 = gm.sample(n, gen)
xt, eps = sde.perturb(x0, t, gen)
sigma = sde.sigma(t)[:, None]
exact = gm.score(xt, t, sde)
candidates = {"exact score": exact, "0.8 × exact": 0.8 * exact,
              "exact + (1, −0.5)": exact + torch.tensor([1.0, -0.5], dtype=torch.float64)}
for name, s in candidates.items():
    dsm = ((s + eps / sigma) ** 2).sum(1).mean().item()
    esm = ((s - exact) ** 2).sum(1).mean().item()
    print(f"{name:18s}  DSM {dsm:8.3f}   ESM {esm:7.3f}   DSM − ESM {dsm - esm:7.3f}")
gaps = [((s + eps / sigma) ** 2 - (s - exact) ** 2).sum(1) for s in candidates.values()]
for gap in gaps[1:]:  # equal constants, up to Monte Carlo error
    diff = gap - gaps[0]
    assert abs(diff.mean()) < 5 * diff.std() / n**0.5

# %% [markdown]
# ## 2. Weighting the noise levels
#
# One network serves all $t$, so we average over $t \sim U[t_{\min}, 1]$ with a weight
# $\lambda(t)$:
# $$\mathcal L(\theta) = \mathbb E_t\, \lambda(t)\, \mathbb E_{x_0, \varepsilon} \big\| s_\theta(x_t, t)
# + \varepsilon/\sigma(t) \big\|^2 .$$
# The target $\varepsilon/\sigma$ explodes as $\sigma \to 0$; $\lambda = \sigma^2$ evens this out,
# and then $\lambda \|s_\theta + \varepsilon/\sigma\|^2 = \|\sigma s_\theta + \varepsilon\|^2$: if
# the network outputs $\hat\varepsilon = -\sigma s_\theta$, the loss is the plain MSE
# $\|\hat\varepsilon - \varepsilon\|^2$ of DDPM. Predicting $x_0$ or $v$ with a plain MSE is DSM
# with other weights ($\sigma^4/\alpha^2$ and $\sigma^2(\alpha^2 + \sigma^2)^2/\alpha^2$;
# `fromscratch.diffusion.losses`); $\lambda = g(t)^2$ makes the loss a bound on the negative
# log-likelihood (Song et al. 2021).
#
# ### Exercise: the denoising score matching loss with $\lambda = \sigma^2$

# %%
@exercise("dsm_loss")
def my_dsm_loss(score: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    # TODO: mean over all elements of sigma² ‖score − (−eps/sigma)‖² (sigma is (B,)).
    raise NotImplementedError


check("dsm_loss", my_dsm_loss)

# %% [markdown]
# The library's `dsm_loss` with `weighting="sigma2"` computes the same number, and a network
# predicting $\varepsilon$ with a plain MSE gives it too:

# %%
t_b = 0.05 + 0.9 * torch.rand(256, generator=gen, dtype=torch.float64)
x0_b = gm.sample(256, gen)


def exact_eps_model(x, tt):
    return gm.eps(x, tt, sde)


ours = dsm_loss(exact_eps_model, "eps", x0_b, sde, t=t_b, generator=torch.Generator().manual_seed(1))
weighted = dsm_loss(exact_eps_model, "eps", x0_b, sde, t=t_b, weighting="sigma2",
                    generator=torch.Generator().manual_seed(1))
xt_b, eps_b = sde.perturb(x0_b, t_b, torch.Generator().manual_seed(1))
mine = my_dsm_loss(gm.score(xt_b, t_b, sde), eps_b, sde.sigma(t_b))
assert torch.allclose(ours, weighted) and torch.allclose(ours, mine)
print(f"DSM loss of the exact score: {ours.item():.4f} (not 0: the noise is not predictable)")

# %% [markdown]
# ## 3. Training an MLP score network
#
# `ToyDiffusion` is a 3-layer MLP that takes $x_t$ and the noise level (Fourier features of
# $\log(\sigma/\alpha)$) and predicts $\varepsilon$. Its `loss(batch)` is `dsm_loss`, so the
# library's one training loop `fromscratch.training.loop.train` trains it (`train_toy` draws fresh
# batches of the toy set and keeps an exponential moving average of the weights).

# %%
steps = 120 if FAST else 3000
model = ToyDiffusion(sde, prediction="eps")
result = train_toy(model, "mixture", steps=steps, progress=not FAST)
history = [r for r in result.history if "loss" in r]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot([r["step"] for r in history], [r["loss"] for r in history])
ax.set(xlabel="step", ylabel="ε-MSE", title="training loss")
plt.show()
print(f"{result.step} steps in {result.seconds:.0f} s, final loss {result.last('loss'):.3f} "
      f"(the exact score's: {ours.item():.3f})")

# %% [markdown]
# Sampling runs the reverse SDE with the learned score (Euler–Maruyama, Lesson 14):

# %%
n_samples = 500 if FAST else 3000
x_T = sde.prior_sample((n_samples, 2), gen)
with torch.no_grad():
    samples = euler_maruyama(model, x_T, sde, 100 if FAST else 500, prediction="eps",
                             generator=gen)
data = sample_toy("mixture", n_samples, gen)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
axes[0].scatter(*data.T, s=3)
axes[0].set_title("data")
axes[1].scatter(*samples.T, s=3, color="C1")
axes[1].set_title(f"samples after {result.step} training steps")
for ax in axes:
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
plt.show()
log_p = gm.log_prob(samples.double()).mean().item()
print(f"mean log p(samples) under the true mixture: {log_p:.2f} "
      f"(data: {gm.log_prob(data.double()).mean().item():.2f})")
if not FAST:
    assert log_p > gm.log_prob(data.double()).mean().item() - 0.5

# %% [markdown]
# ## 4. How good is the learned score, noise level by noise level?
#
# Because the data is a mixture, we can draw $x_t \sim p_t$ exactly and compare
# $s_\theta(x_t, t)$ with $\nabla \log p_t(x_t)$ (`score_error_vs_time`). Two views: the error
# in noise units, $\sigma^2 \|s_\theta - \nabla\log p_t\|^2/D$ (what the $\varepsilon$-loss
# sees), and the relative error $\|s_\theta - \nabla \log p_t\|^2 / \|\nabla \log p_t\|^2$.

# %%
times = torch.logspace(-3, 0, 7 if FAST else 13)
curve = score_error_vs_time(model.score, gm, sde, times, n=1000 if FAST else 4000)
for tt, e, r in zip(curve["t"], curve["eps_mse"], curve["relative"], strict=True):
    print(f"t = {tt:.4f}   σ²-weighted error {e:.2e}   relative error {r:.2e}")
display(plot_score_error({"ε-prediction MLP": curve}))  # a matplotlib Figure

# %% [markdown]
# The pattern (the figure in `docs/img/score_error_vs_t.png` compares ε-, $x_0$- and
# $v$-prediction after 3000 steps): at large $t$ the score is nearly the linear $-x$ and is
# learned almost perfectly. At small $t$ the error *in noise units* stays small, but the score
# itself is huge ($\sim 1/\sigma$) and a small error in $\hat\varepsilon$ becomes a large one in
# $s = -\hat\varepsilon/\sigma$: the relative error grows as $t \to 0$. That is one reason
# samplers stop at $t_{\min} > 0$, and why EDM weights the loss and preconditions the network
# per noise level.
#
# ## Summary
#
# - Explicit score matching needs the unknown score; denoising score matching regresses on the
#   known conditional score $-\varepsilon/\sigma$ and differs from it by a constant, so both
#   have the true score as minimizer (checked numerically above).
# - With $\lambda = \sigma^2$ DSM is DDPM's $\varepsilon$-MSE; $x_0$, $v$ and likelihood
#   weightings are other $\lambda(t)$.
# - A small MLP trained with the shared loop learns the 2-D score well at moderate noise; its
#   relative error grows as $t \to 0$.
#
# Next: **Lesson 16** compares samplers; **Lesson 17** computes likelihoods and trains a flow.
