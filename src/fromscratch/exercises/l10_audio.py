"""Lesson 10's exercises (audio): `frame_signal` and the HTK `mel_filterbank`.

The framing cases include frames side by side (hop = L), a last frame that ends at the last
sample, and a signal exactly one frame long.
"""

import math

import torch
import torch.nn.functional as F

from fromscratch.exercises import l10_audio_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _frame_cases(gen: torch.Generator) -> list[Case]:
    inputs = [
        (torch.randn(100, generator=gen), 16, 8, "x (100,), L=16, hop=8"),
        (torch.randn(2, 3, 50, generator=gen), 10, 4, "x (2, 3, 50), L=10, hop=4"),
        (torch.arange(12.0), 4, 4, "x = 0..11, L=4, hop=4: frames side by side"),
        (torch.arange(10.0), 4, 3, "x = 0..9, L=4, hop=3: the last frame ends at the last sample"),
        (torch.randn(7, generator=gen), 7, 2, "x (7,), L=7: exactly one frame"),
    ]
    return [Case((x, L, hop), label) for x, L, hop, label in inputs]


def _frames_hop_is_length(x, frame_length, hop_length):
    return solutions.frame_signal(x, frame_length, frame_length)


def _frames_one_short(x, frame_length, hop_length):
    n_frames = (x.shape[-1] - frame_length) // hop_length  # forgot the + 1
    starts = torch.arange(n_frames) * hop_length
    return x[..., starts[:, None] + torch.arange(frame_length)]


def _frames_with_partial_last(x, frame_length, hop_length):
    padded = F.pad(x, (0, frame_length))
    n_frames = math.ceil((x.shape[-1] - frame_length) / hop_length) + 1
    starts = torch.arange(n_frames) * hop_length
    return padded[..., starts[:, None] + torch.arange(frame_length)]


register(
    Exercise(
        name="frame_signal",
        lesson="10_audio",
        prompt=(
            "frame_signal(x: Tensor (..., N), frame_length: int, hop_length: int) -> (..., T, L)\n"
            "Frame t is x[..., t*hop : t*hop + L]; T = 1 + (N - L) // hop whole frames (drop a\n"
            "partial frame at the end). Frames overlap when hop < L."
        ),
        reference=solutions.frame_signal,
        make_cases=_frame_cases,
        mistakes=(
            Mistake("hop_is_length", "consecutive frames start hop_length samples apart, not "
                    "frame_length: with hop < L they overlap.", _frames_hop_is_length),
            Mistake("one_short", "one frame too few: the frame starting at (N - L) // hop · hop "
                    "still fits, so T = 1 + (N - L) // hop.", _frames_one_short),
            Mistake("partial_last", "drop the partial frame at the end instead of padding it "
                    "with zeros: T = 1 + (N - L) // hop.", _frames_with_partial_last),
        ),
    )
)


def _mel_cases(gen: torch.Generator) -> list[Case]:
    del gen  # the filterbank is a fixed function of its sizes
    inputs = [(40, 256, 8000), (10, 64, 8000), (80, 512, 16000), (1, 32, 4000)]
    return [Case(args, f"mel_filterbank{args}") for args in inputs]


def _mel_linear_in_hz(n_mels, n_fft, sample_rate):
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.linspace(0, sample_rate / 2, n_mels + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


def _mel_area_normalised(n_mels, n_fft, sample_rate):
    fb = solutions.mel_filterbank(n_mels, n_fft, sample_rate).double()
    top = 2595 * math.log10(1 + (sample_rate / 2) / 700)
    edges = 700 * (10 ** (torch.linspace(0, top, n_mels + 2, dtype=torch.float64) / 2595) - 1)
    return (fb * (2 / (edges[2:] - edges[:-2]))[:, None]).float()


def _mel_without_outer_edges(n_mels, n_fft, sample_rate):
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    top = 2595 * math.log10(1 + (sample_rate / 2) / 700)
    edges = 700 * (10 ** (torch.linspace(0, top, n_mels, dtype=torch.float64) / 2595) - 1)
    edges = torch.cat([edges[:1] - 1, edges, edges[-1:] + 1])  # M points, padded by 1 Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


register(
    Exercise(
        name="mel_filterbank",
        lesson="10_audio",
        prompt=(
            "mel_filterbank(n_mels, n_fft, sample_rate) -> Tensor (n_mels, n_fft // 2 + 1)\n"
            "Triangles with peak 1 on the HTK mel scale mel(f) = 2595 log10(1 + f/700):\n"
            "n_mels + 2 points equally spaced in mel from 0 to mel(sr/2), mapped back to Hz;\n"
            "filter m rises from point m-1 to point m and falls to point m+1, evaluated at\n"
            "the bins f_k = k sr / n_fft."
        ),
        reference=solutions.mel_filterbank,
        make_cases=_mel_cases,
        mistakes=(
            Mistake("linear_hz", "your triangles are equally spaced in Hz: space the points "
                    "equally in mel, then convert them back to Hz.", _mel_linear_in_hz),
            Mistake("area_normalised", "your filters have area-normalised (Slaney) heights: here "
                    "each triangle peaks at 1 (norm=None).", _mel_area_normalised),
            Mistake("outer_edges", "use n_mels + 2 points: the first and last are only the "
                    "lower edge of the first filter and the upper edge of the last.",
                    _mel_without_outer_edges),
        ),
    )
)
