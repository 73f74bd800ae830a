"""Tokenizers: text -> integer token ids -> text.

CharTokenizer: one token per character (char.py).
BPETokenizer: byte-level byte-pair encoding, identical to GPT-2's (bpe.py).
WordPieceTokenizer: BERT's tokenizer and a WordPiece trainer (wordpiece.py).
CLIPTokenizer: CLIP's BPE over lower-cased words with word ends marked (clip.py).
load_tokenizer: whichever of the two a saved folder holds.
"""

import json
from pathlib import Path

from fromscratch.errors import UserError
from fromscratch.tokenizers.bpe import BPETokenizer
from fromscratch.tokenizers.char import CharTokenizer
from fromscratch.tokenizers.clip import CLIPTokenizer
from fromscratch.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["BPETokenizer", "CharTokenizer", "CLIPTokenizer", "WordPieceTokenizer", "load_tokenizer"]


def load_tokenizer(directory: str | Path) -> CharTokenizer | BPETokenizer:
    """Load the tokenizer saved in `directory`, choosing the class by the files there.

    tokenizer.json of type "char" -> CharTokenizer; vocab.json + merges.txt -> BPETokenizer.
    (A Hugging Face GPT-2 folder also has a tokenizer.json, of its own format: it loads as BPE.)
    """
    directory = Path(directory)
    char_file = directory / "tokenizer.json"
    if (
        char_file.is_file()
        and json.loads(char_file.read_text(encoding="utf-8")).get("type") == "char"
    ):
        return CharTokenizer.load(directory)
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        return BPETokenizer.load(directory)
    raise UserError(
        f"no tokenizer in {directory}: expected tokenizer.json (character tokenizer) or "
        "vocab.json + merges.txt (BPE tokenizer)"
    )
