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
# # Lesson 05 — Generation: sampling strategies and the KV cache
#
# **Goal.** A trained language model gives a probability for every possible next token. How we
# pick from it changes the text a lot: greedy decoding, temperature, top-k and top-p (nucleus)
# sampling, each on worked distributions. Then speed: the **KV cache**, derived, built by hand
# for one attention layer, proven to give the same outputs as recomputing everything, and timed.
#
# **Prerequisites.** Lessons 02–04 (attention, the GPT, training).
#
# **Run modes.** `FROMSCRATCH_FAST=1` (CI) trains a tiny model for a few seconds and times short
# generations; without it, a small model trains for 3 minutes and the timings go to 512 tokens.

# %%
import os
import time

import matplotlib.pyplot as plt
import torch

from fromscratch.attention import MultiHeadAttention, scaled_dot_product_attention
from fromscratch.data.text import LMBatches, load_text, split_train_val
from fromscratch.exercises import check, exercise
from fromscratch.language.gpt import (
    GPT,
    GPTConfig,
    KVCache,
    sample_next,
    top_k_filter,
    top_p_filter,
)
from fromscratch.tokenizers import CharTokenizer
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# First, a model to generate with: a character-level GPT trained as in Lesson 04 (shorter).

# %%
text = load_text("pydoc")
tokenizer = CharTokenizer.train(text)
train_ids, _ = split_train_val(torch.tensor(tokenizer.encode(text)), 0.9)
block_size = 32 if FAST else 64
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size,
                      n_layer=2 if FAST else 4, n_head=2 if FAST else 4,
                      n_embd=32 if FAST else 128, dropout=0.0, bias=False))
result = train(
    model,
    LMBatches(train_ids, block_size, batch_size=16 if FAST else 32, seed=0),
    TrainConfig(max_steps=60 if FAST else 800, max_time=None if FAST else 180.0, lr=3e-3,
                warmup_steps=10 if FAST else 50, log_interval=10, progress=not FAST),
)
model.eval()
print(f"trained {result.step} steps; last training loss {result.last('loss'):.3f}")

# %% [markdown]
# ## 1. From logits to one token
#
# The model's output at the last position is a vector of $V$ logits $z$; $p =
# \mathrm{softmax}(z)$. Take a made-up distribution over five next words to see what each
# strategy does:

# %%
words = ["cat", "dog", "bird", "fish", "banana"]
z = torch.tensor([2.0, 1.5, 0.8, 0.2, -1.5])  # logits


def show(probs, title, ax):
    ax.bar(words, probs)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)


print({w: round(p, 3) for w, p in zip(words, torch.softmax(z, -1).tolist(), strict=True)})

# %% [markdown]
# **Greedy** decoding always takes $\arg\max_j z_j$. It is deterministic and, for a language
# model, dull: text falls into loops, because the most likely continuation of a loop is more
# of it.
#
# **Temperature** $\tau$ divides the logits before the softmax, $p_j \propto e^{z_j/\tau}$. The
# ratio of two probabilities becomes $p_i / p_j = e^{(z_i - z_j)/\tau}$: $\tau < 1$ widens the
# gaps (sharper, safer text), $\tau > 1$ narrows them (flatter, more surprising text). As
# $\tau \to 0$ all the mass goes to the argmax — greedy again; $\tau = 1$ is the model's own
# distribution.

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3))
for ax, tau in zip(axes, [0.25, 0.5, 1.0, 2.0], strict=True):
    probs = torch.softmax(z / tau, dim=-1)
    entropy = -(probs * probs.log()).sum().item()
    show(probs, f"τ = {tau}: entropy {entropy:.2f} nats", ax)
fig.tight_layout()
plt.show()
assert torch.softmax(z / 0.01, -1).argmax() == z.argmax()
assert torch.softmax(z / 0.01, -1).max() > 0.999  # τ → 0 is greedy

# %% [markdown]
# ## 2. Top-k: only the k most likely tokens
#
# Even a good model spreads a little probability over thousands of absurd tokens, and over a
# long text one of them eventually gets sampled. **Top-k** sampling sets every logit but the $k$
# largest to $-\infty$ before the softmax, so the rest get exactly zero probability, and the
# survivors share the mass in proportion to what they had.
#
# ### Exercise: top-k filtering

# %%
@exercise("top_k_filter")
def my_top_k_filter(logits, k):
    # TODO: the k-th largest value of each row (torch.topk(...).values[..., -1:]); everything
    # below it -> float("-inf"). Clamp k to the vocabulary size.
    raise NotImplementedError


check("top_k_filter", my_top_k_filter)

# %%
assert torch.equal(my_top_k_filter(z, 2), top_k_filter(z, 2))  # the library's
filtered = torch.softmax(top_k_filter(z, 2), dim=-1)
print({w: round(p, 3) for w, p in zip(words, filtered.tolist(), strict=True)})
p = torch.softmax(z, -1)
assert torch.allclose(filtered[:2], p[:2] / p[:2].sum())  # renormalized, ratios kept

# %% [markdown]
# ## 3. Top-p (nucleus): the smallest set holding probability p
#
# A fixed $k$ is too many when the model is sure (one token has 95%) and too few when it is
# not (fifty plausible words). **Top-p** keeps the *smallest set of most likely tokens whose
# probabilities add up to at least $p$*: sort the probabilities from largest down, and keep a
# token while the tokens ranked above it hold less than $p$ in total.
#
# Worked example: probabilities $[0.5, 0.3, 0.15, 0.05]$ and $p = 0.8$. The first token is kept
# (nothing above it); the second too ($0.5 < 0.8$); the third is dropped, since the two above
# it already hold $0.8$. The nucleus is $\{0.5, 0.3\}$, renormalized to $\{0.625, 0.375\}$.

# %%
worked = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()  # logits whose softmax is these
kept = torch.softmax(top_p_filter(worked, 0.8), dim=-1)
print(kept)
assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))

# %% [markdown]
# ### Exercise: top-p filtering

# %%
@exercise("top_p_filter")
def my_top_p_filter(logits, p):
    # TODO: probs = softmax; sort descending (keep the order indices); mass above each token =
    # cumsum - itself; drop where that mass >= p; scatter the mask back; fill with -inf.
    raise NotImplementedError


check("top_p_filter", my_top_p_filter)

# %%
assert torch.equal(my_top_p_filter(z, 0.9), top_p_filter(z, 0.9))
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
show(torch.softmax(z, -1), "the model's distribution", axes[0])
show(torch.softmax(top_k_filter(z, 2), -1), "top-k, k = 2", axes[1])
show(torch.softmax(top_p_filter(z, 0.9), -1), "top-p, p = 0.9", axes[2])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. One sampling step, by hand and by the library
#
# The library's `sample_next` applies temperature, then top-k, then top-p, and draws from the
# result. Given the same random generator, our version written out draws the same tokens:


# %%
def sample_by_hand(logits, temperature, k, p, generator):
    logits = logits / temperature
    logits = top_p_filter(top_k_filter(logits, k), p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


batch_logits = torch.randn(4, tokenizer.vocab_size) * 2
ours = sample_by_hand(batch_logits, 0.8, 20, 0.9, torch.Generator().manual_seed(1))
library = sample_next(batch_logits, 0.8, 20, 0.9, torch.Generator().manual_seed(1))
assert torch.equal(ours, library)
print(ours.flatten().tolist())

# %% [markdown]
# ## 5. The same model, five ways

# %%
prompt = torch.tensor([tokenizer.encode("The ")])
settings = {
    "greedy": dict(temperature=0.0),
    "τ = 0.5": dict(temperature=0.5),
    "τ = 1.0": dict(temperature=1.0),
    "τ = 1.0, top-k 10": dict(temperature=1.0, top_k=10),
    "τ = 1.0, top-p 0.9": dict(temperature=1.0, top_p=0.9),
}
for name, kwargs in settings.items():
    out = model.generate(prompt, max_new_tokens=120, generator=torch.Generator().manual_seed(0),
                         **kwargs)
    print(f"--- {name} ---\n{tokenizer.decode(out[0].tolist())}\n")

# %% [markdown]
# ## 6. The KV cache
#
# Generating $N$ tokens naively runs the model on the whole sequence at every step: step $t$
# recomputes queries, keys and values for all $t$ positions, although only the last position's
# logits are used. Per layer that is $O(t\,C^2)$ for the projections and MLP plus $O(t^2 C)$ for
# attention, at each of $N$ steps.
#
# **Why old keys and values can be kept.** Attention is causal, so the hidden state of token $j$
# at layer 1 depends only on tokens $0..j$. By induction the same holds at every layer: layer
# $\ell$ at token $j$ reads layer $\ell - 1$ at tokens $\le j$ only. The key $k_j = h_j W_K$ and
# value $v_j = h_j W_V$ of token $j$ are therefore *final* once token $j$ has been processed:
# later tokens never change them. (This is exactly why the model is trained with a causal mask.)
#
# **So each step only needs the new token.** Keep every layer's keys and values in a cache; at
# step $t$ feed only token $t$: compute its $q_t, k_t, v_t$, append $k_t, v_t$, and attend
# with $q_t$ over all cached keys:
#
# $$ \mathrm{out}_t = \mathrm{softmax}\!\left(\frac{q_t\, [k_0; \dots; k_t]^\top}{\sqrt D}\right)
# [v_0; \dots; v_t]. $$
#
# The new query sits at the last position, so it may see every cached key: no mask is needed.
# The cost per step drops to $O(C^2 + t\,C)$ per layer — linear in $t$ instead of quadratic —
# paid for with memory: $2 \cdot L \cdot t \cdot C$ numbers.
#
# ### By hand, for one attention layer
#
# We take a multi-head attention layer (Lesson 02), run it once over a whole sequence with the
# causal mask, then again one token at a time with a growing cache, and compare.

# %%
C, H, T = 32, 4, 12
layer = MultiHeadAttention(C, H).eval()
x = torch.randn(1, T, C)  # (B, T, C)


def split_heads(t):  # (B, T, C) -> (B, H, T, D)
    return t.view(t.shape[0], t.shape[1], H, C // H).transpose(1, 2)


with torch.no_grad():
    recomputed = layer(x, causal=True)  # (1, T, C): all positions at once
    cached_keys, cached_values, outputs = [], [], []
    for t in range(T):
        x_t = x[:, t : t + 1]  # (1, 1, C): only the new token
        q_t = split_heads(layer.q_proj(x_t))  # (1, H, 1, D)
        cached_keys.append(split_heads(layer.k_proj(x_t)))
        cached_values.append(split_heads(layer.v_proj(x_t)))
        keys = torch.cat(cached_keys, dim=2)  # (1, H, t + 1, D)
        values = torch.cat(cached_values, dim=2)
        out_t = scaled_dot_product_attention(q_t, keys, values)  # no mask: all keys are past
        outputs.append(layer.out_proj(out_t.transpose(1, 2).reshape(1, 1, C)))  # (1, 1, C)
    incremental = torch.cat(outputs, dim=1)  # (1, T, C)

print("max |cached - recomputed| =", (incremental - recomputed).abs().max().item())
assert torch.allclose(incremental, recomputed, atol=1e-6)

# %% [markdown]
# ### In the library's GPT
#
# `GPT.forward(idx, kv_cache=cache)` does the same in every layer: it takes only the tokens
# after the `cache.length` already cached, and extends the cache. Step by step, its logits
# equal a full recomputation, and greedy generation with and without the cache gives the very
# same tokens.

# %%
sequence = torch.tensor([tokenizer.encode("def __init__(self):")])  # (1, T)
cache = KVCache(model.config.n_layer, max_len=sequence.shape[1])
with torch.no_grad():
    for t in range(sequence.shape[1]):
        cached_logits = model(sequence[:, t : t + 1], kv_cache=cache)[:, -1]  # one new token
        full_logits = model(sequence[:, : t + 1])[:, -1]  # everything again
        assert torch.allclose(cached_logits, full_logits, atol=1e-5), t
print(f"{sequence.shape[1]} steps: cached logits = recomputed logits")

with_cache = model.generate(prompt, max_new_tokens=50, temperature=0.0, use_cache=True)
without = model.generate(prompt, max_new_tokens=50, temperature=0.0, use_cache=False)
assert torch.equal(with_cache, without)

# %% [markdown]
# ### Timing
#
# A bigger (untrained: speed doesn't care) model, generating longer and longer continuations
# of a one-token prompt, with and without the cache. Without it the time per step grows with
# the sequence, so the total grows like $N^2$ or faster; with it, the total grows about like
# $N$. We time on one CPU thread, which makes the comparison less sensitive to whatever else the
# machine is doing.

# %%
torch.manual_seed(0)
big = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=512, n_layer=4, n_head=4,
                    n_embd=128 if FAST else 256)).eval()
lengths = [16, 32, 64] if FAST else [64, 128, 256, 512]
seconds = {True: [], False: []}
start_token = torch.zeros(1, 1, dtype=torch.long)
threads = torch.get_num_threads()
torch.set_num_threads(1)
for n in lengths:
    for use_cache in (True, False):
        begin = time.perf_counter()
        big.generate(start_token, max_new_tokens=n - 1, temperature=0.0, use_cache=use_cache)
        seconds[use_cache].append(time.perf_counter() - begin)
torch.set_num_threads(threads)
for n, fast_s, slow_s in zip(lengths, seconds[True], seconds[False], strict=True):
    print(f"{n:>4} tokens: {fast_s:6.3f} s with the cache, {slow_s:6.3f} s without "
          f"({slow_s / fast_s:.1f}x)")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(lengths, seconds[False], "o-", label="recompute everything")
ax.plot(lengths, seconds[True], "o-", label="KV cache")
ax.set_xlabel("tokens generated")
ax.set_ylabel("seconds")
ax.legend()
ax.set_title("Greedy generation time")
plt.show()
if not FAST:  # the short fast-mode runs are too noisy to promise a speed-up
    assert seconds[False][-1] > 4 * seconds[True][-1]

# %% [markdown]
# ## Summary
#
# - Greedy takes the argmax; temperature $\tau$ rescales logits ($\tau \to 0$: greedy);
#   top-k keeps the $k$ best; top-p keeps the smallest set with mass $\ge p$. Each filter sets
#   logits to $-\infty$ and lets softmax renormalize.
# - Causal attention makes past keys and values final, so a KV cache lets each step process one
#   token: cached and recomputed outputs are equal (we checked, by hand and in the library), and
#   generation time grows far more slowly with length.
#
# This is the end of the GPT track. `fromscratch gpt train` and `fromscratch gpt sample` run
# everything from these five lessons from the command line.
