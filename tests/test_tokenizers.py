"""CharTokenizer, and load_tokenizer choosing the right class from a saved folder."""

import json

import pytest

from fromscratch.errors import UserError
from fromscratch.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\tÉté 日本 😀"


def test_char_vocab_is_sorted_unique_characters():
    tok = CharTokenizer.train("hello")
    assert tok.chars == ["e", "h", "l", "o"]
    assert tok.vocab_size == 4
    assert tok.encode("hole") == [1, 3, 2, 0]
    assert tok.decode([1, 0, 2, 2, 3]) == "hello"


def test_char_round_trip():
    tok = CharTokenizer.train(TEXT)
    assert tok.vocab_size == len(set(TEXT)) == 33
    ids = tok.encode(TEXT)
    assert len(ids) == len(TEXT)
    assert ids[:5] == [8, 15, 21, 22, 23]  # F i r s t: uppercase sorts before lowercase
    assert tok.decode(ids) == TEXT


def test_char_unknown_character_names_it():
    tok = CharTokenizer.train("abc")
    with pytest.raises(UserError) as error:
        tok.encode("abz")
    assert "'z'" in str(error.value)
    assert "only knows the characters of its training text" in str(error.value)


def test_char_decode_rejects_ids_outside_vocabulary():
    tok = CharTokenizer.train("abc")
    for bad in (3, -1):
        with pytest.raises(UserError, match=r"outside this tokenizer's vocabulary \(0..2\)"):
            tok.decode([0, bad])


def test_char_train_on_empty_text_is_an_error():
    with pytest.raises(UserError, match="empty text"):
        CharTokenizer.train("")


def test_char_save_load(tmp_path):
    tok = CharTokenizer.train(TEXT)
    tok.save(tmp_path / "new_folder")
    content = json.loads((tmp_path / "new_folder" / "tokenizer.json").read_text("utf-8"))
    assert content == {"type": "char", "chars": sorted(set(TEXT))}
    loaded = CharTokenizer.load(tmp_path / "new_folder")
    assert loaded.encode(TEXT) == tok.encode(TEXT)

    loaded = load_tokenizer(tmp_path / "new_folder")
    assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars


def test_load_tokenizer_picks_bpe(tmp_path):
    BPETokenizer.train("ab ab ab", vocab_size=258).save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, BPETokenizer)
    assert loaded.merges == [(97, 98), (32, 256)]


def test_load_tokenizer_with_nothing_there(tmp_path):
    with pytest.raises(UserError, match="vocab.json \\+ merges.txt"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"type": "wordpiece"}')
    with pytest.raises(UserError, match="no tokenizer in"):
        load_tokenizer(tmp_path)
    with pytest.raises(UserError, match="not a character tokenizer"):
        CharTokenizer.load(tmp_path)
