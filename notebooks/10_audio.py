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
# # Lesson 10 — Audio: from a waveform to a spoken digit
#
# **Goal.** Turn a recording into what a transformer can read — a log-mel spectrogram — by
# writing every step yourself (framing, the Hann window, the discrete Fourier transform, the mel
# filterbank, the log), prove each step equal to `torch.stft` and the library, then classify the
# spoken digits of the Free Spoken Digit Dataset with the GPT track's blocks, minus the causal
# mask, plus a padding mask for recordings of different lengths.
#
# **Prerequisites.** Lesson 02 (attention, padding masks), lesson 03 (the transformer block).
# Complex numbers help; no signal processing is assumed.
#
# **Notation.** Signal $x[n]$ at sample rate $s_r$ (8,000 samples per second here), frame length
# $L$ = FFT size $N$, hop $h$, $F = N/2 + 1$ frequency bins, $M$ mel bands, $T$ frames.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from fromscratch.beyond import audio
from fromscratch.data import local_copy
from fromscratch.data.audio import load_fsdd, pad_batch, random_split, read_wav
from fromscratch.exercises import check, exercise

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)
torch.set_num_threads(1)
# A copy kept on this machine if there is one (fromscratch.data.local_copy), else downloaded
# once (21 MB) and cached.
recordings = load_fsdd(local_copy("free-spoken-digit-dataset"))
print(len(recordings), "recordings, e.g.", recordings[0].path.name)

# %% [markdown]
# ## 1. A recording is a list of numbers
#
# A WAV file stores the air pressure at the microphone, sampled 8,000 times a second, as 16-bit
# integers. Divided by $2^{15}$ they lie in $[-1, 1)$. `read_wav` uses only Python's `wave`
# module.

# %%
samples, rate = read_wav(recordings[0].path)
t = torch.arange(len(samples)) / rate
fig, ax = plt.subplots(figsize=(9, 2.5))
ax.plot(t, samples, lw=0.5)
ax.set_xlabel("seconds")
ax.set_title(f"{recordings[0].path.name}: the digit {recordings[0].digit}")
plt.show()

# %% [markdown]
# ## 2. Frames and windows
#
# A spoken digit changes over time, but over ~30–60 ms its sound is roughly steady. So we cut the
# signal into overlapping **frames** of $L$ samples, one every $h$ samples:
# $x_t[n] = x[t h + n]$, $n = 0 \dots L-1$, and there are $T = 1 + \lfloor (N_x - L)/h \rfloor$
# whole frames. Cutting a frame abruptly creates spurious high frequencies at its edges, so each
# frame is multiplied by a **Hann window** $w[n] = \tfrac12 (1 - \cos(2\pi n / L))$ that fades in
# and out.
#
# ### Exercise: frame a signal

# %%
@exercise("frame_signal")
def frame_signal(x: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    # TODO: frame t is x[..., t*hop : t*hop + L]; stack the T whole frames on axis -2.
    raise NotImplementedError


check("frame_signal", frame_signal)
assert torch.equal(frame_signal(samples, 512, 256), audio.frame_signal(samples, 512, 256))
assert torch.allclose(audio.hann_window(512), torch.hann_window(512), atol=1e-6)

# %% [markdown]
# ## 3. The discrete Fourier transform, as a matrix
#
# Which frequencies make up a frame? The DFT correlates the frame with a cosine and a sine of
# each frequency $k$ (in cycles per frame):
#
# $$ X[k] = \sum_{n=0}^{N-1} x[n]\, e^{-2\pi i k n / N}
#        = \sum_n x[n] \cos\tfrac{2\pi k n}{N} \;-\; i \sum_n x[n] \sin\tfrac{2\pi k n}{N}. $$
#
# That is two matrix products. Bin $k$ is the frequency $k\, s_r / N$ Hz; for a real signal
# $X[N-k] = \overline{X[k]}$, so bins $0..N/2$ say everything. The **STFT** applies it to every
# windowed frame; `torch.stft` does the same with a fast FFT, and we prove the two equal.

# %%
cos, sin = audio.dft_matrices(512)
frames = audio.frame_signal(samples, 512, 256) * audio.hann_window(512)  # (T, N)
spectrum = torch.complex(frames @ cos.T, -(frames @ sin.T))  # (T, F)
assert torch.allclose(spectrum, torch.fft.rfft(frames), atol=1e-3)
ours = audio.stft(samples, 512, 256)  # centred frames, reflect padding: torch.stft's default
theirs = torch.stft(samples, 512, 256, window=torch.hann_window(512), return_complex=True)
assert torch.allclose(ours, theirs.T, atol=1e-4)
print("STFT", tuple(ours.shape), "= torch.stft, transposed to (time, frequency)")

# %% [markdown]
# ## 4. The mel scale and its filterbank
#
# We hear pitch roughly linearly below ~700 Hz and logarithmically above. The HTK **mel scale**
# $\mathrm{mel}(f) = 2595 \log_{10}(1 + f/700)$ models that. We place $M + 2$ points equally
# spaced in mel between 0 and $s_r/2$, map them back to Hz ($f_0 < \dots < f_{M+1}$), and build
# $M$ triangles: filter $m$ rises from 0 at $f_{m-1}$ to 1 at $f_m$ and falls to 0 at $f_{m+1}$:
#
# $$ W[m, k] = \max\!\Big(0, \min\Big(\frac{f_k - f_{m-1}}{f_m - f_{m-1}},
#     \frac{f_{m+1} - f_k}{f_{m+1} - f_m}\Big)\Big). $$
#
# Neighbouring triangles cross at ½, so between $f_1$ and $f_M$ the filters **sum to 1**: no
# frequency counts twice. (librosa's default, "Slaney", scales each triangle to unit area instead;
# ours equals `librosa.filters.mel(..., htk=True, norm=None)`, proven in `tests/test_audio.py`.)
#
# ### Exercise: the mel filterbank

# %%
@exercise("mel_filterbank")
def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    # TODO: M + 2 points equally spaced in mel -> Hz; triangle m from point m-1 to m+1.
    raise NotImplementedError


check("mel_filterbank", mel_filterbank)
fb = mel_filterbank(40, 512, 8000)
assert torch.allclose(fb, audio.mel_filterbank(40, 512, 8000), atol=1e-6)
bins = torch.linspace(0, 4000, 257)
edges = audio.mel_to_hz(torch.linspace(0, float(audio.hz_to_mel(torch.tensor(4000.0))), 42))
inside = (bins >= edges[1]) & (bins <= edges[-2])
assert torch.allclose(fb[:, inside].sum(0), torch.ones(int(inside.sum())), atol=1e-5)
fig, ax = plt.subplots(figsize=(9, 2.5))
ax.plot(bins, fb.T, lw=0.8)
ax.set_xlabel("Hz")
ax.set_title("40 mel filters: narrow at low frequencies, wide at high ones")
plt.show()

# %% [markdown]
# ## 5. The log-mel spectrogram
#
# Power $|X_t[k]|^2$, pooled by the filters, then a log: loudness is perceived roughly
# logarithmically, and the log turns the huge dynamic range into numbers of similar size:
# $S_t[m] = \log\big(\sum_k |X_t[k]|^2 W[m,k] + 10^{-6}\big)$.

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), sharey=True)
for ax, rec in zip(axes, recordings[::750], strict=True):
    spec = audio.log_mel_spectrogram(read_wav(rec.path)[0], 8000, 512, 256, 40)  # (T, M)
    ax.imshow(spec.T, origin="lower", aspect="auto")
    ax.set_title(f"'{rec.digit}' by {rec.speaker}")
    ax.set_xlabel("frame (32 ms)")
axes[0].set_ylabel("mel band")
plt.show()

# %% [markdown]
# ## 6. A transformer over frames, with a padding mask
#
# Each frame becomes a token: $x_t = S_t W_{in} + \mathrm{wpe}[t]$. The blocks are GPT's (lesson
# 03) without the causal mask — a classifier may look at the whole recording — and with a
# **padding mask**: recordings have different lengths, so a batch is zero-padded to the longest,
# and padded frames must be invisible to attention (`key_padding_mask`) and left out of the final
# average. Then a padded batch gives each recording exactly the logits it gets alone:

# %%
model = audio.AudioClassifier(audio.AudioConfig()).eval()
specs = [torch.randn(n, 40) for n in (5, 17, 9)]
padded, padding = pad_batch(specs)
batched = model(padded, padding)
for i, spec in enumerate(specs):
    assert torch.allclose(batched[i], model(spec[None])[0], atol=1e-5)
print("padding mask:", padding.int().tolist()[0], "... batch = alone, for every recording")

# %% [markdown]
# ## 7. Training
#
# 80% of the recordings for training, 20% held out, with `fromscratch.training.loop.train`. Training
# batches mask a random band of mel channels and a random stretch of frames (SpecAugment), so
# the model cannot lean on one of them. Fast mode trains a few steps only; the full run uses the
# recipe of `benchmarks/audio_music.py` (≥ 98% in the benchmark).

# %%
from fromscratch.training.loop import TrainConfig  # noqa: E402

train_recs, test_recs = random_split(recordings, 0.2, seed=0)
if FAST:
    train_recs, test_recs = train_recs[::20], test_recs[::10]
recipe = audio.RECIPES["default"]  # what `fromscratch audio train` uses
steps = 15 if FAST else recipe.train["max_steps"]
cfg = TrainConfig(**dict(recipe.train, max_steps=steps, warmup_steps=min(100, steps // 10),
                         eval_interval=steps, progress=False))
model, result = audio.train_classifier(train_recs, test_recs, audio.AudioConfig(**recipe.model),
                                       cfg, batch_size=16 if FAST else recipe.batch_size)
accuracy = result.last("test_accuracy")
print(f"{steps} steps, {result.seconds:.0f} s: test accuracy {accuracy:.1%} "
      f"on {len(test_recs)} recordings")
assert result.last("test_loss") < math.log(10) + 0.1  # at least no worse than chance
if not FAST:
    assert accuracy > 0.95

# %% [markdown]
# ## Summary
#
# - A spectrogram is framing + windowing + a DFT (two matrix products) + $|\cdot|^2$; ours equals
#   `torch.stft`. The mel filterbank pools FFT bins into bands spaced like our hearing; its
#   triangles sum to 1 between the first and last centre.
# - A transformer classifies the resulting frames with GPT's blocks; a padding mask makes a
#   padded batch exactly equal to one recording at a time.
# - Try: `fromscratch audio train --out runs/digits`, then
#   `fromscratch audio predict some.wav --ckpt runs/digits`; and `--split theo` to test on a
#   speaker the model never heard (a much harder task: see docs/benchmarks.md).
