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
# # Lesson 08 — Autoregressive image generation
#
# **Goal.** Generate digits with the GPT of lesson 03, unchanged. An image becomes a short
# sequence of discrete tokens; a class token in front says which digit to draw; the model learns
# $p(\text{token}_n \mid \text{class}, \text{token}_{<n})$ exactly as it learned the next character.
# You will tokenise images, measure likelihood in **bits per dimension**, sample a grid of
# digits, and ask a separately trained classifier whether the samples look like their class.
#
# **Prerequisites.** Lessons 03–05 (GPT, training, sampling); lesson 07 for patches.
#
# **Run modes.** `FROMSCRATCH_FAST=1`: a tiny model, a few dozen steps, scribbles. Without it:
# the library's recipe for a few minutes, recognisable digits.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.beyond.imagegpt import RECIPES, ImageGPT, ImageGPTConfig, ImageTokenizer
from fromscratch.data.images import ImageBatches, ImageSet, mnist_5k_split
from fromscratch.exercises import check, exercise
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
train_set, test_set = mnist_5k_split()

# %% [markdown]
# ## 1. Images as tokens
#
# Raster-scanning all 784 grey pixels would make sequences of 784 tokens with 256 values each:
# slow to train on a CPU. We shrink the problem in three steps that keep a digit readable:
#
# 1. mean-pool 2×2 blocks: 28×28 → 14×14;
# 2. threshold at ½: each pixel is ink (1) or background (0);
# 3. cut into 2×2 patches (raster order) and read each patch's 4 bits as a number:
#    $\text{token} = \sum_{k=0}^{3} \text{pixel}_k\, 2^k \in \{0, \dots, 15\}$.
#
# A digit is now 49 tokens from a vocabulary of 16, plus 10 class tokens (16 + digit).
#
# ### Exercise: patch tokens
# Write `patch_tokens(binary, P)` for binary images (B, 1, S, S): the token of each P × P patch,
# pixel $k$ (row by row inside the patch) being bit $k$. Hint: `fromscratch.beyond.vit.patchify` gives
# the pixels of each patch in that order.

# %%
@exercise("patch_tokens")
def patch_tokens(binary: torch.Tensor, P: int) -> torch.Tensor:
    # TODO: patches = patchify(binary, P); weight pixel k by 2**k; sum; return int64
    raise NotImplementedError


check("patch_tokens", patch_tokens)

# %%
tokenizer = ImageTokenizer()
digits = train_set.x[::500]  # (8, 1, 28, 28): the set is sorted by class, so 0, 1, ..., 7
binary = tokenizer.binarize(digits)  # (8, 1, 14, 14)
ids = tokenizer.encode(digits)  # (8, 49)
assert torch.equal(ids, patch_tokens(binary, 2))  # the library's tokenizer = your function
assert torch.equal(tokenizer.decode(ids), binary)  # and decoding gives the binary image back
fig, axes = plt.subplots(2, 8, figsize=(10, 2.6))
for i in range(8):
    axes[0, i].imshow(digits[i, 0], cmap="gray")
    axes[1, i].imshow(binary[i, 0], cmap="gray")
    axes[0, i].axis("off")
    axes[1, i].axis("off")
axes[0, 0].set_title("28×28 grey", loc="left", fontsize=9)
axes[1, 0].set_title("14×14 binary = 49 tokens", loc="left", fontsize=9)
plt.show()
print("tokens of the first digit:", ids[0].tolist())

# %% [markdown]
# ## 2. Likelihood in bits per dimension
#
# The model factorises the probability of an image $x$ given its class $y$ as
# $p(x \mid y) = \prod_{n=1}^{49} p(t_n \mid y, t_{<n})$, so its negative log-likelihood is the
# sum of the 49 cross-entropies the training loss averages. Divided by $\ln 2$ it is a number of
# bits: the length of the code an arithmetic coder driven by the model would need for the image.
# Per binary pixel:
#
# $$ \text{bits/dim} = \frac{1}{196 \ln 2} \sum_{n=1}^{49} -\ln p(t_n \mid y, t_{<n}). $$
#
# A model that knows nothing (16 equally likely patches) pays exactly $\log_2 16 / 4 = 1$ bit
# per pixel. At initialisation ours spreads its probability over all 26 tokens, which would
# cost $\ln 26 / (4 \ln 2) \approx 1.18$; it pays a little less, because with tied embeddings
# (lesson 03) an untrained GPT already slightly favours repeating the token it reads, and the
# background patch (token 0) mostly follows itself.

# %%
recipe = RECIPES["default"]  # the settings `fromscratch imagegpt train` uses
sizes = dict(n_layer=1, n_head=2, n_embd=32) if FAST else recipe.model
model = ImageGPT(ImageGPTConfig(**sizes))
at_init = model.bits_per_dim(test_set.x[:200], test_set.y[:200])
print(f"bits/dim at initialisation: {at_init:.3f} (ln 26 / (4 ln 2) = {math.log(26) / 4 / math.log(2):.3f})")
assert abs(at_init - math.log(26) / 4 / math.log(2)) < 0.15

# %% [markdown]
# ## 3. Training
#
# `ImageGPT.loss((images, labels))` tokenises the batch and returns the mean cross-entropy of the
# image tokens; the one training loop of the library does the rest.

# %%
steps = 30 if FAST else recipe.train["max_steps"]
settings = dict(recipe.train, max_steps=steps, warmup_steps=min(100, steps // 5),
                eval_interval=steps, progress=not FAST, max_time=None if FAST else 420.0)
test_part = ImageSet(test_set.x[::5], test_set.y[::5])  # 200 digits of every class
result = train(model, ImageBatches(train_set, recipe.batch_size, seed=0), TrainConfig(**settings),
               evaluate=lambda m: {"test_bits_per_dim": m.bits_per_dim(test_part.x, test_part.y)})
final = result.last("test_bits_per_dim")
print(f"{result.step} steps in {result.seconds:.0f} s: test NLL {final:.3f} bits/dim")
assert final < at_init

# %% [markdown]
# ## 4. Sampling
#
# `model.sample(labels)` puts each class token in front and draws the 49 tokens one at a time
# with the KV cache of lesson 05, never drawing a class token. One column per digit:

# %%
labels = torch.arange(10).repeat(6)
samples = tokenizer.to_full_size(model.sample(labels, generator=torch.Generator().manual_seed(0)))
fig, axes = plt.subplots(6, 10, figsize=(8, 5))
for i, ax in enumerate(axes.T.flat):
    ax.imshow(samples[i // 6 + 10 * (i % 6), 0], cmap="gray")
    ax.axis("off")
plt.show()

# %% [markdown]
# How good are they? Looking is not measuring. `python benchmarks/beyond_language.py --only
# imagegpt` trains the recipe, then a CNN on the *tokenised* training digits (so that it judges
# samples in the form the model draws them), and reports the share of class-conditional samples
# the CNN assigns to the asked digit.
#
# ## Summary
#
# - Any data that can be written as a sequence of tokens can be modelled by a GPT: here 2×2
#   binary patches of 14×14 digits, with a class token in front.
# - The training loss *is* a likelihood: summed over an image and divided by $\ln 2$ and the
#   number of pixels, it is the bits per dimension a compressor built on the model would need.
# - `fromscratch imagegpt train` and `fromscratch imagegpt sample --classifier DIR` do the same
#   from the command line.
