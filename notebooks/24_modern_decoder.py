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
# # Lesson 24 — From GPT-2 to a modern decoder
#
# **Goal.** Llama, SmolLM2, Qwen3 and their relatives are GPT-2 with four parts replaced:
# RMSNorm for LayerNorm, rotary position embeddings (RoPE) for learned positions, the SwiGLU
# MLP for the GELU one, and grouped-query attention (GQA), where several query heads share one
# key/value head. Qwen3 adds a fifth, QK-norm. We derive each, write it out, show numerically
# that rotations make attention depend on relative position only, compute the KV-cache memory
# GQA saves for SmolLM2 and Llama-3.2-1B, and prove a hand-built block and a hand-run forward
# pass equal to the library's `fromscratch.language.llama`, weights copied by name.
#
# **Prerequisites.** Lessons 02 (attention), 03 (the GPT block) and 05 (the KV cache).
# This lesson runs in seconds; it has no fast mode.
#
# **Notation.** Batch $B$, sequence length $T$, width $C$ (`hidden_size`), query heads $H$,
# key/value heads $K$, head width $D$, MLP width $F$ (`intermediate_size`), layers $L$.
#
# The whole model, against Lesson 03's GPT:
#
# $$\begin{aligned}
# x_0 &= W_{te}[\mathrm{idx}] && \text{no position embedding}\\
# x &\leftarrow x + \mathrm{Attention}_{\mathrm{RoPE,\,GQA}}(\mathrm{RMSNorm}_1(x))
#   && \text{for each of the } L \text{ layers}\\
# x &\leftarrow x + \mathrm{SwiGLU}(\mathrm{RMSNorm}_2(x)) \\
# \mathrm{logits} &= \mathrm{RMSNorm}_f(x)\, W_{\mathrm{lm}}^\top && (B, T, V)
# \end{aligned}$$

# %%
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from fromscratch.attention import scaled_dot_product_attention
from fromscratch.exercises import check, exercise
from fromscratch.language.llama import (
    Llama,
    LlamaConfig,
    LlamaDecoderLayer,
    LlamaMLP,
    RMSNorm,
    apply_rope,
    repeat_kv,
    rope_cos_sin,
    rope_frequencies,
)

torch.manual_seed(0)

# %% [markdown]
# ## 1. RMSNorm: LayerNorm without the mean
#
# LayerNorm (Lesson 03) centres each token's $C$ features, divides by their standard deviation,
# then scales and shifts: $\gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$. Zhang &
# Sennrich (2019) found that the centring and the shift $\beta$ buy nothing measurable: what
# keeps training stable is controlling the *scale* of the residual stream. RMSNorm keeps only
# that:
#
# $$\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\frac1C \sum_i x_i^2 + \epsilon}} \odot g .$$
#
# One reduction instead of two, no bias. It is invariant to rescaling the input,
# $\mathrm{RMSNorm}(a x) = \mathrm{RMSNorm}(x)$ for $a > 0$ (up to $\epsilon$), but not to
# shifting it: unlike LayerNorm it sees the mean.
#
# ### Exercise: RMSNorm over the last axis

# %%
@exercise("rms_norm")
def my_rms_norm(x, weight, eps=1e-5):
    # TODO: mean of squares over the last axis (keepdim=True); divide x by the square root of
    # (that + eps); multiply by weight.
    raise NotImplementedError


check("rms_norm", my_rms_norm)

# %%
norm = RMSNorm(8, eps=1e-5)  # the library's; its gain starts at 1
with torch.no_grad():
    norm.weight.copy_(torch.linspace(0.5, 1.5, 8))
x = torch.randn(2, 3, 8) + 2.0  # features with a mean far from 0
assert torch.allclose(my_rms_norm(x, norm.weight), norm(x), atol=1e-6)
assert torch.allclose(my_rms_norm(10 * x, norm.weight), my_rms_norm(x, norm.weight), atol=1e-5)
layer_normed = F.layer_norm(x, (8,))
rms_normed = my_rms_norm(x, torch.ones(8))
print(f"mean of a token after LayerNorm {layer_normed[0, 0].mean():+.3f}, after RMSNorm "
      f"{rms_normed[0, 0].mean():+.3f}; root-mean-square after RMSNorm "
      f"{rms_normed[0, 0].pow(2).mean().sqrt():.3f}")

# %% [markdown]
# ## 2. RoPE: positions as rotations
#
# GPT-2 adds a learned vector per position to each token, so the model must learn that
# position 7 next to position 8 means the same as 107 next to 108, and it knows nothing past
# the longest position it was trained on. Su et al. (2021) instead put the position into the
# *angle* of the queries and keys.
#
# **Derivation.** Take one pair of coordinates of a query, as a complex number $q = q_1 + i
# q_2$, and the same pair of a key, $k$. Their contribution to the score is $\mathrm{Re}(q
# \bar k) = q_1 k_1 + q_2 k_2$. Now rotate the query of the token at position $m$ by the angle
# $m\omega$ and the key at position $n$ by $n\omega$:
#
# $$\mathrm{Re}\big(q e^{i m\omega}\,\overline{k e^{i n \omega}}\big) = \mathrm{Re}\big(q \bar k\,
# e^{i (m - n)\omega}\big).$$
#
# The absolute positions cancel: the score depends on $m - n$ only. A head of width $D$ has
# $D/2$ pairs, each turning at its own frequency $\omega_i = \theta^{-2i/D}$: the first pair
# turns once every $2\pi \approx 6$ positions, the last once every $\approx 2\pi\theta$, so some
# pairs tell neighbours apart and others keep the gist over thousands of tokens. Hugging Face's
# checkpoints pair coordinate $i$ with $i + D/2$ (the first half of a head with the second):
#
# $$(a, b) \mapsto (a\cos p\omega_i - b \sin p\omega_i,\; b \cos p\omega_i + a \sin p\omega_i).$$
#
# Nothing is learned, nothing is added to the residual stream, and values are not rotated.
#
# ### Exercise: rotate queries or keys by their positions

# %%
@exercise("apply_rope")
def my_apply_rope(x, positions, theta=10000.0):
    # TODO: omega_i = theta ** (-2i / D) for i < D/2; angles = positions[:, None] * omega;
    # split x into halves a, b; return cat([a cos - b sin, b cos + a sin]) on the last axis.
    raise NotImplementedError


check("apply_rope", my_apply_rope)

# %% [markdown]
# The library computes the cosines and sines once per forward pass (`rope_cos_sin`) and rotates
# with them (`apply_rope`); ours gives the same numbers, here for SmolLM2's head width 64 and
# θ = 100,000, for six tokens after five cached ones:

# %%
smol = LlamaConfig()  # the defaults are SmolLM2-135M's
x = torch.randn(1, smol.num_attention_heads, 6, smol.head_dim)  # (B, H, T, D)
positions = torch.arange(5, 11)
cos, sin = rope_cos_sin(positions[None], rope_frequencies(smol))  # (1, T, D) each
assert torch.allclose(my_apply_rope(x, positions, smol.rope_theta), apply_rope(x, cos, sin),
                      atol=1e-5)
wavelengths = 2 * math.pi / rope_frequencies(smol)
print(f"{smol.head_dim // 2} frequencies, wavelengths from {wavelengths[0]:.1f} to "
      f"{wavelengths[-1]:,.0f} positions")

# %% [markdown]
# **Relative position, numerically.** Fix one query vector and one key vector, put them at every
# pair of positions $(m, n)$ and score them. The matrix of scores is constant along each
# diagonal ($m - n$ fixed): a Toeplitz matrix. And a rotation keeps lengths, so RoPE changes
# no vector's norm.

# %%
D, T = 64, 48
q_vec, k_vec = torch.randn(D), torch.randn(D)
at = torch.arange(T)
q_rot = my_apply_rope(q_vec.expand(T, D), at)  # (T, D): the same query at positions 0..T-1
k_rot = my_apply_rope(k_vec.expand(T, D), at)
scores = q_rot @ k_rot.T  # (T, T): scores[m, n] = query at m · key at n
for offset in (0, 3, 20):
    diagonal = torch.diagonal(scores, offset=-offset)  # all (m, n) with m - n = offset
    assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-3), offset
assert torch.allclose(q_rot.norm(dim=-1), q_vec.norm().expand(T), atol=1e-4)
print(f"score at (3, 1) {scores[3, 1]:.4f} = at (40, 38) {scores[40, 38]:.4f}; "
      f"at (3, 2) {scores[3, 2]:.4f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].imshow(scores, cmap="RdBu_r")
axes[0].set_title("q·k with RoPE: constant along diagonals")
axes[0].set_xlabel("key position n")
axes[0].set_ylabel("query position m")
distance = torch.arange(0, 400)
same_vector = my_apply_rope(torch.ones(400, D), distance) @ torch.ones(D)  # q = k = ones, m = 0
axes[1].plot(distance, same_vector / D)
axes[1].set_xlabel("distance m - n")
axes[1].set_ylabel("score / D")
axes[1].set_title("q = k = ones: similar vectors score lower far apart")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. SwiGLU: a gated MLP
#
# GPT-2's MLP is $\mathrm{GELU}(x W_1) W_2$. Shazeer (2020) compared *gated* variants, where a
# second projection decides, feature by feature, how much of the first passes:
#
# $$\mathrm{SwiGLU}(x) = \big(\mathrm{SiLU}(x W_{\mathrm{gate}}) \odot x W_{\mathrm{up}}\big)
# W_{\mathrm{down}}, \qquad \mathrm{SiLU}(z) = z\,\sigma(z).$$
#
# Three matrices instead of two, so to keep the parameters of a $4C$-wide MLP ($8C^2$) the width
# drops to $F \approx \frac{8}{3} C$: SmolLM2 has $C = 576$, $F = 1536 = 2.67\,C$.
#
# ### Exercise: the SwiGLU MLP, with nn.Linear's weight layout

# %%
@exercise("swiglu")
def my_swiglu(x, w_gate, w_up, w_down):
    # TODO: gate = x @ w_gate.T; up = x @ w_up.T; return (silu(gate) * up) @ w_down.T
    raise NotImplementedError


check("swiglu", my_swiglu)

# %%
tiny = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=6, num_key_value_heads=2, rope_theta=10000.0,
                   max_position_embeddings=64)
mlp = LlamaMLP(tiny)
x = torch.randn(2, 5, tiny.hidden_size)
assert torch.allclose(my_swiglu(x, mlp.gate_proj.weight, mlp.up_proj.weight,
                                mlp.down_proj.weight), mlp(x), atol=1e-6)
C, F_width = smol.hidden_size, smol.intermediate_size
print(f"SmolLM2's MLP: {3 * C * F_width:,} weights; a GELU MLP 4C wide: {8 * C * C:,}")

# %% [markdown]
# ## 4. Grouped-query attention, and the memory it saves
#
# Generating with a KV cache (Lesson 05) keeps every layer's keys and values for every token
# so far: $2 \cdot L \cdot H \cdot D$ numbers per token. At long contexts this cache, not the
# weights, fills the memory, and reading it every step is what makes decoding slow. Ainslie et
# al. (2023) let groups of $H/K$ query heads share one key/value head: the projections $W_K,
# W_V$ produce only $K$ heads, and the cache shrinks by $H/K$. Query head $h$ reads key/value
# head $\lfloor h / (H/K) \rfloor$. $K = H$ is ordinary multi-head attention; $K = 1$ is
# multi-query attention.
#
# ### Exercise: repeat each key/value head for its group of queries

# %%
@exercise("repeat_kv")
def my_repeat_kv(x, n_rep):
    # TODO: (B, K, T, D) -> (B, K * n_rep, T, D), heads in the order 0, 0, 1, 1, ... for
    # n_rep = 2 (torch.repeat_interleave along dim 1).
    raise NotImplementedError


check("repeat_kv", my_repeat_kv)

# %%
kv = torch.randn(1, 3, 4, 8)  # (B, K, T, D): SmolLM2's 3 key/value heads
assert torch.equal(my_repeat_kv(kv, 3), repeat_kv(kv, 3))
assert [int(h) // 3 for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
assert torch.equal(my_repeat_kv(kv, 3)[:, 7], kv[:, 2])  # query head 7 reads key head 2

# %% [markdown]
# The cache per token is $2 \cdot L \cdot K \cdot D$ numbers, two bytes each in bfloat16.
# SmolLM2-135M has $L = 30$, $H = 9$, $K = 3$, $D = 64$; Llama-3.2-1B has $L = 16$, $H = 32$,
# $K = 8$, $D = 64$ (its published config.json):

# %%
llama_1b = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                       num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                       rope_theta=500000.0, max_position_embeddings=131072)


def kv_cache_bytes(config, tokens, kv_heads, bytes_per_number=2):
    """Keys and values of every layer for `tokens` tokens: 2 · L · K · D numbers each."""
    return 2 * config.num_hidden_layers * kv_heads * config.head_dim * tokens * bytes_per_number


for name, config, context in [("SmolLM2-135M", smol, 8192), ("Llama-3.2-1B", llama_1b, 131072)]:
    grouped = kv_cache_bytes(config, context, config.num_key_value_heads)
    full = kv_cache_bytes(config, context, config.num_attention_heads)
    per_token = kv_cache_bytes(config, 1, config.num_key_value_heads)
    print(f"{name}: {per_token:,} bytes per token; at {context:,} tokens {grouped / 2**30:.2f} "
          f"GiB with {config.num_key_value_heads} KV heads, {full / 2**30:.2f} GiB with all "
          f"{config.num_attention_heads} ({full // grouped}x)")
assert kv_cache_bytes(smol, 1, 3) == 23_040 and kv_cache_bytes(llama_1b, 1, 8) == 32_768
assert kv_cache_bytes(llama_1b, 131072, 8) == 4 * 2**30  # 4 GiB instead of 16

# %% [markdown]
# ## 5. QK-norm
#
# The score $q \cdot k / \sqrt D$ grows with the lengths of $q$ and $k$; if training lets those
# grow, softmax saturates, one key takes all the weight and gradients vanish. Qwen3 (like
# several vision and multimodal models before it) RMS-normalises every head of $q$ and of $k$
# before RoPE, each with a learned gain of width $D$. Then every head's $q$ and $k$ have
# root-mean-square $g$, whatever the projections do. In the library it is one flag,
# `qk_norm=True`, which adds `q_norm` and `k_norm` to each attention layer. Scaling $W_Q$ by 10
# changes nothing with it, and saturates attention without it:

# %%
def attention_entropy(config, q_scale):
    """Mean entropy of a layer's attention rows with W_Q scaled by q_scale (nats)."""
    layer = LlamaDecoderLayer(config, 0).eval()
    attn = layer.self_attn
    with torch.no_grad():
        attn.q_proj.weight.mul_(q_scale)
        x = torch.randn(1, 16, config.hidden_size) * 3
        q = attn.q_proj(x).view(1, 16, attn.n_head, attn.head_dim)
        k = attn.k_proj(x).view(1, 16, attn.n_kv_head, attn.head_dim)
        if config.qk_norm:
            q, k = attn.q_norm(q), attn.k_norm(k)
        k = repeat_kv(k.transpose(1, 2), attn.n_head // attn.n_kv_head)
        scores = q.transpose(1, 2) @ k.mT / math.sqrt(attn.head_dim)  # (1, H, T, T), no mask
        weights = scores.softmax(dim=-1)
    return float(-(weights * weights.clamp_min(1e-12).log()).sum(-1).mean())


qk_tiny = replace(tiny, qk_norm=True)  # the same shapes, with q_norm and k_norm
for config, label in [(tiny, "without QK-norm"), (qk_tiny, "with QK-norm   ")]:
    torch.manual_seed(1)
    plain = attention_entropy(config, 1.0)
    torch.manual_seed(1)
    scaled = attention_entropy(config, 10.0)
    print(f"{label}: entropy {plain:.3f} nats, with W_Q x 10: {scaled:.3f} (uniform over 16: "
          f"{math.log(16):.3f})")
    if config.qk_norm:
        assert abs(plain - scaled) < 1e-4

# %% [markdown]
# ## 6. The block, by hand, equal to the library's
#
# Everything together: one decoder layer written out with the four exercises and Lesson 02's
# attention, reading its weights by their Hugging Face names from the library's
# `LlamaDecoderLayer`. The only new line is where RoPE goes: on $q$ and $k$ after the heads are
# split, before the scores (and before the cache, so cached keys keep their own positions).

# %%
def my_decoder_layer(x, weights, config, positions):
    """One Llama layer: x (B, T, C), weights named as in model.layers.N, positions (T,)."""
    B, T, C = x.shape
    H, K, D = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    eps = config.rms_norm_eps
    h = my_rms_norm(x, weights["input_layernorm.weight"], eps)  # (B, T, C)
    q = (h @ weights["self_attn.q_proj.weight"].T).view(B, T, H, D)
    k = (h @ weights["self_attn.k_proj.weight"].T).view(B, T, K, D)
    v = (h @ weights["self_attn.v_proj.weight"].T).view(B, T, K, D)
    if config.qk_norm:
        q = my_rms_norm(q, weights["self_attn.q_norm.weight"], eps)
        k = my_rms_norm(k, weights["self_attn.k_norm.weight"], eps)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, D)
    q = my_apply_rope(q, positions, config.rope_theta)
    k = my_apply_rope(k, positions, config.rope_theta)
    k, v = my_repeat_kv(k, H // K), my_repeat_kv(v, H // K)  # (B, H, T, D)
    y = scaled_dot_product_attention(q, k, v, causal=True)  # (B, H, T, D)
    x = x + y.transpose(1, 2).reshape(B, T, H * D) @ weights["self_attn.o_proj.weight"].T
    h = my_rms_norm(x, weights["post_attention_layernorm.weight"], eps)
    return x + my_swiglu(h, weights["mlp.gate_proj.weight"], weights["mlp.up_proj.weight"],
                         weights["mlp.down_proj.weight"])  # (B, T, C)


for config in (tiny, qk_tiny):
    layer = LlamaDecoderLayer(config, 0).eval()
    for parameter in layer.parameters():  # random gains too, so a missing one would show
        torch.nn.init.normal_(parameter, std=0.2)
    weights = dict(layer.named_parameters())
    x = torch.randn(2, 7, config.hidden_size)
    positions = torch.arange(7)
    cos, sin = rope_cos_sin(positions.expand(2, 7), rope_frequencies(config))
    with torch.no_grad():
        ours, library = my_decoder_layer(x, weights, config, positions), layer(x, cos, sin)
    print(f"qk_norm={config.qk_norm}: max |ours - library| = {(ours - library).abs().max():.2e}")
    assert torch.allclose(ours, library, atol=1e-5)

# %% [markdown]
# And the whole forward pass of a small random Llama, embeddings to logits, against
# `Llama.forward`: same names, same numbers.

# %%
model = Llama(tiny).eval()
weights = dict(model.named_parameters())
idx = torch.randint(0, tiny.vocab_size, (2, 9))  # (B, T)
with torch.no_grad():
    x = weights["model.embed_tokens.weight"][idx]  # (B, T, C): no position embedding
    for n in range(tiny.num_hidden_layers):
        prefix = f"model.layers.{n}."
        layer_weights = {key[len(prefix):]: w for key, w in weights.items()
                         if key.startswith(prefix)}
        x = my_decoder_layer(x, layer_weights, tiny, torch.arange(9))
    logits = my_rms_norm(x, weights["model.norm.weight"], tiny.rms_norm_eps) @ \
        model.lm_head.weight.T  # (B, T, V); tied: lm_head is embed_tokens
    assert torch.allclose(logits, model(idx), atol=1e-5)
assert model.lm_head.weight is model.model.embed_tokens.weight
print("hand-run forward = Llama.forward; logits", tuple(logits.shape))

n_params = sum(p.numel() for p in Llama(LlamaConfig()).parameters())
print(f"SmolLM2-135M's shapes give {n_params:,} parameters")
assert n_params == 134_515_008

# %% [markdown]
# ## Summary
#
# - **RMSNorm** divides by the root mean square and multiplies by a gain: no centring, no bias.
# - **RoPE** rotates each pair of query and key coordinates by position × frequency; scores then
#   depend only on the distance between tokens (the Toeplitz matrix above), and nothing is
#   learned.
# - **SwiGLU** gates one projection with the SiLU of another; $F \approx 8C/3$ keeps the count.
# - **GQA** shares each key/value head among $H/K$ queries: SmolLM2's cache is 3× smaller,
#   Llama-3.2-1B's 4× (4 GiB instead of 16 at 128K tokens).
# - **QK-norm** fixes the size of every head's queries and keys, so scores cannot blow up.
#
# `fromscratch.Llama` is these pieces, with the KV cache of Lesson 05. The next lesson loads a
# real one, SmolLM2-135M-Instruct, from a 4-bit GGUF file, and talks to it.
