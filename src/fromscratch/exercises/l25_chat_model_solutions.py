"""Reference solution to lesson 25's exercise (a real chat model): GGUF's Q4_1 blocks decoded.

Try the exercise first; `fromscratch lessons solution dequantize_q4_1` prints this. It is
written for reading, not speed, with the equation beside the line that computes it.
"""

import torch


def dequantize_q4_1(blocks: torch.Tensor) -> torch.Tensor:
    """(n, 20) uint8 Q4_1 blocks -> (n, 32) float32 numbers, w = d·q + m.

    Bytes 0-1: the scale d, bytes 2-3: the minimum m (IEEE halves, little-endian); bytes 4-19:
    the 32 four-bit q, byte j holding q[j] in its low 4 bits and q[j + 16] in its high 4 bits.
    """
    d = blocks[:, 0:2].contiguous().view(torch.float16).float()  # (n, 1)
    m = blocks[:, 2:4].contiguous().view(torch.float16).float()  # (n, 1)
    packed = blocks[:, 4:20]  # (n, 16)
    low, high = packed & 0x0F, packed >> 4  # (n, 16) each: q[0..15] and q[16..31]
    q = torch.cat([low, high], dim=1).float()  # (n, 32), each in 0..15
    return d * q + m  # (n, 32)
