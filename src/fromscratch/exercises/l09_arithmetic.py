"""Lesson 09's exercise (arithmetic): `answer_targets`, one problem's inputs and
targets, the prompt left out of the loss.
"""

import torch

from fromscratch.exercises import l09_arithmetic_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


def _answer_target_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for prompt_len, answer_len in [(6, 4), (3, 2), (8, 5), (2, 1)]:
        prompt = torch.randint(0, 14, (prompt_len,), generator=gen).tolist()
        answer = torch.randint(0, 14, (answer_len,), generator=gen).tolist()
        cases.append(Case((prompt, answer), f"prompt {prompt}, answer {answer}"))
    return cases


def _targets_unmasked(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence[:-1], sequence[1:]


def _targets_not_shifted(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence[:-1], [-100] * len(prompt_ids) + answer_ids[:-1]


def _targets_whole_sequence(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence, [-100] * (len(prompt_ids) - 1) + answer_ids + [-100]


register(
    Exercise(
        name="answer_targets",
        lesson="09_arithmetic",
        prompt=(
            "answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> (inputs, targets)\n"
            "inputs: prompt + answer without its last token. targets[t]: the token after\n"
            "position t, or -100 (ignored by the loss) where that token is part of the prompt."
        ),
        reference=solutions.answer_targets,
        make_cases=_answer_target_cases,
        mistakes=(
            Mistake("unmasked", "the prompt is given, not predicted: put -100 at the targets "
                    "that are prompt tokens, so only the answer is trained.",
                    _targets_unmasked),
            Mistake("not_shifted", "off by one: target t is the token AFTER position t, so the "
                    "first answer token is the target of the last prompt position (the '=').",
                    _targets_not_shifted),
            Mistake("whole_sequence", "the inputs stop one token short of the full sequence: "
                    "nothing follows the last token, so it has no target to learn.",
                    _targets_whole_sequence),
        ),
    )
)
