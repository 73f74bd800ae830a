"""Lesson 25's exercise (a real chat model): `dequantize_q4_1`, GGUF's 4-bit blocks decoded.

The cases are blocks of bytes as a GGUF file holds them: a scale and a minimum drawn as halves
(negative ones too), four-bit numbers drawn over 0..15 with both ends present, a single block,
and a block whose scale is 0 (every number is the minimum).
"""

import torch

from fromscratch.exercises import l25_chat_model_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randn

BLOCK_NUMBERS = 32  # a Q4_1 block: 2 + 2 + 16 bytes for 32 numbers


def q4_1_blocks(d: torch.Tensor, m: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Pack scales d (n,), minimums m (n,) and four-bit q (n, 32) into (n, 20) Q4_1 bytes."""
    halves = torch.stack([d, m], dim=1).to(torch.float16).view(torch.uint8)  # (n, 4)
    q = q.to(torch.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)  # (n, 16): q[j] low, q[j + 16] high
    return torch.cat([halves, packed], dim=1)  # (n, 20)


def _cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for n, zero_scale, note in [
        (4, False, ""), (1, False, " (a single block)"), (16, False, ""),
        (3, True, " (the second's d = 0: all its numbers are m)"),
    ]:
        d = randn(gen, n, scale=0.05)  # scales as a weight matrix's blocks have them
        m = randn(gen, n, scale=0.2)
        q = torch.randint(0, 16, (n, BLOCK_NUMBERS), generator=gen)
        q[:, 0], q[:, -1] = 0, 15  # both ends of the four-bit range
        if zero_scale:
            d[1] = 0.0
        cases.append(Case((q4_1_blocks(d, m, q),), f"{n} blocks, ({n}, 20) uint8{note}"))
    return cases


def _q4_1_variant(blocks, *, interleaved=False, minus_m=False, offset=0, swap_dm=False,
                  high_unshifted=False):
    """Q4_1 decoding with one knob turned the wrong way; the defaults give the right answer."""
    d = blocks[:, 0:2].contiguous().view(torch.float16).float()  # (n, 1)
    m = blocks[:, 2:4].contiguous().view(torch.float16).float()
    if swap_dm:
        d, m = m, d
    packed = blocks[:, 4:]
    low, high = packed & 0x0F, (packed & 0xF0) if high_unshifted else packed >> 4
    pair_axis = 2 if interleaved else 1  # (low 0, high 0, low 1, ...) or (all low, all high)
    q = torch.stack([low, high], dim=pair_axis).reshape(-1, BLOCK_NUMBERS).float() - offset
    return d * q - m if minus_m else d * q + m


register(
    Exercise(
        name="dequantize_q4_1",
        lesson="25_chat_model",
        prompt=(
            "dequantize_q4_1(blocks) -> Tensor\n"
            "blocks (n, 20) uint8, one Q4_1 block a row: bytes 0-1 the scale d, 2-3 the minimum m\n"
            "(float16, little-endian: .view(torch.float16)), 4-19 the 32 four-bit q (byte j: q[j]\n"
            "in its low 4 bits, q[j + 16] in its high 4). Return (n, 32) float32, w = d·q + m."
        ),
        reference=solutions.dequantize_q4_1,
        make_cases=_cases,
        mistakes=(
            Mistake(
                "interleaved",
                "the numbers are out of order: byte j holds q[j] (low 4 bits) and q[j + 16] "
                "(high 4 bits), so all 16 low nibbles come first, then all 16 high ones, not "
                "low, high, low, high.",
                lambda blocks: _q4_1_variant(blocks, interleaved=True),
            ),
            Mistake(
                "minus_m",
                "add the minimum: w = d·q + m (m is the block's smallest number, q = 0 gives it), "
                "not d·q - m.",
                lambda blocks: _q4_1_variant(blocks, minus_m=True),
            ),
            Mistake(
                "offset",
                "Q4_1 stores a minimum, so q is not centred: w = d·q + m with q in 0..15. "
                "Subtracting 8 is Q4_0's rule, which has no m.",
                lambda blocks: _q4_1_variant(blocks, offset=8),
            ),
            Mistake(
                "swapped",
                "d and m are swapped: bytes 0-1 are the scale d, bytes 2-3 the minimum m.",
                lambda blocks: _q4_1_variant(blocks, swap_dm=True),
            ),
            Mistake(
                "high_unshifted",
                "the high nibbles are 16 times too large: shift them down, byte >> 4, rather "
                "than masking with 0xF0.",
                lambda blocks: _q4_1_variant(blocks, high_unshifted=True),
            ),
        ),
    )
)
