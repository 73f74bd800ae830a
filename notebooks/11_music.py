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
# # Lesson 11 — Music: a transformer that writes chorales
#
# **Goal.** Model Bach's four-part chorales as piano rolls with GPT's causal blocks, measure the
# model the way the literature does (negative log-likelihood per time step, as in
# Boulanger-Lewandowski et al., 2012), and write the generated chorales as MIDI files built byte
# by byte.
#
# **Prerequisites.** Lesson 03 (GPT) and lesson 04 (training). Binary cross-entropy.
#
# **Notation.** A piano roll $v \in \{0,1\}^{T \times 88}$: $v_{t,k} = 1$ when piano key $k$
# (MIDI pitch $21 + k$) sounds at step $t$ (a quarter note). Logits $a_{t,k}$,
# $p_{t,k} = \sigma(a_{t,k})$.

# %%
import math
import os
from pathlib import Path

import torch
from IPython.display import display

from fromscratch.beyond import midi, music
from fromscratch.data import local_copy
from fromscratch.data.music import load_jsb, to_piano_roll
from fromscratch.exercises import check, exercise
from fromscratch.training.loop import TrainConfig

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
torch.set_num_threads(1)
# A copy kept on this machine if there is one (fromscratch.data.local_copy), else downloaded
# once (0.4 MB) and cached.
chorales = load_jsb("quarter", local_copy("jsb-chorales"))
rolls = {split: [to_piano_roll(c) for c in cs] for split, cs in chorales.items()}
print({split: len(r) for split, r in rolls.items()}, "chorales; the first starts",
      chorales["train"][0][:3])

# %%
display(music.plot_piano_roll(rolls["train"][0], title="a chorale from the training set"))

# %% [markdown]
# ## 1. The likelihood of a piano roll
#
# A causal model gives, for each step $t$, 88 probabilities computed from the steps before it.
# If the keys of a step are independent given the past,
#
# $$ -\log p(v) = -\sum_t \sum_{k=1}^{88} \big[v_{t,k} \log p_{t,k}
#     + (1 - v_{t,k}) \log(1 - p_{t,k})\big], $$
#
# and the metric of Boulanger-Lewandowski et al. (2012) is this, divided by the number of time
# steps: nats per step, summed over the 88 keys. A model that says ½ everywhere pays
# $88 \ln 2 \approx 61$. Numerically, $\log \sigma(a)$ must be computed as `logsigmoid(a)`:
# $\sigma(40)$ rounds to 1 in float32, and $\log(1 - 1) = -\infty$.
#
# ### Exercise: NLL per time step

# %%
@exercise("piano_roll_nll")
def piano_roll_nll(logits: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    # TODO: -(1/T) sum_t sum_k [v log p + (1 - v) log(1 - p)] with logsigmoid.
    raise NotImplementedError


check("piano_roll_nll", piano_roll_nll)
assert math.isclose(piano_roll_nll(torch.zeros(3, 88), rolls["train"][0][:3]).item(),
                    88 * math.log(2), rel_tol=1e-6)

# %% [markdown]
# ## 2. A baseline that ignores time
#
# Before any model: each key sounds with its training-set frequency $q_k$, the same at every
# step. Any model worth training must beat this NLL.

# %%
train_steps = torch.cat(rolls["train"])  # (all steps, 88)
q = train_steps.mean(0).clamp(1e-4, 1 - 1e-4)  # how often each key sounds
test_steps = torch.cat(rolls["test"])
baseline = piano_roll_nll(torch.logit(q).expand_as(test_steps), test_steps).item()
print(f"key frequencies only: test NLL {baseline:.2f} nats per step (uniform ½: "
      f"{88 * math.log(2):.1f})")

# %% [markdown]
# ## 3. GPT over piano rolls
#
# The model is GPT with its token embedding replaced by a linear map of the previous step's
# 88 keys: $x_t = v_{t-1} W_{in} + \mathrm{wpe}[t]$ (with $v_{-1} = 0$, a silent start), then
# `gpt.Block`s (causal), then $a_t = \mathrm{LN}(h_t) W_{out}$. The model's loss is exactly the
# exercise's formula. With 229 training chorales, dropout and random transpositions (a chorale
# moved up or down a few semitones is still a chorale) keep it from memorising.
#
# Independent keys cannot express "a C major chord": knowing C sounds makes E and G likely. The
# option `within_step=True` lets key $k$ also see the keys below it in the same step, a chain
# rule over the keys as in NADE: $a_{t,k} \mathrel{+}= \sum_{j<k} v_{t,j} U_{kj}$ with $U$
# strictly lower triangular, still an exact likelihood (`tests/test_music.py` proves the
# probabilities sum to 1). `nade_hidden=64` chains the keys through a hidden layer as well, as
# RNN-NADE does: $a_{t,k} \mathrel{+}= V_k \cdot \sigma(c_t + \sum_{j<k} v_{t,j} W_j)$, a
# nonlinear function of the keys below (7.49 nats against 8.09 in `docs/benchmarks.md`).

# %%
model = music.MusicTransformer(music.MusicConfig()).eval()  # eval: no dropout
roll = rolls["train"][1][None]  # (1, T, 88)
from fromscratch.exercises import l11_music_solutions  # noqa: E402

assert torch.allclose(
    model.loss((roll, torch.ones(1, roll.shape[1]))),
    l11_music_solutions.piano_roll_nll(model(roll)[0], roll[0]), atol=1e-4)

recipe = music.RECIPES["default"]  # what `fromscratch music train` uses
steps = 20 if FAST else recipe.train["max_steps"]
data = {k: v[:8] for k, v in rolls.items()} if FAST else rolls
cfg = TrainConfig(**dict(recipe.train, max_steps=steps, warmup_steps=min(50, steps // 10),
                         eval_interval=steps, progress=False))
model, result = music.train_music(data, music.MusicConfig(within_step=True, **recipe.model), cfg,
                                  batch_size=8 if FAST else recipe.batch_size,
                                  max_transpose=recipe.extra["max_transpose"])
test_nll = music.evaluate_nll(model, data["test"])
print(f"{steps} steps, {result.seconds:.0f} s: test NLL {test_nll:.2f} nats per step "
      f"(baseline {baseline:.2f}; RNN-NADE + HF 5.19 in the 2012 paper)")
assert test_nll < 88 * math.log(2)
if not FAST:
    assert test_nll < baseline

# %% [markdown]
# ## 4. MIDI files, byte by byte
#
# A Standard MIDI File is chunks: a header `MThd` (format, number of tracks, ticks per quarter
# note) and tracks `MTrk`, each a list of events "wait $\Delta$ ticks, then: note on / note off /
# tempo...". $\Delta$ is a **variable-length quantity**: 7 bits per byte, most significant
# first, the top bit set on every byte but the last — small waits cost one byte.
#
# ### Exercise: encode a variable-length quantity

# %%
@exercise("encode_vlq")
def encode_vlq(value: int) -> list[int]:
    # TODO: 7-bit groups, most significant first; | 0x80 on every byte except the last.
    raise NotImplementedError


check("encode_vlq", encode_vlq)
assert bytes(encode_vlq(480)) == midi.encode_vlq(480) == b"\x83\x60"

# %% [markdown]
# ## 5. Sampling a chorale
#
# Sampling runs the model one step at a time: $v_t \sim p(\cdot \mid v_{<t})$, key by key from
# low to high within a step. We write it as MIDI (format 1: a tempo track and a notes track),
# read it back with our own parser, and draw it.

# %%
sample = model.sample(32 if FAST else 64, generator=torch.Generator().manual_seed(0))[0]
song = midi.roll_to_midi(sample, steps_per_quarter=1, bpm=80)
midi.write_midi("chorale.mid", song)
back = midi.read_midi("chorale.mid")
back_roll = midi.midi_to_roll(back)  # ends with the last note: trailing silence is not stored
assert back == song and torch.equal(back_roll, sample[: len(back_roll)])
assert sample[len(back_roll) :].sum() == 0
print(f"chorale.mid: {len(song.notes)} notes, {Path('chorale.mid').stat().st_size} bytes")
display(music.plot_piano_roll(sample, title="a sampled chorale"))

# %% [markdown]
# ## Summary
#
# - A piano roll is 88 binary units per step; a causal transformer (GPT's blocks) gives each
#   step's probabilities from the past, and the NLL per step is the sum over keys of Bernoulli
#   NLLs, averaged over steps.
# - Keys chained low to high within a step model chords and stay an exact likelihood.
# - MIDI is a few chunks of bytes; delta times are variable-length quantities.
# - Try: `fromscratch music train --out runs/bach --nade 64`, then
#   `fromscratch music sample --ckpt runs/bach -o bach.mid` and open bach.mid in any player.
#   `benchmarks/audio_music.py --only jsb --only jsb-chained --only jsb-nade` compares the
#   three factorisations with the 2012 figures.
