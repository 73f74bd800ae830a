"""Character-level tokenizer: one token per character of the training text.

The simplest tokenizer there is. Training sorts the distinct characters of a text; a character's
token id is its position in that sorted list.

    >>> tok = CharTokenizer.train("hello")
    >>> tok.chars
    ['e', 'h', 'l', 'o']
    >>> tok.encode("hole")
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'

It saves to `tokenizer.json` in this project's own small format:
`{"type": "char", "chars": ["e", "h", "l", "o"]}`.
"""

import json
from pathlib import Path

from fromscratch.errors import UserError
from fromscratch.folders import write_bytes

FILENAME = "tokenizer.json"


class CharTokenizer:
    """Maps each character of a fixed alphabet to an integer id and back."""

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise UserError("a CharTokenizer needs a list of distinct single characters")
        self.chars = list(chars)
        self._id_of = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        """The vocabulary is the sorted set of characters that occur in `text`."""
        if not text:
            raise UserError("cannot train a CharTokenizer on empty text: give it some text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._id_of[c] for c in text]
        except KeyError as missing:
            raise UserError(
                f"character {missing.args[0]!r} is not in the vocabulary: a CharTokenizer only "
                "knows the characters of its training text (train it on text that contains it)"
            ) from None

    def decode(self, ids: list[int]) -> str:
        for i in ids:
            if not 0 <= i < self.vocab_size:
                last = self.vocab_size - 1
                raise UserError(f"token id {i} is outside this tokenizer's vocabulary (0..{last})")
        return "".join(self.chars[i] for i in ids)

    def save(self, directory: str | Path) -> None:
        """Write `directory/tokenizer.json` (the directory is created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        content = {"type": "char", "chars": self.chars}
        write_bytes(directory / FILENAME, json.dumps(content, ensure_ascii=False).encode())

    @classmethod
    def load(cls, directory: str | Path) -> "CharTokenizer":
        path = Path(directory) / FILENAME
        if not path.is_file():
            raise UserError(f"no {FILENAME} in {directory}: save a CharTokenizer there first")
        content = json.loads(path.read_text(encoding="utf-8"))
        if content.get("type") != "char":
            raise UserError(f"{path} is not a character tokenizer (its type is not 'char')")
        return cls(content["chars"])
