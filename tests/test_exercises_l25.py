"""Lesson 25's exercise (Q4_1 blocks decoded): the reference equals the library's GGUF decoding
(fromscratch.language.gguf) and undoes a block quantized by hand; each planted mistake gets its
hint.
"""

import pytest
import torch

from fromscratch.exercises import check
from fromscratch.exercises import l25_chat_model_solutions as solutions
from fromscratch.exercises.l25_chat_model import q4_1_blocks
from fromscratch.language.gguf import dequantize_q4_1

SEEDS = [0, 1, 2]


def random_blocks(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    d, m = torch.randn(n, generator=gen) * 0.05, torch.randn(n, generator=gen) * 0.2
    return q4_1_blocks(d, m, torch.randint(0, 16, (n, 32), generator=gen))


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_equals_the_librarys_decoding(seed):
    blocks = random_blocks(64, seed)
    assert torch.equal(solutions.dequantize_q4_1(blocks), dequantize_q4_1(blocks))


def test_packing_puts_q_j_low_and_q_j_plus_16_high():
    q = torch.arange(32) % 16
    blocks = q4_1_blocks(torch.tensor([1.0]), torch.tensor([-0.5]), q[None])
    assert blocks.shape == (1, 20) and blocks[0, 4] == 0x00 and blocks[0, 5] == 0x11
    assert torch.equal(solutions.dequantize_q4_1(blocks)[0], q.float() - 0.5)


def learner(order="halves", sign=1.0, offset=0, swap=False, mask_high=False):
    """A learner's decoder built from pieces; each test swaps in one wrong piece."""

    def dequantize(blocks):
        scale = blocks[:, :2].clone().view(torch.float16).to(torch.float32)
        minimum = blocks[:, 2:4].clone().view(torch.float16).to(torch.float32)
        if swap:
            scale, minimum = minimum, scale
        lo = blocks[:, 4:] % 16
        hi = blocks[:, 4:] - lo if mask_high else blocks[:, 4:] // 16
        if order == "halves":
            q = torch.cat([lo, hi], dim=-1)
        else:
            q = torch.stack([lo, hi], dim=-1).flatten(1)
        return scale * (q.to(torch.float32) - offset) + sign * minimum

    return dequantize


def test_a_learners_decoder_from_pieces_is_correct():
    assert check("dequantize_q4_1", learner(), seed=0).ok


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "fn, key, words",
    [
        (learner(order="pairs"), "interleaved", "out of order"),
        (learner(sign=-1.0), "minus_m", "add the minimum"),
        (learner(offset=8), "offset", "Q4_0"),
        (learner(swap=True), "swapped", "swapped"),
        (learner(mask_high=True), "high_unshifted", ">> 4"),
    ],
)
def test_dequantize_q4_1_mistakes(fn, key, words, seed):
    result = check("dequantize_q4_1", fn, seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message
