"""Text prompts for digit images: "a handwritten 7", "the digit seven", "number seven, written by
hand", ... made from MNIST's labels.

A text-to-image model trained on one prompt per digit would learn ten fixed token sequences, not
language. With many templates, and each digit both as a numeral ("7") and as a word ("seven"),
the model has to find the digit inside varied sentences, which is the job of cross-attention
over the text encoder's contextual embeddings. Some templates are kept out of training
altogether (HELD_OUT_TEMPLATES): images generated from those sentences show whether the model
follows the *meaning* of a prompt it never saw, rather than remembering its tokens.

A template holds `{digit}` (filled with "7" or "seven") and optionally `{a}`, the article that
fits it ("an" before 8 / eight, "a" otherwise). Everything here is deterministic: the prompt
lists are fixed, and the prompt drawn for an image depends only on a torch.Generator.
"""

from dataclasses import dataclass

import torch

from fromscratch.errors import UserError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

TRAIN_TEMPLATES = (
    "a handwritten {digit}",
    "the digit {digit}",
    "number {digit}, written by hand",
    "{digit}",
    "{a} {digit}",
    "digit {digit}",
    "an image of the number {digit}",
    "a picture of {a} {digit}",
    "the handwritten digit {digit}",
    "a drawing of the number {digit}",
    "{a} {digit} written with a pen",
    "a scan of a handwritten {digit}",
)
HELD_OUT_TEMPLATES = (  # never seen in training: the generalisation test
    "someone wrote the number {digit}",
    "a photo of a handwritten {digit}",
    "{digit}, drawn in ink",
    "the numeral {digit}",
    "a hand-drawn {digit}",
    "please draw {a} {digit}",
)


def article(digit: int) -> str:
    """The English article before a digit's name: "an" before eight (8), "a" otherwise."""
    return "an" if digit == 8 else "a"


def fill(template: str, digit: int, as_word: bool) -> str:
    """`template` with `{digit}` = "7" or "seven" and `{a}` = its article."""
    if not 0 <= digit <= 9:
        raise UserError(f"digit must be 0..9, got {digit}")
    name = DIGIT_WORDS[digit] if as_word else str(digit)
    return template.format(digit=name, a=article(digit))


@dataclass
class PromptSet:
    """Every prompt of some templates: prompts[i] names digit digits[i]."""

    prompts: list[str]
    digits: torch.Tensor  # (P,) int64 in 0..9

    @classmethod
    def from_templates(cls, templates: tuple[str, ...]) -> "PromptSet":
        """Each template × each digit × {numeral, word}, in that order (duplicates dropped)."""
        prompts, digits = [], []
        for template in templates:
            for digit in range(10):
                for as_word in (False, True):
                    prompt = fill(template, digit, as_word)
                    if prompt not in prompts:
                        prompts.append(prompt)
                        digits.append(digit)
        return cls(prompts, torch.tensor(digits))

    def __len__(self) -> int:
        return len(self.prompts)

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For each label (B,), the index of a prompt for that digit, uniformly among them: (B,)."""
        # matches[b, i] = prompt i names digit labels[b]; a uniform draw among the True entries
        # is the argmax of uniform noise restricted to them.
        matches = self.digits[None, :] == labels[:, None]  # (B, P)
        if not matches.any(dim=1).all():
            raise UserError("a label has no prompt: labels must be digits 0..9")
        noise = torch.rand(matches.shape, generator=generator)  # (B, P)
        return torch.where(matches, noise, -1.0).argmax(dim=1)


def training_prompts() -> PromptSet:
    return PromptSet.from_templates(TRAIN_TEMPLATES)


def held_out_prompts() -> PromptSet:
    return PromptSet.from_templates(HELD_OUT_TEMPLATES)
