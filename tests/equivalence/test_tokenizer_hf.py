"""SmolLM2's tokenizer and chat template, read from its GGUF file = transformers', token for token.

The reference is `AutoTokenizer.from_pretrained(folder, gguf_file=name)`. transformers builds it
with GPT-2's pre-tokenizer, because it does not know the name the file gives ("smollm"). The
model's own tokenizer (and llama.cpp) cut every digit out first, so "a  1" is "a", "  ", "1"
rather than "a", " ", " 1". Ours reads the name, so it is compared with transformers' tokenizer
given SmolLM2's pre-tokenizer, and with the unchanged one on texts without digits. Read from the
tokenizer.json transformers writes, ours follows that file and equals it on every text.
"""

import random

import pytest
import regex

transformers = pytest.importorskip("transformers")

from tokenizers import pre_tokenizers  # noqa: E402

from fromscratch.tokenizers import PretrainedTokenizer, load_tokenizer  # noqa: E402

PIECES = [
    "Hello", " world", "In 2024,", " 12345", "3.14159", "  1  x", "007", "١٢٣", "½",
    "  ", "\t", "\n", "\n\n", "\r\n", " \n ", "    ", "\u00a0", "\u3000",
    "def f(x):\n    return x  # done", "{'a': [1, 2]}", "x+=1;", "C:\\path", "<br/>",
    "café", "naïve", "Ångström", "e\u0301", "日本語", "中文，标点！", "한국어", "Русский", "😀",
    "👍🏽", "👩‍👩‍👧", "🇫🇷", "don't", "DON'T", "we'll", "<|im_start|>", "<|im_end|>",
    "<|endoftext|>", "<|im_start", "im_end|>", "<repo_name>", "!!!", "...", "--", "'s",
]
# Bytes SmolLM2 has no token for (dropped from the text when encoding, as transformers does).
MISSING_BYTES = "\x04\x06\x13\x14\x16\x1d"


def fuzz_corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "a", *PIECES]
    while len(texts) < n:
        texts.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8))))
    return texts


CORPUS = fuzz_corpus()
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "You answer in French."},
     {"role": "user", "content": "Bonjour !"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Write a haiku about 日本."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye"}],
]


@pytest.fixture(scope="module")
def ours(smollm2_gguf) -> PretrainedTokenizer:
    return load_tokenizer(smollm2_gguf)


@pytest.fixture(scope="module")
def theirs(smollm2_gguf):
    return transformers.AutoTokenizer.from_pretrained(smollm2_gguf.parent,
                                                      gguf_file=smollm2_gguf.name)


@pytest.fixture(scope="module")
def theirs_smollm2(theirs):
    """transformers' tokenizer with SmolLM2's own pre-tokenizer: digits apart, then GPT-2's."""
    backend = theirs.backend_tokenizer
    copy = type(backend).from_str(backend.to_str())
    copy.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    return copy


@pytest.fixture(scope="module")
def saved_folder(theirs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2_tokenizer")
    theirs.save_pretrained(folder)
    return folder


def test_the_gguf_tokenizer_is_smollm2s_token_for_token(ours, theirs_smollm2):
    for text in CORPUS:
        assert ours.encode(text) == theirs_smollm2.encode(text).ids, repr(text)


def test_without_digits_it_is_transformers_gguf_tokenizer_unchanged(ours, theirs):
    texts = [text for text in CORPUS if not regex.search(r"\p{N}", text)]
    assert len(texts) > 50
    for text in texts:
        assert ours.encode(text) == theirs.encode(text), repr(text)
    # Where digits follow spaces the two differ: the model's way keeps the spaces together.
    assert ours.encode("a  1") == [81, 256, 33] != theirs.encode("a  1") == [81, 216, 216, 33]


def test_read_from_tokenizer_json_it_equals_that_file(saved_folder, theirs):
    from_json = load_tokenizer(saved_folder)
    for text in CORPUS:
        assert from_json.encode(text) == theirs.encode(text), repr(text)


def test_decode_inverts_encode_and_equals_transformers(ours, theirs):
    for text in CORPUS:
        ids = ours.encode(text)
        assert ours.decode(ids) == text
        assert ours.decode(ids) == theirs.decode(ids)
    rng = random.Random(0)
    for _ in range(50):  # arbitrary ids: cut UTF-8 sequences become U+FFFD in both
        ids = [rng.randrange(len(theirs)) for _ in range(rng.randint(1, 10))]
        assert ours.decode(ids) == theirs.decode(ids)
    assert ours.encode("a" + MISSING_BYTES + "b") == theirs.encode("a" + MISSING_BYTES + "b")


def test_special_tokens_and_roles_are_transformers(ours, theirs):
    assert len(ours.vocab) + len(ours.special_tokens) == len(theirs) == 49152
    assert ours.special_tokens == {token.content: i
                                   for i, token in theirs.added_tokens_decoder.items()}
    assert (ours.bos_token, ours.eos_token, ours.pad_token) == (
        theirs.bos_token, theirs.eos_token, theirs.pad_token) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert ours.eos_token_id == theirs.eos_token_id == 2


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["user", "system", "turns", "sys-turns"])
def test_the_chat_template_renders_as_transformers(ours, theirs, messages, add_generation_prompt):
    text = ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
    assert text == theirs.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    default_system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    assert text.startswith(default_system) == (messages[0]["role"] != "system")
    assert text.endswith("<|im_start|>assistant\n") == add_generation_prompt
    ids = ours.encode(text)
    assert ids.count(1) == len(messages) + add_generation_prompt + (messages[0]["role"] != "system")
