"""Lesson 11's exercises (music): the piano roll's `piano_roll_nll` and MIDI's
`encode_vlq`.

The likelihood cases include confident logits (|a| up to ~60), where log(sigmoid(a)) underflows;
the VLQ cases, the values where one more byte is needed (0x7F, 0x80, 0x3FFF, 0x4000).
"""

import torch
import torch.nn.functional as F

from fromscratch.exercises import l11_music_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _roll_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for T, scale, label in ((5, 1.0, "T=5"), (1, 3.0, "a single step"),
                            (12, 20.0, "confident logits (|a| up to ~60)")):
        logits = torch.randn(T, 88, generator=gen) * scale
        roll = (torch.rand(T, 88, generator=gen) < 0.1).float()
        cases.append(Case((logits, roll), f"logits ({T}, 88), {label}"))
    return cases


def _nll_mean_over_keys(logits, roll):
    return F.binary_cross_entropy_with_logits(logits, roll)


def _nll_only_sounding(logits, roll):
    return -(roll * F.logsigmoid(logits)).sum(-1).mean()


def _nll_sum_over_steps(logits, roll):
    return solutions.piano_roll_nll(logits, roll) * roll.shape[0]


register(
    Exercise(
        name="piano_roll_nll",
        lesson="11_music",
        prompt=(
            "piano_roll_nll(logits: Tensor (T, 88), roll: Tensor (T, 88) of 0/1) -> scalar\n"
            "Negative log-likelihood per time step under independent Bernoullis p = sigmoid(a):\n"
            "-(1/T) sum_t sum_k [v log p + (1 - v) log(1 - p)]. Stay finite for large |a|."
        ),
        reference=solutions.piano_roll_nll,
        make_cases=_roll_cases,
        mistakes=(
            Mistake("mean_over_keys", "sum the 88 keys' NLLs within a step (the metric is per "
                    "time step), then average over steps: you averaged over keys too.",
                    _nll_mean_over_keys),
            Mistake("only_sounding", "silent keys count too: add (1 - v) log(1 - p), the "
                    "probability of each key that does not sound.", _nll_only_sounding),
            Mistake("sum_over_steps", "average over the time steps instead of summing them.",
                    _nll_sum_over_steps),
        ),
        nan_hint="log(sigmoid(a)) underflows to log(0) = -inf for large |a|: use "
                 "F.logsigmoid(a) and F.logsigmoid(-a) for log(1 - p).",
    )
)


def _vlq_cases(gen: torch.Generator) -> list[Case]:
    values = [0, 1, 0x7F, 0x80, 480, 0x3FFF, 0x4000, 0x0FFFFFFF]
    values += torch.randint(0, 1 << 21, (3,), generator=gen).tolist()
    return [Case((v,), f"encode_vlq({v}) (hex {v:X})") for v in values]


def _vlq_little_endian(value):
    return solutions.encode_vlq(value)[::-1]


def _vlq_flag_on_last(value):
    groups = solutions.encode_vlq(value)
    return [g & 0x7F for g in groups[:-1]] + [groups[-1] | 0x80]


def _vlq_no_flags(value):
    return [g & 0x7F for g in solutions.encode_vlq(value)]


register(
    Exercise(
        name="encode_vlq",
        lesson="11_music",
        prompt=(
            "encode_vlq(value: int) -> list[int]\n"
            "MIDI's variable-length quantity: value in 7-bit groups, most significant first;\n"
            "set the top bit (0x80) of every byte except the last. 480 -> [0x83, 0x60]."
        ),
        reference=solutions.encode_vlq,
        make_cases=_vlq_cases,
        mistakes=(
            Mistake("little_endian", "the most significant 7-bit group comes first: reverse "
                    "your bytes.", _vlq_little_endian),
            Mistake("flag_on_last", "the top bit means 'more bytes follow': set it on every "
                    "byte except the last one.", _vlq_flag_on_last),
            Mistake("no_flags", "set the top bit (| 0x80) of every byte but the last, so a "
                    "reader knows where the number ends.", _vlq_no_flags),
        ),
    )
)
