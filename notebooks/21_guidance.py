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
# # Lesson 21 — Classifier-free guidance and the whole text-to-image pipeline
#
# **Goal.** A model trained to match $p(x \mid c)$ makes images that are only loosely about the
# prompt; classifier-free guidance makes them follow it, at a price in diversity. You derive
# guidance from Bayes' rule, then prove what it does on a case where every score is **exact**: a
# 2-D Gaussian mixture whose components are the classes. There the guided sampler with $w = 0$
# *is* the unconditional sampler and with $w = 1$ the conditional one (asserted), and the
# accuracy and the spread of the samples, measured for $w \in \{0, 1, 2, 4, 7\}$, show the trade.
# Then you run the whole pipeline — text → tokens → contextual vectors → UNet in latent space with
# guidance as one batched forward pass → sampler → VAE decoder — written out step by step on a
# tiny random model, proven equal to `fromscratch.stable_diffusion.pipeline.StableDiffusion`, and see how the
# same class loads the real Stable Diffusion v1.x.
#
# **Prerequisites.** Lesson 13 (the exact mixture score), Lesson 16 (samplers, DDIM), Lesson 19
# (cross-attention, text encoders, the guidance formula), Lesson 20 (the VAE and latents).
#
# **Notation.** $x_t = \alpha_t x_0 + \sigma_t \varepsilon$; $c$ the condition (a class, a
# prompt), $\varnothing$ the empty condition; $\varepsilon_c = \hat\varepsilon(x_t, t, c)$ and
# $\varepsilon_u = \hat\varepsilon(x_t, t, \varnothing)$; $w$ the guidance scale.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from fromscratch.diffusion import samplers
from fromscratch.diffusion.gmm import GaussianMixture
from fromscratch.diffusion.guidance import cfg_combine, from_diffusers_scale, guided
from fromscratch.diffusion.sde import DiscreteSchedule, linear_betas, scaled_linear_betas
from fromscratch.exercises import check, exercise
from fromscratch.stable_diffusion.pipeline import StableDiffusion
from fromscratch.stable_diffusion.text_encoder import (
    CLIPPromptEncoder,
    CLIPTextConfig,
    CLIPTextModel,
)
from fromscratch.stable_diffusion.unet import UNet, UNetConfig
from fromscratch.stable_diffusion.vae import AutoencoderKL, VAEConfig
from fromscratch.tokenizers.clip import CLIPTokenizer

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
N_PER_CLASS = 1000 if FAST else 10_000
STEPS = 25 if FAST else 50
SCALES = [0.0, 1.0, 2.0, 4.0, 7.0]
torch.manual_seed(0)

# %% [markdown]
# ## 1. Guidance from Bayes' rule
#
# Bayes' rule at every noise level, $p_t(x \mid c) = p_t(c \mid x)\, p_t(x) / p(c)$, and a
# gradient in $x$ (which $p(c)$ does not depend on):
#
# $$\nabla_x \log p_t(x \mid c) = \nabla_x \log p_t(x) + \nabla_x \log p_t(c \mid x).$$
#
# The conditional score is the unconditional one plus the gradient of a **classifier** — pushing
# $x$ toward where the class is more certain. *Classifier guidance* (Dhariwal & Nichol 2021)
# trains that classifier on noisy images and scales its gradient by $w$. *Classifier-free*
# guidance (Ho & Salimans 2022) needs no classifier: the same identity read backwards says one
# network that knows both $\nabla\log p_t(x\mid c)$ and $\nabla\log p_t(x)$ (trained with the
# empty prompt for ~10% of the examples) already holds the classifier's gradient, their
# difference. Scaling it by $w$:
#
# $$\nabla\log p_t(x) + w\,\nabla\log p_t(c\mid x) = (1 - w)\,\nabla\log p_t(x)
#   + w\,\nabla\log p_t(x\mid c),$$
#
# the score of $p_t(x)\,p_t(c\mid x)^w$ (up to normalization). With
# $\varepsilon = -\sigma_t \nabla\log p_t$ (lesson 13) the same line in the network's own terms:
#
# $$\tilde\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u).$$
#
# $w = 0$ is the unconditional model, $w = 1$ the conditional one, $w > 1$ extrapolates beyond
# it. **Conventions differ**, and a number copied from one place to another means a different
# thing:
#
# | who | formula | no guidance | unconditional |
# |---|---|---|---|
# | ours (`guidance.cfg_combine`) | $\varepsilon_u + w(\varepsilon_c - \varepsilon_u)$ | $w = 1$ | $w = 0$ |
# | diffusers' `guidance_scale` $g$ | the same for $g > 1$; for $g \le 1$ guidance is *off* and the conditional model runs alone | $g \le 1$ | cannot be asked |
# | Ho & Salimans' paper $w'$ | $(1 + w')\varepsilon_c - w'\varepsilon_u$ | $w' = 0$ | $w' = -1$ |
#
# So $w = g$ for $g > 1$ (`from_diffusers_scale`), and $w = w' + 1$:

# %%
u, c = torch.randn(5), torch.randn(5)
for g in [7.5, 1.0, 0.5]:
    print(f"diffusers' guidance_scale {g} -> our w = {from_diffusers_scale(g)}")
assert from_diffusers_scale(7.5) == 7.5 and from_diffusers_scale(0.5) == 1.0
w_paper = 3.0  # Ho & Salimans' w' = 3 is our w = 4
assert torch.allclose((1 + w_paper) * c - w_paper * u, cfg_combine(u, c, w_paper + 1))

# %% [markdown]
# ## 2. An exact case: a mixture whose components are the classes
#
# Three classes in 2-D, each a Gaussian, overlapping enough that a point between them could be
# either: $p_0(x) = \sum_k \pi_k \mathcal N(x; \mu_k, \Sigma_k)$, class $k$ = component $k$.
# Everything is exact at every noise level (lesson 13): the unconditional score is the
# mixture's, the class-conditional score is the score of component $k$ alone (itself a
# one-component mixture), and the posterior $p_t(k \mid x)$ is the mixture's responsibility
# $r_k(x)$. So any error we see below is guidance's or the sampler's, never a network's.

# %%
weights = torch.tensor([0.4, 0.35, 0.25], dtype=torch.float64)
means = torch.tensor([[-0.7, -0.2], [0.7, -0.2], [0.0, 0.85]], dtype=torch.float64)
covs = torch.tensor([[[0.55, 0.15], [0.15, 0.45]], [[0.50, -0.10], [-0.10, 0.55]],
                     [[0.60, 0.00], [0.00, 0.35]]], dtype=torch.float64)
mixture = GaussianMixture(weights, means, covs)
classes = [GaussianMixture(torch.ones(1, dtype=torch.float64), means[k:k + 1], covs[k:k + 1])
           for k in range(3)]
schedule = DiscreteSchedule(linear_betas(1000), dtype=torch.float64)

# %% [markdown]
# Bayes' identity checked numerically at a middle noise level: the conditional score equals the
# unconditional score plus the gradient of $\log r_k(x)$, taken by autograd.

# %%
t = torch.full((6,), 400)
alpha, sigma = schedule.alpha(t), schedule.sigma(t)
x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
log_posterior = mixture.responsibilities(x, alpha=alpha, sigma=sigma).log()[:, 2]  # log p_t(2|x)
classifier_gradient, = torch.autograd.grad(log_posterior.sum(), x)
with torch.no_grad():
    lhs = classes[2].score(x, alpha=alpha, sigma=sigma)
    rhs = mixture.score(x, alpha=alpha, sigma=sigma) + classifier_gradient
print("max |∇log p(x|c) − (∇log p(x) + ∇log p(c|x))| =", (lhs - rhs).abs().max().item())
assert torch.allclose(lhs, rhs, atol=1e-10)

# %% [markdown]
# The exact "network": the optimal noise prediction $\varepsilon = -\sigma\nabla\log p_t$ with a
# context. The context here is a class index per sample, −1 for the empty condition; in Stable
# Diffusion it is the prompt's token vectors (section 4). It takes a whole batch, so a guided
# sampler can ask it for $\varepsilon_u$ and $\varepsilon_c$ in one call.

# %%
def exact_eps(x, t, labels):
    """ε̂(x_t, t, c): the mixture's for label −1, class k's for label k. x (B, 2), t (B,)."""
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    eps = mixture.eps(x, alpha=alpha, sigma=sigma)  # (B, 2)
    for k, component in enumerate(classes):
        rows = labels == k
        if rows.any():
            eps[rows] = component.eps(x[rows], alpha=alpha[rows], sigma=sigma[rows])
    return eps


# %% [markdown]
# ### Exercise: guidance in one forward pass
#
# A UNet forward pass is the expensive part of a step, and a GPU does a batch of $2B$ in about
# the time of $B$. So the guided prediction stacks the batch twice, $[x; x]$ with the contexts
# $[\varnothing; c]$ (diffusers' order), calls the network **once**, and splits the answer.

# %%
@exercise("guided_eps")
def guided_eps(model, x, t, cond, uncond, w):
    # TODO: one model call on torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond]);
    #       split with .chunk(2) into eps_uncond, eps_cond; return eps_u + w (eps_c − eps_u)
    raise NotImplementedError


check("guided_eps", guided_eps)

# %% [markdown]
# ## 3. Guided sampling, measured
#
# DPM-Solver++(2M) (lesson 16; 25 to 50 steps, "trailing" timesteps) with the guided
# prediction, from the same starting noise for every $w$; each sample asks for one class (a
# third of the batch each). Three checks first: $w = 0$ gives
# exactly the unconditional sampler's samples, $w = 1$ exactly the conditional sampler's, and
# your batched `guided_eps` equals the library's `guidance.guided` (which, for $w = 0$ and
# $w = 1$, skips the half it does not need).

# %%
requested = torch.arange(3).repeat_interleave(N_PER_CLASS)  # (N,) the class each sample asks for
empty = torch.full_like(requested, -1)
x_T = torch.randn(len(requested), 2, generator=torch.Generator().manual_seed(1),
                  dtype=torch.float64)


def sample(w):
    def model(x, t):
        return guided_eps(exact_eps, x, t, requested, empty, w)
    return solve(model)


def solve(model):
    return samplers.dpm_solver_2m(model, x_T, schedule, STEPS, spacing="trailing")


samples = {w: sample(w) for w in SCALES}
unconditional = solve(lambda x, t: exact_eps(x, t, empty))
conditional = solve(lambda x, t: exact_eps(x, t, requested))
assert torch.equal(samples[0.0], unconditional)
assert torch.allclose(samples[1.0], conditional, atol=1e-10)
library = solve(guided(exact_eps, requested, empty, 4.0))
assert torch.allclose(samples[4.0], library, atol=1e-10)
print("w = 0: the unconditional sampler; w = 1: the conditional sampler; "
      "guided_eps = guidance.guided")

# %% [markdown]
# **Accuracy**: the fraction of samples whose exact posterior class $\arg\max_k p_0(k\mid x)$
# is the class they asked for. **Spread**: the root-mean-square distance of a class's samples
# from their own mean, $\sqrt{\operatorname{tr}\operatorname{Cov}}$ — the diversity within the
# class (the class's true spread is $\sqrt{\operatorname{tr}\Sigma_k}$). **Typicality**: the
# mean log-density $\log p_0(x)$ of the samples under the data's distribution (for data drawn
# from it, its negative entropy).

# %%
def accuracy(x):
    return (mixture.responsibilities(x).argmax(dim=1) == requested).double().mean().item()


def spread(x):
    per_class = [x[requested == k] for k in range(3)]
    return float(np.mean([(s - s.mean(0)).pow(2).sum(1).mean().sqrt().item() for s in per_class]))


true_spread = float(np.mean([covs[k].trace().sqrt().item() for k in range(3)]))
data_log_p = mixture.log_prob(mixture.sample(100_000, torch.Generator().manual_seed(2))).mean()
table = {w: (accuracy(x), spread(x), mixture.log_prob(x).mean().item())
         for w, x in samples.items()}
print(f"the data: class spread {true_spread:.3f}, mean log p0(x) {data_log_p:.3f}")
print(" w | accuracy | spread | mean log p0(x)")
for w, (acc, s, log_p0) in table.items():
    print(f"{w:2.0f} |   {acc:.3f}  | {s:.3f}  | {log_p0:.3f}")
accuracies = [acc for acc, _, _ in table.values()]
spreads = [s for _, s, _ in table.values()]
assert accuracies[0] < accuracies[1] < accuracies[2] <= accuracies[3] <= accuracies[4]
assert all(a > b for a, b in zip(spreads[1:-1], spreads[2:], strict=True))  # less diverse
assert abs(table[1.0][1] - true_spread) < 0.05  # w = 1 keeps the class's own spread
assert abs(table[1.0][2] - data_log_p) < 0.05  # ... and is as typical as the data
assert table[7.0][2] < data_log_p - 1  # strong guidance leaves the data's bulk

# %%
fig, axes = plt.subplots(1, len(SCALES) + 1, figsize=(19, 3.6))
colors = np.array(["tab:blue", "tab:orange", "tab:green"])
grid = torch.linspace(-3.5, 3.5, 200, dtype=torch.float64)
gx, gy = torch.meshgrid(grid, grid, indexing="xy")
density = mixture.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(200, 200)
show = torch.cat([torch.arange(k * N_PER_CLASS, k * N_PER_CLASS + 300) for k in range(3)])
for ax, w in zip(axes, SCALES, strict=False):
    ax.contour(gx, gy, density, levels=8, colors="0.7", linewidths=0.6)
    ax.scatter(*samples[w][show].T, s=2, c=colors[requested[show]])
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal",
           title=f"w = {w:g}: accuracy {table[w][0]:.2f}")
    ax.set_xticks([])
    ax.set_yticks([])
ax = axes[-1]
ax.plot(SCALES, accuracies, "o-", label="accuracy")
ax.plot(SCALES, np.array(spreads) / true_spread, "s-", label="spread / data's spread")
ax.axhline(1.0, color="0.8", lw=0.8)
ax.set(xlabel="guidance scale w", title="the trade-off")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Colour = the class asked for. With $w = 0$ the request is ignored (accuracy ≈ the class's
# share of the data); $w = 1$ samples each class exactly, overlaps included, so some samples
# land where another class is more likely; larger $w$ pushes them out of the overlaps, to the
# far side of their class and beyond, and squeezes them together: accuracy up, diversity down,
# and, by $w = 7$, samples in the data's thin outskirts (the mean $\log p_0$ column): images that
# are unmistakably "of the class" but exaggerated — the over-saturated look of strongly guided
# Stable Diffusion images. Its default $w = 7.5$ lives at the far right of this curve.
#
# **What guidance does not do.** At each $t$ the guided score is the score of
# $p_t(x)\,p_t(c\mid x)^w$, but these tilted densities, one per $t$, are not the noisy versions
# of one distribution: guided sampling does **not** sample $p_0(x)\,p_0(c\mid x)^w$ (Bradley &
# Nakkiran 2024; Chidambaram et al. 2024). In 2-D we can compute that target on a fine grid and
# compare its accuracy and spread with the sampler's:

# %%
fine = torch.linspace(-6, 6, 500, dtype=torch.float64)
fx, fy = torch.meshgrid(fine, fine, indexing="xy")
points = torch.stack([fx.flatten(), fy.flatten()], 1)  # (250000, 2)
log_p, log_r = mixture.log_prob(points), mixture.responsibilities(points).log()
winner = log_r.argmax(1)


def tilted_target(w, k):
    """Accuracy and spread of p0(x) p0(k|x)^w, normalized on the grid."""
    p = torch.softmax(log_p + w * log_r[:, k], dim=0)  # (250000,) probabilities of grid cells
    mean = p @ points
    return float(p[winner == k].sum()), float((p @ (points - mean).pow(2).sum(1)).sqrt())


print(" w | accuracy: sampler  target | spread: sampler  target")
target = {}
for w in SCALES[1:]:
    target[w] = np.mean([tilted_target(w, k) for k in range(3)], axis=0)  # classes equally often
    print(f"{w:2.0f} |           {table[w][0]:.3f}   {target[w][0]:.3f} |"
          f"         {table[w][1]:.3f}   {target[w][1]:.3f}")
assert abs(target[1.0][0] - table[1.0][0]) < 0.03  # w = 1: both are the classes themselves
assert abs(target[1.0][1] - true_spread) < 1e-3
assert all(table[w][1] < target[w][1] for w in SCALES[2:])  # guided samples: narrower

# %% [markdown]
# At $w = 1$ the two agree (both are the classes themselves). Beyond it, the guided sampler's
# samples are **narrower** than the tilted target's: the extra push toward the class is applied
# at every noise level, and the pushes compound.
#
# ## 4. The whole text-to-image pipeline, written out
#
# ```
# prompt → tokenizer → ids → text encoder → c (B, T, D) ─┐
#                      "" → ... → ∅ (B, T, D) ───────────┤
# z_T ~ N(0, I) (B, 4, h, w) → [ UNet on [z; z], [t; t], [∅; c] → ε̃ → DDIM step ] × steps
#                                            → z_0 → VAE decoder(z_0 / s) → image
# ```
#
# Every piece is one of ours, so a tiny pipeline with random weights can be built in a few
# lines: a character-level CLIP tokenizer (each letter a token), a 2-layer CLIP text
# transformer, a 2-level UNet with cross-attention, a 2-level VAE, Stable Diffusion's noise
# schedule. Random weights make noise-like images, but every shape and every step is that of
# Stable Diffusion v1.x.

# %%
letters = [chr(i) for i in range(ord("a"), ord("z") + 1)]
vocab = {s: i for i, s in enumerate(letters + [s + "</w>" for s in letters])}
vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
tokenizer = CLIPTokenizer(vocab, merges=[], model_max_length=16)  # SD v1: 49,408 tokens, 77 long
torch.manual_seed(0)
text_model = CLIPTextModel(CLIPTextConfig(
    vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, max_position_embeddings=16, eos_token_id=vocab["<|endoftext|>"]))
unet = UNet(UNetConfig(in_channels=4, out_channels=4, block_out_channels=(32, 64),
                       attention_levels=(True, True), layers_per_block=1, num_attention_heads=4,
                       cross_attention_dim=32, norm_num_groups=8, sample_size=8))
vae = AutoencoderKL(VAEConfig(in_channels=3, out_channels=3, block_out_channels=(16, 32),
                              layers_per_block=1, latent_channels=4, norm_num_groups=8))
schedule_sd = DiscreteSchedule(scaled_linear_betas(1000))  # Stable Diffusion's β_t
pipe = StableDiffusion(unet, vae, CLIPPromptEncoder(text_model, tokenizer), schedule_sd)

# %% [markdown]
# The loop, by hand. Text first: every prompt and the empty prompt are padded to the same length
# (the end-of-text token repeated), so their vectors stack into one batch; then DDIM steps whose
# prediction is your `guided_eps`, and the decoder at the end.

# %%
prompts = ["a red circle", "two blue squares"]
w, steps = 7.5, 10 if FAST else 25
batch = tokenizer(prompts)  # input_ids (B, 16)
print("tokens of", repr(prompts[0]), "->", batch["input_ids"][0].tolist())
z_T = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))

with torch.no_grad():
    cond = text_model(batch["input_ids"])[0]  # contextual vectors (B, 16, 32)
    uncond = text_model(tokenizer([""] * len(prompts))["input_ids"])[0]  # the empty prompt's
    z = z_T
    points = samplers.time_grid(schedule_sd, steps)  # (t, α_t, σ_t), noisiest first, then clean
    for (t, a_t, s_t), (_, a_s, s_s) in zip(points[:-1], points[1:], strict=True):
        eps = guided_eps(unet, z, torch.full((len(z),), t), cond, uncond, w)  # ONE UNet call
        z0 = (z - s_t * eps) / a_t  # x̂0 from x_t = α x0 + σ ε
        z = a_s * z0 + s_s * eps  # DDIM (η = 0)
    images = (vae.decode(z / vae.config.scaling_factor) / 2 + 0.5).clamp(0, 1)  # [-1,1] → [0,1]
    library_images = pipe(prompts, steps=steps, guidance=w, sampler="ddim", latents=z_T)
print("images", tuple(images.shape), "max difference from StableDiffusion:",
      (images - library_images).abs().max().item())
assert torch.allclose(images, library_images, atol=1e-5)

# %% [markdown]
# Where the time goes, for this tiny pipeline (in Stable Diffusion the UNet dominates even more:
# 860M parameters, 50 steps × a batch of 2B):

# %%
def seconds(fn, repeats=3):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


with torch.no_grad():
    t_text = seconds(lambda: text_model(batch["input_ids"]))
    t_unet = seconds(lambda: unet(torch.cat([z, z]), torch.full((4,), 500), torch.cat([uncond,
                                                                                      cond])))
    t_vae = seconds(lambda: vae.decode(z))
print(f"text encoder {1e3 * t_text:.1f} ms once; UNet {1e3 * t_unet:.1f} ms × {steps} steps; "
      f"VAE decoder {1e3 * t_vae:.1f} ms once (this machine, noisy)")

fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
for ax, image, prompt in zip(axes, images, prompts, strict=True):
    ax.imshow(image.permute(1, 2, 0))
    ax.set_title(f'"{prompt}"', fontsize=9)
    ax.axis("off")
plt.suptitle("random weights: the right shapes, no meaning yet")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Real Stable Diffusion weights
#
# The same class reads a diffusers pipeline folder (unet/, vae/, text_encoder/, tokenizer/,
# scheduler/), or a Hugging Face Hub name that it fetches once (about 2.7 GB in float16) into
# the Hugging Face cache. It runs unchanged; on a CPU one 512×512 image takes minutes, so this
# cell is shown, not run:
#
# ```python
# import torch
# from fromscratch.stable_diffusion.pipeline import StableDiffusion
#
# pipe = StableDiffusion.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5")
# pipe.to("cuda", torch.float16)
# images = pipe(["a watercolor painting of a fox in the snow"], steps=30, guidance=7.5,
#               sampler="dpm++", generator=torch.Generator("cuda").manual_seed(0))
# # images: (1, 3, 512, 512) in [0, 1]; latents (1, 4, 64, 64); CLIP context (1, 77, 768)
# ```
#
# On the same weights, prompts and starting latents our images equal those of diffusers'
# `StableDiffusionPipeline` to 1e-3 (tests/equivalence/test_pipeline_diffusers.py, on a tiny
# pipeline saved by diffusers). `guidance=7.5` is diffusers' `guidance_scale=7.5`; for
# `guidance_scale ≤ 1`, diffusers' "off", use our `guidance=1`.
#
# ## Summary
#
# - Bayes: $\nabla\log p_t(x\mid c) = \nabla\log p_t(x) + \nabla\log p_t(c\mid x)$; guidance
#   scales the implicit classifier's term by $w$:
#   $\tilde\varepsilon = \varepsilon_u + w(\varepsilon_c - \varepsilon_u)$. Ours: $w = 0$
#   unconditional, $w = 1$ conditional; diffusers' $g > 1$ is our $w$; Ho & Salimans' $w'$ is
#   $w - 1$.
# - On exact scores, accuracy rises and within-class spread falls as $w$ grows (the table
#   above): guidance trades diversity for fidelity, and does not sample $p_0(x)p_0(c\mid x)^w$.
# - The pipeline: tokenizer → contextual text vectors → UNet in latent space, guided with one
#   batched forward pass on $[\varnothing; c]$ → sampler → VAE decoder; written out here and
#   equal to `StableDiffusion`, which loads real SD v1.x weights with `from_pretrained`.
