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
# # Lesson 22 — Training at scale, and training that survives
#
# **Goal.** The models of the earlier lessons train on one CPU in minutes. Real ones train for
# days on many GPUs, in reduced precision, with more activations than memory, and they crash.
# This lesson takes apart the five tools `fromscratch.training.loop` uses for that, each measured or
# proven on a tiny GPT:
#
# 1. **data parallelism** — why averaging gradients across processes is the gradient of the
#    whole batch;
# 2. **mixed precision** — what bfloat16 and float16 keep and lose, and why float16 needs a
#    loss scale;
# 3. **activation checkpointing** — memory for compute, measured;
# 4. **an exponential moving average (EMA) of the weights** — a better model for free;
# 5. **exact resume** — a run killed at any moment continues as if nothing happened.
#
# **Prerequisites.** Lesson 04 (the training loop: `model.loss(batch)`, AdamW, `train`).
#
# **Run modes.** With `FROMSCRATCH_FAST=1` (as in CI) everything is tiny; without it, the
# measurements use a larger model and data parallelism runs for real with `torchrun`.

# %%
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from fromscratch.data.text import LMBatches
from fromscratch.exercises import check, exercise
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.training.distributed import World, my_micro_batches
from fromscratch.training.ema import EMA
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

VOCAB = 32
ids = (torch.arange(6000) * 7 + torch.randint(0, 3, (6000,))) % VOCAB  # a learnable toy corpus
data = LMBatches(ids, block_size=16, batch_size=8, seed=1)


def tiny_gpt(n_layer=2, n_embd=32, block_size=16, dropout=0.0):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=block_size, n_layer=n_layer, n_head=2,
                         n_embd=n_embd, dropout=dropout))


# %% [markdown]
# ## 1. Data parallelism: the all-reduce is the gradient of the global batch
#
# With $N$ processes, each holds a full copy of the model and gets a share of the batch. For a
# loss that is a mean over the $M$ examples of the batch, split into shares $S_r$ of equal size
# $M/N$:
#
# $$\nabla_\theta \frac{1}{M}\sum_{i=1}^{M} \ell_i
#   = \frac{1}{N}\sum_{r=1}^{N} \underbrace{\nabla_\theta \frac{N}{M}\sum_{i \in S_r}\ell_i}_{g_r:
#   \text{ process } r\text{'s own mean-loss gradient}}$$
#
# because the gradient of a sum is the sum of the gradients. So each process computes $g_r$ on
# its share, an **all-reduce** sums the $g_r$ across processes (every process receives the
# sum), each divides by $N$, and every copy takes the identical AdamW step: the copies never
# drift apart. PyTorch's `DistributedDataParallel` does exactly this, overlapping the all-reduce
# with the backward pass. We check the identity on one process first, by simulating two.

# %%
model = tiny_gpt()
x, y = data(0)  # (8, 16) each: the global batch
full = torch.autograd.grad(model.loss((x, y)), list(model.parameters()))
shares = [torch.autograd.grad(model.loss((x[r::2], y[r::2])), list(model.parameters()))
          for r in range(2)]  # process r gets rows r, r + 2, ...
averaged = [(g0 + g1) / 2 for g0, g1 in zip(*shares, strict=True)]  # the all-reduce, then / N
worst = max((a - f).abs().max().item() for a, f in zip(averaged, full, strict=True))
print(f"largest difference between averaged and full-batch gradients: {worst:.1e}")
assert worst < 1e-6

# %% [markdown]
# Shares must be equal for the plain mean to be right: with $n_r$ examples on process $r$, the
# global gradient is $\sum_r n_r g_r / \sum_r n_r$. That is the exercise below.
#
# **How the trainer splits a step.** A step accumulates `grad_accum` micro-batches, and the data
# of micro-batch $m$ of step $k$ is `batches(k, m)`, a pure function. With $N$ processes,
# process $r$ computes micro-batches $r, r+N, r+2N, \dots$ — together exactly the micro-batches
# one process would compute, so $N$ processes train *the same model* as one process with the
# same `grad_accum` (`tests/test_distributed.py` proves it with 2 gloo processes, to 1e-5).
# Only the last micro-batch all-reduces; the others run under DDP's `no_sync()`, summing into
# the local gradients. Randomness (dropout, noise) is seeded from (seed, k, m), so it does not
# depend on which process draws it either.

# %%
for world_size in (1, 2, 4):
    print(f"{world_size} process(es):",
          [list(my_micro_batches(World(rank, world_size), 4)) for rank in range(world_size)])


# %%
@exercise("allreduce_mean")
def allreduce_mean(grads, counts):
    """The gradient of the mean loss over all examples, from each process's mean-loss gradient."""
    total = sum(counts)
    return sum(n * g for n, g in zip(counts, grads, strict=True)) / total  # TODO: your version


check("allreduce_mean", allreduce_mean)

# %% [markdown]
# In full mode we also run it for real: `torchrun` starts two processes which find each other
# over gloo (the CPU backend; NCCL on GPUs), and the command line's `gpt train` works unchanged.

# %%
if not FAST:
    workdir = Path(tempfile.mkdtemp())
    corpus = workdir / "corpus.txt"
    corpus.write_text("".join(chr(97 + int(i) % 26) for i in ids[:20000]))
    common = ["gpt", "train", "--data", str(corpus), "--max-steps", "20", "--batch-size", "8",
              "--grad-accum", "2"]
    one = subprocess.run([sys.executable, "-m", "fromscratch", *common, "--out",
                          str(workdir / "one")], capture_output=True, text=True)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "-m", "fromscratch", *common, "--out", str(workdir / "two")],
                         capture_output=True, text=True)
    print(one.stdout.splitlines()[-2], "\n", two.stdout.splitlines()[-2])

# %% [markdown]
# **When the model does not fit.** DDP copies everything — weights, gradients and AdamW's two
# moment tensors $m, v$ — to every process. The optimizer state alone is twice the model. With
# `TrainConfig(zero=True)` (`--zero`), PyTorch's `ZeroRedundancyOptimizer` gives each process
# the $m, v$ of only $1/N$ of the parameters (ZeRO stage 1): each updates its share and
# broadcasts it. Same updates, $N$ times less optimizer memory per process; checkpoints gather
# the shards on rank 0 so they look like a single-process checkpoint. Sharding the weights
# themselves (FSDP) is the next step, for models beyond a few billion parameters.
#
# ## 2. Mixed precision: range versus precision
#
# A float is a sign, an exponent (the range) and a mantissa (the precision).

# %%
print(f"{'dtype':9} {'exponent bits':>13} {'mantissa bits':>13} {'eps':>10} {'max':>10} "
      f"{'smallest normal':>15}")
for dtype, exponent_bits in [(torch.float32, 8), (torch.bfloat16, 8), (torch.float16, 5)]:
    info = torch.finfo(dtype)
    print(f"{str(dtype)[6:]:9} {exponent_bits:>13} {info.bits - 1 - exponent_bits:>13} "
          f"{info.eps:>10.1e} {info.max:>10.1e} {info.tiny:>15.1e}")

values = torch.randn(100_000)
values = values[values.abs() > 1e-3]  # stay clear of float16's subnormals (less precise)
for dtype in (torch.bfloat16, torch.float16):
    relative = ((values.to(dtype).float() - values) / values).abs()
    print(f"{str(dtype)[6:]}: rounding a float32 changes it by {relative.mean():.1e} on average "
          f"(at most {relative.max():.1e})")
    assert relative.max() <= torch.finfo(dtype).eps / 2 * 1.0001  # round to nearest: ≤ eps / 2

# %% [markdown]
# bfloat16 keeps float32's 8 exponent bits, so it has float32's range and only ~3 significant
# digits ($\epsilon = 2^{-7}$); float16 keeps more digits but its range ends near $6.5\cdot10^4$
# and, at the small end, $6\cdot10^{-5}$ (normal) or $6\cdot10^{-8}$ (subnormal). Gradients are
# often *small*:

# %%
small_gradient = torch.tensor([1e-8, 3e-6, 1e-3])
print("float32 :", small_gradient.tolist())
print("float16 :", small_gradient.half().float().tolist(), " <- 1e-8 underflows to 0")
print("bfloat16:", small_gradient.bfloat16().float().tolist())
scale = 2.0**16  # the gradient scaler's starting value
print("float16 after scaling by 2^16, then unscaling in float32:",
      ((small_gradient * scale).half().float() / scale).tolist())
assert small_gradient.half()[0] == 0 and (small_gradient * scale).half()[0] > 0

# %% [markdown]
# That is the **gradient scaler**: multiply the loss by $s$ before backward, so every gradient
# is $s$ times larger and clear of float16's underflow; divide by $s$ (in float32) before the
# optimizer step. If a gradient overflows to inf, the step is skipped and $s$ halved; after
# 2000 clean steps $s$ doubles. bfloat16 needs none of this, which is why the trainer's
# `dtype="auto"` picks bfloat16 on GPUs that have it and float16 + scaler only on older ones.
#
# **Autocast** runs matrix products in the low precision but keeps the weights, the optimizer
# and precision-sensitive operations (softmax, layer norm, the loss) in float32. Over a few
# steps of training the losses stay close to float32's:

# %%
steps = 6
cfg = dict(max_steps=steps, lr=3e-3, warmup_steps=2, log_interval=1, progress=False)
trajectories, seconds = {}, {}
for dtype in ("float32", "bfloat16", "float16"):
    result = train(tiny_gpt(), data, TrainConfig(**cfg, dtype=dtype))
    trajectories[dtype] = [r["loss"] for r in result.history if "loss" in r]
    seconds[dtype] = result.seconds
for dtype in ("bfloat16", "float16"):
    gap = max(abs(a - b) for a, b in zip(trajectories[dtype], trajectories["float32"],
                                         strict=True))
    print(f"{dtype}: largest loss difference from float32 over {steps} steps: {gap:.1e} "
          f"(run time {seconds[dtype] / seconds['float32']:.2f}× float32's)")
    assert gap < 0.01

# %% [markdown]
# The speed-up is a GPU affair (tensor cores run bfloat16 matmuls many times faster); on a CPU
# without bfloat16 instructions the casts cost more than they save. `benchmarks/train_scale.py`
# measures it on your machine.
#
# ## 3. Activation checkpointing: memory for compute
#
# Backward needs the intermediate tensors of the forward pass (the input of every linear layer,
# the attention weights, ...). For a deep model these *activations* dominate memory. With
# checkpointing, each block keeps only its input; in backward the block's forward is run again
# to rebuild its insides. Same gradients, one extra forward pass, far less memory. We measure the
# memory exactly: a dispatch mode sees every tensor the forward pass creates, and once the
# forward returns we add up those still alive — the ones the autograd graph keeps for backward.

# %%
class Recorder(TorchDispatchMode):
    """Sees every tensor any operation creates; keeps only a weak reference to its memory."""

    def __init__(self):
        super().__init__()
        self.made = []  # (weak reference to the storage, bytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.made.append((StorageWeakRef(t.untyped_storage()), t.untyped_storage().nbytes()))
        return out


def activations_kept(model, batch):
    """Bytes of the tensors the forward pass created that are still alive when it returns:
    exactly what autograd holds on to for backward (plus the loss)."""
    with Recorder() as recorder:
        loss = model.loss(batch)
    alive = {ref.cdata: size for ref, size in recorder.made if not ref.expired()}
    return sum(alive.values()), loss


n_layer, width, block = (4, 64, 64) if FAST else (8, 256, 256)
big = LMBatches(ids, block_size=block, batch_size=8, seed=2)
memory, step_time, grads = {}, {}, {}
for checkpointing in (False, True):
    model = tiny_gpt(n_layer=n_layer, n_embd=width, block_size=block)
    model.grad_checkpointing = checkpointing
    memory[checkpointing], loss = activations_kept(model, big(0))
    loss.backward()
    start = time.perf_counter()
    model.loss(big(1)).backward()  # another step, timed: forward + backward
    step_time[checkpointing] = time.perf_counter() - start
    grads[checkpointing] = [p.grad for p in model.parameters()]
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[False], grads[True],
                                                           strict=True))
print(f"{n_layer} blocks: activations {memory[False] / 2**20:.1f} MB -> {memory[True] / 2**20:.1f}"
      f" MB ({memory[True] / memory[False]:.2f}×); time of forward + backward "
      f"{step_time[True] / step_time[False]:.2f}× (noisy on a shared machine)")
assert memory[True] < 0.5 * memory[False]  # one (B, T, C) input per block instead of all

# %%
figure, axes = plt.subplots(1, 2, figsize=(8, 3))
labels = ["stored", "checkpointed"]
axes[0].bar(labels, [memory[False] / 2**20, memory[True] / 2**20], color=["C0", "C1"])
axes[0].set_ylabel("activations saved for backward (MB)")
axes[1].bar(labels, [step_time[False] * 1e3, step_time[True] * 1e3], color=["C0", "C1"])
axes[1].set_ylabel("forward + backward (ms)")
figure.tight_layout()
plt.show()

# %% [markdown]
# ## 4. An exponential moving average of the weights
#
# SGD's iterates bounce around a minimum with the noise of the mini-batches. Their running
# average $\bar\theta_k = d\,\bar\theta_{k-1} + (1-d)\,\theta_k$ averages the noise away: roughly
# the last $1/(1-d)$ iterates, weighted $\propto d^{k-j}$. Diffusion models and GANs are sampled
# from the EMA. On a noisy quadratic $\ell(\theta) = \tfrac12\|\theta\|^2$ with noisy gradients:

# %%
@exercise("ema_update")
def ema_update(averaged, current, decay):
    """θ̄ ← decay · θ̄ + (1 − decay) · θ for each pair of tensors."""
    return [decay * a + (1 - decay) * t for a, t in zip(averaged, current, strict=True)]  # TODO


check("ema_update", ema_update)

# %%
g = torch.Generator().manual_seed(0)
theta = torch.full((2,), 3.0)
ema_theta = [theta.clone()]
path, ema_path = [], []
for _ in range(400):
    noisy_gradient = theta + torch.randn(2, generator=g)  # ∇ℓ = θ, plus noise
    theta = theta - 0.1 * noisy_gradient
    ema_theta = ema_update(ema_theta, [theta], 0.98)
    path.append(theta.clone())
    ema_path.append(ema_theta[0].clone())
last = slice(200, None)  # after the initial descent
distance = torch.stack(path[last]).norm(dim=1).mean().item()
ema_distance = torch.stack(ema_path[last]).norm(dim=1).mean().item()
print(f"mean distance to the optimum: iterates {distance:.3f}, EMA {ema_distance:.3f}")
assert ema_distance < distance / 2

figure, axis = plt.subplots(figsize=(4, 4))
axis.plot(*torch.stack(path).T, lw=0.5, alpha=0.6, label="SGD iterates θ")
axis.plot(*torch.stack(ema_path).T, lw=1.5, label="EMA θ̄ (d = 0.98)")
axis.scatter([0], [0], c="k", marker="*", s=80, label="optimum")
axis.legend()
axis.set_aspect("equal")
plt.show()

# %% [markdown]
# `fromscratch.training.ema.EMA` does the same for a whole model (parameters averaged; buffers such as
# BatchNorm's running statistics *copied*, since they are averages already), and the trainer
# keeps one with `TrainConfig(ema_decay=0.999)` (`--ema 0.999`): evaluation and the saved model
# use the averaged weights, and the checkpoint stores it for an exact resume.

# %%
model = tiny_gpt()
ema = EMA(model, decay=0.9)
by_hand = [p.detach().clone() for p in model.parameters()]
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
for k in range(3):
    model.loss(data(k)).backward()
    optimizer.step()
    optimizer.zero_grad()
    ema.update(model)
    by_hand = ema_update(by_hand, [p.detach() for p in model.parameters()], 0.9)
assert all(torch.allclose(ema.params[name], h, atol=1e-6)
           for (name, _), h in zip(model.named_parameters(), by_hand, strict=True))
print("EMA of a GPT's weights = the update written out by hand")

# %% [markdown]
# ## 5. Exact resume: training that survives
#
# A checkpoint that resumes *exactly* holds everything the next step depends on: the weights,
# AdamW's $m$ and $v$ and step counts, the EMA, the gradient scaler, the step number, and
# randomness. Our trainer makes the data of step $k$ a pure function `batches(k, m)` and seeds
# the random generator from (seed, $k$, $m$) before each micro-batch, so no hidden state is
# left. Two more rules make the files trustworthy:
#
# * **atomic writes**: a checkpoint folder is written under a temporary name, flushed to disk
#   (`fsync`) and renamed into place — a rename is all-or-nothing, so a crash leaves the old
#   checkpoint or the new one, never half of one; pruning renames before deleting;
# * **no pickle**: tensors go to safetensors files, the rest to JSON, so loading a checkpoint
#   can never run code.
#
# `benchmarks/crash_resume.py` kills a training process with `SIGKILL` at 20 random moments (many
# of them inside checkpoint writes); every time the newest checkpoint loads and the finished
# run's losses equal an uninterrupted run's, float for float. Here, a smaller version: stop
# after 3 of 6 steps, restart from the checkpoint in a fresh model, compare.

# %%
workdir = Path(tempfile.mkdtemp())
cfg = TrainConfig(max_steps=6, lr=3e-3, warmup_steps=2, log_interval=1, checkpoint_interval=3,
                  ema_decay=0.9, progress=False)
whole = train(tiny_gpt(dropout=0.1), data, cfg, out_dir=workdir / "whole")
(workdir / "cut" / "checkpoints").mkdir(parents=True)
shutil.copytree(workdir / "whole/checkpoints/step-00000003",
                workdir / "cut/checkpoints/step-00000003")  # as if it had died after step 3
resumed = train(tiny_gpt(dropout=0.1), data, cfg, out_dir=workdir / "cut", resume=True)
losses_whole = [r["loss"] for r in whole.history if "loss" in r]
losses_resumed = [r["loss"] for r in resumed.history if "loss" in r]
print("uninterrupted:", [f"{v:.6f}" for v in losses_whole[3:]])
print("resumed:      ", [f"{v:.6f}" for v in losses_resumed])
assert losses_resumed == losses_whole[3:]  # exactly, with dropout on

# %% [markdown]
# ## Summary
#
# * **Data parallel**: each process computes the mean-loss gradient of an equal share; their
#   average is the whole batch's gradient. Run any `fromscratch gpt train` under
#   `torchrun --nproc_per_node=N`; `--zero` shards AdamW's state.
# * **Mixed precision**: bfloat16 has float32's range with ~3 digits; float16 has more digits
#   but underflows, so it needs a loss scale. `--dtype` (auto: bfloat16 on modern GPUs).
# * **Activation checkpointing**: recompute instead of store — same gradients, a fraction of
#   the activation memory, one extra forward pass. `--grad-checkpointing`.
# * **EMA**: $\bar\theta \leftarrow d\bar\theta + (1-d)\theta$ averages away SGD's noise.
#   `--ema 0.999`.
# * **Exact resume**: data and randomness as functions of the step, atomic safetensors + JSON
#   checkpoints, no pickle. `--resume`.
