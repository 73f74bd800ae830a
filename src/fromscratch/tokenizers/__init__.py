"""Tokenizers: text -> integer token ids -> text.

CharTokenizer: one token per character (char.py).
BPETokenizer: byte-level byte-pair encoding, identical to GPT-2's (bpe.py).
PretrainedTokenizer: a released model's BPE from its tokenizer.json or GGUF file, with its
    pre-tokenizer, added tokens and chat template (pretrained.py, chat.py).
WordPieceTokenizer: BERT's tokenizer and a WordPiece trainer (wordpiece.py).
CLIPTokenizer: CLIP's BPE over lower-cased words with word ends marked (clip.py).
load_tokenizer: whichever of them a folder or file holds.
"""

from pathlib import Path

from fromscratch.errors import UserError
from fromscratch.folders import read_config
from fromscratch.tokenizers.bpe import BPETokenizer
from fromscratch.tokenizers.char import CharTokenizer
from fromscratch.tokenizers.clip import CLIPTokenizer
from fromscratch.tokenizers.pretrained import PretrainedTokenizer
from fromscratch.tokenizers.wordpiece import WordPieceTokenizer

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "CLIPTokenizer",
    "PretrainedTokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
]


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Load the tokenizer a folder or file holds, choosing the class by what is there.

    a .gguf file -> PretrainedTokenizer, from the file's tokenizer metadata
    a folder, or a tokenizer.json in it:
        tokenizer.json of type "char" -> CharTokenizer (ours)
        tokenizer.json of Hugging Face's format -> PretrainedTokenizer, with the folder's
            tokenizer_config.json (special tokens, chat template)
        vocab.json + merges.txt -> BPETokenizer (GPT-2's files; ours)
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return PretrainedTokenizer.from_gguf(path)
    if path.is_file() and path.name != "tokenizer.json":
        raise UserError(f"{path} is not a tokenizer file: give a model folder, its "
                        "tokenizer.json or a .gguf file")
    folder = path.parent if path.is_file() else path
    if (folder / "tokenizer.json").is_file():
        content = read_config(folder, "tokenizer.json")
        if content.get("type") == "char":
            return CharTokenizer.load(folder)
        if "model" in content:
            return PretrainedTokenizer.from_tokenizer_json(content, folder / "tokenizer.json")
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return BPETokenizer.load(folder)
    raise UserError(
        f"no tokenizer in {path}: expected tokenizer.json (ours or Hugging Face's), "
        "vocab.json + merges.txt (BPE tokenizer) or a .gguf file"
    )
