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


# -- released models' tokenizers: tokenizer.json, GGUF, chat templates --------------------------

CHATML = (
    "{% for message in messages %}\n"  # trim_blocks: no newline after a block tag...
    "  {% if message['content'] %}"  # ... lstrip_blocks: no indentation before one
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}\n"
    "{% endfor %}\n"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MIXED = [
    "In 2024, 12345 apples cost $3.50  1  x",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "  def f(x):\n\treturn x  # 42\n\n\n",
    "Café naïve 日本語 😀👍🏽 ١٢٣ ½ don't DON'T we'll",
    "",
]


@pytest.fixture(scope="module")
def small_tokenizer():
    """A 339-token BPE (80 merges) with ChatML's added tokens and template, trained here."""
    from fromscratch.tokenizers import PretrainedTokenizer

    text = (TEXT + " In 2024, 12345 apples; def f(x): return x  # 42\n") * 20
    trained = BPETokenizer.train(text, vocab_size=339, special_tokens=SPECIALS)
    return PretrainedTokenizer(
        trained.vocab, trained.merges, trained.special_tokens, bos_token="<|im_start|>",
        eos_token="<|im_end|>", chat_template=CHATML,
    )


def hf_tokenizer_json(small_tokenizer, folder, pre_tokenizer=None) -> dict:
    """Our saved tokenizer.json, with `pre_tokenizer` put in place of the one written."""
    small_tokenizer.save(folder)
    content = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if pre_tokenizer is not None:
        content["pre_tokenizer"] = pre_tokenizer
        (folder / "tokenizer.json").write_text(json.dumps(content), encoding="utf-8")
    return content


SMOLLM2_PRE = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
]}
LLAMA3_PRE = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "behavior": "Isolated", "invert": False, "pattern": {"Regex": (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")}},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
]}


@pytest.mark.parametrize("pre_tokenizer", [None, SMOLLM2_PRE, LLAMA3_PRE],
                         ids=["as-saved", "smollm2", "llama3"])
def test_a_tokenizer_json_encodes_as_hugging_face_reads_it(small_tokenizer, tmp_path,
                                                           pre_tokenizer):
    from tokenizers import Tokenizer

    hf_tokenizer_json(small_tokenizer, tmp_path, pre_tokenizer)
    ours = load_tokenizer(tmp_path / "tokenizer.json")
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in MIXED:
        assert ours.encode(text) == theirs.encode(text).ids, text
        assert ours.decode(ours.encode(text)) == text
    assert ours.encode("<|im_start|>")[0] == small_tokenizer.special_tokens["<|im_start|>"]
    assert ours.eos_token == "<|im_end|>" and ours.chat_template == CHATML


def test_the_pre_tokenizers_cut_digits_as_each_model_does(small_tokenizer, tmp_path):
    cuts = {}
    for name, pre in [("gpt2", None), ("smollm2", SMOLLM2_PRE), ("llama3", LLAMA3_PRE)]:
        hf_tokenizer_json(small_tokenizer, tmp_path / name, pre)
        cuts[name] = load_tokenizer(tmp_path / name).pretokens("a  12345!\n\n x")
    assert cuts["gpt2"] == ["a", " ", " 12345", "!", "\n\n", " x"]
    assert cuts["smollm2"] == ["a", "  ", "1", "2", "3", "4", "5", "!", "\n\n", " x"]
    assert cuts["llama3"] == ["a", " ", " ", "123", "45", "!\n\n", " x"]


def test_saving_keeps_the_patterns_template_and_roles(small_tokenizer, tmp_path):
    hf_tokenizer_json(small_tokenizer, tmp_path / "first", LLAMA3_PRE)
    first = load_tokenizer(tmp_path / "first")
    first.save(tmp_path / "second")
    second = load_tokenizer(tmp_path / "second")
    assert [p.pattern for p in second.split_patterns] == [p.pattern for p in first.split_patterns]
    assert (second.bos_token, second.eos_token, second.pad_token) == ("<|im_start|>",
                                                                      "<|im_end|>", None)
    assert second.eos_token_id == 338 and second.chat_template == CHATML
    assert [second.encode(text) for text in MIXED] == [first.encode(text) for text in MIXED]


def test_the_chat_template_trims_block_lines_as_hugging_face_does(small_tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    text = small_tokenizer.apply_chat_template(messages)
    assert text == ("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                    "<|im_start|>assistant\n")
    without = small_tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    assert without == text.removesuffix("<|im_start|>assistant\n")
    ids = small_tokenizer.encode(text)
    assert ids.count(small_tokenizer.special_tokens["<|im_start|>"]) == 3


def test_chat_template_errors_say_what_is_wrong(small_tokenizer):
    from fromscratch.tokenizers.chat import render_chat_template

    refusing = ("{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}"
                "{% endif %}")
    with pytest.raises(UserError, match="refuses this conversation: user first"):
        render_chat_template(refusing, [{"role": "assistant", "content": "Hi"}])
    with pytest.raises(UserError, match="not valid Jinja"):
        render_chat_template("{% for m in messages %}", [])
    with pytest.raises(UserError, match="message 1 must be a dict with a 'role'"):
        small_tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, "Hello"])
    with pytest.raises(UserError, match="messages must be a list"):
        small_tokenizer.apply_chat_template("Hi")
    assert render_chat_template("{{ messages | tojson }}", [{"role": "user", "content": "é<"}]) \
        == '[{"role": "user", "content": "é<"}]'  # non-ASCII and HTML characters kept as they are
    small_tokenizer.chat_template, template = None, small_tokenizer.chat_template
    try:
        with pytest.raises(UserError, match="no chat template"):
            small_tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}])
    finally:
        small_tokenizer.chat_template = template


def write_gguf(path, small_tokenizer, *, pre="smollm", with_tokenizer=True):
    """A GGUF file with no tensors, holding `small_tokenizer` as llama.cpp writes one."""
    gguf = pytest.importorskip("gguf")
    from fromscratch.tokenizers.bpe import BYTE_TO_UNICODE

    writer = gguf.GGUFWriter(path, "llama")
    if with_tokenizer:
        text_of_id = {i: "".join(BYTE_TO_UNICODE[b] for b in token)
                      for i, token in small_tokenizer.vocab.items()}
        text_of_id |= {i: name for name, i in small_tokenizer.special_tokens.items()}
        tokens = [text_of_id[i] for i in range(len(text_of_id))]
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types([3 if t in small_tokenizer.special_tokens else 1 for t in tokens])
        writer.add_token_merges([f"{text_of_id[a]} {text_of_id[b]}"
                                 for a, b in small_tokenizer.merges])
        writer.add_bos_token_id(small_tokenizer.special_tokens["<|im_start|>"])
        writer.add_eos_token_id(small_tokenizer.special_tokens["<|im_end|>"])
        writer.add_chat_template(CHATML)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_tokenizer_equals_the_same_tokenizer_json(small_tokenizer, tmp_path):
    write_gguf(tmp_path / "model.gguf", small_tokenizer)
    ours = load_tokenizer(tmp_path / "model.gguf")
    hf_tokenizer_json(small_tokenizer, tmp_path, SMOLLM2_PRE)  # what "smollm" names
    same = load_tokenizer(tmp_path)
    assert [ours.encode(text) for text in MIXED] == [same.encode(text) for text in MIXED]
    assert (ours.bos_token, ours.eos_token, ours.pad_token) == ("<|im_start|>", "<|im_end|>", None)
    assert ours.apply_chat_template([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_bad_tokenizer_files_are_one_line_user_errors(small_tokenizer, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "notes.txt")
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(UserError, match="is not a readable GGUF file"):
        load_tokenizer(tmp_path / "fake.gguf")
    write_gguf(tmp_path / "bare.gguf", small_tokenizer, with_tokenizer=False)
    with pytest.raises(UserError, match="holds no tokenizer"):
        load_tokenizer(tmp_path / "bare.gguf")
    write_gguf(tmp_path / "odd.gguf", small_tokenizer, pre="martian")
    with pytest.raises(UserError, match="pre-tokenizer 'martian' is unknown here; known: gpt-2"):
        load_tokenizer(tmp_path / "odd.gguf")
    content = hf_tokenizer_json(small_tokenizer, tmp_path / "wp")
    content["model"]["type"] = "WordPiece"
    (tmp_path / "wp" / "tokenizer.json").write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(UserError, match="a 'WordPiece' model; only BPE ones"):
        load_tokenizer(tmp_path / "wp")
    hf_tokenizer_json(small_tokenizer, tmp_path / "meta", {"type": "Metaspace"})
    with pytest.raises(UserError, match="pre-tokenizer 'Metaspace' is not supported"):
        load_tokenizer(tmp_path / "meta")
