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
# # Lesson 09 — Arithmetic by sequence modelling
#
# **Goal.** Teach our GPT to add. A problem is a string, `"352+067="`, and the answer is the rest
# of it, predicted one digit at a time. You will see why writing every digit at a **fixed
# position** (zero-padded operands) and the answer **reversed** (least significant digit first)
# make the task far easier, train only on the answer tokens, measure
# exact-match accuracy on problems never seen in training, and test *length generalisation*:
# problems with more digits than any training problem.
#
# **Prerequisites.** Lessons 03–05.
#
# **Run modes.** `FROMSCRATCH_FAST=1`: one-digit sums, a tiny model, seconds. Without it:
# 3-digit addition with the library's recipe (several minutes), reversed and plain.

# %%
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.beyond import arithmetic as ar
from fromscratch.exercises import check, exercise
from fromscratch.training.loop import TrainConfig, train

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. Where the digits sit, and why reverse the answer?
#
# **Padding.** Our GPT has *learned absolute* position embeddings: position 5 is a vector of its
# own. Written as they are, `"352+67="` and `"5+67="` put the units digit of the first operand
# at positions 2 and 0, so the model would first have to learn to *find* each digit. Writing both
# operands with leading zeros to the trained width (`"352+067="`) and the answer to its longest
# length (`"0419"`) puts every digit at the same position in every problem. On 3-digit addition
# this one change takes the recipe from 13% to 100% exact match (`docs/benchmarks.md`,
# "Arithmetic").
#
# **Reversing.** A GPT writes left to right, and each token is produced by one forward pass of a
# fixed depth. Written normally, the first digit of 352 + 67 = 419 depends on a carry that starts
# at the *last* digits: the model has to resolve the whole carry chain before writing anything.
# Written reversed, `9140`, the answer comes in the order a person computes it: digit $i$ is
# $(a_i + b_i + c_i) \bmod 10$, where the carry $c_i$ depends only on digits already read and the
# digit just written. Each step is then a small, local computation. (`;` ends every answer.)

# %%
for reverse in (True, False):
    task = ar.ArithmeticTask(op="+", n_digits=3, reverse=reverse)
    print(f"reverse={reverse!s:5}: {task.prompt(352, 67) + task.answer(352, 67)!r}")
print("vocabulary:", ar.VOCAB, "->", len(ar.VOCAB), "tokens")

# %% [markdown]
# ## 2. Train on the answer only
#
# The prompt is given at test time; asking the model to predict the random operands would only
# add noise to the loss. So the targets are the next tokens *of the answer*, and $-100$ (which
# `F.cross_entropy(..., ignore_index=-100)` skips) wherever the next token is part of the prompt.
#
# ### Exercise: answer targets
# Write `answer_targets(prompt_ids, answer_ids) -> (inputs, targets)`: inputs are prompt + answer
# without the last token; `targets[t]` is the token after position $t$, or $-100$ when that token
# is still part of the prompt.

# %%
@exercise("answer_targets")
def answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
    # TODO: sequence = prompt + answer; inputs = sequence[:-1];
    #       targets = [-100] * (len(prompt) - 1) + answer
    raise NotImplementedError


check("answer_targets", answer_targets)

# %%
inputs, targets = answer_targets(ar.encode("352+067="), ar.encode("9140;"))
for t, (i, target) in enumerate(zip(inputs, targets, strict=True)):
    print(f"position {t}: reads {ar.VOCAB[i]!r}, learns {ar.VOCAB[target] if target >= 0 else '-'}")
assert (inputs, targets) == ar.answer_targets(ar.encode("352+067="), ar.encode("9140;"))

# %% [markdown]
# ## 3. Held-out problems and the loss at initialisation
#
# About one pair in 97 (`ar.is_held_out(a, b)`, a fixed rule) never appears in training; the test
# problems are drawn from those, so a perfect score cannot come from memorising. At
# initialisation the model spreads its probability over the 14 tokens: loss ≈ ln 14 ≈ 2.64.

# %%
digits = 1 if FAST else 3
recipe = ar.RECIPES["addition"]  # the settings `fromscratch arithmetic train` uses for '+'
sizes = dict(n_layer=1, n_head=2, n_embd=32) if FAST else recipe.model


def run(reverse: bool):
    task = ar.ArithmeticTask(op="+", n_digits=digits, reverse=reverse)
    torch.manual_seed(0)
    model = ar.make_model(task, digits + ar.EXTRA_DIGITS, **sizes)
    batches = ar.ArithmeticBatches(task, recipe.batch_size)
    at_init = model.loss(batches(0)).item()
    steps = 60 if FAST else recipe.train["max_steps"]
    settings = dict(recipe.train, max_steps=steps, warmup_steps=min(100, steps // 5),
                    eval_interval=steps, progress=not FAST, max_time=None if FAST else 240.0)
    result = train(model, batches, TrainConfig(**settings))
    n = 100 if FAST else 500
    scores = {d: ar.exact_match(model, task, ar.test_pairs(task, d, n))
              for d in range(1, digits + ar.EXTRA_DIGITS + 1)}
    print(f"reverse={reverse}: loss {at_init:.2f} -> {result.last('loss'):.3f} in "
          f"{result.seconds:.0f} s; exact match by digits {scores}")
    return at_init, result, scores


at_init, result, reversed_scores = run(reverse=True)
assert abs(at_init - torch.log(torch.tensor(14.0)).item()) < 0.2
assert result.last("loss") < at_init

# %% [markdown]
# ## 4. Reversed vs plain, and longer problems
#
# The same model and budget, with the answer in plain order:

# %%
_, _, plain_scores = run(reverse=False)
ds = list(reversed_scores)
plt.figure(figsize=(5, 3))
plt.plot(ds, [reversed_scores[d] for d in ds], "o-", label="answer reversed")
plt.plot(ds, [plain_scores[d] for d in ds], "s--", label="answer in plain order")
plt.axvline(digits + 0.5, color="gray", linestyle=":", label="longest trained")
plt.xlabel("digits per operand")
plt.ylabel("exact match (held-out)")
plt.legend()
plt.show()
print("| digits | reversed | plain |\n|---|---|---|")
for d in ds:
    print(f"| {d} | {reversed_scores[d]:.1%} | {plain_scores[d]:.1%} |")

# %% [markdown]
# Beyond the trained length the accuracy collapses: the model has never been trained at
# positions past the longest training problem, and its *learned absolute* position embeddings
# there are untrained noise. Length generalisation needs position information that does not
# name absolute positions (relative or no position embeddings, index hints); that is a
# research topic of its own.
#
# ## Summary
#
# - Arithmetic is next-token prediction over a 14-token vocabulary, trained on the answer only.
# - Reversing the answer aligns the writing order with the carry chain; the benchmark
#   (`python benchmarks/beyond_language.py --only arithmetic`) measures the difference on
#   3-digit addition and also trains 2-digit multiplication.
# - `fromscratch arithmetic train --digits 3` and `fromscratch arithmetic eval --ckpt DIR` print
#   the accuracy-by-digits table for your own runs. `--op '*'` trains multiplication with its
#   own recipe (`arithmetic.RECIPES["multiplication"]`): a wider model, 6,000 steps and weight
#   decay 1.0, because its held-out accuracy stays near zero for thousands of steps before it
#   climbs.
