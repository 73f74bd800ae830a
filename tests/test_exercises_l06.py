"""Lesson 06's exercises (WordPiece, mean pooling, LoRA): the library's own WordPiece and
LoRALinear pass, and each planted mistake gets its own hint.

The planted mistakes are written the way a learner might write them (other loops, other ops),
not copied from the checker's catalogue.
"""

import pytest
import torch
from torch import nn

from fromscratch.exercises import check, prompt
from fromscratch.language.lora import LoRALinear
from fromscratch.tokenizers.wordpiece import wordpiece

SEEDS = [0, 1, 2]


def test_the_library_wordpiece_passes_the_exercise():
    assert check("wordpiece_greedy", wordpiece, seed=0).ok


def library_lora(x, W, b, A, B, alpha, r):
    """The library's LoRALinear with these weights."""
    base = nn.Linear(W.shape[1], W.shape[0])
    layer = LoRALinear(base, rank=r, alpha=alpha)
    with torch.no_grad():
        for param, value in ((layer.weight, W), (layer.bias, b), (layer.lora_A, A),
                             (layer.lora_B, B)):
            param.copy_(value)
        return layer(x)


def test_the_library_lora_passes_the_exercise():
    assert check("lora_forward", library_lora, seed=0).ok


def greedy_shortest(word, vocab):
    out, i = [], 0
    while i < len(word):
        j = i + 1
        while j <= len(word) and (word[i:j] if i == 0 else "##" + word[i:j]) not in vocab:
            j += 1
        if j > len(word):
            return ["[UNK]"]
        out.append(word[i:j] if i == 0 else "##" + word[i:j])
        i = j
    return out


def greedy_without_hashes(word, vocab):
    stripped = {v[2:] if v.startswith("##") else v for v in vocab}
    out = []
    while word:
        for n in range(len(word), 0, -1):
            if word[:n] in stripped:
                out.append(word[:n])
                word = word[n:]
                break
        else:
            return ["[UNK]"]
    return out


def greedy_keeping_pieces(word, vocab):
    out, i = [], 0
    while i < len(word):
        match = next(
            (j for j in range(len(word), i, -1)
             if (word[i:j] if i == 0 else "##" + word[i:j]) in vocab),
            None,
        )
        if match is None:
            out.append("[UNK]")
            break
        out.append(word[i:match] if i == 0 else "##" + word[i:match])
        i = match
    return out


def pool_all_positions(hidden, attention_mask):
    return hidden.sum(1) / hidden.shape[1]


def pool_sum(hidden, attention_mask):
    return torch.einsum("btc,bt->bc", hidden, attention_mask.float())


def pool_masked_over_T(hidden, attention_mask):
    return hidden.masked_fill(attention_mask[..., None] == 0, 0).mean(dim=1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name, fn, key, words",
    [
        ("wordpiece_greedy", greedy_shortest, "shortest_first", "LONGEST"),
        ("wordpiece_greedy", greedy_without_hashes, "no_prefix", "'##able'"),
        ("wordpiece_greedy", greedy_keeping_pieces, "partial_unknown", "WHOLE word"),
        ("mean_pool", pool_all_positions, "padding_included", "padding was averaged"),
        ("mean_pool", pool_sum, "sum", "sum of the real vectors"),
        ("mean_pool", pool_masked_over_T, "divide_by_T", "not out of the count"),
    ],
)
def test_wordpiece_and_pooling_mistakes_get_their_hints(name, fn, key, words, seed, capsys):
    result = check(name, fn, seed=seed)
    assert not result.ok and result.diagnosis == key, result.message
    assert words in capsys.readouterr().out


def forgot_scaling(x, W, b, A, B, alpha, r):
    return torch.nn.functional.linear(x, W, b) + (x @ A.T) @ B.T


def alpha_only(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha * torch.einsum("...i,ri,or->...o", x, A, B)


def r_over_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + x @ A.T @ B.T * r / alpha


def swapped(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha / r * (x @ B @ A)  # runs for square layers only


def dropped_base(x, W, b, A, B, alpha, r):
    return alpha / r * (x @ A.T @ B.T)


def no_bias(x, W, b, A, B, alpha, r):
    return x @ W.T + alpha / r * (x @ A.T @ B.T)


def wrong_order_shapes(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha / r * (x @ B.T @ A.T)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn, key, words", [
    (forgot_scaling, "no_scaling", "alpha / r"),
    (alpha_only, "scaled_by_alpha", "divide by r"),
    (r_over_alpha, "scaled_r_over_alpha", "upside down"),
    (swapped, "delta_transposed", "swapped or transposed"),
    (dropped_base, "update_only", "frozen layer's output is missing"),
    (no_bias, "no_bias", "bias b"),
])
def test_lora_mistakes_get_their_hints(fn, key, words, seed, capsys):
    result = check("lora_forward", fn, seed=seed)
    assert not result.ok and result.diagnosis == key
    assert words in capsys.readouterr().out


def test_a_shape_error_gets_the_shape_hint(capsys):
    result = check("lora_forward", wrong_order_shapes, seed=0)
    assert not result.ok
    assert "A is (r, in) and B is (out, r)" in capsys.readouterr().out


def test_the_lora_prompt_gives_the_scale():
    assert "alpha / r" in prompt("lora_forward")
