"""Spoken digits: a log-mel spectrogram written out, and a transformer encoder that classifies it.

Notation: signal x (N,) at sample rate sr, frame length = FFT size n_fft, hop h, F = n_fft/2 + 1
frequency bins, M mel bands, T frames, batch B, model width C, heads H.

    frames   x_t[n] = x[t h + n] · w[n]           n = 0..n_fft-1, w the periodic Hann window
    STFT     X_t[k] = Σ_n x_t[n] e^{-2πi k n / n_fft}           k = 0..F-1
    power    P_t[k] = |X_t[k]|²                                 (T, F)
    mel      E_t[m] = Σ_k P_t[k] W[m, k]                        W: M triangles on the mel scale
    log      S_t[m] = log(E_t[m] + 1e-6)                        (T, M): what the model reads

The mel scale is HTK's, mel(f) = 2595 log10(1 + f / 700), and the triangles have peak 1 (no area
normalisation): librosa's `filters.mel(..., htk=True, norm=None)`. The derivation is in lesson 10.

The classifier is the GPT track's transformer block without the causal mask: every frame may
attend every other real frame, and padding frames (True in `padding`) are masked out of both the
attention and the final average, so a padded batch gives each recording the logits it gets alone.

    x = S W_in + wpe[0..T-1]                  project each frame to width C, add its position
    x = x + Attention(LN_1(x))                key_padding_mask = padding
    x = x + MLP(LN_2(x))                      (the blocks repeat n_layer times)
    logits = head(mean of LN_f(x) over the real frames)            (B, 10)
"""

import functools
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import MultiHeadAttention
from fromscratch.errors import UserError
from fromscratch.folders import load_model, save_model
from fromscratch.language.gpt import MLP
from fromscratch.modes import evaluating
from fromscratch.training.recipes import Recipe

LOG_FLOOR = 1e-6  # log(E + 1e-6): silence becomes about -13.8 instead of -∞


# ---------------------------------------------------------------------------------------------
# Framing, window, STFT
# ---------------------------------------------------------------------------------------------
def hann_window(length: int) -> torch.Tensor:
    """Periodic Hann window w[n] = ½ (1 − cos(2π n / N)), n = 0..N-1 (torch.hann_window's).

    "Periodic" divides by N, not N − 1: the window is one period of a cosine, so windows placed
    every N/2 or N/4 samples add up to a constant (the overlap-add property).
    """
    n = torch.arange(length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / length)).float()


def frame_signal(x: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """Cut x (..., N) into overlapping frames (..., T, frame_length), T = 1 + (N − L) // hop.

    Frame t is x[t·hop : t·hop + L]; samples after the last whole frame are dropped.
    """
    if x.shape[-1] < frame_length:
        raise UserError(f"signal of {x.shape[-1]} samples is shorter than a frame ({frame_length})")
    n_frames = 1 + (x.shape[-1] - frame_length) // hop_length
    starts = torch.arange(n_frames) * hop_length  # (T,)
    index = starts[:, None] + torch.arange(frame_length)  # (T, L): sample index of each entry
    return x[..., index]  # (..., T, L)


@functools.lru_cache(maxsize=8)  # built once per size; callers must not modify them
def dft_matrices(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2π k n / n_fft for k = 0..n_fft/2 (rows) and n = 0..n_fft-1 (columns).

    Re X[k] = Σ_n x[n] cos(2π k n / N),   Im X[k] = −Σ_n x[n] sin(2π k n / N).
    A real signal's spectrum is symmetric, X[N − k] = conj(X[k]), so k ≤ N/2 says everything.
    """
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]  # (F, 1)
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]  # (1, N)
    # k n mod N keeps the angle small, so float64 cos/sin stay exact for any N
    angle = 2 * math.pi * torch.remainder(k * n, n_fft) / n_fft  # (F, N)
    return torch.cos(angle).float(), torch.sin(angle).float()


def stft(x: torch.Tensor, n_fft: int, hop_length: int, center: bool = True) -> torch.Tensor:
    """Short-time Fourier transform of x (..., N): complex (..., T, F), time first.

    center: pad n_fft/2 samples on each side by reflection, so frame t is centred on sample
    t·hop (torch.stft's default, pad_mode="reflect"). torch.stft returns (..., F, T).
    """
    if center:
        pad = n_fft // 2
        if x.shape[-1] <= pad:
            raise UserError(f"signal of {x.shape[-1]} samples is too short for n_fft {n_fft}")
        flat = x.reshape(-1, 1, x.shape[-1])  # F.pad's reflect mode wants (batch, channel, N)
        x = F.pad(flat, (pad, pad), mode="reflect").reshape(*x.shape[:-1], -1)
    frames = frame_signal(x, n_fft, hop_length) * hann_window(n_fft)  # (..., T, N)
    cos, sin = dft_matrices(n_fft)  # (F, N) each
    real = frames @ cos.T  # (..., T, F)
    imag = -(frames @ sin.T)  # (..., T, F)
    return torch.complex(real, imag)


# ---------------------------------------------------------------------------------------------
# Mel filterbank and the log-mel spectrogram
# ---------------------------------------------------------------------------------------------
def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: mel(f) = 2595 log10(1 + f / 700). Linear below ~700 Hz, log above."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_mel`: f = 700 (10^(m / 2595) − 1)."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """(M, F) triangular filters, equally spaced on the mel scale between f_min and f_max.

    M + 2 points equally spaced in mel give, in Hz, f_0 < f_1 < ... < f_{M+1}. Filter m rises
    linearly from 0 at f_{m-1} to 1 at f_m and falls back to 0 at f_{m+1}:

        W[m, k] = max(0, min((f_k − f_{m−1}) / (f_m − f_{m−1}), (f_{m+1} − f_k) / (f_{m+1} − f_m)))

    at the FFT bin frequencies f_k = k · sr / n_fft. Neighbouring triangles cross at ½, so between
    f_1 and f_M the filters sum to exactly 1 at every frequency.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise UserError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    mel_min, mel_max = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64)).tolist()
    mels = torch.linspace(mel_min, mel_max, n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels)  # (M + 2,) in Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rising = (bins - lower) / (centre - lower)  # (M, F): 0 at the lower edge, 1 at the centre
    falling = (upper - bins) / (upper - centre)  # (M, F): 1 at the centre, 0 at the upper edge
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def log_mel_spectrogram(
    x: torch.Tensor, sample_rate: int, n_fft: int = 256, hop_length: int = 128, n_mels: int = 40
) -> torch.Tensor:
    """S = log(|STFT(x)|² W_melᵀ + 1e-6): (..., T, M) for a signal x (..., N)."""
    power = stft(x, n_fft, hop_length).abs() ** 2  # (..., T, F)
    mel = power @ mel_filterbank(n_mels, n_fft, sample_rate).T  # (..., T, M)
    return torch.log(mel + LOG_FLOOR)


# ---------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------
@dataclass
class AudioConfig:
    # features
    sample_rate: int = 8000
    n_fft: int = 512  # 64 ms windows at 8 kHz
    hop_length: int = 256  # 32 ms between frames: ~14 frames for a typical 0.45 s digit
    n_mels: int = 40
    # transformer
    max_frames: int = 100  # learned positions: 3.2 s at 32 ms
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1
    bias: bool = True
    layer_norm_eps: float = 1e-5
    n_classes: int = 10

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "max_frames", "n_layer",
                     "n_head", "n_embd", "n_classes"):
            if getattr(self, name) < 1:
                raise UserError(f"AudioConfig.{name} must be a positive integer")
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")


class EncoderBlock(nn.Module):
    """GPT's pre-LayerNorm block, non-causal, with padding keys masked out of attention.

    The layout and names are those of `vit.EncoderBlock` (ln_1, attn, ln_2, mlp); this one also
    takes the padding mask that recordings of different lengths need.
    """

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout, fast=True
        )
        self.resid_dropout = nn.Dropout(config.dropout)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)  # GELU(x W_fc) W_proj, hidden width 4C: the GPT track's MLP

    def forward(self, x, padding=None):
        attended = self.attn(self.ln_1(x), key_padding_mask=padding)  # (B, T, C)
        x = x + self.resid_dropout(attended)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class AudioClassifier(nn.Module):
    """Log-mel frames (B, T, M) + padding (B, T) -> class logits (B, n_classes).

    `feature_mean` / `feature_std` (M,) standardise each mel band; they are buffers (saved with
    the weights) set from the training recordings by `set_feature_stats`.
    """

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        self.w_in = nn.Linear(config.n_mels, config.n_embd)
        self.wpe = nn.Embedding(config.max_frames, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.n_classes)
        init_weights(self)

    @torch.no_grad()
    def set_feature_stats(self, features: list[torch.Tensor]) -> None:
        """Mean and standard deviation of each mel band over all frames of `features`."""
        frames = torch.cat(features)  # (total frames, M)
        self.feature_mean.copy_(frames.mean(0))
        self.feature_std.copy_(frames.std(0).clamp(min=1e-3))

    def featurize(self, samples: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram (T, M) of one recording (N,), cut to max_frames."""
        c = self.config
        spec = log_mel_spectrogram(samples, c.sample_rate, c.n_fft, c.hop_length, c.n_mels)
        return spec[: c.max_frames]

    def forward(self, features: torch.Tensor, padding: torch.Tensor | None = None):
        """features (B, T, M); padding (B, T) bool, True at padding frames (None: no padding)."""
        B, T, _ = features.shape
        if T > self.config.max_frames:
            raise UserError(f"{T} frames is more than max_frames {self.config.max_frames}")
        x = (features - self.feature_mean) / self.feature_std  # (B, T, M), standardised
        x = self.w_in(x) + self.wpe(torch.arange(T, device=x.device))  # (B, T, C)
        x = self.drop(x)
        for block in self.h:
            x = block(x, padding)  # (B, T, C)
        x = self.ln_f(x)
        if padding is None:
            pooled = x.mean(1)  # (B, C)
        else:
            real = (~padding).unsqueeze(-1).to(x.dtype)  # (B, T, 1): 1 at real frames
            pooled = (x * real).sum(1) / real.sum(1).clamp(min=1)  # mean over real frames
        return self.head(pooled)  # (B, n_classes)

    def loss(self, batch):
        """Mean cross-entropy of the labels: batch = (features, padding, labels)."""
        features, padding, labels = batch
        return F.cross_entropy(self(features, padding), labels)

    @torch.no_grad()
    def predict(self, samples: torch.Tensor) -> torch.Tensor:
        """Class probabilities (n_classes,) for one recording's samples (N,)."""
        self.eval()
        features = self.featurize(samples)[None]  # (1, T, M)
        return torch.softmax(self(features), dim=-1)[0]

    # -----------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """config.json + model.safetensors in `path`, each written atomically."""
        save_model(path, self, "fromscratch-audio", asdict(self.config))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "AudioClassifier":
        return load_model(cls, AudioConfig, path, "fromscratch-audio")


def init_weights(model: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02²) for linear and embedding weights, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def evaluate(
    model: AudioClassifier, features: list[torch.Tensor], labels: list[int], batch_size: int = 128
) -> dict[str, float]:
    """{"accuracy", "loss"} over every recording, in batches of similar lengths (little padding)."""
    from fromscratch.data.audio import pad_batch

    order = sorted(range(len(features)), key=lambda i: len(features[i]))
    correct, total_loss = 0, 0.0
    with evaluating(model):
        for first in range(0, len(order), batch_size):
            chosen = order[first : first + batch_size]
            padded, padding = pad_batch([features[i] for i in chosen])
            target = torch.tensor([labels[i] for i in chosen])
            logits = model(padded, padding)  # (b, n_classes)
            correct += int((logits.argmax(-1) == target).sum())
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
    return {"accuracy": correct / len(features), "loss": total_loss / len(features)}


# ---------------------------------------------------------------------------------------------
# Training recipe (shared by the CLI, the benchmark and the lesson); the model: AudioConfig()
# ---------------------------------------------------------------------------------------------
RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        description="a 3-layer log-mel transformer: 98.7% on a random 80/20 split of FSDD",
        model={},
        batch_size=32,
        train=dict(max_steps=1500, lr=2e-3, warmup_steps=100, weight_decay=0.05),
    ),
}


def featurize_all(recordings, config: AudioConfig) -> list[torch.Tensor]:
    """Log-mel spectrograms (T_i, M) of FSDD `Recording`s, each cut to max_frames."""
    from fromscratch.data.audio import read_wav

    features = []
    for r in recordings:
        samples, rate = read_wav(r.path)
        if rate != config.sample_rate:
            raise UserError(f"{r.path} is sampled at {rate} Hz; this model reads "
                            f"{config.sample_rate} Hz")
        spec = log_mel_spectrogram(samples, rate, config.n_fft, config.hop_length, config.n_mels)
        features.append(spec[: config.max_frames])
    return features


def train_classifier(train_recordings, test_recordings, config: AudioConfig, train_config,
                     *, batch_size: int = 64, out_dir=None, seed: int = 0, **train_args):
    """Train an `AudioClassifier` on FSDD recordings with `fromscratch.train`, evaluating
    on `test_recordings`. Returns (model, TrainResult); the result's last "test_accuracy" is the
    test accuracy of the final model."""
    from fromscratch.data.audio import SpectrogramBatches
    from fromscratch.training.loop import train

    train_features = featurize_all(train_recordings, config)
    test_features = featurize_all(test_recordings, config)
    test_labels = [r.digit for r in test_recordings]
    torch.manual_seed(seed)
    model = AudioClassifier(config)
    model.set_feature_stats(train_features)
    batches = SpectrogramBatches(train_features, [r.digit for r in train_recordings], batch_size,
                                 seed=seed, fill=model.feature_mean.clone())
    result = train(
        model, batches, train_config, out_dir=out_dir,
        evaluate=lambda m: {f"test_{k}": v for k, v in evaluate(m, test_features,
                                                                test_labels).items()},
        save_model=lambda m, folder: m.save_pretrained(folder), **train_args,
    )
    return model, result
