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
# # Lesson 18 — The UNet: the network that predicts the noise
#
# **Goal.** A diffusion model needs a function $\hat\varepsilon(x_t, t, c)$ from a noisy image,
# a noise level and a condition to the noise in the image, at every pixel. Stable Diffusion's
# answer is a UNet. You build its three ideas in the open — the **sinusoidal time embedding**,
# the **ResBlock** that adds it to the features, and the **skip connections** that carry detail
# from the way down to the way up — prove each equal to `fromscratch.stable_diffusion.unet` (itself proven equal
# to diffusers' `UNet2DConditionModel` in `tests/equivalence/test_unet_diffusers.py`), and measure
# what the skips buy: how far each output pixel can see.
#
# **Prerequisites.** Lesson 02 (attention), Lesson 16 (samplers: what $\hat\varepsilon$ is for).
#
# **Notation.** Images $x \in \mathbb{R}^{B\times C\times H\times W}$; timestep index
# $t \in \{0, \dots, 999\}$; the text condition $c \in \mathbb{R}^{B\times T\times D}$.

# %%
import os

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.exercises import check, exercise
from fromscratch.stable_diffusion.unet import ResnetBlock2D, UNet, UNetConfig, timestep_embedding

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. Telling the network the noise level: sinusoidal embeddings
#
# One network serves all 1000 noise levels, so it must be told which one it faces. A raw number
# $t$ is a poor input (one unit, a huge range); the Transformer's positional encoding is a good
# one. With $h = \dim/2$ frequencies $\omega_k = 10000^{-k/h}$,
#
# $$e(t) = \big[\cos(\omega_0 t), \dots, \cos(\omega_{h-1} t),\ \sin(\omega_0 t), \dots,
#   \sin(\omega_{h-1} t)\big].$$
#
# Fast frequencies ($\omega_0 = 1$) separate neighbouring steps, slow ones place $t$ in the whole
# range, and $e(t+\delta)$ is a rotation of $e(t)$ pair by pair, so nearby steps get nearby
# vectors: $\lVert e(t) - e(s)\rVert$ grows with $|t - s|$. An MLP (Linear, SiLU, Linear) then
# turns $e(t)$ into the vector every ResBlock reads.
#
# ### Exercise: the time embedding

# %%
@exercise("timestep_embedding")
def my_timestep_embedding(t, dim):
    # TODO: ω_k = 10000^(−k/half); return torch.cat([cos(t ω), sin(t ω)], dim=-1)
    raise NotImplementedError


check("timestep_embedding", my_timestep_embedding)
t_all = torch.arange(1000)
emb = my_timestep_embedding(t_all, 64)
assert torch.allclose(emb, timestep_embedding(t_all, 64), atol=1e-5)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].imshow(emb.T, aspect="auto", cmap="RdBu")
axes[0].set(xlabel="timestep t", ylabel="embedding dimension", title="e(t), 64 dimensions")
distance = torch.cdist(emb[::10], emb[::10])
axes[1].imshow(distance, cmap="viridis", extent=(0, 1000, 1000, 0))
axes[1].set(xlabel="t", ylabel="s", title="‖e(t) − e(s)‖: nearby steps, nearby vectors")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The ResBlock: features plus a per-channel bias from the time
#
# $$h = \mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(x))) + W_t\,\mathrm{SiLU}(\tau),\qquad
#   \mathrm{out} = \mathrm{skip}(x) + \mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(h)))$$
#
# with $\tau$ the time vector and GN group normalization (statistics over groups of channels of
# one image: unlike batch norm, it does not mix the images of a batch, whose noise levels
# differ). The time enters as **one number per channel**, the same at every pixel: it shifts
# which features fire, telling each layer how much noise to expect. The skip is the identity, or
# a 1×1 convolution when the channel count changes. Built in the open:

# %%
class MyResBlock(nn.Module):
    def __init__(self, c_in, c_out, time_dim, groups):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(groups, c_in, eps=1e-5), nn.GroupNorm(groups, c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, tau):
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.time(F.silu(tau))[:, :, None, None]  # one bias per channel: (B, C_out, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


library_block = ResnetBlock2D(8, 16, temb_channels=32, groups=4, eps=1e-5)
mine = MyResBlock(8, 16, 32, 4)
RENAME = {"time.": "time_emb_proj.", "skip.": "conv_shortcut."}  # our name → the library's


def library_name(name):
    for ours, theirs in RENAME.items():
        if name.startswith(ours):
            return theirs + name.removeprefix(ours)
    return name


mine.load_state_dict({k: library_block.state_dict()[library_name(k)] for k in mine.state_dict()})
x, tau = torch.randn(2, 8, 12, 12), torch.randn(2, 32)
with torch.no_grad():
    assert torch.allclose(mine(x, tau), library_block(x, tau), atol=1e-5)
print("MyResBlock = fromscratch.stable_diffusion.unet.ResnetBlock2D")

# %% [markdown]
# ## 3. Down, up, and the skips between them
#
# The UNet halves the resolution level by level (a stride-2 convolution), so deep layers see
# the whole image with few pixels, then doubles it back (nearest-neighbour copy + convolution).
# What the way down knew about fine detail would be lost at the bottom, so **every** block on the
# way down hands its output across: each block on the way up concatenates the newest unused skip
# to its input. A learner-size configuration for 28×28 digits:

# %%
config = UNetConfig(in_channels=1, out_channels=1, block_out_channels=(16, 32),
                    attention_levels=(False, True), layers_per_block=1, num_attention_heads=2,
                    cross_attention_dim=24, norm_num_groups=4, sample_size=28)
unet = UNet(config).eval()
x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 900])
context = torch.randn(2, 5, 24)  # 5 "word" vectors of width 24 (lesson 19 makes real ones)


def unet_forward(unet, x, t, context, use_skips=True, show=False):
    """The UNet's forward pass, written out (use_skips=False: zeros in place of every skip)."""
    tau = unet.time_embedding(timestep_embedding(t, unet.config.block_out_channels[0]))
    h = unet.conv_in(x)
    skips = [h]
    for block in unet.down_blocks:
        for i, resnet in enumerate(block.resnets):
            h = resnet(h, tau)
            if hasattr(block, "attentions"):
                h = block.attentions[i](h, context)
            skips.append(h)
        if block.downsamplers is not None:
            h = block.downsamplers[0](h)
            skips.append(h)
    if show:
        print("skips (C, H, W):", [tuple(s.shape[1:]) for s in skips])
    h = unet.mid_block(h, tau, context)
    for block in unet.up_blocks:
        for i, resnet in enumerate(block.resnets):
            skip = skips.pop()  # the newest unused skip
            h = resnet(torch.cat([h, skip if use_skips else torch.zeros_like(skip)], dim=1), tau)
            if hasattr(block, "attentions"):
                h = block.attentions[i](h, context)
        if block.upsamplers is not None:
            h = block.upsamplers[0](h)
    assert not skips  # every skip used exactly once
    return unet.conv_out(F.silu(unet.conv_norm_out(h)))


with torch.no_grad():
    assert torch.allclose(unet_forward(unet, x, t, context, show=True), unet(x, t, context),
                          atol=1e-5)
print(f"written-out forward = UNet.forward; {sum(p.numel() for p in unet.parameters()):,} "
      "parameters")

# %% [markdown]
# Stable Diffusion v1's UNet is the same code with the default `UNetConfig()`: 4 levels of
# (320, 640, 1280, 1280) channels, 2 ResBlocks each, attention on the top three levels, 8 heads,
# 768-wide text vectors. Counted without allocating it (PyTorch's "meta" device):

# %%
with torch.device("meta"):
    sd_unet = UNet(UNetConfig())
print(f"SD v1 UNet: {sum(p.numel() for p in sd_unet.parameters()):,} parameters")

# %% [markdown]
# ## 4. What the skips buy: how far an output pixel sees, and how sharply
#
# The gradient of one output pixel with respect to the input image shows which input pixels it
# depends on. Without skips, everything passes through the 14×14 bottleneck; with them, a direct
# high-resolution path stays open. We compare the UNet with a copy whose skips are replaced by
# zeros (same weights).

# %%
def sensitivity(use_skips: bool):
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = unet_forward(unet, x, torch.tensor([500]), context[:1], use_skips=use_skips)
    out[0, 0, 14, 14].backward()
    return x.grad[0, 0].abs()


with_skips, without_skips = sensitivity(True), sensitivity(False)
share = [float(g[12:17, 12:17].sum() / g.sum()) for g in (with_skips, without_skips)]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, g, title, s in zip(axes, (with_skips, without_skips), ("with skips", "skips zeroed"),
                           share, strict=True):
    ax.imshow(g, cmap="magma")
    ax.set_title(f"{title}: {100 * s:.0f}% from the 5×5 around")
    ax.axis("off")
plt.suptitle("|∂ output[14, 14] / ∂ input|")
plt.tight_layout()
plt.show()
print(f"share of the gradient within 2 pixels: with skips {share[0]:.2f}, without {share[1]:.2f}")

# %% [markdown]
# With the skips, the output pixel depends most on its own neighbourhood (sharp detail comes
# straight across); without them, its dependence is smeared over the coarse grid of the
# bottleneck. (Attention at the lower level lets every pixel see the whole image either way.)
#
# ## Summary
#
# - $e(t)$: sinusoids at geometric frequencies, then an MLP; one bias per channel in every
#   ResBlock tells the network the noise level.
# - ResBlock: GN → SiLU → conv, plus time, GN → SiLU → conv, plus the skip; GroupNorm keeps the
#   images of a batch apart.
# - The UNet: down (stride-2 convs), middle, up (nearest + conv), every down output concatenated
#   into the up path; attention levels add SpatialTransformers (lesson 19).
# - Everything here is `fromscratch.stable_diffusion.unet`, equal to diffusers' `UNet2DConditionModel` on the same
#   weights; `UNet.from_diffusers` loads Stable Diffusion's.
