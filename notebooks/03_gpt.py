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
# # Lesson 03 — GPT, block by block
#
# **Goal.** Assemble a GPT from the parts: token and position embeddings, LayerNorm, causal
# multi-head attention, an MLP with GELU, residual connections in the pre-LayerNorm
# arrangement, and an output layer that shares its weights with the token embeddings. We write
# each piece out, prove a hand-assembled block and a hand-run forward pass equal to the library's
# `GPT`, and derive the parameter count — checked against GPT-2's famous 124M.
#
# **Prerequisites.** Lesson 02 (attention). Lesson 01 explains where the token ids come from.
# This lesson runs in seconds; it has no fast mode.
#
# **Notation.** Batch $B$, sequence length $T$, width $C$ (`n_embd`), heads $H$, head width
# $D = C/H$, vocabulary $V$, layers $L$, longest sequence $T_{\max}$ (`block_size`).
#
# The whole model, which the rest of the lesson unpacks:
#
# $$\begin{aligned}
# x_0 &= W_{te}[\mathrm{idx}] + W_{pe}[0..T-1] && (B, T, C)\\
# x &\leftarrow x + \mathrm{Attention}(\mathrm{LN}_1(x)) && \text{for each of the } L
#   \text{ blocks}\\
# x &\leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x)) \\
# \mathrm{logits} &= \mathrm{LN}_f(x)\, W_{te}^\top && (B, T, V)
# \end{aligned}$$

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import causal_mask, scaled_dot_product_attention
from fromscratch.exercises import check, exercise
from fromscratch.language.gpt import GPT, PRESETS, GPTConfig

torch.manual_seed(0)

config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0)
model = GPT(config).eval()  # eval: no dropout (it is 0 here anyway)
idx = torch.randint(0, config.vocab_size, (2, 10))  # (B, T) token ids
print(config)

# %% [markdown]
# Parameter names follow OpenAI's GPT-2 checkpoint as Hugging Face `transformers` stores it, so
# real GPT-2 weights load by name:

# %%
for name, p in model.named_parameters():
    if ".h.1." not in name:  # block 1 has the same names as block 0
        print(f"{name:<36} {tuple(p.shape)}")

# %% [markdown]
# ## 1. Embeddings
#
# A token id selects a row of the token-embedding table $W_{te}$ $(V, C)$: a learned vector for
# each token. Attention itself is blind to order (permute the keys and values together and the
# output doesn't change), so a second table $W_{pe}$ $(T_{\max}, C)$ adds a learned vector per
# *position*. Indexing a table with the ids is all an embedding layer does.

# %%
wte = model.transformer.wte.weight  # (V, C)
wpe = model.transformer.wpe.weight  # (T_max, C)
T = idx.shape[1]
x0 = wte[idx] + wpe[torch.arange(T)]  # (B, T, C) + (T, C) broadcasts over the batch
assert torch.equal(x0, model.transformer.wte(idx) + model.transformer.wpe(torch.arange(T)))
print("x0", tuple(x0.shape))

# %% [markdown]
# ## 2. LayerNorm
#
# Deep networks train badly when the scale of activations drifts from layer to layer.
# LayerNorm rescales *each token's* vector of $C$ features to mean 0 and variance 1, then applies
# a learned per-feature scale $\gamma$ and shift $\beta$:
#
# $$ \mathrm{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta,\qquad
# \mu = \frac1C \sum_{c} x_c,\quad \sigma^2 = \frac1C \sum_c (x_c - \mu)^2. $$
#
# The variance is the *biased* one (divide by $C$, not $C-1$), and $\epsilon = 10^{-5}$ keeps
# the division safe for a nearly constant vector. Unlike BatchNorm it never mixes tokens or
# examples, so it behaves the same in training and generation.
#
# ### Exercise: LayerNorm over the last axis

# %%
@exercise("layer_norm")
def layer_norm(x, weight, bias, eps=1e-5):
    # TODO: mean and biased variance over dim=-1 (keepdim=True); normalize; scale and shift.
    raise NotImplementedError


check("layer_norm", layer_norm)

# %%
ln_1 = model.transformer.h[0].ln_1
assert torch.allclose(layer_norm(x0, ln_1.weight, ln_1.bias), ln_1(x0), atol=1e-5)

# %% [markdown]
# ## 3. Causal self-attention
#
# Lesson 02's multi-head attention, as GPT-2 lays it out: one linear layer `c_attn` computes
# queries, keys and values together $(C \to 3C)$, a `view` splits each into $H$ heads, causal
# attention runs on all heads at once, and `c_proj` mixes the concatenated heads back $(C \to
# C)$. We use the library's attention, proven in Lesson 02.


# %%
def causal_self_attention(x, attn):
    """x (B, T, C) -> (B, T, C) with the weights of a GPT attention module `attn`."""
    batch, length, width = x.shape
    heads = config.n_head
    qkv = x @ attn.c_attn.weight.T + attn.c_attn.bias  # (B, T, 3C)
    q, k, v = qkv.split(width, dim=-1)  # each (B, T, C)

    def split_heads(t):  # (B, T, C) -> (B, H, T, D)
        return t.view(batch, length, heads, width // heads).transpose(1, 2)

    mask = causal_mask(length, length)  # (T, T): token t sees tokens 0..t
    y = scaled_dot_product_attention(split_heads(q), split_heads(k), split_heads(v), mask=mask)
    y = y.transpose(1, 2).reshape(batch, length, width)  # heads side by side: (B, T, C)
    return y @ attn.c_proj.weight.T + attn.c_proj.bias  # (B, T, C)


h0 = model.transformer.h[0]
assert torch.allclose(causal_self_attention(x0, h0.attn), h0.attn(x0), atol=1e-5)

# %% [markdown]
# ## 4. The MLP and GELU
#
# Attention moves information *between* tokens; the MLP then processes each token on its own:
# widen to $4C$, apply a nonlinearity, project back to $C$:
#
# $$ \mathrm{MLP}(x) = \mathrm{GELU}(x W_{fc} + b_{fc})\, W_{proj} + b_{proj}. $$
#
# GELU is $x \cdot \Phi(x)$ with $\Phi$ the standard normal CDF: a smooth ReLU that lets a little
# negative signal through. GPT-2 used the tanh approximation
#
# $$ \mathrm{GELU}(x) \approx \tfrac12\, x \left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,
# x^3)\right)\right), $$
#
# and matching a checkpoint means matching its exact function (the two differ by up to
# $5 \times 10^{-4}$).
#
# ### Exercise: GELU, tanh form

# %%
@exercise("gelu")
def gelu(x):
    # TODO: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))
    raise NotImplementedError


check("gelu", gelu)

# %%
xs = torch.linspace(-4, 4, 401)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(xs, torch.relu(xs), label="ReLU", linestyle=":")
ax1.plot(xs, gelu(xs), label="GELU (tanh form)")
ax1.set_title("GELU: a smooth ReLU")
ax1.legend()
ax1.grid(alpha=0.3)
ax2.plot(xs, gelu(xs) - F.gelu(xs), color="tab:red")
ax2.set_title("tanh form − exact (erf) form")
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()


# %%
def mlp(x, m):
    """x (B, T, C) -> (B, T, C) with the weights of a GPT MLP module `m`."""
    hidden = gelu(x @ m.c_fc.weight.T + m.c_fc.bias)  # (B, T, 4C)
    return hidden @ m.c_proj.weight.T + m.c_proj.bias  # (B, T, C)


assert torch.allclose(mlp(x0, h0.mlp), h0.mlp(x0), atol=1e-5)

# %% [markdown]
# ## 5. Residual connections and pre-LayerNorm
#
# Each sub-layer *adds* its output to a running "residual stream" instead of replacing it:
# $x \leftarrow x + f(\mathrm{LN}(x))$. Differentiating, $\partial x_{\text{out}} / \partial
# x_{\text{in}} = I + \partial f / \partial x_{\text{in}}$: the identity term gives the gradient a
# direct path from the loss to the first layer, however deep the network, so it neither vanishes
# nor has to pass through every nonlinearity.
#
# GPT-2 normalizes the *input* of each sub-layer ("pre-LN") rather than the sum after it, as
# the original Transformer did ("post-LN"). With pre-LN nothing ever normalizes the stream
# itself, so the identity path stays clean; a final LayerNorm $\mathrm{LN}_f$ before the output
# layer takes care of the scale. Pre-LN trains stably without the careful learning-rate warmup
# post-LN needs.
#
# Here is a block assembled by hand from the pieces above, in a module of its own whose
# parameters are created fresh and then **copied** from the library's block by name:


# %%
class HandBlock(nn.Module):
    """A GPT block computed with our functions. The nn.Linear / nn.LayerNorm members only hold
    parameters (named as in GPT-2, so state dicts match); every computation is written out."""

    def __init__(self, width: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.ModuleDict(
            {"c_attn": nn.Linear(width, 3 * width), "c_proj": nn.Linear(width, width)}
        )
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.ModuleDict(
            {"c_fc": nn.Linear(width, 4 * width), "c_proj": nn.Linear(4 * width, width)}
        )

    def forward(self, x):  # (B, T, C)
        x = x + causal_self_attention(layer_norm(x, self.ln_1.weight, self.ln_1.bias), self.attn)
        return x + mlp(layer_norm(x, self.ln_2.weight, self.ln_2.bias), self.mlp)


hand = HandBlock(config.n_embd)
hand.load_state_dict(h0.state_dict())  # copy every weight, matched by name
with torch.no_grad():
    difference = (hand(x0) - h0(x0)).abs().max().item()
print(f"max |hand-assembled block - library block| = {difference:.2e}")
assert difference < 1e-5

# %% [markdown]
# ## 6. The output layer and weight tying
#
# After the last block, $\mathrm{LN}_f$ and a linear map to $V$ logits, one score per possible
# next token. GPT-2 reuses the token-embedding matrix for it: $\mathrm{logits} = x\, W_{te}^\top$.
# A token's input vector is also the direction that predicts it, and the model saves $V \cdot C$
# parameters (38.6M of GPT-2 small's 124M). In the library the two are one tensor:

# %%
assert model.lm_head.weight is model.transformer.wte.weight

with torch.no_grad():
    x = x0
    for block in model.transformer.h:
        x = block(x)  # (B, T, C)
    ln_f = model.transformer.ln_f
    logits = layer_norm(x, ln_f.weight, ln_f.bias) @ wte.T  # (B, T, V)
    library_logits = model(idx)
print("logits", tuple(logits.shape))
assert torch.allclose(logits, library_logits, atol=1e-5)

# %% [markdown]
# Causality, checked: changing a *later* token must not change the logits at earlier positions.

# %%
changed = idx.clone()
changed[:, 6] = (changed[:, 6] + 1) % config.vocab_size
with torch.no_grad():
    other_logits = model(changed)
assert torch.allclose(other_logits[:, :6], library_logits[:, :6], atol=1e-6)
assert not torch.allclose(other_logits[:, 6:], library_logits[:, 6:])

# %% [markdown]
# ## 7. Counting parameters
#
# Per block, with biases (weight matrix + bias vector for each linear layer, $\gamma$ and
# $\beta$ for each LayerNorm):
#
# | piece | parameters |
# |---|---|
# | `ln_1`, `ln_2` | $2C + 2C$ |
# | `attn.c_attn` $(C \to 3C)$ | $3C^2 + 3C$ |
# | `attn.c_proj` $(C \to C)$ | $C^2 + C$ |
# | `mlp.c_fc` $(C \to 4C)$ | $4C^2 + 4C$ |
# | `mlp.c_proj` $(4C \to C)$ | $4C^2 + C$ |
# | **block** | $12C^2 + 13C$ |
#
# Adding the embeddings and the final LayerNorm ($W_{te}$ counted once: it is tied),
#
# $$ N = V C + T_{\max} C + L\,(12 C^2 + 13 C) + 2C. $$


# %%
def gpt_parameters(V, T_max, L, C):
    return V * C + T_max * C + L * (12 * C**2 + 13 * C) + 2 * C


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())  # a shared tensor is listed once


assert count(model) == gpt_parameters(65, 32, config.n_layer, config.n_embd)
print(f"our small model: {count(model):,} parameters, as the formula says")

# GPT-2's sizes, built on the "meta" device: shapes only, no memory, no initialization.
sizes = {}
for name, preset in PRESETS.items():
    with torch.device("meta"):
        real = GPT(GPTConfig(**preset))  # vocab 50,257 and 1,024 positions by default
    C, L = preset["n_embd"], preset["n_layer"]
    assert count(real) == gpt_parameters(50257, 1024, L, C)
    sizes[name] = {
        "embeddings": 50257 * C + 1024 * C,
        "attention": L * (4 * C**2 + 4 * C),
        "MLP": L * (8 * C**2 + 5 * C),
        "LayerNorms": L * 4 * C + 2 * C,
    }
    print(f"{name:<12} {count(real):>13,} parameters")
assert count(real) > 1.5e9 and sizes["gpt2"]["MLP"] > 0
with torch.device("meta"):
    assert count(GPT(GPTConfig())) == 124_439_808  # "GPT-2 small, 124M"

fig, ax = plt.subplots(figsize=(7, 3.5))
left = [0] * len(sizes)
for part in ["embeddings", "attention", "MLP", "LayerNorms"]:
    widths = [sizes[name][part] / 1e6 for name in sizes]
    ax.barh(list(sizes), widths, left=left, label=part)
    left = [a + b for a, b in zip(left, widths, strict=True)]
ax.set_xlabel("millions of parameters")
ax.invert_yaxis()
ax.legend()
ax.set_title("Where GPT-2's parameters are: mostly MLPs, then attention")
fig.tight_layout()
plt.show()

# %% [markdown]
# The $12C^2$ per block dominates as models grow: two thirds in the MLP, one third in attention.
# The embeddings are a large share of GPT-2 small (31%) but a small one of GPT-2 XL.
#
# ## Summary
#
# - GPT = embeddings + $L$ blocks of (LN → causal attention → add, LN → MLP → add) + LN → tied
#   output layer.
# - Residual connections give the gradient an identity path; pre-LN keeps that path
#   un-normalized and training stable.
# - Our hand-assembled block and forward pass equal the library's; the parameter count is
#   $VC + T_{\max}C + L(12C^2 + 13C) + 2C$, 124,439,808 for GPT-2 small.
#
# Next: **Lesson 04** trains one.
