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
# # Lesson 02 — Attention
#
# **Goal.** Attention is how a transformer lets each token gather information from the others.
# You will derive scaled dot-product attention, see *why* the scores are divided by $\sqrt{D}$,
# build causal and padding masks, write attention yourself, and prove it equal to the library's
# version, to PyTorch's fused kernel and to `torch.nn.MultiheadAttention`.
#
# **Prerequisites.** Matrix multiplication; torch tensors and their shapes. Lesson 01 is not
# needed.
#
# **Notation.** Batch $B$, heads $H$, query length $T_q$, key length $T_k$, head width $D$,
# model width $C = H \cdot D$. Shapes are written in comments: `# (B, T, D)`.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. An einsum primer
#
# Attention is a few matrix products over batched tensors. `torch.einsum` names every axis with
# a letter: letters on the left of `->` that are missing on the right are summed over. So
# `"ij,jk->ik"` is the matrix product $\sum_j A_{ij} B_{jk}$, and `"...qd,...kd->...qk"` is "for
# every leading axis (`...`), the dot product of each query row $q$ with each key row $k$".

# %%
A, Bm = torch.randn(3, 4), torch.randn(4, 5)
assert torch.allclose(torch.einsum("ij,jk->ik", A, Bm), A @ Bm, atol=1e-6)

q = torch.randn(2, 6, 8)  # (B, Tq, D)
k = torch.randn(2, 7, 8)  # (B, Tk, D)
scores = torch.einsum("bqd,bkd->bqk", q, k)  # (B, Tq, Tk): every query against every key
assert torch.allclose(scores, q @ k.transpose(-2, -1), atol=1e-5)
assert torch.allclose(scores[1, 2, 3], q[1, 2] @ k[1, 3])  # one entry = one dot product
print("scores", tuple(scores.shape))

# %% [markdown]
# ## 2. Softmax
#
# Softmax turns a row of real scores into weights that are positive and sum to 1:
#
# $$\mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}.$$
#
# Adding a constant $c$ to every score changes nothing, since $e^{x_i - c} / \sum_j e^{x_j - c}
# = e^{-c} e^{x_i} / (e^{-c} \sum_j e^{x_j})$. Taking $c = \max_j x_j$ makes every exponent
# $\le 0$, so $e^{x}$ can never overflow — the naive formula gives `inf / inf = nan` for scores
# around 100 in float32 ($e^{89} > 3.4 \times 10^{38}$).
#
# ### Exercise: a numerically stable softmax over the last axis

# %%
@exercise("softmax")
def softmax(x: torch.Tensor) -> torch.Tensor:
    # TODO: subtract each row's max (keepdim=True), exponentiate, divide by the row sums.
    raise NotImplementedError


check("softmax", softmax)

# %% [markdown]
# ## 3. Scaled dot-product attention
#
# Each token emits a **query** $q_i$ ("what am I looking for?"), a **key** $k_j$ ("what do I
# contain?") and a **value** $v_j$ ("what do I pass on?"). Query $i$ scores every key by a dot
# product, softmax turns the scores into weights $w_{ij}$, and the output is the weighted
# average of the values:
#
# $$ \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{D}} + M\right) V,
# \qquad \mathrm{out}_i = \sum_j w_{ij}\, v_j,\quad w_{ij} = \frac{e^{s_{ij}}}{\sum_{j'}
# e^{s_{ij'}}},\quad s_{ij} = \frac{q_i \cdot k_j}{\sqrt D}. $$
#
# $M$ is a mask: $0$ where query $i$ may look at key $j$, $-\infty$ where it may not
# ($e^{-\infty} = 0$). It is a soft dictionary lookup: instead of returning the value of the one
# matching key, it returns a blend of all values, weighted by how well each key matches.
#
# ### Why divide by $\sqrt{D}$? A variance argument
#
# Suppose the entries of $q$ and $k$ are independent with mean 0 and variance 1 (roughly what
# a freshly initialized network with normalized inputs produces). Then each product $q_d k_d$
# has mean 0 and variance $\mathbb{E}[q_d^2]\,\mathbb{E}[k_d^2] = 1$, and a sum of $D$ independent
# such terms has
#
# $$ \mathbb{E}[q \cdot k] = 0, \qquad \mathrm{Var}[q \cdot k] = \sum_{d=1}^{D}
# \mathrm{Var}[q_d k_d] = D. $$
#
# So raw scores spread out like $\sqrt{D}$: with $D = 64$, typical scores are $\pm 8$, and
# softmax of such spread-out scores puts nearly all weight on one key. Its gradient then
# vanishes (a saturated softmax barely changes when the scores change), and learning stalls.
# Dividing by $\sqrt{D}$ brings the variance back to 1 whatever the head width. Let's measure
# both claims.

# %%
samples = 2_000 if FAST else 20_000
widths = [4, 16, 64, 256, 1024]
raw_var, scaled_var, raw_peak, scaled_peak = [], [], [], []
for d in widths:
    qs, ks = torch.randn(samples, d), torch.randn(samples, d)
    dots = (qs * ks).sum(dim=-1)  # (samples,) one q·k each
    raw_var.append(dots.var().item())
    scaled_var.append((dots / math.sqrt(d)).var().item())
    # 16 keys per query: how much weight does the best key get, on average?
    s = torch.randn(samples // 16, 16, d) @ torch.randn(samples // 16, d, 1)  # (N, 16, 1)
    raw_peak.append(torch.softmax(s[..., 0], -1).amax(-1).mean().item())
    scaled_peak.append(torch.softmax(s[..., 0] / math.sqrt(d), -1).amax(-1).mean().item())

for d, rv, sv in zip(widths, raw_var, scaled_var, strict=True):
    print(f"D = {d:>4}: Var[q·k] = {rv:8.1f}   Var[q·k/√D] = {sv:.2f}")
    assert 0.8 * d < rv < 1.2 * d and 0.8 < sv < 1.2

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.loglog(widths, raw_var, "o-", label="q·k")
ax1.loglog(widths, scaled_var, "o-", label="q·k / √D")
ax1.set_xlabel("head width D")
ax1.set_ylabel("variance of the score")
ax1.legend()
ax1.set_title("Raw scores spread out like √D")
ax2.semilogx(widths, raw_peak, "o-", label="softmax(q·k)")
ax2.semilogx(widths, scaled_peak, "o-", label="softmax(q·k / √D)")
ax2.axhline(1 / 16, color="gray", linestyle=":", label="uniform (1/16)")
ax2.set_xlabel("head width D")
ax2.set_ylabel("weight of the top key (16 keys)")
ax2.legend()
ax2.set_title("Without the scale, softmax saturates")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Masks
#
# **Causal mask.** A language model predicts token $i+1$ from tokens $0..i$, so during training
# query $i$ must not see keys $j > i$ (the future). As a boolean matrix, True where attention is
# allowed, that is the lower triangle, diagonal included: $M_{ij} = 0$ if $j \le i$ else
# $-\infty$.
#
# ### Exercise: the causal mask

# %%
@exercise("causal_mask")
def my_causal_mask(T: int) -> torch.Tensor:
    # TODO: a (T, T) boolean tensor, True where key j <= query i (hint: torch.tril).
    raise NotImplementedError


check("causal_mask", my_causal_mask)

# %% [markdown]
# The library's `causal_mask(Tq, Tk)` is more general: the queries are the *last* $T_q$ of the
# $T_k$ positions. That is what generation with a cache needs (Lesson 05), where one new query
# attends to all the keys so far. With $T_q = T_k$ it is the square mask above.
#
# **Padding mask.** Sentences in a batch have different lengths, so short ones are padded; no
# query should attend to a padding key. A tokenizer gives `attention_mask` with 1 for real
# tokens and 0 for padding; `padding_mask` turns it into a boolean $(B, 1, 1, T_k)$ mask that
# broadcasts over heads and queries. Masks combine with `&`.

# %%
assert torch.equal(causal_mask(5, 5), my_causal_mask(5))
print(causal_mask(2, 4).int())  # two new queries at positions 2 and 3 of 4

lengths = torch.tensor([5, 3])  # the second sequence has 2 padding tokens
tokenizer_mask = (torch.arange(5)[None, :] < lengths[:, None]).long()  # (B, Tk) 1 = real
both = padding_mask(tokenizer_mask) & causal_mask(5, 5)  # (B, 1, T, T)

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, m, title in zip(
    axes,
    [causal_mask(5, 5), both[1, 0], causal_mask(2, 5)],
    ["causal (5, 5)", "causal & padding (length 3)", "causal, 2 new queries (2, 5)"],
    strict=True,
):
    ax.imshow(m, cmap="Greens", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise: attention
#
# Put it together: `attention(q, k, v, causal=False)` for `q (..., Tq, D)`, `k (..., Tk, D)`,
# `v (..., Tk, Dv)`. Use `k.transpose(-2, -1)` so that it works for any number of leading axes
# (batch, heads). With `causal=True` ($T_q = T_k$), fill the scores of forbidden keys with
# `float("-inf")` *before* the softmax.

# %%
@exercise("attention")
def attention(q, k, v, causal=False):
    # TODO: scores = Q Kᵀ / √D  (..., Tq, Tk); mask if causal; softmax over keys; weights @ V.
    raise NotImplementedError


check("attention", attention)

# %% [markdown]
# ## 5. Our version, in the open, proven equal to two others
#
# Here is attention for any boolean mask. One subtlety: if a query may attend *no* key (say its
# row of the mask is all padding), softmax over only $-\infty$ is $0/0$. We define its weights as
# 0, so its output is 0 — as the library does.


# %%
def attend(q, k, v, mask=None):
    """softmax(Q Kᵀ / √D + M) V; mask boolean, broadcastable to (..., Tq, Tk), True = allowed."""
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # M = -∞ where not allowed
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk), rows sum to 1
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # a row with no allowed key: NaN -> 0
    return torch.einsum("...qk,...kd->...qd", weights, v)  # (..., Tq, Dv)


B, H, T, D = 2, 4, 6, 16
q, k, v = torch.randn(B, H, T, D), torch.randn(B, H, T, D), torch.randn(B, H, T, D)
mask = padding_mask(torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])) & causal_mask(T, T)

ours = attend(q, k, v, mask=mask)
library = scaled_dot_product_attention(q, k, v, mask=mask)
torch_fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # True = allowed there too
print("max |ours - library|   :", (ours - library).abs().max().item())
print("max |ours - torch SDPA|:", (ours - torch_fused).abs().max().item())
assert torch.allclose(ours, library, atol=1e-6)
assert torch.allclose(ours, torch_fused, atol=1e-5)
assert torch.allclose(attend(q, k, v, mask=causal_mask(T, T)), attention(q, k, v, causal=True),
                      atol=1e-5)  # and equal to your exercise

# %% [markdown]
# ## 6. Multi-head attention
#
# One attention computes one weighting of the values per query. **Multi-head** attention runs
# $H$ of them side by side, each on its own $D = C/H$ wide slice of learned projections, so
# different heads can look for different things (the previous token, a matching bracket, the
# subject of the verb...):
#
# $$ \mathrm{head}_h = \mathrm{Attention}(X W_Q^h,\; X W_K^h,\; X W_V^h), \qquad
# \mathrm{MHA}(X) = \mathrm{concat}(\mathrm{head}_1, \dots, \mathrm{head}_H)\, W_O. $$
#
# In code, one $C \times C$ projection computes all heads' queries at once; a `view` splits its
# $C$ outputs into $H \times D$ and a transpose moves the head axis next to the batch axis, so
# attention runs on all heads in one batched call. We take the weights from PyTorch's
# `nn.MultiheadAttention`, which stacks $W_Q, W_K, W_V$ in one `in_proj_weight` $(3C, C)$.


# %%
def multi_head_attention(x, mha: nn.MultiheadAttention, mask=None):
    """Self-attention of x (B, T, C) with the weights of `mha`, written out."""
    batch, length, width = x.shape
    heads = mha.num_heads
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)  # each (C, C)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)  # each (C,)

    def split_heads(t):  # (B, T, C) -> (B, H, T, D)
        return t.view(batch, length, heads, width // heads).transpose(1, 2)

    q = split_heads(x @ w_q.T + b_q)  # (B, H, T, D)
    k = split_heads(x @ w_k.T + b_k)
    v = split_heads(x @ w_v.T + b_v)
    out = attend(q, k, v, mask=mask)  # (B, H, T, D)
    out = out.transpose(1, 2).reshape(batch, length, width)  # concatenate heads: (B, T, C)
    return out @ mha.out_proj.weight.T + mha.out_proj.bias  # (B, T, C)


C, H, T = 32, 4, 7
torch_mha = nn.MultiheadAttention(C, H, batch_first=True).eval()
x = torch.randn(2, T, C)
blocked = ~causal_mask(T, T)  # PyTorch's attn_mask is the opposite: True = NOT allowed
with torch.no_grad():
    theirs, _ = torch_mha(x, x, x, attn_mask=blocked, need_weights=False)
    by_hand = multi_head_attention(x, torch_mha, mask=causal_mask(T, T))
    library_mha = MultiHeadAttention(C, H)
    library_mha.load_torch_weights(torch_mha)
    library_out = library_mha(x, causal=True)
print("max |by hand - torch|:", (by_hand - theirs).abs().max().item())
print("max |library - torch|:", (library_out - theirs).abs().max().item())
assert torch.allclose(by_hand, theirs, atol=1e-5)
assert torch.allclose(library_out, theirs, atol=1e-5)

# %% [markdown]
# ## 7. What attention weights look like
#
# Trained heads often learn simple, readable patterns. We can build two by hand, to see that a
# pattern is just a choice of queries and keys:
#
# - a **same-character head**: query = key = a one-hot vector of the token's character, times
#   a large number $\beta$. Then $q_i \cdot k_j$ is $\beta^2$ when tokens $i$ and $j$ are the
#   same character and 0 otherwise, so each token attends to earlier copies of itself;
# - a **previous-token head**: keys are one-hot *positions*, and query $i$ is the one-hot of
#   position $i-1$: each token attends to the one before it.
#
# Both use the causal mask, and `attention_weights` (the softmax part of the library's
# attention).

# %%
sentence = "the cat sat on the mat"
T = len(sentence)
alphabet = sorted(set(sentence))
one_hot_chars = F.one_hot(torch.tensor([alphabet.index(c) for c in sentence])).float()  # (T, V)
beta = 4.0
same_char = attention_weights(
    beta * one_hot_chars, beta * one_hot_chars, mask=causal_mask(T, T)
)  # (T, T)
positions = torch.eye(T)  # (T, T): key j is the one-hot of position j
previous = torch.roll(positions, shifts=-1, dims=1)  # row i is the one-hot of position i - 1
previous[0] = 0  # the first token has no previous one: it attends (uniformly) to itself
previous_token = attention_weights(beta * 3 * previous, beta * 3 * positions,
                                   mask=causal_mask(T, T))

assert torch.allclose(same_char.sum(-1), torch.ones(T))  # each row is a distribution
assert (previous_token.diagonal(offset=-1) > 0.99).all()  # token i looks at token i - 1

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
labels = [c if c != " " else "␣" for c in sentence]
for ax, w, title in zip(axes, [same_char, previous_token],
                        ["same-character head", "previous-token head"], strict=True):
    ax.imshow(w, cmap="viridis")
    ax.set_xticks(range(T), labels)
    ax.set_yticks(range(T), labels)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - Attention: $\mathrm{softmax}(QK^\top/\sqrt{D} + M)\,V$, a soft lookup of values by
#   query-key similarity. Scaling by $1/\sqrt{D}$ keeps the scores' variance at 1, so softmax
#   does not saturate as heads get wider.
# - Masks are $-\infty$ added to the scores before softmax: causal (no peeking ahead) and
#   padding (no attending to filler).
# - Multi-head attention is $H$ attentions on $D = C/H$ wide slices, concatenated and projected.
# - Ours equals the library's, PyTorch's fused `scaled_dot_product_attention` and
#   `nn.MultiheadAttention` to float precision.
#
# Next: **Lesson 03** assembles attention, an MLP, LayerNorm and residual connections into GPT.
