"""Lesson 24's exercises (a modern decoder): `rms_norm`, `apply_rope`, `swiglu` and `repeat_kv`.

The cases include a single token, a row of zeros (only ε keeps RMSNorm finite), positions that
start after a KV cache, one key/value head shared by all (multi-query) and as many as there are
queries (multi-head), and inputs with and without a heads axis.
"""

import torch
import torch.nn.functional as F

from fromscratch.exercises import l24_modern_decoder_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn


def _rms_norm_cases(gen: torch.Generator) -> list[Case]:
    zeros = randn(gen, 3, 8)
    zeros[1] = 0.0  # a row of zeros: mean(x²) = 0, so only ε keeps the division finite
    cases = []
    for x, extra, note in [
        (randn(gen, 4, 16, scale=2.0) + 1.0, (), " (rows with a mean far from 0)"),
        (randn(gen, 2, 3, 8), (), ""),
        (randn(gen, 1, 1, 8), (), " (a single token)"),
        (zeros, (), " (its second row all zeros)"),
        (randn(gen, 3, 8, scale=0.5), (0.1,), ", eps=0.1"),
    ]:
        gain = 1.0 + 0.5 * randn(gen, x.shape[-1])  # g, (C,)
        cases.append(Case((x, gain, *extra), f"x {tuple(x.shape)}{note}"))
    return cases


def _rms_norm_variant(x, weight, eps=1e-5, *, center=False, reduce="mean", eps_inside=True,
                      gain=True):
    """RMSNorm with one knob turned the wrong way; the defaults give the right answer."""
    if center:
        x = x - x.mean(dim=-1, keepdim=True)
    square = (x * x).mean(dim=-1, keepdim=True) if reduce == "mean" else \
        (x * x).sum(dim=-1, keepdim=True)
    y = x / (torch.sqrt(square + eps) if eps_inside else torch.sqrt(square) + eps)
    return y * weight if gain else y


register(
    Exercise(
        name="rms_norm",
        lesson="24_modern_decoder",
        prompt=(
            "rms_norm(x, weight, eps=1e-5) -> Tensor\n"
            "Over the last axis (the C features): x / sqrt(mean(x²) + eps), times the gain\n"
            "weight (shape (C,)). No mean is taken away and there is no bias."
        ),
        reference=solutions.rms_norm,
        make_cases=_rms_norm_cases,
        mistakes=(
            Mistake(
                "mean",
                "RMSNorm does not subtract the mean: divide x itself by sqrt(mean(x²) + eps). "
                "Taking the mean away is LayerNorm's step, the one RMSNorm drops.",
                lambda x, w, eps=1e-5: _rms_norm_variant(x, w, eps, center=True),
            ),
            Mistake(
                "gain",
                "the gain is missing: multiply the normalised x by weight (one number per "
                "feature, learned), or every feature keeps root-mean-square 1.",
                lambda x, w, eps=1e-5: _rms_norm_variant(x, w, eps, gain=False),
            ),
            Mistake(
                "eps_outside",
                "eps belongs inside the square root: sqrt(mean(x²) + eps), not "
                "sqrt(mean(x²)) + eps.",
                lambda x, w, eps=1e-5: _rms_norm_variant(x, w, eps, eps_inside=False),
            ),
            Mistake(
                "sum",
                "a sum of squares where the mean belongs: mean(x²) = sum(x²) / C, the "
                "average over the C features (dim=-1).",
                lambda x, w, eps=1e-5: _rms_norm_variant(x, w, eps, reduce="sum"),
            ),
        ),
        nan_hint=(
            "NaN or inf in your output: a row of zeros has mean(x²) = 0; add eps inside the "
            "square root, sqrt(mean(x²) + eps)."
        ),
    )
)


def _rope_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, positions, theta, note in [
        ((1, 2, 5, 8), torch.arange(5), 10000.0, ""),
        ((2, 3, 4, 16), torch.arange(7, 11), 10000.0, " (positions 7..10: after a KV cache)"),
        ((3, 6, 8), torch.arange(6), 100.0, " (no heads axis), theta=100"),
        ((2, 1, 3, 2), torch.tensor([2, 3, 4]), 10000.0, " (D = 2: a single pair)"),
        ((1, 2, 1, 8), torch.tensor([0]), 10000.0, " (a single token at position 0)"),
    ]:
        x = randn(gen, *shape)
        label = f"x {shape}, positions {positions.tolist()}{note}"
        cases.append(Case((x, positions, theta), label))
    return cases


def _rope_variant(x, positions, theta=10000.0, *, shift=0, from_zero=False, exponent=2,
                  sign=1, neighbours=False, swap=False):
    """RoPE with one knob turned the wrong way; the defaults give the right answer."""
    D, T = x.shape[-1], x.shape[-2]
    p = torch.arange(T) if from_zero else positions + shift
    omega = theta ** (-exponent * torch.arange(D // 2).float() / D)  # (D/2,)
    angle = sign * p.float()[:, None] * omega  # (T, D/2)
    cos, sin = (angle.sin(), angle.cos()) if swap else (angle.cos(), angle.sin())
    if neighbours:  # pairs (x_0, x_1), (x_2, x_3), ...
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)
    a, b = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


_OFF_BY_ONE = (
    "the positions are off by one: the token in row t is at positions[t] exactly (the first "
    "prompt token at 0), so its angle is positions[t]·ω_i."
)

register(
    Exercise(
        name="apply_rope",
        lesson="24_modern_decoder",
        prompt=(
            "apply_rope(x, positions, theta=10000.0) -> Tensor\n"
            "x (..., T, D), positions (T,). Turn every pair (x_i, x_{i+D/2}), i < D/2, of row t\n"
            "by the angle positions[t]·ω_i, ω_i = theta^(-2i/D): (a, b) -> (a cos - b sin,\n"
            "b cos + a sin)."
        ),
        reference=solutions.apply_rope,
        make_cases=_rope_cases,
        mistakes=(
            Mistake(
                "pairs",
                "the wrong pairs turn together: pair x_i with x_{i+D/2} (the first half of the "
                "head with the second, as Hugging Face's checkpoints do), not the neighbours "
                "(x_{2i}, x_{2i+1}).",
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, neighbours=True),
            ),
            Mistake(
                "sign",
                "the rotation goes the wrong way (by -angle): the new first half is "
                "a cos - b sin and the new second half b cos + a sin.",
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, sign=-1),
            ),
            Mistake(
                "off_by_one", _OFF_BY_ONE,
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, shift=1),
            ),
            Mistake(
                "off_by_one", _OFF_BY_ONE,
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, shift=-1),
            ),
            Mistake(
                "positions_ignored",
                "use the positions given, not 0..T-1: after a KV cache the new tokens start "
                "at the cache's length.",
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, from_zero=True),
            ),
            Mistake(
                "frequency",
                "wrong frequencies: ω_i = theta^(-2i/D) for i = 0..D/2-1 (the exponent steps "
                "by 2/D, torch.arange(0, D, 2) / D), not theta^(-i/D).",
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, exponent=1),
            ),
            Mistake(
                "cos_sin",
                "cos and sin are swapped: each half is multiplied by cos(angle), and the other "
                "half, turned a quarter, by sin(angle).",
                lambda x, p, theta=10000.0: _rope_variant(x, p, theta, swap=True),
            ),
        ),
    )
)


def _swiglu_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for x_shape, width, hidden, note in [
        ((2, 5, 8), 8, 12, ""),
        ((3, 6), 6, 16, " (no batch axis)"),
        ((1, 1, 4), 4, 8, " (a single token)"),
    ]:
        x = randn(gen, *x_shape, scale=2.0)
        w_gate = randn(gen, hidden, width, scale=0.5)
        w_up = randn(gen, hidden, width, scale=0.5)
        w_down = randn(gen, width, hidden, scale=0.5)
        label = f"x {x_shape}, w_gate and w_up ({hidden}, {width}), w_down ({width}, {hidden})"
        cases.append(Case((x, w_gate, w_up, w_down), label + note))
    return cases


def _swiglu_variant(x, w_gate, w_up, w_down, *, act=F.silu, swap=False, act_after=False):
    """SwiGLU with one knob turned the wrong way; the defaults give the right answer."""
    gate, up = x @ w_gate.T, x @ w_up.T  # (..., F)
    if swap:
        gate, up = up, gate
    hidden = act(gate * up) if act_after else act(gate) * up
    return hidden @ w_down.T


register(
    Exercise(
        name="swiglu",
        lesson="24_modern_decoder",
        prompt=(
            "swiglu(x, w_gate, w_up, w_down) -> Tensor\n"
            "x (..., C); w_gate, w_up (F, C); w_down (C, F), laid out as nn.Linear weights.\n"
            "Return (SiLU(x w_gateᵀ) * (x w_upᵀ)) w_downᵀ, SiLU(z) = z·sigmoid(z)."
        ),
        reference=solutions.swiglu,
        make_cases=_swiglu_cases,
        mistakes=(
            Mistake(
                "swapped",
                "gate and up are swapped: SiLU goes on x w_gateᵀ (the gate), which then scales "
                "x w_upᵀ; the two matrices are trained for different jobs.",
                lambda x, g, u, d: _swiglu_variant(x, g, u, d, swap=True),
            ),
            Mistake(
                "gelu",
                "GELU where SwiGLU uses SiLU: SiLU(z) = z·sigmoid(z) (F.silu), the 'Swish' in "
                "the name; GELU is GPT-2's.",
                lambda x, g, u, d: _swiglu_variant(x, g, u, d, act=F.gelu),
            ),
            Mistake(
                "gelu",
                "GELU (tanh form) where SwiGLU uses SiLU: SiLU(z) = z·sigmoid(z) (F.silu).",
                lambda x, g, u, d: _swiglu_variant(
                    x, g, u, d, act=lambda z: F.gelu(z, approximate="tanh")
                ),
            ),
            Mistake(
                "sigmoid",
                "sigmoid(gate) is the original GLU; SwiGLU's gate is SiLU(z) = z·sigmoid(z).",
                lambda x, g, u, d: _swiglu_variant(x, g, u, d, act=torch.sigmoid),
            ),
            Mistake(
                "act_after",
                "SiLU goes on the gate alone, before the product: SiLU(x w_gateᵀ) * (x w_upᵀ), "
                "not SiLU(gate * up).",
                lambda x, g, u, d: _swiglu_variant(x, g, u, d, act_after=True),
            ),
        ),
    )
)


def _repeat_kv_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, n_rep, note in [
        ((2, 2, 3, 4), 3, ""),
        ((1, 3, 5, 8), 3, " (SmolLM2's 3 key/value heads for 9 queries)"),
        ((2, 1, 4, 4), 4, " (one key/value head for every query: multi-query)"),
        ((1, 4, 2, 4), 1, " (n_rep = 1: plain multi-head attention)"),
    ]:
        cases.append(Case((randn(gen, *shape), n_rep), f"x {shape}, n_rep={n_rep}{note}"))
    return cases


register(
    Exercise(
        name="repeat_kv",
        lesson="24_modern_decoder",
        prompt=(
            "repeat_kv(x, n_rep) -> Tensor\n"
            "x (B, K, T, D) holds K key (or value) heads; return (B, K·n_rep, T, D) in which\n"
            "query head h reads key head h // n_rep: each head repeated n_rep times in a row."
        ),
        reference=solutions.repeat_kv,
        make_cases=_repeat_kv_cases,
        mistakes=(
            Mistake(
                "tiled",
                "the heads are tiled (0, 1, 2, 0, 1, 2) where each must repeat in a row "
                "(0, 0, 1, 1, 2, 2): query head h reads key head h // n_rep. "
                "x.repeat(...) tiles; torch.repeat_interleave(x, n_rep, dim=1) repeats in a row.",
                lambda x, n_rep: x.repeat(1, n_rep, 1, 1),
            ),
            Mistake(
                "time_axis",
                "you repeated along time (dim=2); repeat the heads, dim=1: the keys stay T long.",
                lambda x, n_rep: torch.repeat_interleave(x, n_rep, dim=2),
            ),
        ),
    )
)
