"""Reference solutions to lesson 11's exercises (music): one plain function each.

Try the exercise first; `fromscratch lessons solution NAME` prints one of these.
"""

import torch
import torch.nn.functional as F


def piano_roll_nll(logits: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """NLL per time step of a roll (T, 88) under independent Bernoullis p = σ(logits):
    −(1/T) Σ_t Σ_k [v log p + (1 − v) log(1 − p)], a scalar."""
    log_p = F.logsigmoid(logits)  # log σ(a)
    log_not_p = F.logsigmoid(-logits)  # log(1 − σ(a)) = log σ(−a)
    log_likelihood = roll * log_p + (1 - roll) * log_not_p  # (T, 88)
    return -log_likelihood.sum(-1).mean()  # sum over keys, mean over steps


def encode_vlq(value: int) -> list[int]:
    """MIDI variable-length quantity: 7 bits per byte, most significant group first; every byte
    but the last has its top bit (0x80) set. 0 -> [0x00], 128 -> [0x81, 0x00]."""
    groups = [value & 0x7F]
    value >>= 7
    while value > 0:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return groups[::-1]
