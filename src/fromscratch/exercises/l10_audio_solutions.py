"""Reference solutions to lesson 10's exercises (audio): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
"""

import math

import torch


def frame_signal(x: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """Overlapping frames (..., T, L) of x (..., N): frame t is x[t·hop : t·hop + L], and
    T = 1 + (N − L) // hop (a partial frame at the end is dropped)."""
    n_frames = 1 + (x.shape[-1] - frame_length) // hop_length
    frames = [x[..., t * hop_length : t * hop_length + frame_length] for t in range(n_frames)]
    return torch.stack(frames, dim=-2)  # (..., T, L)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """(M, n_fft/2 + 1) triangles on the HTK mel scale, mel(f) = 2595 log10(1 + f / 700), from
    0 Hz to sample_rate / 2, peak 1, evaluated at the FFT bin frequencies k · sr / n_fft."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    top = 2595 * math.log10(1 + (sample_rate / 2) / 700)  # the highest mel
    mels = torch.linspace(0, top, n_mels + 2, dtype=torch.float64)  # M + 2 equally spaced
    edges = 700 * (10 ** (mels / 2595) - 1)  # back to Hz: (M + 2,)
    filters = []
    for m in range(1, n_mels + 1):
        lower, centre, upper = edges[m - 1], edges[m], edges[m + 1]
        rising = (bins - lower) / (centre - lower)  # 0 at lower, 1 at centre
        falling = (upper - bins) / (upper - centre)  # 1 at centre, 0 at upper
        filters.append(torch.clamp(torch.minimum(rising, falling), min=0))
    return torch.stack(filters).float()  # (M, F)
