"""Arithmetic as next-token prediction: our GPT learns to add (and multiply) digit strings.

A problem is a string of characters, one token each, and the model reads it left to right:

    "352+67=" + answer + ";"            ";" ends the answer

With `reverse=True` the answer is written least significant digit first: 352 + 67 = 419 is
written "914;". That is the order in which a person adds, carrying from right to left: each
output digit then depends only on digits already seen and on the carry from the digit just
written, where the plain order asks for the *first* digit of the sum, which depends on every
carry still to come.

With `pad=True` (the default) both operands are written with n_digits digits and the answer
with the most digits it can have, leading zeros included: "352+067=" + "9140;". With learned
absolute positions this matters more than anything else in the recipe: unpadded, the units digit
of the first operand sits at a different position in each problem, and the model must learn to
find it before it can add.

Training: operands have 1..n_digits digits (the number of digits uniform, then the number), a
fixed ~1% of all pairs is held out for testing (`is_held_out`), and the loss is the cross-entropy
of the answer tokens only (the prompt is given, not predicted). The model is `gpt.GPT` unchanged.
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fromscratch.errors import UserError
from fromscratch.folders import read_config, write_json
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.seeds import BATCH, micro_batch_seed
from fromscratch.training.recipes import Recipe

VOCAB = "0123456789+*=;"  # token id = position in this string
END = ";"
IGNORE = -100  # targets the loss skips (the prompt, and padding)
OPERATIONS = {"+": lambda a, b: a + b, "*": lambda a, b: a * b}

# The settings `fromscratch arithmetic train` and the benchmark use; the model reads operands of
# up to n_digits + EXTRA_DIGITS digits, so that length generalisation can be measured.
# Multiplication needs a wider model, many more steps and strong weight decay: its held-out
# accuracy stays near zero for thousands of steps, then climbs (docs/benchmarks.md).
RECIPES: dict[str, Recipe] = {
    "addition": Recipe(
        description="2 layers × 96, 800 steps: 100% exact match on held-out 3-digit sums",
        model=dict(n_layer=2, n_head=4, n_embd=96),
        batch_size=128,
        train=dict(max_steps=800, lr=3e-3, warmup_steps=100, weight_decay=0.1,
                   betas=(0.9, 0.99)),
    ),
    "multiplication": Recipe(
        description="2 layers × 128, 6,000 steps, weight decay 1.0: 80% on held-out 2-digit "
                    "products, still rising",
        model=dict(n_layer=2, n_head=4, n_embd=128),
        batch_size=128,
        train=dict(max_steps=6000, lr=3e-3, warmup_steps=100, weight_decay=1.0,
                   betas=(0.9, 0.99)),
    ),
}
OPERATION_RECIPES = {"+": "addition", "*": "multiplication"}  # the recipe an operation trains with
EXTRA_DIGITS = 2


def encode(text: str) -> list[int]:
    """'12+3=' -> [1, 2, 10, 3, 12]."""
    unknown = sorted(set(text) - set(VOCAB))
    if unknown:
        raise UserError(f"arithmetic text may use only {VOCAB!r}; got {''.join(unknown)!r}")
    return [VOCAB.index(ch) for ch in text]


def decode(ids) -> str:
    return "".join(VOCAB[i] for i in ids)


@dataclass
class ArithmeticTask:
    op: str = "+"  # "+" (addition) or "*" (multiplication)
    n_digits: int = 3  # training operands have 1..n_digits digits
    reverse: bool = True  # write the answer least significant digit first
    pad: bool = True  # zero-pad operands to n_digits digits, the answer to its longest length

    def __post_init__(self):
        if self.op not in OPERATIONS:
            raise UserError(f"unknown operation {self.op!r}; choose + or *")
        if self.n_digits < 1:
            raise UserError(f"n_digits must be at least 1, got {self.n_digits}")

    def answer_length(self, digits: int) -> int:
        """The most digits an answer to two `digits`-digit operands can have."""
        return digits + 1 if self.op == "+" else 2 * digits

    def sequence_length(self, digits: int) -> int:
        """Tokens in "a op b = answer ;" for operands of up to `digits` digits."""
        return 2 * digits + 2 + self.answer_length(digits) + 1

    def width(self, a: int, b: int) -> int:
        """Digits each operand is written with: n_digits when padding (more if it is longer)."""
        longest = max(len(str(a)), len(str(b)))
        return max(longest, self.n_digits) if self.pad else longest

    def prompt(self, a: int, b: int) -> str:
        """'352+67=' or, padded, '352+067=': every digit then sits at the same position in
        every training problem, and the model need not find where each operand starts."""
        if not self.pad:
            return f"{a}{self.op}{b}="
        width = self.width(a, b)
        return f"{a:0{width}d}{self.op}{b:0{width}d}="

    def answer(self, a: int, b: int) -> str:
        """The answer's characters and the end mark: 352 + 67 -> '419;' or reversed '914;'
        (padded to the longest answer: '0419;', reversed '9140;')."""
        digits = str(OPERATIONS[self.op](a, b))
        if self.pad:
            digits = digits.zfill(self.answer_length(self.width(a, b)))
        return (digits[::-1] if self.reverse else digits) + END

    def read_answer(self, text: str) -> int | None:
        """The number an answer string stands for (up to its ';'), or None if it is not one."""
        digits = text.split(END, 1)[0]
        if not digits.isdigit() or END not in text:
            return None
        return int(digits[::-1] if self.reverse else digits)


def is_held_out(a: int, b: int) -> bool:
    """About 1 pair in 97, never trained on: the test problems come from these."""
    return (a * 7919 + b * 104729) % 97 == 0


def sample_pairs(
    task: ArithmeticTask, n: int, generator: np.random.Generator, *, digits: int | None = None,
    held_out: bool = False,
) -> list[tuple[int, int]]:
    """n operand pairs: each operand with `digits` digits (default: 1..n_digits, uniform), then
    uniform among those numbers; from the held-out pairs if `held_out`, else from the rest."""
    pairs = []
    while len(pairs) < n:
        sizes = (generator.integers(1, task.n_digits + 1, size=2) if digits is None
                 else (digits, digits))
        a, b = (int(generator.integers(10 ** (d - 1) if d > 1 else 0, 10**d)) for d in sizes)
        if is_held_out(a, b) == held_out:
            pairs.append((a, b))
    return pairs


def answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
    """(inputs, targets) for one problem: the sequence without its last token, and the next
    token at each position, IGNORE where the next token is still part of the prompt."""
    sequence = prompt_ids + answer_ids
    targets = [IGNORE] * (len(prompt_ids) - 1) + answer_ids  # predict only the answer
    return sequence[:-1], targets


class ArithmeticBatches:
    """batches(step, micro) -> (idx, targets), both (B, T): random training problems, padded
    on the right to T = task.sequence_length(n_digits) - 1 with ';' (targets IGNORE)."""

    def __init__(self, task: ArithmeticTask, batch_size: int, seed: int = 0):
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.length = task.sequence_length(task.n_digits) - 1

    def __call__(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        generator = np.random.default_rng(micro_batch_seed(self.seed, step, micro, BATCH))
        idx = torch.full((self.batch_size, self.length), VOCAB.index(END), dtype=torch.long)
        targets = torch.full((self.batch_size, self.length), IGNORE, dtype=torch.long)
        for row, (a, b) in enumerate(sample_pairs(self.task, self.batch_size, generator)):
            inputs, target = answer_targets(encode(self.task.prompt(a, b)),
                                            encode(self.task.answer(a, b)))
            idx[row, : len(inputs)] = torch.tensor(inputs)
            targets[row, : len(target)] = torch.tensor(target)
        return idx, targets


@torch.no_grad()
def solve(model: GPT, task: ArithmeticTask, pairs: list[tuple[int, int]],
          batch_size: int = 500) -> list[int | None]:
    """The model's greedy answers to `pairs` (None where it wrote no number ending in ';').

    Problems are grouped by prompt length, so every row of a batch starts its answer at the
    same position; the model writes at most the longest possible answer plus ';'.
    """
    answers: list[int | None] = [None] * len(pairs)
    by_length: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(pairs):
        by_length.setdefault(len(task.prompt(a, b)), []).append(i)
    device = next(model.parameters()).device
    for length, members in by_length.items():
        most_digits = max(task.width(*pairs[i]) for i in members)
        new = task.answer_length(most_digits) + 1
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            prompts = torch.tensor([encode(task.prompt(*pairs[i])) for i in chunk], device=device)
            if length + new > model.config.block_size:
                continue  # longer than the model can read: no answer
            out = model.generate(prompts, new, temperature=0)[:, length:]  # (b, new)
            for i, row in zip(chunk, out.tolist(), strict=True):
                answers[i] = task.read_answer(decode(row))
    return answers


def exact_match(model: GPT, task: ArithmeticTask, pairs: list[tuple[int, int]]) -> float:
    """Fraction of `pairs` whose whole answer the model gets right."""
    truth = [OPERATIONS[task.op](a, b) for a, b in pairs]
    answers = solve(model, task, pairs)
    return sum(got == want for got, want in zip(answers, truth, strict=True)) / len(pairs)


def test_pairs(task: ArithmeticTask, digits: int, n: int = 1000, seed: int = 1234):
    """n held-out problems whose operands have exactly `digits` digits (fixed by the seed)."""
    return sample_pairs(task, n, np.random.default_rng(seed), digits=digits,
                        held_out=digits <= task.n_digits)


def make_model(task: ArithmeticTask, max_digits: int, **sizes) -> GPT:
    """A GPT over VOCAB that can read problems of up to `max_digits` digits per operand."""
    return GPT(GPTConfig(vocab_size=len(VOCAB), block_size=task.sequence_length(max_digits),
                         **sizes))


def save(model: GPT, task: ArithmeticTask, folder: str | os.PathLike) -> None:
    """The GPT in its usual folder layout, plus arithmetic.json (the task)."""
    model.save_pretrained(folder)
    write_json(Path(folder) / "arithmetic.json", asdict(task))


def load(folder: str | os.PathLike) -> tuple[GPT, ArithmeticTask]:
    settings = read_config(folder, "arithmetic.json",
                           advice="give a folder written by `fromscratch arithmetic train`")
    try:
        # a folder saved before operands were padded has no "pad" field: it was trained unpadded
        task = ArithmeticTask(**{"pad": False, **settings})
    except TypeError as err:
        raise UserError(f"{folder}/arithmetic.json is not an arithmetic task ({err}): train "
                        "the model again") from err
    model = GPT.from_pretrained(folder)
    if model.config.vocab_size != len(VOCAB):
        raise UserError(f"the model in {folder} has {model.config.vocab_size} tokens, "
                        f"arithmetic needs {len(VOCAB)}")
    return model, task
