"""Talking to a chat model: load it by name, stream its answers, keep its cache across turns.

    model, tokenizer = load_chat_model("smollm2-135m-instruct")
    chat = Chat(model, tokenizer, system="Answer in one sentence.")
    for text in chat.reply("What is a neuron?"):   # the answer, piece by piece as it comes
        print(text, end="", flush=True)

A conversation is one growing token sequence. Each turn the chat template renders the whole
conversation as text; the model has already read the text of the earlier turns (their keys and
values are in the KV cache), so only the text after it is tokenized and fed:

    seen    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>
    new     \\n<|im_start|>user\\nAnd you?<|im_end|>\\n<|im_start|>assistant\\n

and a turn costs the new tokens only, not the whole conversation again. Where the template
writes an earlier turn differently once the conversation has grown (some drop old reasoning),
the seen text is no longer a prefix and the conversation is read again from its start.

A token is a few bytes, and a character can span two tokens (an emoji is four bytes): the
answer is decoded incrementally, each character printed once its last byte has come.
"""

import codecs
from collections.abc import Iterator
from pathlib import Path

import torch

from fromscratch.errors import UserError
from fromscratch.folders import is_hub_name, resolve
from fromscratch.language.gpt import KVCache
from fromscratch.language.llama import HUB_FILES, INSTALLED, Llama, LlamaConfig, installed_file
from fromscratch.tokenizers import PretrainedTokenizer, load_tokenizer

# The tokenizer files of a Hub model, beside the model's own (HUB_FILES)
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
# Tokens that chat templates write at the end of a turn (ChatML, Llama 3, Phi-3)
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>")


def load_chat_model(name: str) -> tuple[Llama, PretrainedTokenizer]:
    """The model and tokenizer that `name` gives, read once each:

    - a short name of `INSTALLED` ("smollm2-135m-instruct") or a .gguf file: weights, config,
      tokenizer and chat template all come from the one file;
    - a model folder (config.json, model.safetensors, tokenizer.json), or its model.safetensors;
    - a Hub name "org/name", fetched into Hugging Face's cache as a folder.
    """
    path = installed_file(name) if name in INSTALLED else Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"no GGUF file {path}: give the path of a .gguf file")
        from fromscratch.language.gguf import read_gguf  # only this path needs the gguf reader

        gguf = read_gguf(path)
        model = Llama.from_tensors(LlamaConfig.from_hf(gguf.config), gguf.tensors, path)
        return model, PretrainedTokenizer.from_gguf_metadata(gguf.metadata, source=str(path))
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    elif path.is_file():
        raise UserError(f"{path} is not a .gguf file, a .safetensors file or a model folder")
    elif not path.exists() and not ("/" in name and is_hub_name(name)):
        raise UserError(f"unknown model {name!r}: give {', '.join(INSTALLED)}, a .gguf file, a "
                        "model folder or a Hugging Face Hub name such as "
                        "HuggingFaceTB/SmolLM2-135M-Instruct")
    folder = path if path.exists() else resolve(name, [*HUB_FILES, *TOKENIZER_FILES])
    return Llama.from_pretrained(folder), load_tokenizer(folder)


def stop_ids(model: Llama, tokenizer) -> list[int]:
    """The ids that end an answer: the config's and the tokenizer's end of text, and the
    template's end of turn."""
    eos = model.config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos])
    ids.add(getattr(tokenizer, "eos_token_id", None))
    template = getattr(tokenizer, "chat_template", None) or ""
    ids.update(tokenizer.special_tokens[name] for name in END_OF_TURN
               if name in template and name in tokenizer.special_tokens)
    return sorted(ids - {None})


def stream_text(model: Llama, tokenizer, ids: list[int], max_new_tokens: int, *,
                stop: list[int], answer: list[int], kv_cache: KVCache | None = None,
                **sampling) -> Iterator[str]:
    """Continue the tokens `ids`, yielding the text of the answer as its characters complete.

    Each token chosen is appended to `answer` as soon as it comes (a stop token too, but its
    text is not yielded). sampling: `Llama.stream`'s temperature, top_k, top_p, min_p,
    generator.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    idx = torch.tensor([ids])  # (1, T)
    for next_id in model.stream(idx, max_new_tokens, stop=stop, kv_cache=kv_cache, **sampling):
        token = next_id.item()
        answer.append(token)
        if token not in stop:
            piece = decoder.decode(tokenizer.token_bytes(token))  # "" until a character ends
            if piece:
                yield piece
    rest = decoder.decode(b"", final=True)  # an unfinished character at the end: "\ufffd"
    if rest:
        yield rest


class Chat:
    """A conversation with `model`: its messages, its tokens so far and their KV cache.

    system: the system message, or None for the template's own default.
    sampling: `Llama.stream`'s temperature, top_k, top_p, min_p and generator, for every turn.
    """

    def __init__(self, model: Llama, tokenizer: PretrainedTokenizer, *,
                 system: str | None = None, **sampling):
        self.model, self.tokenizer, self.sampling = model, tokenizer, sampling
        self.messages = [] if system is None else [{"role": "system", "content": system}]
        self.stop = stop_ids(model, tokenizer)
        self.ids: list[int] = []  # the conversation's tokens: cached ones, then any not yet fed
        self.cache = KVCache(model.config.num_hidden_layers, model.config.max_position_embeddings)
        self.answer: list[int] = []  # the last answer's tokens (with its stop token)

    def reply(self, text: str, max_new_tokens: int = 512) -> Iterator[str]:
        """Add the user's message `text`; yield the model's answer as it is written.

        Stopping early (closing the iterator, Ctrl-C) keeps the answer so far as the
        assistant's message, and the cache consistent with it.
        """
        self.messages.append({"role": "user", "content": text})
        prompt = self.tokenizer.apply_chat_template(self.messages, add_generation_prompt=True)
        seen = self.tokenizer.decode(self.ids)
        if prompt.startswith(seen):  # the cache holds the start of the prompt: feed the rest
            self.ids = self.ids + self.tokenizer.encode(prompt[len(seen):])
        else:  # the template wrote an earlier turn anew: read it all again
            self.ids, self.cache.length = self.tokenizer.encode(prompt), 0
        room = self.cache.max_len - len(self.ids) + 1  # the last token chosen is not fed
        if room < 1:
            raise UserError(f"the conversation fills the model's {self.cache.max_len}-token "
                            "context: start a new chat")
        self.answer.clear()
        try:
            yield from stream_text(self.model, self.tokenizer, self.ids,
                                   min(max_new_tokens, room), stop=self.stop, answer=self.answer,
                                   kv_cache=self.cache, **self.sampling)
        finally:
            self.ids = self.ids + self.answer
            content = [token for token in self.answer if token not in self.stop]
            self.messages.append({"role": "assistant",
                                  "content": self.tokenizer.decode(content)})
