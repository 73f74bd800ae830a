"""Lesson 24's exercises (RMSNorm, RoPE, grouped-query heads, SwiGLU): the references equal the
library's modern decoder (fromscratch.language.llama), and each planted mistake gets its hint.

The planted mistakes are written the way a learner would write them, not copied from the
checker's catalogue.
"""

import pytest
import torch
import torch.nn.functional as F

from fromscratch.exercises import check
from fromscratch.exercises import l24_modern_decoder_solutions as solutions
from fromscratch.language.llama import (
    LlamaConfig,
    LlamaMLP,
    RMSNorm,
    apply_rope,
    repeat_kv,
    rope_cos_sin,
    rope_frequencies,
)

SEEDS = [0, 1, 2]


def test_rms_norm_equals_the_librarys():
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16))
    x = torch.randn(3, 5, 16) * 3 + 1
    assert torch.allclose(solutions.rms_norm(x, norm.weight, 1e-6), norm(x), atol=1e-6)


def test_apply_rope_equals_the_librarys_after_a_cache():
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                         rope_theta=1e5)
    x = torch.randn(2, 4, 6, config.head_dim)  # (B, H, T, D)
    positions = torch.arange(5, 11)  # the six tokens after five cached ones
    cos, sin = rope_cos_sin(positions.expand(2, 6), rope_frequencies(config))
    ours = solutions.apply_rope(x, positions, theta=1e5)
    assert torch.allclose(ours, apply_rope(x, cos, sin), atol=1e-5)


def test_apply_rope_scores_depend_on_the_distance_only():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        return float(solutions.apply_rope(q, torch.tensor([m]))[0, 0, 0]
                     @ solutions.apply_rope(k, torch.tensor([n]))[0, 0, 0])

    assert score(3, 1) == pytest.approx(score(40, 38), abs=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_repeat_kv_equals_the_librarys():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(solutions.repeat_kv(x, 3), repeat_kv(x, 3))
    assert torch.equal(solutions.repeat_kv(x, 3)[:, 4], x[:, 1])  # query head 4 reads head 1


def test_swiglu_equals_the_librarys_mlp():
    mlp = LlamaMLP(LlamaConfig(hidden_size=8, intermediate_size=12, num_attention_heads=2,
                               num_key_value_heads=1))
    x = torch.randn(2, 3, 8)
    ours = solutions.swiglu(x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)
    assert torch.allclose(ours, mlp(x), atol=1e-6)


def rms_layer_norm(x, weight, eps=1e-5):
    centred = x - x.mean(-1, keepdim=True)
    return centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt() * weight


def rms_no_gain(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rms_eps_outside(x, weight, eps=1e-5):
    return weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)


def rms_sum(x, weight, eps=1e-5):
    return weight * x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt()


def rms_no_eps(x, weight, eps=1e-5):
    return weight * x / x.pow(2).mean(-1, keepdim=True).sqrt()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (rms_layer_norm, "mean", "does not subtract the mean"),
        (rms_no_gain, "gain", "gain is missing"),
        (rms_eps_outside, "eps_outside", "inside the square root"),
        (rms_sum, "sum", "mean(x²) = sum(x²) / C"),
        (rms_no_eps, "nan", "row of zeros"),
    ],
)
def test_rms_norm_mistakes(fn, key, words, seed):
    result = check("rms_norm", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def rope_from(pairs="halves", sign=1.0, shift=0, exponent=2.0, use_positions=True, swap=False):
    """A learner's RoPE built from pieces; each test swaps in one wrong piece."""

    def rope(x, positions, theta=10000.0):
        D, T = x.shape[-1], x.shape[-2]
        p = (positions if use_positions else torch.arange(T)) + shift
        freqs = 1.0 / theta ** (exponent * torch.arange(D // 2) / D)
        angles = sign * torch.outer(p.float(), freqs)  # (T, D/2)
        c, s = (angles.sin(), angles.cos()) if swap else (angles.cos(), angles.sin())
        if pairs == "neighbours":
            even, odd = x[..., ::2], x[..., 1::2]
            out = torch.empty_like(x)
            out[..., ::2], out[..., 1::2] = even * c - odd * s, odd * c + even * s
            return out
        c, s = torch.cat([c, c], -1), torch.cat([s, s], -1)
        half1, half2 = x.chunk(2, dim=-1)
        return x * c + torch.cat([-half2, half1], -1) * s

    return rope


def test_a_learners_rope_from_pieces_is_correct():
    assert check("apply_rope", rope_from(), seed=0).ok


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (rope_from(pairs="neighbours"), "pairs", "x_{i+D/2}"),
        (rope_from(sign=-1.0), "sign", "wrong way"),
        (rope_from(shift=1), "off_by_one", "off by one"),
        (rope_from(use_positions=False), "positions_ignored", "positions given"),
        (rope_from(exponent=1.0), "frequency", "theta^(-2i/D)"),
        (rope_from(swap=True), "cos_sin", "swapped"),
    ],
)
def test_apply_rope_mistakes(fn, key, words, seed):
    result = check("apply_rope", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def kv_tiled(x, n_rep):
    return torch.cat([x] * n_rep, dim=1)


def kv_over_time(x, n_rep):
    return x.repeat_interleave(n_rep, dim=2)


def kv_expanded(x, n_rep):
    B, K, T, D = x.shape
    return x[:, :, None].expand(B, K, n_rep, T, D).reshape(B, K * n_rep, T, D)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (kv_tiled, "tiled", "h // n_rep"),
        (kv_over_time, "time_axis", "dim=1"),
    ],
)
def test_repeat_kv_mistakes(fn, key, words, seed):
    result = check("repeat_kv", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_repeat_kv_by_expand_is_correct():
    assert check("repeat_kv", kv_expanded, seed=0).ok


def swiglu_from(act=F.silu, swap=False, act_on_product=False):
    def swiglu(x, w_gate, w_up, w_down):
        a, b = F.linear(x, w_gate), F.linear(x, w_up)
        if swap:
            a, b = b, a
        return F.linear(act(a * b) if act_on_product else act(a) * b, w_down)

    return swiglu


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (swiglu_from(swap=True), "swapped", "gate and up are swapped"),
        (swiglu_from(act=F.gelu), "gelu", "GELU"),
        (swiglu_from(act=torch.sigmoid), "sigmoid", "GLU"),
        (swiglu_from(act=lambda z: z * torch.sigmoid(z), act_on_product=True), "act_after",
         "before the product"),
    ],
)
def test_swiglu_mistakes(fn, key, words, seed):
    result = check("swiglu", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_swiglu_written_with_sigmoid_is_correct():
    assert check("swiglu", swiglu_from(act=lambda z: z * torch.sigmoid(z)), seed=0).ok
