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
# # Lesson 23 — From spikes to a Neural Data Transformer and a generative model
#
# **Goal.** Infer smooth single-trial firing rates from a population's spikes with a
# transformer, the Neural Data Transformer (NDT), and measure how well it does the way the
# Neural Latents Benchmark does: co-smoothing bits per spike on neurons the model never sees.
# You will simulate a population with known latent dynamics (so the true rates are known), look
# at rasters and trial averages, build the classical smoothing baseline, train a tiny NDT, compare
# inferred and true rates, and read what its attention does over time. Then you will train a
# conditional diffusion model that *generates* new trials of a condition, and judge the generated
# trials the way a physiologist judges recordings: firing rates, Fano factors, pairwise
# correlations and PSTHs.
#
# **Prerequisites.** Lesson 02 (attention) and lesson 03 (the transformer block); Poisson
# distributions; for part 6, lessons 14–16 (reverse diffusion, DDIM) and 21 (classifier-free
# guidance).
#
# **Notation.** Trials $R$, time bins $T$ (width $\Delta$), neurons $N = N_\text{in} +
# N_\text{out}$ (held-in, held-out). Counts $y_{n}(t)$, rates $\lambda_n(t)$ in expected counts
# per bin.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.exercises import check, exercise
from fromscratch.neuro.baselines import fit_poisson_glm, gaussian_smooth, glm_rates
from fromscratch.neuro.generative import plot_generated_vs_real, train_generative
from fromscratch.neuro.metrics import (
    bits_per_spike,
    compare_statistics,
    fano_factors,
    null_rates,
    psths,
    r_squared,
)
from fromscratch.neuro.ndt import poisson_nll, train_ndt
from fromscratch.neuro.simulate import simulate_lorenz_population

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. A population with known dynamics
#
# Real recordings never tell us the true rates, so methods are first checked on simulations
# where they are known. The standard one (used to evaluate LFADS and the NDT) drives the
# log-rates of $N$ neurons by a chaotic 3-D Lorenz system $z(t)$:
#
# $$ \log \lambda_n(t) = \log b_n + g\, w_n^\top \tilde z(t), \qquad y_n(t) \sim
# \mathrm{Poisson}(\lambda_n(t)\,\Delta). $$
#
# Each trial starts from a different random state, so each trial is different: there is no
# stimulus to align to.

# %%
n_trials, n_bins, n_neurons, n_heldout = (500, 50, 30, 6) if FAST else (1000, 100, 50, 10)
data = simulate_lorenz_population(n_trials=n_trials, n_neurons=n_neurons, n_bins=n_bins,
                                  burn_in=200 if FAST else 500, seed=0)
n_valid = n_trials // 5
train_spikes, valid_spikes = data.spikes[:-n_valid], data.spikes[-n_valid:]
true_valid = data.rates[-n_valid:]
n_in = n_neurons - n_heldout
print(f"{n_trials} trials × {n_bins} bins × {n_neurons} neurons; "
      f"mean rate {data.rates_hz().mean():.1f} Hz, {data.spikes.mean():.3f} spikes per bin")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(data.latents[0].numpy())
axes[0].set(title="latents z̃(t), trial 0", xlabel="bin")
axes[1].imshow(data.spikes[0].T.numpy(), aspect="auto", cmap="Greys", interpolation="nearest")
axes[1].set(title="raster, trial 0", xlabel="bin", ylabel="neuron")
axes[2].plot(data.rates_hz().mean(0)[:, :4].numpy())
axes[2].set(title="PSTH (trial average), 4 neurons", xlabel="bin", ylabel="Hz")
plt.tight_layout()
plt.show()

# %% [markdown]
# The trial average (PSTH) is nearly flat: the trials start at different points of the attractor,
# so averaging across them erases the dynamics. Rates must be inferred **single-trial**, from
# the population: all neurons read out the same 3 latents, so each neuron's spikes are evidence
# about the others' rates.
#
# ## 2. Scoring rates: bits per spike
#
# A rate estimate $r$ is scored by the Poisson log-likelihood of the observed counts,
# $\mathrm{LL}(r) = \sum y \log r - r - \log y!$, compared with the null model $\bar r_n$ (each
# neuron's mean rate) and normalized per spike, in bits:
#
# $$ \mathrm{bps} = \frac{\mathrm{LL}(r) - \mathrm{LL}(\bar r)}{n_\text{spikes} \ln 2}. $$
#
# **Exercise.** Write `bits_per_spike(rates, spikes)` (0-d tensor).

# %%
@exercise("bits_per_spike")
def my_bits_per_spike(rates: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    # TODO: null = spikes.mean over trials and time (keepdim); LL(r) = Σ y log r − r − lgamma(y+1)
    #       return (LL(rates) − LL(null)) / (spikes.sum() · ln 2)
    raise NotImplementedError


check("bits_per_spike", my_bits_per_spike)

# %%
truth = bits_per_spike(true_valid[:, :, n_in:], valid_spikes[:, :, n_in:])
assert bits_per_spike(null_rates(valid_spikes), valid_spikes) == 0.0
assert math.isclose(truth, float(my_bits_per_spike(true_valid[:, :, n_in:],
                                                   valid_spikes[:, :, n_in:])), rel_tol=1e-9)
print(f"true rates on the held-out neurons: {truth:.4f} bits/spike (the ceiling)")

# %% [markdown]
# ## 3. The classical baseline: smoothing
#
# Convolve each neuron's counts with a Gaussian of width $w$ bins. For the held-out neurons
# (co-smoothing), fit a Poisson GLM $r = \exp(x\beta + c)$ from the smoothed held-in neurons on
# the training trials.

# %%
smooth_train = gaussian_smooth(train_spikes[:, :, :n_in], 4.0)
smooth_valid = gaussian_smooth(valid_spikes[:, :, :n_in], 4.0)
weights, bias = fit_poisson_glm(smooth_train.flatten(0, 1),
                                train_spikes[:, :, n_in:].flatten(0, 1))
smooth_rates = torch.cat([smooth_valid, glm_rates(smooth_valid, weights, bias)], -1)
smooth_bps = bits_per_spike(smooth_rates[:, :, n_in:], valid_spikes[:, :, n_in:])
print(f"smoothing + GLM: co-smoothing {smooth_bps:.4f} bits/spike, "
      f"R² vs true rates {r_squared(smooth_rates, true_valid):.3f}")

# %% [markdown]
# ## 4. The Neural Data Transformer
#
# One token per time bin: $x_t = \log(1 + y_\text{in}(t))\,W_\text{in} + E_\text{pos}[t]$, then
# GPT's block *without* the causal mask (every bin sees past and future), then a linear readout
# of log-rates for all $N$ neurons. Training hides random bins (their counts set to 0) and
# scores the Poisson NLL $r - y\log r + \log y!$ on the hidden held-in bins and on every bin of
# the held-out neurons. The model cannot copy a hidden count, so it must predict it from the
# trial's context: the shared dynamics.

# %%
log_rates = torch.zeros(3)
assert torch.allclose(poisson_nll(log_rates, torch.tensor([0.0, 1.0, 2.0])),
                      torch.tensor([1.0, 1.0, 1.0 + math.log(2)]))
model, result = train_ndt(
    train_spikes, n_heldout, valid=valid_spikes, max_steps=150 if FAST else 1500, seed=0,
    progress=not FAST, **(dict(lr=1e-2, model_overrides=dict(n_layer=1, n_embd=32, dropout=0.2))
                          if FAST else {}),
)
ndt_rates = model.infer_rates(valid_spikes)
ndt_bps = bits_per_spike(ndt_rates[:, :, n_in:], valid_spikes[:, :, n_in:])
print(f"NDT after {result.step} steps: co-smoothing {ndt_bps:.4f} bits/spike, "
      f"R² vs true rates {r_squared(ndt_rates, true_valid):.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=True)
for ax, neuron in zip(axes, (0, 1, n_in), strict=True):
    ax.plot(true_valid[0, :, neuron].numpy() / data.bin_size, "k", label="true")
    ax.plot(smooth_rates[0, :, neuron].numpy() / data.bin_size, label="smoothing")
    ax.plot(ndt_rates[0, :, neuron].numpy() / data.bin_size, label="NDT")
    kind = "held-out" if neuron >= n_in else "held-in"
    ax.set(title=f"neuron {neuron} ({kind})", xlabel="bin", ylabel="Hz")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. What the attention does
#
# Attention weights $w_{ts}$ say how much bin $s$ contributes to the estimate at bin $t$.

# %%
with torch.no_grad():
    model.eval()
    _, attentions = model(valid_spikes[:1, :, :n_in], need_weights=True)
attention = attentions[-1][0].mean(0)  # (T, T), heads averaged
plt.figure(figsize=(4.2, 3.6))
plt.imshow(attention.numpy(), cmap="viridis")
plt.xlabel("key bin s")
plt.ylabel("query bin t")
plt.title("attention, last layer")
plt.colorbar()
plt.show()
assert torch.allclose(attention.sum(-1), torch.ones(n_bins), atol=1e-5)

# %% [markdown]
# **Biological reading.** A Gaussian kernel pools the same fixed window around every bin. The
# NDT's attention is a *learned, data-dependent* smoothing kernel: a bin's rate estimate draws on
# bins where the population was in a similar state of its latent dynamics, near in time or not,
# and on the whole population's spikes there. That is the sense in which it "denoises with the
# dynamics": many noisy Poisson neurons, read together across time, pin down the few latent
# variables that set every neuron's rate.
#
# ## 6. Generating trials: a conditional diffusion model
#
# An experiment repeats *conditions* (a stimulus, a reach target) many times, and every repeat
# differs. A generative model of the population learns that whole distribution, $p(\text{trial}
# \mid \text{condition})$: sample it and you get new, plausible trials, whose statistics can be
# compared with held-out recordings, used as surrogate data, or probed in silico.
#
# We give the simulator conditions: the trials of condition $k$ start near one fixed state of the
# Lorenz system (plus a random offset), so they share a time course, the PSTH, and diverge
# as the chaos amplifies the offsets. Spike counts are whole numbers, mostly 0 or 1 per bin, and
# a Gaussian diffusion model moves continuous values; so the model generates a trial's
# standardized **log-rates** $x = (\log r - \mu_n)/s_n$ (a smooth $T \times N$ array) and the
# spikes are drawn from the generated rates, $y \sim \mathrm{Poisson}(r)$, the way the data's
# own spikes arise. Here the true rates are known; on a recording, the rates the NDT infers
# take their place (`fromscratch neuro train-generative --rates-from NDT_DIR`).
#
# The diffusion pieces are those of lessons 14–21: $x_t = \sqrt{\bar\alpha_t}\,x_0 +
# \sqrt{1-\bar\alpha_t}\,\varepsilon$ on a cosine schedule, a network predicting
# $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,x_0$ trained by the plain MSE,
# the condition replaced by "none" ($\varnothing$) in 10% of the training examples, and DDIM
# sampling with classifier-free guidance $\tilde v = v_\varnothing + w\,(v_c - v_\varnothing)$.
# The network is the NDT's layout: a transformer over time bins, with the noise level and the
# condition added to every token.

# %%
K = 3
cond_data = simulate_lorenz_population(
    n_trials=240 if FAST else 1000, n_neurons=20 if FAST else 40, n_bins=25 if FAST else 50,
    bin_size=0.02, steps_per_bin=2, burn_in=200 if FAST else 500, n_conditions=K, seed=1)
n_held = len(cond_data.spikes) // 5
gen_train_rates, gen_train_c = cond_data.rates[:-n_held], cond_data.conditions[:-n_held]
held_spikes, held_c = cond_data.spikes[-n_held:], cond_data.conditions[-n_held:]
denoiser, _ = train_generative(
    gen_train_rates, gen_train_c, K, max_steps=300 if FAST else 2000, seed=0,
    progress=not FAST, **(dict(lr=5e-3, model_overrides=dict(n_layer=1, n_embd=32))
                          if FAST else {}))
gen_rates, gen_spikes = denoiser.generate(held_c, guidance=1.0, steps=20 if FAST else 50,
                                          generator=torch.Generator().manual_seed(0))
print(f"generated {tuple(gen_spikes.shape)} trials for conditions {held_c[:K].tolist()}...")
plot_generated_vs_real(held_spikes, held_c, gen_spikes, held_c, K, 0.02)
plt.show()

# %% [markdown]
# **Exercise.** The Fano factor $F_n = \mathrm{var}_r(Y_{rn}) / \mathrm{mean}_r(Y_{rn})$ of the
# trial spike counts $Y_{rn} = \sum_t y_{rn}(t)$ is 1 for a Poisson neuron with a fixed rate;
# above 1, the rate itself changes from trial to trial. Write it for the trials of one condition.

# %%
@exercise("fano_factor")
def my_fano_factor(spikes: torch.Tensor) -> torch.Tensor:
    # TODO: counts = spikes summed over time (dim 1), (trials, neurons);
    #       return their variance over trials (unbiased) / their mean over trials
    raise NotImplementedError


check("fano_factor", my_fano_factor)

# %%
for k in range(K):
    assert torch.allclose(my_fano_factor(held_spikes[held_c == k]).double(),
                          fano_factors(held_spikes, held_c, K)[k], equal_nan=True)
psth_rates = psths(cond_data.spikes[:-n_held], gen_train_c, K, 0.02).float() * 0.02
psth_model = torch.poisson(psth_rates[held_c], generator=torch.Generator().manual_seed(0))
for name, spikes in (("other real trials", cond_data.spikes[:n_held]),
                     ("Poisson from the PSTH", psth_model), ("diffusion, w = 1", gen_spikes)):
    stats = compare_statistics(held_spikes, held_c, spikes, cond_data.conditions[:n_held]
                               if name == "other real trials" else held_c, K, 0.02)
    print(f"{name:22s} rate r {stats['rate_r']:.3f}  Fano {stats['fano_gen']:.2f} "
          f"(real {stats['fano_real']:.2f})  corr r {stats['corr_r']:.3f}  "
          f"PSTH R² {stats['psth_r2']:.3f}")

# %% [markdown]
# **Reading the comparison.** Three questions, from easy to hard. *Firing rates*: any model that
# knows each condition's PSTH gets the mean rates and the PSTHs (the trial average). *Fano
# factors*: a Poisson neuron with a fixed time course has $F = 1$; the recorded (here: simulated)
# neurons have $F > 1$ because their rates change from trial to trial, and only a model that
# generates whole trials with that variability reproduces it — the Poisson-from-PSTH model
# cannot. *Pairwise (noise) correlations*: neurons that read out the same latent state rise and
# fall together from trial to trial; the pattern of which pairs are correlated is a fingerprint
# of the shared low-dimensional dynamics, and "other real trials" shows how well it can be
# matched at all with this many trials (sampling noise). The diffusion model learns these from
# the rates of whole trials; guidance $w > 1$ trades diversity for typicality (lower Fano
# factors), as it trades diversity for prompt-fidelity in text-to-image models.
# In fast mode (300 steps of a one-layer model) the numbers are rough; the full mode trains the
# benchmark's recipe, and `benchmarks/neural_data.py` measures all of this at full size.
#
# ## Summary
#
# - Single-trial rates must come from the population: trial averages erase non-stimulus-locked
#   dynamics.
# - Co-smoothing bits per spike scores a model on neurons it never sees; 0 is a flat rate per
#   neuron, the true rates set the ceiling.
# - The NDT is BERT for spikes: a non-causal transformer, masked bins, a Poisson likelihood.
# - A conditional diffusion model of log-rates, with Poisson spikes drawn from them, generates new
#   trials of a condition; judge it by rates, Fano factors, noise correlations and PSTHs against
#   held-out trials, next to simple baselines.
# - `fromscratch neuro simulate|train|eval|train-generative|generate` and
#   `benchmarks/neural_data.py` run the same pieces at full size.
