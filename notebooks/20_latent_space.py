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
# # Lesson 20 — Latent space: the VAE, and why diffusion there is cheaper
#
# **Goal.** Stable Diffusion does not denoise pixels: it denoises a small grid of **latents** made
# by an autoencoder, and decodes once at the end. You derive the variational autoencoder (VAE)
# of `fromscratch.stable_diffusion.vae` in the open — an encoder to a mean and a log-variance, the
# reparameterisation trick, the KL term of the ELBO, checked against a Monte-Carlo estimate and
# against the library — train a small one on MNIST, look at its latents, compute the scaling
# factor that gives them unit variance, and **measure** what the latent space saves: the FLOPs
# and time of one UNet step on 28×28 pixels and on 4×8×8 latents, and the cost of a whole sample.
#
# **Prerequisites.** Lesson 12 (the forward process $x_t = \alpha_t x_0 + \sigma_t\varepsilon$),
# Lesson 16 (samplers: a sample costs one network call per step), Lesson 18 (the UNet).
#
# **Notation.** An image $x$, its latent $z$; the encoder's Gaussian
# $q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$, the prior
# $p(z) = \mathcal N(0, I)$, the decoder $D(z)$; $\ell = \log\sigma^2$ (what the network
# outputs), $\varepsilon \sim \mathcal N(0, I)$.

# %%
import os
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fromscratch.data.images import ImageBatches, mnist_5k_split
from fromscratch.diffusion.sde import DiscreteSchedule, scaled_linear_betas
from fromscratch.exercises import check, exercise
from fromscratch.stable_diffusion.unet import UNet, UNetConfig
from fromscratch.stable_diffusion.vae import AutoencoderKL, VAEConfig
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. From an autoencoder to a VAE: the ELBO
#
# A plain autoencoder squeezes $x$ through a bottleneck $z = E(x)$ and back, $\hat x = D(z)$;
# nothing says what the space of $z$ looks like between the training points. A VAE (Kingma &
# Welling 2014) makes $z$ random and asks for a model of the data,
# $p(x) = \int p(x\mid z)\,p(z)\,dz$. That integral is out of reach, but for any distribution
# $q(z\mid x)$, Jensen's inequality gives a lower bound, the **ELBO**:
#
# $$\log p(x) = \log \mathbb E_{q}\Big[\frac{p(x\mid z)\,p(z)}{q(z\mid x)}\Big]
#   \;\ge\; \underbrace{\mathbb E_{q}\big[\log p(x\mid z)\big]}_{\text{reconstruction}}
#   \;-\; \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{stay near the prior}} .$$
#
# With a Gaussian decoder $p(x\mid z) = \mathcal N(D(z), s^2 I)$ the first term is
# $-\lVert x - D(z)\rVert^2 / 2s^2$ plus a constant: a squared error. So training maximizes
#
# $$-\,\mathrm{MSE}(x, D(z)) \;-\; \beta\,\mathrm{KL}(q(z\mid x)\,\|\,\mathcal N(0, I)),
#   \qquad z \sim q(z\mid x),$$
#
# where $\beta$ stands for the decoder's noise level. Stable Diffusion's VAE uses a *tiny*
# $\beta$ ($10^{-6}$, with perceptual and adversarial losses for sharpness): its latent space
# only has to be smooth and well scaled, because the diffusion model, not the prior, will model
# $p(z)$.
#
# ## 2. The KL term, written out
#
# For $q = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and $p = \mathcal N(0, I)$, per
# coordinate,
# $\log q(z) = -\tfrac12\big[\log 2\pi + \log\sigma^2 + (z-\mu)^2/\sigma^2\big]$ and
# $\log p(z) = -\tfrac12\big[\log 2\pi + z^2\big]$. Under $q$,
# $\mathbb E[(z-\mu)^2/\sigma^2] = 1$ and $\mathbb E[z^2] = \mu^2 + \sigma^2$, so
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p]
#   = \tfrac12 \sum_i \big(\mu_i^2 + \sigma_i^2 - 1 - \log\sigma_i^2\big),$$
#
# zero exactly when $\mu = 0$ and $\sigma = 1$. The network outputs $\ell = \log\sigma^2$, which
# can be any real number (a variance could not be negative).
#
# ### Exercise: the KL of a diagonal Gaussian from N(0, I)

# %%
@exercise("gaussian_kl")
def gaussian_kl(mean, logvar):
    # TODO: ½ Σ (μ² + exp(logvar) − 1 − logvar), summed over every axis but the batch: (B,)
    raise NotImplementedError


check("gaussian_kl", gaussian_kl)

# %% [markdown]
# Checked twice: against `AutoencoderKL.kl`, and against the definition
# $\mathbb E_q[\log q(z) - \log p(z)]$ estimated from 100,000 draws of $z$.

# %%
mean, logvar = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
assert torch.allclose(gaussian_kl(mean, logvar), AutoencoderKL.kl(mean, logvar))
q = torch.distributions.Normal(mean.double(), (0.5 * logvar.double()).exp())
z = q.sample((100_000,))  # (100000, 3, 4, 2, 2)
log_ratio = q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)
monte_carlo = log_ratio.flatten(2).sum(2).mean(0)  # (3,)
print("KL, closed form:", gaussian_kl(mean, logvar).numpy().round(3))
print("KL, Monte Carlo:", monte_carlo.numpy().round(3))
assert torch.allclose(monte_carlo.float(), gaussian_kl(mean, logvar), rtol=0.03)

# %% [markdown]
# ## 3. The reparameterisation trick
#
# The reconstruction term is an expectation over $z \sim q(z\mid x)$, and we need its gradient
# with respect to the encoder's $\mu$ and $\ell$. Sampling is not differentiable, but the draw
# can be *written* as a differentiable function of them and of noise that does not depend on
# them:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \sigma = e^{\ell/2},\quad
#   \varepsilon \sim \mathcal N(0, I),$$
#
# so $\nabla_\mu \mathbb E_q[f(z)] = \mathbb E_\varepsilon[\nabla_\mu f(\mu + \sigma\varepsilon)]$,
# estimated by backpropagating through a few draws.
#
# ### Exercise: the reparameterised sample

# %%
@exercise("reparameterize")
def reparameterize(mean, logvar, eps):
    # TODO: mean + σ ⊙ eps, with σ = exp(½ logvar)
    raise NotImplementedError


check("reparameterize", reparameterize)

# %% [markdown]
# It is `AutoencoderKL.sample` given the same noise, and its gradients are right: for
# $f(z) = z^2$, $\mathbb E_q[z^2] = \mu^2 + \sigma^2$, so
# $\partial/\partial\mu = 2\mu$ and $\partial/\partial\ell = \sigma^2$ exactly; the
# reparameterised estimate from 200,000 draws:

# %%
eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
assert torch.allclose(reparameterize(mean, logvar, eps),
                      AutoencoderKL.sample(mean, logvar, torch.Generator().manual_seed(5)))

mu = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
ell = torch.tensor([0.2, -0.7], dtype=torch.float64, requires_grad=True)
draws = reparameterize(mu, ell, torch.randn(200_000, 2, dtype=torch.float64))
draws.pow(2).mean(0).sum().backward()
print("∂/∂μ: reparameterised", mu.grad.numpy().round(3), " exact", (2 * mu).detach().numpy())
print("∂/∂ℓ: reparameterised", ell.grad.numpy().round(3), " exact",
      ell.exp().detach().numpy().round(3))
assert torch.allclose(mu.grad, 2 * mu.detach(), atol=0.03)
assert torch.allclose(ell.grad, ell.detach().exp(), atol=0.03)

# %% [markdown]
# ## 4. Stable Diffusion's VAE
#
# `AutoencoderKL` is Stable Diffusion's architecture (and loads its weights): the encoder is a
# stack of ResBlocks (lesson 18, without a time input) and stride-2 convolutions, with one
# self-attention layer over the pixels at the lowest resolution; a final convolution outputs
# $2C$ channels, $\mu$ and $\ell$ stacked, and a 1×1 convolution (`quant_conv`) mixes them.
# The decoder mirrors it with nearest-neighbour upsampling. Each level but the last halves the
# resolution: with 3 levels, a 32×32 image becomes 4 × 8×8 latents (SD v1: 4 levels,
# 3 × 512×512 → 4 × 64×64, 48 times fewer numbers). `encode`, written out:

# %%
def encode(vae, x):
    moments = vae.quant_conv(vae.encoder(x))  # (B, 2C, H/f, W/f)
    mean, logvar = moments.chunk(2, dim=1)  # μ and ℓ = log σ², each (B, C, H/f, W/f)
    return mean, logvar.clamp(-30.0, 20.0)  # σ between e⁻¹⁵ and e¹⁰: no 0, no overflow


config = VAEConfig(in_channels=1, out_channels=1, block_out_channels=(8, 16, 16),
                   layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32)
vae = AutoencoderKL(config)
x = torch.randn(2, 1, 32, 32)
with torch.no_grad():
    for mine, library in zip(encode(vae, x), vae.encode(x), strict=True):
        assert torch.allclose(mine, library)
    print("image", tuple(x.shape), "-> latent mean", tuple(vae.encode(x)[0].shape), "-> image",
          tuple(vae.decode(vae.encode(x)[0]).shape))
print(f"{sum(p.numel() for p in vae.parameters()):,} parameters")

# %% [markdown]
# ## 5. Training a small VAE on MNIST
#
# The 4,000 training digits of `mnist_5k_split` (lesson 07), mapped to $[-1, 1]$ (the diffusion
# convention) and padded with background to 32×32, so three levels give 8×8 latents. The loss
# is the ELBO's: mean squared error per pixel, plus $\beta$ times the KL per pixel, with a
# small $\beta = 10^{-3}$; the library's training loop (`fromscratch.training.loop`) runs it.

# %%
train_set, test_set = mnist_5k_split()
BETA = 1e-3


def to_vae(images):
    """MNIST (B, 1, 28, 28) in [0, 1] → (B, 1, 32, 32) in [-1, 1], background −1."""
    return F.pad(2 * images - 1, (2, 2, 2, 2), value=-1.0)


class VAEObjective(nn.Module):
    """loss(batch) = MSE(x, D(z)) + β KL(q(z|x) ‖ N(0, I)) / pixels, z drawn by reparameterisation."""

    def __init__(self, vae, beta):
        super().__init__()
        self.vae, self.beta = vae, beta

    def loss(self, batch):
        x = to_vae(batch[0])
        mean, logvar = self.vae.encode(x)
        z = reparameterize(mean, logvar, torch.randn_like(mean))
        reconstruction = F.mse_loss(self.vae.decode(z), x)
        return reconstruction + self.beta * gaussian_kl(mean, logvar).mean() / x[0].numel()


def evaluate(vae, images):
    """Reconstruction MSE (from z = μ, on the 28×28 digit, in [-1, 1]) and the KL per image."""
    vae.eval()
    with torch.no_grad():
        x = to_vae(images)
        mean, logvar = vae.encode(x)
        crop = slice(2, 30)
        mse = F.mse_loss(vae.decode(mean)[..., crop, crop], x[..., crop, crop]).item()
        kl = gaussian_kl(mean, logvar).mean().item()
    vae.train()
    return {"test_mse": mse, "test_kl": kl}


test_images = test_set.x[::10] if FAST else test_set.x  # sorted by class: every 10th
steps = 8 if FAST else 1000
start, cpu = time.perf_counter(), time.process_time()
result = train(VAEObjective(vae, BETA), ImageBatches(train_set, 32, seed=0),
               TrainConfig(max_steps=steps, lr=2e-3, warmup_steps=max(steps // 20, 1),
                           weight_decay=0.0, eval_interval=steps, log_interval=max(steps // 30, 1),
                           progress=not FAST),
               evaluate=lambda objective: evaluate(objective.vae, test_images))
vae.eval()
print(f"{result.step} steps in {time.perf_counter() - start:.0f} s "
      f"({time.process_time() - cpu:.0f} s of CPU)")
at_start = next(record for record in result.history if "test_mse" in record)  # step 0
mse, kl = result.last("test_mse"), result.last("test_kl")
print(f"test reconstruction MSE {mse:.4f} (pixels in [-1, 1]; {at_start['test_mse']:.4f} "
      f"untrained), KL {kl:.1f} nats per image ({kl / 256:.2f} per latent)")
baseline = F.mse_loss(to_vae(test_images)[..., 2:30, 2:30],
                      to_vae(train_set.x).mean(0)[..., 2:30, 2:30].expand(len(test_images), -1,
                                                                             -1, -1)).item()
print(f"for scale: predicting the average digit gives MSE {baseline:.4f}")
assert mse < at_start["test_mse"]
if not FAST:  # trained for real: far better than the average digit
    assert mse < baseline / 10

# %% [markdown]
# Digits and their reconstructions, and the four latent channels of each (8×8, red positive,
# blue negative): the latents are a coarse, four-channel picture of the digit, not an abstract
# code — which is why a UNet with convolutions suits them as well as it suits pixels.

# %%
show = test_set.x[::100][:6]  # the test set is sorted by class: digits 0 to 5
with torch.no_grad():
    mean, logvar = vae.encode(to_vae(show))
    reconstruction = vae.decode(mean)
fig, axes = plt.subplots(6, 6, figsize=(7.5, 7.5))
limit = float(mean.abs().max())
for i in range(6):
    axes[i, 0].imshow(to_vae(show)[i, 0], cmap="gray", vmin=-1, vmax=1)
    axes[i, 1].imshow(reconstruction[i, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    for c in range(4):
        axes[i, 2 + c].imshow(mean[i, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
for ax, title in zip(axes[0], ["digit", "decoded", "z₀", "z₁", "z₂", "z₃"], strict=True):
    ax.set_title(title)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# With a small $\beta$, the VAE's own prior is a poor generator: decoding $z \sim \mathcal N(0, I)$
# gives scattered fragments of strokes, not digits, because the encoder's $q(z\mid x)$ do not
# cover $\mathcal N(0, I)$ (the KL per image stays in the hundreds of nats).
# That is the job left to the diffusion model: learn $p(z)$ on the latents.

# %%
with torch.no_grad():
    from_prior = vae.decode(torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(0)))
fig, axes = plt.subplots(1, 6, figsize=(7.5, 1.6))
for ax, image in zip(axes, from_prior, strict=True):
    ax.imshow(image[0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.axis("off")
plt.suptitle("decoded draws from N(0, I)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. The scaling factor: latents with unit variance
#
# The diffusion's noise schedule is designed for data of unit variance: at the last training
# step $T$, $x_T = \alpha_T x_0 + \sigma_T\varepsilon$ must be (nearly) pure noise, because
# sampling starts from $\mathcal N(0, I)$. What is left of the data at step $t$ is measured by the
# signal-to-noise ratio $\mathrm{SNR}_t = \alpha_t^2\operatorname{Var}[x_0]/\sigma_t^2$: it
# grows with the data's variance. So latents are multiplied by one number $s$ that gives them
# unit variance over the training set, $s = 1/\operatorname{std}(z)$, before the diffusion, and
# divided by it before the decoder (`encode_latents` / `decode_latents`). Stable Diffusion's
# $s = 0.18215$ was computed this way on its training images (latent std ≈ 5.5). Ours:

# %%
with torch.no_grad():
    mean, logvar = vae.encode(to_vae(train_set.x[:1000]))
    z = vae.sample(mean, logvar, torch.Generator().manual_seed(0))  # what the diffusion sees
scale = 1.0 / z.std().item()
print(f"latent std {z.std():.3f}  ->  scaling factor s = {scale:.4f} (SD v1: 0.18215)")
print("per channel std:", z.std(dim=(0, 2, 3)).numpy().round(3))
vae.config.scaling_factor = scale
latents = vae.encode_latents(to_vae(train_set.x[:1000]), torch.Generator().manual_seed(0))
assert abs(latents.std().item() - 1.0) < 1e-3

schedule = DiscreteSchedule(scaled_linear_betas(1000))  # Stable Diffusion's
alpha_bar = schedule.alphas_cumprod.double()
for name, variance in [("latents × s (std 1)", 1.0), ("raw latents", z.var().item()),
                       ("SD's raw latents (std 5.5)", 5.5**2)]:
    snr = alpha_bar * variance / (1 - alpha_bar)
    print(f"{name:27s}: SNR at t = 999: {snr[999]:.4f}, at t = 500: {snr[500]:.3f}")

# %% [markdown]
# Unscaled latents with SD's variance would keep a signal-to-noise ratio 30 times larger at the
# last step: the sampler's start, pure noise, would not be what the model was trained to see
# there, and every step would be trained at the wrong noise level for the data.
#
# ## 7. What the latent space saves, measured
#
# The same UNet (lesson 18: two levels of 32 and 64 channels, attention on the lower level),
# once on pixels — a 28×28 digit, and 32×32 as padded here — and once on our 4 × 8×8 latents.
# FLOPs are counted by PyTorch's `FlopCounterMode` (matrix products and convolutions; attention
# written as plain matrix products so it is counted too), time by the clock on this machine
# (one thread, noisy: compare the ratios).

# %%
torch.set_num_threads(1)


def unet_for(channels, side):
    return UNet(UNetConfig(in_channels=channels, out_channels=channels,
                           block_out_channels=(32, 64), attention_levels=(False, True),
                           layers_per_block=1, num_attention_heads=4, cross_attention_dim=32,
                           norm_num_groups=8, sample_size=side, fast_attention=False)).eval()


def flops(fn):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def seconds(fn, repeats):
    with torch.no_grad():
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
    return (time.perf_counter() - start) / repeats


batch = 2 if FAST else 8
context = torch.randn(batch, 8, 32)
t_batch = torch.full((batch,), 500)
cost = {}
for name, channels, side in [("pixels 1×28×28", 1, 28), ("pixels 1×32×32", 1, 32),
                             ("latents 4×8×8", 4, 8)]:
    unet = unet_for(channels, side)
    x = torch.randn(batch, channels, side, side)
    step = lambda unet=unet, x=x: unet(x, t_batch, context)  # noqa: E731
    cost[name] = (flops(step) / batch, seconds(step, 1 if FAST else 10) / batch)

decode = lambda: vae.decode(torch.randn(batch, 4, 8, 8))  # noqa: E731
decoder = (flops(decode) / batch, seconds(decode, 1 if FAST else 10) / batch)
latent_name = "latents 4×8×8"
print(f"{'one UNet step, per image':26s} {'MFLOP':>8s} {'ms':>7s}")
for name, (f, s) in cost.items():
    print(f"{name:26s} {f / 1e6:8.1f} {1e3 * s:7.2f}")
print(f"{'VAE decoder (once)':26s} {decoder[0] / 1e6:8.1f} {1e3 * decoder[1]:7.2f}")
ratio = cost["pixels 1×28×28"][0] / cost[latent_name][0]
print(f"a latent step costs {ratio:.1f}× fewer FLOPs than a 28×28 pixel step")
assert ratio > 5

# %% [markdown]
# A whole sample: $N$ steps, each a UNet call on a doubled batch for classifier-free guidance
# (lesson 21), plus one decoder call for the latent model:
#
# $$\text{cost}_\text{pixels} = 2N\,c_\text{UNet}(28^2), \qquad
#   \text{cost}_\text{latents} = 2N\,c_\text{UNet}(4\cdot 8^2) + c_\text{decoder}.$$

# %%
N = 50
pixel_total = 2 * N * cost["pixels 1×28×28"][0]
latent_total = 2 * N * cost[latent_name][0] + decoder[0]
print(f"{N} guided steps: pixels {pixel_total / 1e9:.1f} GFLOP, latents "
      f"{latent_total / 1e9:.2f} GFLOP (decoder {100 * decoder[0] / latent_total:.1f}% of it): "
      f"{pixel_total / latent_total:.1f}× cheaper per sample")
pixel_ms = 2 * N * cost["pixels 1×28×28"][1] * 1e3
latent_ms = (2 * N * cost[latent_name][1] + decoder[1]) * 1e3
print(f"time on this machine: {pixel_ms:.0f} ms vs {latent_ms:.0f} ms per sample")
assert latent_total < pixel_total / 5

# %% [markdown]
# The saving comes from the number of positions more than the number of values: the latent has
# 256 numbers for 784 pixels (3× fewer), but 64 positions for 784 (12× fewer), and a
# convolution's cost grows with the positions, self-attention's with their square. For Stable
# Diffusion at 512×512 the same arithmetic gives 64×64 = 4,096 positions instead of 262,144:
# pixel-space attention at that size would not even fit in memory. The decoder runs once per
# sample, not once per step, so its cost is a small share of the total. (Training pays the
# encoder once per image too, and often precomputes the latents of the whole data set.)
#
# ## Summary
#
# - A VAE maximizes the ELBO: reconstruction error plus $\beta\,\mathrm{KL}(q(z\mid x)\,\|\,
#   \mathcal N(0, I))$, with $\mathrm{KL} = \tfrac12\sum(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$,
#   checked against Monte Carlo and `AutoencoderKL.kl`.
# - The reparameterisation $z = \mu + e^{\ell/2}\varepsilon$ makes the draw differentiable in
#   $\mu$ and $\ell$ (gradients checked against the exact ones).
# - A small VAE trained on MNIST turns a 28×28 digit into 4 × 8×8 latents that still look like
#   the digit; its prior alone is a poor generator, which is what the latent diffusion fixes.
# - Latents are scaled to unit variance ($s = 1/\operatorname{std} z$, SD's 0.18215) so the
#   noise schedule means what it was designed to mean.
# - One UNet step on latents costs an order of magnitude fewer FLOPs than on pixels (measured
#   above); the decoder, run once, barely adds to a 50-step sample.
