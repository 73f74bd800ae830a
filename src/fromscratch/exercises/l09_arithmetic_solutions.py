"""Reference solution to lesson 09's exercise (arithmetic).

Try the exercise first; `fromscratch lessons solution answer_targets` prints it.
"""


def answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
    """(inputs, targets) to train a GPT on one problem: the model reads `inputs` and at each
    position is asked for the next token, but only where that token belongs to the answer.

    inputs = (prompt + answer) without its last token; targets[t] = the token after position t,
    or -100 (ignored by the loss) while that token is still part of the prompt.
    """
    sequence = prompt_ids + answer_ids
    targets = [-100] * (len(prompt_ids) - 1) + answer_ids
    return sequence[:-1], targets
