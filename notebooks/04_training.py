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
# # Lesson 04 — Training a GPT
#
# **Goal.** Train a small character-level GPT from scratch on a laptop. On the way: the
# cross-entropy loss and why it starts at $\ln V$, the AdamW optimizer written out and proven
# equal to PyTorch's, and the warmup + cosine learning-rate schedule. Then a real training run,
# its loss curve, and text sampled from the result.
#
# **Prerequisites.** Lesson 03 (the GPT model). Lesson 01 for tokenizers.
#
# **Run modes.** With `FROMSCRATCH_FAST=1` (as in CI) the model is tiny and trains for a few
# seconds: the loss drops, the samples are gibberish. Without it, a 0.8M-parameter model trains
# for about 4 minutes on 2 CPU cores (5 at most) and learns to spell.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from fromscratch.data.text import LMBatches, evaluate_lm, load_text, split_train_val
from fromscratch.exercises import check, exercise
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.seeds import LOSS, micro_batch_seed  # noqa: F401 (the train_step exercise)
from fromscratch.tokenizers import CharTokenizer
from fromscratch.training.loop import TrainConfig, lr_at, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
CORPUS = "pydoc"  # Python's documentation, offline; or "shakespeare" (downloads 1.1 MB once)
torch.manual_seed(0)

# %% [markdown]
# ## 1. The loss: cross-entropy
#
# At every position $t$ the model outputs logits $z \in \mathbb{R}^V$, one per possible next
# token; softmax turns them into probabilities $p = \mathrm{softmax}(z)$. Training maximizes the
# probability of the token that actually came next, $y_t$ — equivalently, minimizes its negative
# log, averaged over the $N$ positions of a batch:
#
# $$ \mathcal{L} = -\frac1N \sum_{t=1}^{N} \log p_{y_t}
# = \frac1N \sum_{t} \Big( \log \sum_{j} e^{z_{t,j}} - z_{t, y_t} \Big). $$
#
# The right-hand form is how to compute it: `logsumexp` subtracts the maximum internally (as our
# stable softmax did), so no $e^{z}$ overflows, and we never take the log of a probability that
# underflowed to 0. $e^{\mathcal{L}}$ is the **perplexity**: the model is as unsure as a uniform
# choice among $e^{\mathcal{L}}$ tokens.
#
# ### Exercise: cross-entropy from logits

# %%
@exercise("cross_entropy")
def cross_entropy(logits, targets):
    # TODO: log-probabilities = logits - logsumexp(logits, dim=-1, keepdim=True);
    # pick each row's target entry; return minus their mean (a 0-d tensor).
    raise NotImplementedError


check("cross_entropy", cross_entropy)

# %%
logits, targets = torch.randn(8, 5), torch.randint(0, 5, (8,))
assert torch.allclose(cross_entropy(logits, targets), F.cross_entropy(logits, targets), atol=1e-6)

# %% [markdown]
# ## 2. The data
#
# A character tokenizer (Lesson 01) turns the corpus into one long sequence of ids; the first
# 90% trains, the last 10% validates. A training example is a window of $T$ consecutive ids $x$,
# and its targets $y$ are the same window shifted by one: at every position the model predicts
# the next character, so one window holds $T$ training examples.

# %%
text = load_text(CORPUS)
tokenizer = CharTokenizer.train(text)
ids = torch.tensor(tokenizer.encode(text))
train_ids, val_ids = split_train_val(ids, 0.9)
if FAST:
    val_ids = val_ids[:4_000]  # a slice, so that evaluating takes a moment
V = tokenizer.vocab_size
print(f"{len(text):,} characters, vocabulary of {V}; {len(train_ids):,} train / "
      f"{len(val_ids):,} validation tokens")

block_size, batch_size = (32, 16) if FAST else (64, 32)
batches = LMBatches(train_ids, block_size, batch_size, seed=0)  # batches(step) -> (x, y)
x, y = batches(step=0)
print("x", tuple(x.shape), repr(tokenizer.decode(x[0].tolist())))
print("y", tuple(y.shape), repr(tokenizer.decode(y[0].tolist())))
assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted left by one

# %% [markdown]
# ## 3. The loss at initialization is $\ln V$
#
# GPT-2's initialization draws weights from $\mathcal{N}(0, 0.02^2)$, so a fresh model's logits
# are all close to 0 and its prediction is close to uniform, $p_j \approx 1/V$. The loss is then
#
# $$ \mathcal{L}_0 \approx -\log \tfrac{1}{V} = \ln V $$
#
# (within a few percent: the logits are small but not exactly 0).
#
# This is the first number to check when training anything: a loss far above $\ln V$ at step 0
# means the model starts out confidently wrong (a bad initialization), and training will waste
# its first steps undoing that.

# %%
config = GPTConfig(
    vocab_size=V,
    block_size=block_size,
    n_layer=2 if FAST else 4,
    n_head=2 if FAST else 4,
    n_embd=32 if FAST else 128,
    dropout=0.0,
    bias=False,
)
model = GPT(config)
initial_loss = evaluate_lm(model, val_ids, block_size, batch_size=64)
print(f"{model.num_params():,} parameters; loss at init {initial_loss:.3f}, ln V = {math.log(V):.3f}")
assert abs(initial_loss - math.log(V)) < 0.05 * math.log(V)  # within a few percent

# %% [markdown]
# ## 4. The optimizer: AdamW
#
# Plain gradient descent, $\theta \leftarrow \theta - \eta\, g$, uses one step size for every
# parameter. Adam adapts it per parameter, from running averages of the gradient $g$ and of its
# square (step $t = 1, 2, \dots$):
#
# $$\begin{aligned}
# m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
# v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
# \hat m_t &= \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t}
# \qquad \text{(the averages start at 0: undo that bias)}\\
# \theta_t &= \theta_{t-1} - \eta\,\lambda\,\theta_{t-1} - \eta\,
# \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.
# \end{aligned}$$
#
# $\hat m / \sqrt{\hat v}$ is about $\pm 1$ for a parameter whose gradient keeps its sign, and
# small for one whose gradient is noise, whatever the gradient's scale. The "W" is the weight
# decay $\lambda$ *decoupled* from the gradient: it shrinks weights directly instead of being
# added to $g$ (where Adam's normalization would undo it). The library decays matrices only,
# not biases or LayerNorm gains.


# %%
def adamw_step(theta, grad, m, v, t, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
    """One AdamW update; returns the new (theta, m, v)."""
    beta1, beta2 = betas
    theta = theta - lr * weight_decay * theta  # decoupled weight decay
    m = beta1 * m + (1 - beta1) * grad  # running mean of gradients
    v = beta2 * v + (1 - beta2) * grad**2  # running mean of squared gradients
    m_hat = m / (1 - beta1**t)  # bias corrections
    v_hat = v / (1 - beta2**t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps), m, v


# Minimize a simple function both ways, from the same start, and compare every step.
target = torch.randn(5, 3)
ours = torch.randn(5, 3)
theirs = ours.clone().requires_grad_(True)
optimizer = torch.optim.AdamW([theirs], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
m, v = torch.zeros_like(ours), torch.zeros_like(ours)
for t in range(1, 51):
    grad = 2 * (ours - target)  # the gradient of ‖θ - target‖² at θ = ours
    ours, m, v = adamw_step(ours, grad, m, v, t)
    optimizer.zero_grad()
    ((theirs - target) ** 2).sum().backward()
    optimizer.step()
    assert torch.allclose(ours, theirs.detach(), atol=1e-5), t
print("50 AdamW steps by hand = torch.optim.AdamW; max difference",
      (ours - theirs.detach()).abs().max().item())

# %% [markdown]
# ## 5. The learning-rate schedule: warmup, then cosine decay
#
# At the start Adam's $\hat v$ rests on only a few gradients and the model is far from any
# sensible region: big steps there can blow training up. So the learning rate rises linearly
# over $W$ warmup steps, then decays along half a cosine from $\eta_{\max}$ to $\eta_{\min}$ at
# the last step $S$, letting the model settle:
#
# $$ \eta_k = \begin{cases} \eta_{\max}\,\dfrac{k+1}{W} & k < W \\[6pt]
# \eta_{\min} + \tfrac12\left(1 + \cos\dfrac{\pi (k-W)}{S-W}\right)(\eta_{\max} - \eta_{\min})
# & W \le k \le S. \end{cases} $$

# %%
train_config = TrainConfig(
    max_steps=60 if FAST else 1000,
    max_time=None if FAST else 300.0,  # seconds: a safety stop on a slow machine
    lr=3e-3,
    warmup_steps=10 if FAST else 50,
    weight_decay=0.1,
    grad_clip=1.0,
    eval_interval=30 if FAST else 200,
    log_interval=5 if FAST else 20,
    progress=not FAST,
)
steps = list(range(train_config.max_steps))
lrs = [lr_at(k, train_config) for k in steps]
W, S = train_config.warmup_steps, train_config.max_steps
assert lrs[W - 1] == train_config.lr and math.isclose(lrs[-1], train_config.min_lr, rel_tol=1e-2)
assert math.isclose(lr_at((W + S) // 2, train_config),
                    (train_config.lr + train_config.min_lr) / 2, rel_tol=0.02)  # cos(π/2) = 0

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, lrs)
ax.axvline(W, color="gray", linestyle=":", label=f"end of warmup (step {W})")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.legend()
plt.show()

# %% [markdown]
# ## 6. Training
#
# The library's `train` runs the loop: for each step, a batch, `loss = model.loss((x, y))`, the
# backward pass, gradient clipping (the gradient's norm is capped at 1, so that one unlucky batch
# can't throw the weights far), an AdamW step at the scheduled learning rate; every
# `eval_interval` steps, the validation loss.
#
# ### Exercise: one training step
#
# Write optimizer step $k$ the way `train` makes it (it is `train_step` in
# `src/fromscratch/training/loop.py`): set every parameter group's learning rate to
# $\eta_k$ = `lr_at(k, cfg)`; for each of the `cfg.grad_accum` micro-batches $m$, seed torch's
# generator with `micro_batch_seed(cfg.seed, k, m, LOSS)` (dropout then draws the same masks
# whenever step $k$ is run), compute `model.loss(batches(k, m))` and backpropagate it divided by
# `grad_accum` (the gradients of the micro-batches add up); clip the gradient norm to
# `cfg.grad_clip`; take the optimizer step; zero the gradients. `check` trains a tiny GPT for a
# few steps with your step and with the library's, from the same weights and batches, and
# compares the weights.


# %%
@exercise("train_step")
def train_step(model, optimizer, batches, step, cfg):
    # TODO: lr of step k into every group; per micro-batch: seed, loss / grad_accum, backward;
    # then clip, step, zero the gradients. Return the step's mean loss.
    raise NotImplementedError


check("train_step", train_step)


# %%
def validation_loss(m):
    return {"val_loss": evaluate_lm(m, val_ids, block_size, batch_size=64)}


result = train(model, batches, train_config, evaluate=validation_loss)
final_val = result.last("val_loss")
print(f"stopped by {result.stopped_by} after {result.step} steps, {result.seconds:.0f} s; "
      f"validation loss {initial_loss:.3f} -> {final_val:.3f} "
      f"(perplexity {math.exp(initial_loss):.0f} -> {math.exp(final_val):.1f})")
assert final_val < initial_loss - (0.7 if FAST else 2.0)

# %%
train_points = [(r["step"], r["loss"]) for r in result.history if "loss" in r]
val_points = [(r["step"], r["val_loss"]) for r in result.history if "val_loss" in r]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(*zip(*train_points, strict=True), alpha=0.6, label="train (batch mean)")
ax.plot(*zip(*val_points, strict=True), "o-", label="validation")
ax.axhline(math.log(V), color="gray", linestyle=":", label="ln V (uniform guess)")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.legend()
ax.set_title(f"A {model.num_params() / 1e6:.2f}M-parameter GPT on {CORPUS}")
plt.show()

# %% [markdown]
# ## 7. Samples
#
# Lesson 05 explains generation; for now, we let the model continue a prompt, one character at
# a time, sampling each from its predicted distribution.

# %%
prompt = torch.tensor([tokenizer.encode("The ")])
generator = torch.Generator().manual_seed(0)
out = model.generate(prompt, max_new_tokens=300, temperature=0.8, generator=generator)
print(tokenizer.decode(out[0].tolist()))

# %% [markdown]
# ## Summary
#
# - Cross-entropy is $-\log p(\text{next token})$; at initialization it is $\ln V$.
# - AdamW: per-parameter steps from running averages of $g$ and $g^2$, bias-corrected, with
#   decoupled weight decay. Ours matched `torch.optim.AdamW` step for step.
# - Warmup then cosine decay; gradient clipping; validation loss on held-out text.
#
# Next: **Lesson 05**, generation: greedy, temperature, top-k, top-p, and the KV cache.
