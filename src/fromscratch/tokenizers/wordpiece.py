"""WordPiece: BERT's tokenizer, and a trainer that learns a WordPiece vocabulary.

Tokenizing is two steps.

1. The basic tokenizer cuts text into words: it deletes control characters, turns every kind of
   whitespace into a space, puts spaces around CJK ideographs (Chinese, and the kanji of Japanese
   and Korean: each becomes a word of its own), strips accents ("é" → "e"), lower-cases, splits on
   whitespace and cuts every punctuation character out as a word of its own.
2. WordPiece cuts each word into vocabulary pieces, greedily, longest match first: take the
   longest prefix of the word that is in the vocabulary, then the longest vocabulary piece that
   continues it (written with "##" in front: "##ing" is "ing" inside a word), and so on. A word
   with any part not in the vocabulary, or longer than `max_word_chars`, becomes [UNK] as a whole.

    >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    ...                           "un", "##aff", "##able", "aff", "!"])
    >>> tok.tokenize("UnAffable!")
    ['un', '##aff', '##able', '!']
    >>> tok.tokenize("unknowable")      # "un", then no piece matches "##k...": the whole word
    ['[UNK]']

A model reads [CLS] sentence [SEP] (or [CLS] A [SEP] B [SEP] for a pair, with token-type ids 0
for A and 1 for B), padded with [PAD] to the longest sequence of the batch.

Training (`train_wordpiece`) starts from single characters (a word's first character as is, the
others with "##") and repeatedly merges the adjacent pair (a, b) with the highest score

    score(a, b) = freq(ab) / (freq(a) · freq(b)),

the pair that occurs together most often *compared with how often its parts occur at all*. BPE
merges the most frequent pair instead. Dividing by freq(a) · freq(b) is a likelihood argument:
merging a and b into one unit raises the likelihood of the corpus under a unigram model by
about log(p(ab) / (p(a) p(b))), large when a and b are rarely seen apart.

Files: `vocab.txt`, one token per line, its line number is its id (Google's and Hugging Face's
format), plus `tokenizer_config.json` with `do_lower_case`.
"""

import json
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import regex
import torch
from tqdm import tqdm

from fromscratch.errors import UserError
from fromscratch.folders import write_bytes, write_json
from fromscratch.tokenizers.bpe import merge

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PREFIX = "##"  # marks a piece that continues a word


# ---------------------------------------------------------------------------------------------
# Step 1: the basic tokenizer, one character class at a time
# ---------------------------------------------------------------------------------------------
CJK_RANGES = (  # the CJK Unified Ideographs blocks and their extensions
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
DROP, SPACE, CJK, KEEP = "drop", "space", "cjk", "keep"


@lru_cache(maxsize=65536)
def char_class(ch: str) -> str:
    """What cleaning does with one character: DROP it, make it a SPACE, isolate it (CJK), KEEP it.

    Tab, newline and carriage return count as whitespace, not as control characters. Code points
    that Unicode has not assigned yet (category Cn) are kept, as Hugging Face's tokenizer does.
    """
    if ch in "\t\n\r" or ch.isspace() and unicodedata.category(ch) != "Cc":
        return SPACE  # the Unicode whitespace characters (Zs, Zl, Zp and the three above)
    if ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs"):
        return DROP  # control, format (zero-width...), private-use and surrogate characters
    if any(lo <= ord(ch) <= hi for lo, hi in CJK_RANGES):
        return CJK
    return KEEP


@lru_cache(maxsize=65536)
def is_punctuation(ch: str) -> bool:
    """Unicode punctuation (categories P*), and every ASCII symbol that is not a letter or digit
    ($, +, ^...)."""
    return (ch.isascii() and ch.isprintable() and not ch.isalnum() and ch != " ") or (
        unicodedata.category(ch).startswith("P")
    )


def clean(text: str) -> str:
    """Delete control characters, whitespace → " ", a space on both sides of each CJK ideograph."""
    out = []
    for ch in text:
        kind = char_class(ch)
        if kind is KEEP:
            out.append(ch)
        elif kind is SPACE:
            out.append(" ")
        elif kind is CJK:
            out.append(f" {ch} ")
    return "".join(out)


def strip_accents(text: str) -> str:
    """Split each letter from its accents (Unicode NFD), then drop the accents (category Mn)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def lower(text: str) -> str:
    """Lower-case character by character: a final "Σ" becomes "σ", as everywhere else."""
    return "".join(map(str.lower, text)) if "Σ" in text else text.lower()


def split_punctuation(word: str) -> list[str]:
    """Cut every punctuation character out as a word of its own: "it's!" → ["it", "'", "s", "!"]."""
    if word.isalnum():
        return [word]
    pieces, current = [], []
    for ch in word:
        if is_punctuation(ch):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(ch)
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


def basic_tokenize(text: str, *, lowercase: bool = True, accents: bool | None = None) -> list[str]:
    """BERT's basic tokenizer: the words of `text`, before WordPiece.

    accents: strip them (True), keep them (False), or follow `lowercase` (None), as BERT does.

    >>> basic_tokenize("Héllo, WORLD!\\t东京")
    ['hello', ',', 'world', '!', '东', '京']
    """
    text = clean(text)
    if accents if accents is not None else lowercase:
        text = strip_accents(text)
    if lowercase:
        text = lower(text)
    return [piece for word in text.split() for piece in split_punctuation(word)]


# ---------------------------------------------------------------------------------------------
# Step 2: WordPiece, greedy longest-match-first
# ---------------------------------------------------------------------------------------------
def wordpiece(word: str, vocab, unk: str = "[UNK]", max_word_chars: int = 100) -> list[str]:
    """Cut one word into vocabulary pieces, longest match first; [UNK] if that fails anywhere.

    >>> wordpiece("unaffable", {"un", "##aff", "##able", "aff"})
    ['un', '##aff', '##able']
    """
    if len(word) > max_word_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):  # the longest candidate first
            piece = word[start:end] if start == 0 else PREFIX + word[start:end]
            if piece in vocab:
                break
        else:  # no prefix of the rest is in the vocabulary
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BERT's tokenizer: the basic tokenizer, then WordPiece, then [CLS]/[SEP] and padding.

    vocab: the tokens in id order (line i of vocab.txt is token i). It must hold the special
    tokens [PAD], [UNK], [CLS], [SEP] (and usually [MASK]); their text in the input is read as
    the special token itself.
    lowercase: lower-case (and strip accents) first, as "uncased" models need.
    max_word_chars: longer words become [UNK] without trying WordPiece.
    """

    def __init__(self, vocab: list[str], *, lowercase: bool = True, max_word_chars: int = 100):
        self.vocab = list(vocab)
        self.id_of = {token: i for i, token in enumerate(self.vocab)}
        if len(self.id_of) != len(self.vocab):
            raise UserError("the vocabulary lists a token twice; each line must be unique")
        missing = [t for t in SPECIAL_TOKENS[:4] if t not in self.id_of]
        if missing:
            raise UserError(f"the vocabulary lacks the special tokens {missing}")
        self.lowercase = lowercase
        self.max_word_chars = max_word_chars
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (
            self.id_of[t] for t in SPECIAL_TOKENS[:4]
        )
        specials = [t for t in SPECIAL_TOKENS if t in self.id_of]
        self._special_pattern = regex.compile("(" + "|".join(map(regex.escape, specials)) + ")")
        self._cache: dict[str, list[int]] = {}  # word → its ids: most words repeat

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # --- text → tokens ------------------------------------------------------------------------
    def _word_ids(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            pieces = wordpiece(word, self.id_of, "[UNK]", self.max_word_chars)
            ids = [self.id_of[p] for p in pieces]
            if len(self._cache) < 1_000_000:
                self._cache[word] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text`, without [CLS]/[SEP]; special tokens written in it count as such."""
        ids = []
        for i, part in enumerate(self._special_pattern.split(text)):
            if i % 2:  # the pattern's group: a special token, e.g. "[SEP]"
                ids.append(self.id_of[part])
                continue
            for word in basic_tokenize(part, lowercase=self.lowercase):
                ids.extend(self._word_ids(word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The token strings of `text` (no [CLS]/[SEP])."""
        return [self.vocab[i] for i in self.encode_ordinary(text)]

    def encode(
        self, text: str, pair: str | None = None, *, max_length: int | None = None
    ) -> tuple[list[int], list[int]]:
        """(ids, token_type_ids) of "[CLS] text [SEP]" or "[CLS] text [SEP] pair [SEP]".

        max_length: truncate to this many tokens in all, specials included. With a pair, the
        longer side is cut first until both fit, then both evenly (Hugging Face's "longest first").
        """
        first = self.encode_ordinary(text)
        second = self.encode_ordinary(pair) if pair is not None else None
        if max_length is not None:
            first, second = _truncate(first, second, max_length - (2 if second is None else 3))
        ids = [self.cls_id, *first, self.sep_id]
        types = [0] * len(ids)
        if second is not None:
            ids += [*second, self.sep_id]
            types += [1] * (len(second) + 1)
        return ids, types

    def __call__(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        *,
        max_length: int | None = 512,
        pad_to: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """A padded batch: {"input_ids", "attention_mask", "token_type_ids"}, each (B, T) long.

        T is the longest sequence of the batch (or `pad_to`); padding goes on the right.
        """
        if isinstance(texts, str):
            raise UserError("pass a list of texts (a batch), not a single string")
        if pairs is not None and len(pairs) != len(texts):
            raise UserError(f"{len(texts)} texts but {len(pairs)} pairs: give one pair per text")
        encoded = [
            self.encode(t, None if pairs is None else pairs[i], max_length=max_length)
            for i, t in enumerate(texts)
        ]
        T = max([len(ids) for ids, _ in encoded] + [pad_to or 0])
        batch = {
            "input_ids": torch.full((len(texts), T), self.pad_id, dtype=torch.long),
            "attention_mask": torch.zeros(len(texts), T, dtype=torch.long),
            "token_type_ids": torch.zeros(len(texts), T, dtype=torch.long),
        }
        for row, (ids, types) in enumerate(encoded):
            batch["input_ids"][row, : len(ids)] = torch.tensor(ids)
            batch["attention_mask"][row, : len(ids)] = 1
            batch["token_type_ids"][row, : len(ids)] = torch.tensor(types)
        return batch

    # --- tokens → text ------------------------------------------------------------------------
    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        """Join the pieces into words ("##" pieces glue onto the previous one), words by spaces.

        The basic tokenizer threw away case, accents and the spacing around punctuation, so
        this gives back the normalized words: decode(encode(text)) = " ".join(basic_tokenize(text)).
        """
        words: list[str] = []
        for i in ids:
            if not 0 <= i < self.vocab_size:
                last = self.vocab_size - 1
                raise UserError(f"token id {i} is outside the vocabulary (0..{last})")
            token = self.vocab[i]
            if skip_special_tokens and token in SPECIAL_TOKENS:
                continue
            if token.startswith(PREFIX) and words:
                words[-1] += token[len(PREFIX) :]
            else:
                words.append(token)
        return " ".join(words)

    # --- files --------------------------------------------------------------------------------
    @classmethod
    def from_vocab(cls, path: str | Path, *, lowercase: bool | None = None) -> "WordPieceTokenizer":
        """Load vocab.txt, or a model folder that holds one (lower-casing from its
        tokenizer_config.json's `do_lower_case`, default True)."""
        path = Path(path).expanduser()
        folder = path if path.is_dir() else path.parent
        vocab_path = path / VOCAB_FILE if path.is_dir() else path
        if not vocab_path.is_file():
            raise UserError(f"no {vocab_path}: give a vocab.txt or a folder that holds one")
        if lowercase is None:
            config_path = folder / CONFIG_FILE
            config = json.loads(config_path.read_text()) if config_path.is_file() else {}
            lowercase = config.get("do_lower_case", True)
        lines = vocab_path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline
        return cls([line.rstrip("\r") for line in lines], lowercase=lowercase)

    def save(self, directory: str | Path) -> None:
        """Write vocab.txt and tokenizer_config.json into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_bytes(directory / VOCAB_FILE, "".join(t + "\n" for t in self.vocab).encode())
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase}
        write_json(directory / CONFIG_FILE, config)

    @classmethod
    def train(
        cls, texts, vocab_size: int, *, lowercase: bool = True, progress: bool = False
    ) -> "WordPieceTokenizer":
        """Learn a vocabulary of `vocab_size` tokens from `texts` (see `train_wordpiece`)."""
        vocab, _ = train_wordpiece(texts, vocab_size, lowercase=lowercase, progress=progress)
        return cls(vocab, lowercase=lowercase)


def _truncate(first: list[int], second: list[int] | None, budget: int):
    """Cut `first` (and `second`) to `budget` tokens in all: the longer side first, then both."""
    if budget < 0:
        raise UserError("max_length is too small to hold even the [CLS] and [SEP] tokens")
    if second is None:
        return first[:budget], None
    if len(first) + len(second) <= budget:
        return first, second
    short, long = sorted((len(first), len(second)))
    keep_long = max(short, budget - short)  # cut only the longer side if that is enough
    if short + keep_long > budget:  # both must go: split the budget evenly, the odd one to long
        short, keep_long = budget // 2, budget // 2 + budget % 2
    if len(first) > len(second):
        return first[:keep_long], second[:short]
    return first[:short], second[:keep_long]


# ---------------------------------------------------------------------------------------------
# Training a WordPiece vocabulary
# ---------------------------------------------------------------------------------------------
def _start(texts, vocab_size: int, lowercase: bool):
    """Word counts, each word split into characters, and the starting vocabulary."""
    if isinstance(texts, str):
        texts = [texts]
    counts = Counter()
    for text in texts:
        counts.update(basic_tokenize(text, lowercase=lowercase))
    splits = {w: [w[0]] + [PREFIX + c for c in w[1:]] for w in counts}  # "hug" → h ##u ##g
    alphabet = sorted({piece for pieces in splits.values() for piece in pieces})
    vocab = list(SPECIAL_TOKENS) + alphabet
    if vocab_size < len(vocab):
        raise UserError(
            f"vocab_size {vocab_size} is smaller than the {len(vocab)} special tokens and "
            "characters of the text; ask for more"
        )
    return counts, splits, vocab


def _frequencies(splits: dict[str, list[str]], counts: Counter) -> tuple[Counter, Counter]:
    """freq(unit) and freq(adjacent pair) in the corpus (a word counts as often as it occurs)."""
    unit_freq, pair_freq = Counter(), Counter()
    for word, count in counts.items():
        pieces = splits[word]
        for piece in pieces:
            unit_freq[piece] += count
        for pair in pairwise(pieces):
            pair_freq[pair] += count
    return unit_freq, pair_freq


def _best_pair(pair_freq: Counter, unit_freq: Counter) -> tuple[str, str]:
    """The pair with the highest score(a, b) = freq(ab) / (freq(a) · freq(b)); ties go to the
    more frequent pair, then to the alphabetically first."""

    def rank(pair):
        a, b = pair
        return -pair_freq[pair] / (unit_freq[a] * unit_freq[b]), -pair_freq[pair], pair

    return min(pair_freq, key=rank)


def _merged(a: str, b: str) -> str:
    return a + b.removeprefix(PREFIX)  # "hu" + "##g" = "hug"; "##g" + "##s" = "##gs"


def train_wordpiece_simple(texts, vocab_size: int, *, lowercase: bool = True):
    """`train_wordpiece` written plainly: every step recounts all units and pairs from scratch."""
    counts, splits, vocab = _start(texts, vocab_size, lowercase)
    merges = []
    while len(vocab) < vocab_size:
        unit_freq, pair_freq = _frequencies(splits, counts)
        if not pair_freq:
            break  # every word is a single token already
        a, b = _best_pair(pair_freq, unit_freq)
        merges.append((a, b))
        if _merged(a, b) not in vocab:  # ("##ab", "##c") and ("##a", "##bc") make the same
            vocab.append(_merged(a, b))
        for word, pieces in splits.items():
            splits[word] = merge(pieces, (a, b), _merged(a, b))  # the same step as BPE's
    return vocab, merges


def train_wordpiece(texts, vocab_size: int, *, lowercase: bool = True, progress: bool = False):
    """Learn a WordPiece vocabulary: returns (vocab, merges), vocab in id order.

    texts: a string or an iterable of strings. The vocabulary starts with the special tokens and
    every character (a word's first character as is, the others with "##"), then grows by one
    merged token per step: the pair with the highest score freq(ab) / (freq(a) · freq(b)).

    Same merges as `train_wordpiece_simple`, faster: the counts are kept up to date, and a merge
    recounts only the words that contain the merged pair.

    >>> vocab, merges = train_wordpiece(["hug"] * 10 + ["pug"] * 5 + ["hugs"] * 5, 13)
    >>> merges[0]                # freq(##g ##s) / (freq(##g) freq(##s)) = 5 / (20 · 5) is best
    ('##g', '##s')
    """
    counts, splits, vocab = _start(texts, vocab_size, lowercase)
    unit_freq, pair_freq = _frequencies(splits, counts)
    words_with = defaultdict(set)  # pair → the words in which it occurs
    for word, pieces in splits.items():
        for pair in pairwise(pieces):
            words_with[pair].add(word)

    def count(word: str, sign: int) -> None:  # add (+1) or remove (-1) a word's units and pairs
        c = sign * counts[word]
        for piece in splits[word]:
            unit_freq[piece] += c
        for pair in pairwise(splits[word]):
            pair_freq[pair] += c
            if pair_freq[pair] == 0:
                del pair_freq[pair]

    merges, known = [], set(vocab)
    bar = tqdm(total=vocab_size - len(vocab), desc="WordPiece merges", disable=not progress)
    while len(vocab) < vocab_size and pair_freq:
        a, b = _best_pair(pair_freq, unit_freq)
        new = _merged(a, b)
        merges.append((a, b))
        if new not in known:
            vocab.append(new)
            known.add(new)
            bar.update()
        for word in list(words_with.pop((a, b))):
            count(word, -1)
            splits[word] = merge(splits[word], (a, b), new)
            count(word, +1)
            for pair in pairwise(splits[word]):
                words_with[pair].add(word)
    bar.close()
    return vocab, merges
