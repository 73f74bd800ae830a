"""CLIP's tokenizer: byte-pair encoding over lower-cased words, with word ends marked.

It differs from GPT-2's byte-level BPE (bpe.py) in three ways:
  1. Text is normalized first: Unicode NFC, every run of whitespace to one space, lower case.
  2. Words are split by a pattern that drops whitespace (GPT-2 keeps the space on the next word),
     and each word's last symbol carries the suffix "</w>": "a cat" → "a</w>", "cat</w>". So
     "cat" at the end of a word and "cat" inside "catalog" are different tokens.
  3. Every text is wrapped as <|startoftext|> ... <|endoftext|> and, for Stable Diffusion,
     padded (with the pad token, <|endoftext|> in SD v1) or cut to 77 tokens.

Symbols are bytes drawn as printable characters, with GPT-2's table; a symbol missing from the
vocabulary becomes the unknown token. Merges apply lowest rank first, as in bpe.py.

>>> tok = CLIPTokenizer({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}, [])
>>> tok.encode("A")
[0, 2, 1]
"""

import json
import unicodedata
from pathlib import Path

import regex
import torch

from fromscratch.errors import UserError
from fromscratch.folders import write_bytes, write_json
from fromscratch.tokenizers.bpe import BYTE_TO_UNICODE, MERGES_HEADER, UNICODE_TO_BYTE

START, END = "<|startoftext|>", "<|endoftext|>"
WORD_END = "</w>"
SPLIT_PATTERN = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>"  # the special tokens, whole
    r"|'s|'t|'re|'ve|'m|'ll|'d"  # English contractions
    r"|[\p{L}]+"  # a run of letters
    r"|[\p{N}]"  # ONE digit: numbers are spelled digit by digit
    r"|[^\s\p{L}\p{N}]+"  # a run of other symbols; whitespace matches nothing and is dropped
)


def normalize(text: str) -> str:
    return regex.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()


class CLIPTokenizer:
    """vocab: token string → id; merges: pairs of token strings, highest priority first."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *,
                 pad_token: str = END, unk_token: str = END, model_max_length: int = 77):
        for name in (START, END, pad_token, unk_token):
            if name not in vocab:
                raise UserError(f"the CLIP vocabulary has no {name!r} token")
        self.vocab = vocab
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id, self.end_id = vocab[START], vocab[END]
        self.pad_id, self.unk_id = vocab[pad_token], vocab[unk_token]
        self.model_max_length = model_max_length
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "CLIPTokenizer":
        """Read a Hugging Face CLIP tokenizer folder: vocab.json + merges.txt (or tokenizer.json),
        and the pad token
        and length from tokenizer_config.json / special_tokens_map.json when present."""
        folder = Path(path)
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
            merges = [tuple(line.split()) for line in lines
                      if line.strip() and not line.startswith("#version")]
        elif (folder / "tokenizer.json").is_file():  # the `tokenizers` library's single file
            model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
            vocab = model["vocab"]
            merges = [tuple(m.split()) if isinstance(m, str) else tuple(m)
                      for m in model["merges"]]
        else:
            raise UserError(f"{folder} has no vocab.json + merges.txt or tokenizer.json: not a "
                            "CLIP tokenizer folder")
        settings = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            if (folder / name).is_file():
                settings.update(json.loads((folder / name).read_text(encoding="utf-8")))

        def token(key):  # a token is written as a string or as {"content": ...}
            value = settings.get(key, END)
            return value["content"] if isinstance(value, dict) else value

        return cls(vocab, merges, pad_token=token("pad_token"), unk_token=token("unk_token"),
                   model_max_length=min(settings.get("model_max_length", 77), 77))

    def save(self, path: str | Path) -> None:
        """Write vocab.json + merges.txt (+ tokenizer_config.json) as Hugging Face does."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        merges = sorted(self.ranks, key=self.ranks.get)
        write_bytes(folder / "vocab.json", json.dumps(self.vocab, ensure_ascii=False).encode())
        write_bytes(folder / "merges.txt",
                    ("\n".join([MERGES_HEADER] + [f"{a} {b}" for a, b in merges]) + "\n").encode())
        id_to_token = {i: t for t, i in self.vocab.items()}
        write_json(folder / "tokenizer_config.json", {
            "tokenizer_class": "CLIPTokenizer", "model_max_length": self.model_max_length,
            "bos_token": START, "eos_token": END, "pad_token": id_to_token[self.pad_id],
            "unk_token": id_to_token[self.unk_id]})

    # --- text → tokens ------------------------------------------------------------------------
    def bpe(self, word: str) -> list[str]:
        """The BPE pieces of one word (already in printable-byte characters)."""
        if word in self._cache:
            return self._cache[word]
        symbols = list(word[:-1]) + [word[-1] + WORD_END]
        while len(symbols) > 1:
            pairs = [(self.ranks.get(pair, len(self.ranks)), i)
                     for i, pair in enumerate(zip(symbols, symbols[1:], strict=False))]
            rank, first = min(pairs)
            if rank == len(self.ranks):
                break  # no pair can merge
            pair = (symbols[first], symbols[first + 1])
            merged, i = [], 0
            while i < len(symbols):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        pieces = []
        for word in SPLIT_PATTERN.findall(normalize(text)):
            if word in (START, END):  # a special token written in the text stays one token
                pieces.append(word)
                continue
            printable = "".join(BYTE_TO_UNICODE[b] for b in word.encode("utf-8"))
            pieces += self.bpe(printable)
        return pieces

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """[<|startoftext|>, ids..., <|endoftext|>], cut to max_length tokens (the end kept)."""
        ids = [self.vocab.get(piece, self.unk_id) for piece in self.tokenize(text)]
        if max_length is not None:
            ids = ids[: max_length - 2]
        return [self.start_id, *ids, self.end_id]

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """A batch padded to `max_length` (default model_max_length, 77) as Stable Diffusion's
        pipeline asks (padding="max_length", truncation=True): input_ids and attention_mask."""
        if isinstance(texts, str):
            raise UserError("pass a list of texts (a batch), not a single string")
        length = max_length or self.model_max_length
        rows = [self.encode(text, length) for text in texts]
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens dropped, "</w>" read as a space."""
        id_to_token = {i: t for t, i in self.vocab.items()}
        specials = {self.start_id, self.end_id, self.pad_id}
        text = "".join(id_to_token[i] for i in ids if i not in specials)
        words = [bytes(UNICODE_TO_BYTE[c] for c in word).decode("utf-8", errors="replace")
                 for word in text.split(WORD_END)]
        return " ".join(words).strip()
