"""The tokenizers of released models (SmolLM2, Llama 3, Qwen2): GPT-2's BPE, as their files say.

These models tokenize exactly as GPT-2 does (bpe.py: bytes, ranked merges, merges never crossing
a pre-token), with three things of their own, all written in the model's files:

    pre-tokenizer   where text is cut before merging. SmolLM2 cuts out every digit first, then
                    applies GPT-2's pattern, so "  12" is "  ", "1", "2" and not " ", " 12";
                    Llama 3 keeps up to three digits together and lets a word take one symbol
                    before it; Qwen2 is Llama 3's with single digits.
    added tokens    "<|im_start|>", "<|im_end|>", ...: found whole in the text before anything
                    else, each one id (bpe.py's special tokens).
    chat template   the Jinja text that lays out a conversation (chat.py); and which tokens
                    begin and end a text (bos, eos) and pad a batch.

Two file formats carry the same facts:

    tokenizer.json (Hugging Face)   model.vocab (token -> id), model.merges, added_tokens,
                                    pre_tokenizer; beside it tokenizer_config.json holds
                                    bos/eos/pad_token and the chat_template (or its own file,
                                    chat_template.jinja)
    a GGUF file (llama.cpp)         metadata keys tokenizer.ggml.tokens (the vocabulary, in id
                                    order), .merges, .token_type (3 = control, 4 = user-defined:
                                    the added tokens), .pre (the pre-tokenizer, by name),
                                    .bos_token_id, .eos_token_id, .padding_token_id, and
                                    tokenizer.chat_template

Token strings are in GPT-2's printable spelling in both ("Ġthe" is " the"; `BYTE_TO_UNICODE`).
"""

import json
from pathlib import Path

import regex

from fromscratch.errors import UserError
from fromscratch.folders import read_config, write_bytes, write_json
from fromscratch.tokenizers.bpe import (
    BYTE_TO_UNICODE,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
)
from fromscratch.tokenizers.chat import render_chat_template

# Every number character on its own (SmolLM2 and StarCoder cut these out before GPT-2's pattern).
DIGIT = regex.compile(r"\p{N}")
# Llama 3: contractions in any case, a word with at most one symbol before it, up to 3 digits,
# symbols with the line breaks after them, line breaks with the spaces before them, spaces.
LLAMA3_SPLIT_PATTERN = regex.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT_PATTERN = regex.compile(LLAMA3_SPLIT_PATTERN.pattern.replace(r"\p{N}{1,3}", r"\p{N}"))

# GGUF's tokenizer.ggml.pre -> (split patterns, ignore_merges), as llama.cpp reads each name.
GGUF_PRE_TOKENIZERS = {
    "gpt-2": ((GPT2_SPLIT_PATTERN,), False),
    "smollm": ((DIGIT, GPT2_SPLIT_PATTERN), False),
    "starcoder": ((DIGIT, GPT2_SPLIT_PATTERN), False),
    "llama-bpe": ((LLAMA3_SPLIT_PATTERN,), True),
    "qwen2": ((QWEN2_SPLIT_PATTERN,), False),
}
CONTROL, USER_DEFINED = 3, 4  # GGUF token types of the added tokens


class PretrainedTokenizer(BPETokenizer):
    """A released model's tokenizer: byte-level BPE with its pre-tokenizer, added tokens, the
    tokens that begin, end and pad a text, and its chat template.

    bpe_args, bpe_options: BPETokenizer's (vocab, merges, special_tokens, split_patterns, ...).
    bos_token, eos_token, pad_token: names of special tokens, or None where the model has none.
    chat_template: Jinja text for `apply_chat_template`, or None.
    """

    def __init__(
        self,
        *bpe_args,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
        chat_template: str | None = None,
        **bpe_options,
    ):
        super().__init__(*bpe_args, **bpe_options)  # vocab, merges, special tokens, patterns
        roles = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token}
        for role, name in roles.items():
            if name is not None and name not in self.special_tokens:
                raise UserError(f"{role} {name!r} is not one of the tokenizer's added tokens")
        self.bos_token, self.eos_token, self.pad_token = bos_token, eos_token, pad_token
        self.chat_template = chat_template

    @property
    def eos_token_id(self) -> int | None:
        """The id that ends a text: generation stops when the model writes it."""
        return None if self.eos_token is None else self.special_tokens[self.eos_token]

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The model's text for a conversation [{"role": "user", "content": "Hi"}, ...].

        add_generation_prompt: end with the opening of the assistant's turn, for it to answer.
        """
        if self.chat_template is None:
            raise UserError("this tokenizer has no chat template: its files name none")
        roles = {"bos_token": self.bos_token, "eos_token": self.eos_token,
                 "pad_token": self.pad_token}
        return render_chat_template(
            self.chat_template, messages, add_generation_prompt=add_generation_prompt,
            **{role: name for role, name in roles.items() if name is not None},
        )

    # -- tokenizer.json --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "PretrainedTokenizer":
        """Read a Hugging Face tokenizer: a folder with tokenizer.json, or that file itself.

        tokenizer_config.json and chat_template.jinja beside it are read when they are there.
        """
        path = Path(path)
        folder = path.parent if path.is_file() else path
        content = read_config(folder, "tokenizer.json", advice="give a Hugging Face tokenizer")
        return cls.from_tokenizer_json(content, folder / "tokenizer.json")

    @classmethod
    def from_tokenizer_json(cls, content: dict, path: Path) -> "PretrainedTokenizer":
        """The tokenizer that tokenizer.json `content` (read from `path`) describes."""
        model = content.get("model") or {}
        if model.get("type") != "BPE":
            raise UserError(f"{path}: a {model.get('type')!r} model; only BPE ones are read here")
        if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get(
            "end_of_word_suffix"
        ):
            raise UserError(f"{path}: not a byte-level BPE like GPT-2's (its model has "
                            "byte_fallback or word-piece markers), which this tokenizer is")
        if content.get("normalizer") is not None:
            raise UserError(f"{path}: normalizer {content['normalizer'].get('type')!r} is not "
                            "supported; only byte-level tokenizers without one are")
        added = {}
        for token in content.get("added_tokens", []):
            if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
                raise UserError(f"{path}: added token {token['content']!r} strips spaces or "
                                "matches whole words only, which is not supported")
            added[token["content"]] = token["id"]

        config_path = path.parent / "tokenizer_config.json"
        config = read_config(path.parent, config_path.name) if config_path.is_file() else {}
        template_path = path.parent / "chat_template.jinja"
        template = (template_path.read_text(encoding="utf-8") if template_path.is_file()
                    else config.get("chat_template"))
        if template is not None and not isinstance(template, str):
            raise UserError(f"{config_path}: chat_template must be one Jinja string")
        roles = {role: _token_name(config.get(role)) for role in ("bos_token", "eos_token",
                                                                  "pad_token")}
        return cls.from_token_texts(
            model["vocab"], model["merges"], added, source=str(path),
            split_patterns=_split_patterns(content.get("pre_tokenizer"), path),
            ignore_merges=bool(model.get("ignore_merges")), chat_template=template, **roles,
        )

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json, as Hugging Face lays them out.

        The pre-tokenizer is written as one regex Split per pattern, then ByteLevel (the byte
        spelling alone); `load` and Hugging Face's tokenizers both read it back.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        id_of_text = {"".join(BYTE_TO_UNICODE[b] for b in token): i
                      for i, token in sorted(self.vocab.items())}
        text_of_id = {i: text for text, i in id_of_text.items()}
        splits = [{"type": "Split", "pattern": {"Regex": pattern.pattern},
                   "behavior": "Isolated", "invert": False} for pattern in self.split_patterns]
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": False}
        content = {
            "version": "1.0",
            "added_tokens": [
                {"id": i, "content": name, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True}
                for name, i in sorted(self.special_tokens.items(), key=lambda item: item[1])
            ],
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [*splits, byte_level]},
            "decoder": byte_level,
            "model": {
                "type": "BPE", "ignore_merges": self.ignore_merges,
                "vocab": id_of_text | self.special_tokens,
                "merges": [[text_of_id[a], text_of_id[b]] for a, b in self.merges],
            },
        }
        write_bytes(directory / "tokenizer.json", json.dumps(content, ensure_ascii=False).encode())
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": self.bos_token,
                  "eos_token": self.eos_token, "pad_token": self.pad_token,
                  "chat_template": self.chat_template}
        write_json(directory / "tokenizer_config.json",
                   {key: value for key, value in config.items() if value is not None})

    # -- GGUF --------------------------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, path: str | Path) -> "PretrainedTokenizer":
        """Read the tokenizer in a GGUF file's metadata (the `gguf` package parses the file)."""
        from gguf import GGUFReader  # imported here: only GGUF files need it (and numpy)

        try:
            fields = GGUFReader(path).fields
        except (OSError, ValueError) as error:
            raise UserError(f"{path} is not a readable GGUF file ({error})") from None
        metadata = {key: field.contents() for key, field in fields.items()
                    if key.startswith("tokenizer.")}
        return cls.from_gguf_metadata(metadata, source=str(path))

    @classmethod
    def from_gguf_metadata(cls, metadata: dict, *, source: str) -> "PretrainedTokenizer":
        """The tokenizer a GGUF file's metadata (key -> value) describes; `source` names it."""
        if "tokenizer.ggml.tokens" not in metadata:
            raise UserError(f"{source} holds no tokenizer (no tokenizer.ggml.tokens); "
                            "load the tokenizer from the model's tokenizer.json instead")
        kind = metadata.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise UserError(f"{source}: a {kind!r} tokenizer; only byte-level BPE ('gpt2') "
                            "vocabularies are read here")
        pre = metadata.get("tokenizer.ggml.pre", "gpt-2")
        if pre not in GGUF_PRE_TOKENIZERS:
            raise UserError(f"{source}: pre-tokenizer {pre!r} is unknown here; "
                            f"known: {', '.join(GGUF_PRE_TOKENIZERS)}")
        split_patterns, ignore_merges = GGUF_PRE_TOKENIZERS[pre]

        tokens = metadata["tokenizer.ggml.tokens"]
        types = metadata.get("tokenizer.ggml.token_type", [])
        added = {tokens[i]: i for i, kind in enumerate(types) if kind in (CONTROL, USER_DEFINED)}

        def name_of(key: str) -> str | None:
            i = metadata.get(f"tokenizer.ggml.{key}")
            return None if i is None else tokens[i]

        return cls.from_token_texts(
            {text: i for i, text in enumerate(tokens)}, metadata.get("tokenizer.ggml.merges", []),
            added, source=source, split_patterns=split_patterns, ignore_merges=ignore_merges,
            bos_token=name_of("bos_token_id"), eos_token=name_of("eos_token_id"),
            pad_token=name_of("padding_token_id"),
            chat_template=metadata.get("tokenizer.chat_template"),
        )


def _token_name(entry) -> str | None:
    """tokenizer_config.json writes a special token as its text or as {"content": text, ...}."""
    return entry.get("content") if isinstance(entry, dict) else entry


def _split_patterns(pre_tokenizer: dict | None, path: Path) -> list[regex.Pattern]:
    """tokenizer.json's pre_tokenizer as the regular expressions BPETokenizer applies in turn."""
    if pre_tokenizer is None:
        return []
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        return [p for step in pre_tokenizer["pretokenizers"] for p in _split_patterns(step, path)]
    if kind == "ByteLevel":
        if pre_tokenizer.get("add_prefix_space"):
            raise UserError(f"{path}: ByteLevel with add_prefix_space is not supported")
        return [GPT2_SPLIT_PATTERN] if pre_tokenizer.get("use_regex", True) else []
    if kind == "Digits":
        return [DIGIT if pre_tokenizer.get("individual_digits") else regex.compile(r"\p{N}+")]
    if kind == "Split":
        if pre_tokenizer.get("behavior") != "Isolated" or pre_tokenizer.get("invert"):
            raise UserError(f"{path}: only Split pre-tokenizers that keep each match as a piece "
                            "(behavior Isolated, invert false) are supported")
        pattern = pre_tokenizer["pattern"]
        return [regex.compile(pattern["Regex"]) if "Regex" in pattern
                else regex.compile(regex.escape(pattern["String"]))]
    raise UserError(f"{path}: pre-tokenizer {kind!r} is not supported (ByteLevel, Split, "
                    "Digits and Sequence are)")
