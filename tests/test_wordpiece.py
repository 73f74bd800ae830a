"""WordPiece without reference libraries: the basic tokenizer and greedy matching by hand, the
trainer's merges checked by hand, round trips, files, errors."""

import pytest

from fromscratch.errors import UserError
from fromscratch.tokenizers.wordpiece import (
    SPECIAL_TOKENS,
    WordPieceTokenizer,
    basic_tokenize,
    train_wordpiece,
    train_wordpiece_simple,
    wordpiece,
)

TOY_VOCAB = [*SPECIAL_TOKENS, "un", "##aff", "##able", "aff", "##a", "a", "!", "the", "##s"]


def test_basic_tokenizer_by_hand():
    assert basic_tokenize("Héllo, WORLD!") == ["hello", ",", "world", "!"]
    assert basic_tokenize("北京 is 东京?") == ["北", "京", "is", "东", "京", "?"]
    assert basic_tokenize("a\u200bb\x00c \t\n d\u3000e") == ["abc", "d", "e"]  # dropped / space
    assert basic_tokenize("it's $5.00") == ["it", "'", "s", "$", "5", ".", "00"]
    assert basic_tokenize("ΟΔΟΣ") == ["οδοσ"]  # accents off and lower-cased char by char
    assert basic_tokenize("Héllo", lowercase=False) == ["Héllo"]
    assert basic_tokenize("Héllo", lowercase=False, accents=True) == ["Hello"]
    assert basic_tokenize("") == [] and basic_tokenize(" \t ") == []


def test_greedy_longest_match_first_by_hand():
    vocab = set(TOY_VOCAB)
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece("aaa", vocab) == ["a", "##a", "##a"]
    assert wordpiece("unk", vocab) == ["[UNK]"]  # "##k" is nowhere: the whole word is unknown
    assert wordpiece("a" * 5, vocab, max_word_chars=4) == ["[UNK]"]
    assert wordpiece("a" * 4, vocab, max_word_chars=4) == ["a", "##a", "##a", "##a"]
    # greedy is not optimal: "thes" -> "the" + "##s", never "th" + "##es" even when it exists
    assert wordpiece("thes", {"the", "th", "##es", "##s"}) == ["the", "##s"]


def test_encode_pairs_truncation_and_batch_by_hand():
    tok = WordPieceTokenizer(TOY_VOCAB)
    cls, sep, pad = tok.cls_id, tok.sep_id, tok.pad_id
    un, aff, able = tok.id_of["un"], tok.id_of["##aff"], tok.id_of["##able"]
    assert tok.encode("Unaffable!") == ([cls, un, aff, able, tok.id_of["!"], sep], [0] * 6)
    ids, types = tok.encode("unaffable", "the")
    assert ids == [cls, un, aff, able, sep, tok.id_of["the"], sep]
    assert types == [0, 0, 0, 0, 0, 1, 1]
    # longest first: 3 + 1 pieces into a budget of 3 -> the longer side gives up one piece
    ids, _ = tok.encode("unaffable", "the", max_length=6)
    assert ids == [cls, un, aff, sep, tok.id_of["the"], sep]
    assert tok.encode("unaffable", max_length=3)[0] == [cls, un, sep]
    batch = tok(["the", "unaffable"])
    assert batch["input_ids"].tolist() == [[cls, tok.id_of["the"], sep, pad, pad],
                                           [cls, un, aff, able, sep]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert tok(["the"], pad_to=6)["input_ids"].shape == (1, 6)
    assert tok.decode([cls, un, aff, able, sep]) == "unaffable"


def test_trainer_merges_by_hand():
    """Words hug x10, pug x5, pun x12, bun x4, hugs x5; equal scores go to the more frequent
    pair.

    Merge 1. Units: h 15, p 17, b 4, ##u 36, ##g 20, ##n 16, ##s 5. Scores f(ab)/(f(a) f(b)):
    (h ##u) 15/(15·36), (p ##u) 17/(17·36), (b ##u) 4/(4·36), (##u ##g) 20/(36·20),
    (##u ##n) 16/(36·16): all 1/36; (##g ##s) 5/(20·5) = 1/20 wins, though it is the rarest
    pair (BPE would merge the most frequent, (##u ##g), seen 20 times).
    Merge 2. ##g 15, ##gs 5; every pair scores exactly 1/36 now: the tie goes to (p ##u), seen
    17 times (in pug and pun).
    Merge 3. pu 17, ##u 19: (h ##u) 15/(15·19), (b ##u) 4/(4·19) and (##u ##gs) 5/(19·5) tie at
    1/19, above (pu ##n) 12/(17·16) and the rest: (h ##u), seen 15 times, wins.
    """
    corpus = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    vocab, merges = train_wordpiece(" ".join(corpus), 15)
    alphabet = ["##g", "##n", "##s", "##u", "b", "h", "p"]
    assert vocab[: len(SPECIAL_TOKENS) + len(alphabet)] == [*SPECIAL_TOKENS, *alphabet]
    assert merges == [("##g", "##s"), ("p", "##u"), ("h", "##u")]
    assert vocab[-3:] == ["##gs", "pu", "hu"] and len(vocab) == 15
    tok = WordPieceTokenizer(vocab)
    assert tok.tokenize("hugs pun bug") == ["hu", "##gs", "pu", "##n", "b", "##u", "##g"]


def test_fast_trainer_equals_simple_trainer():
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))[:4000]
    vocab, merges = train_wordpiece(text, 200)
    assert (vocab, merges) == train_wordpiece_simple(text, 200)
    assert len(vocab) == 200 == len(set(vocab))
    assert all(a + b.removeprefix("##") in vocab for a, b in merges)


def test_trained_tokenizer_round_trips(tmp_path):
    text = (
        "The hippocampus replays sequences during sleep. Place cells fire in order; "
        "grid cells tile space. Replay, replays, replayed: the same stem, other endings!"
    )
    tok = WordPieceTokenizer.train([text] * 3, vocab_size=80)
    assert tok.vocab_size == 80
    ids = tok.encode_ordinary(text)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == " ".join(basic_tokenize(text))
    assert len(ids) < len("".join(basic_tokenize(text)))  # merges made pieces longer than a char
    tok.save(tmp_path)
    loaded = WordPieceTokenizer.from_vocab(tmp_path)
    assert loaded.vocab == tok.vocab and loaded.encode_ordinary(text) == ids
    assert WordPieceTokenizer.from_vocab(tmp_path / "vocab.txt").vocab == tok.vocab


def test_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="lacks the special tokens"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(UserError, match="no .*vocab.txt"):
        WordPieceTokenizer.from_vocab(tmp_path)
    with pytest.raises(UserError, match="smaller than the"):
        train_wordpiece("abcdef", 5)
    tok = WordPieceTokenizer(TOY_VOCAB)
    with pytest.raises(UserError, match="outside the vocabulary"):
        tok.decode([999])
    with pytest.raises(UserError, match="a list of texts"):
        tok("just one string")
    with pytest.raises(UserError, match="too small"):
        tok.encode("the", "the", max_length=2)
