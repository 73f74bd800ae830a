"""`fromscratch chat` and `fromscratch llm generate`, and language/chat.py beneath them.

A tiny random Llama with a tiny ChatML tokenizer stands in for a released model, so that these
run in seconds: what is streamed equals `generate`'s tokens decoded, a turn read from the kept
cache equals the whole conversation recomputed, and bad input ends in one line with exit code 2.
The real SmolLM2-135M-Instruct is checked in the slow test at the end.
"""

import io

import gguf
import numpy as np
import pytest
import torch

from fromscratch.cli import main
from fromscratch.language.chat import Chat, load_chat_model, stop_ids, stream_text
from fromscratch.language.llama import Llama, LlamaConfig
from fromscratch.tokenizers import BPETokenizer, PretrainedTokenizer

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
          "{{ message['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXT = ("A neuron fires when the sum of its inputs crosses a threshold; then it rests for a few "
        "milliseconds. Why? Its channels must close again. Hi there, be brief. ") * 10


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A model folder: a random 2-layer Llama and a 300-token BPE with ChatML special tokens."""
    folder = tmp_path_factory.mktemp("tiny-chat")
    bpe = BPETokenizer.train(TEXT, 300, special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer = PretrainedTokenizer(bpe.vocab, bpe.merges, bpe.special_tokens,
                                    eos_token="<|im_end|>", chat_template=CHATML)
    tokenizer.save(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256)
    model = Llama(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(folder)
    return folder


def greedy_answer(model, ids: list[int], n: int, stop: list[int], use_cache=True) -> list[int]:
    out = model.generate(torch.tensor([ids]), n, stop=stop, use_cache=use_cache)
    return out[0, len(ids):].tolist()


def run_chat(monkeypatch, capsys, argv, typed: str):
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# fromscratch chat
# ---------------------------------------------------------------------------------------------
def test_chat_streams_two_turns_from_the_kept_cache_as_recomputation_answers(
        tiny_folder, monkeypatch, capsys):
    argv = ["chat", "--model", str(tiny_folder), "--temperature", "0", "--max-new-tokens", "6",
            "--system", "Be brief."]
    code, out, err = run_chat(monkeypatch, capsys, argv, "Hi there\nWhy?\n")
    assert code == 0

    model, tokenizer = load_chat_model(str(tiny_folder))
    stop = stop_ids(model, tokenizer)
    assert stop == [tokenizer.special_tokens["<|im_end|>"]]
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi there"}]
    ids = tokenizer.encode(tokenizer.apply_chat_template(conversation))
    first = greedy_answer(model, ids, 6, stop)
    ids += first
    conversation += [{"role": "assistant", "content": tokenizer.decode(first)},
                     {"role": "user", "content": "Why?"}]
    whole = tokenizer.apply_chat_template(conversation)
    seen = tokenizer.decode(ids)
    assert whole.startswith(seen)  # the second turn feeds only the text after the first
    ids += tokenizer.encode(whole[len(seen):])
    second = greedy_answer(model, ids, 6, stop, use_cache=False)  # all of it, from scratch

    answers = [tokenizer.decode([t for t in answer if t not in stop]) for answer in (first,
                                                                                     second)]
    assert out == f"> {answers[0]}\n> {answers[1]}\n> \n"  # EOF at the third prompt ends it
    assert err.count("tokens/s]") == 2
    assert "[6 tokens in " in err


def test_ctrl_c_stops_an_answer_and_the_next_turn_still_reads_the_cache_right(tiny_folder):
    model, tokenizer = load_chat_model(str(tiny_folder))
    chat = Chat(model, tokenizer, temperature=0.0)
    calls = []

    def interrupt_once(module, inputs):  # Ctrl-C inside the third step's second layer
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    hook = model.model.layers[1].register_forward_pre_hook(interrupt_once)
    pieces = chat.reply("Hi there", 8)
    with pytest.raises(KeyboardInterrupt):
        for _ in pieces:
            pass
    hook.remove()
    assert len(chat.answer) == 2  # two tokens came before the interrupt
    assert chat.messages[-1] == {"role": "assistant", "content": tokenizer.decode(chat.answer)}
    assert chat.cache.length == len(chat.ids) - 1  # the last token is not fed yet

    cached, fed = chat.cache.length, []
    hook = model.model.layers[0].register_forward_pre_hook(
        lambda module, inputs: fed.append(inputs[0].shape[1]))
    text = "".join(chat.reply("Why?", 5))
    hook.remove()
    prompt_length = len(chat.ids) - len(chat.answer)
    assert fed == [prompt_length - cached] + [1] * (len(chat.answer) - 1)  # only what is new
    recomputed = greedy_answer(model, chat.ids[:prompt_length], 5, chat.stop, use_cache=False)
    assert chat.answer == recomputed
    assert text == tokenizer.decode([t for t in recomputed if t not in chat.stop])


def test_a_template_that_rewrites_an_earlier_turn_reads_the_conversation_again(tiny_folder):
    model, tokenizer = load_chat_model(str(tiny_folder))
    tokenizer.chat_template = CHATML.replace("{{ message['content'] }}",
                                             "{{ message['content'] if loop.last else '' }}")
    chat = Chat(model, tokenizer, temperature=0.0)
    "".join(chat.reply("Hi there", 4))
    "".join(chat.reply("Why?", 4))  # turn one's text is gone from the prompt: not a prefix
    prompt = tokenizer.encode(tokenizer.apply_chat_template(chat.messages[:-1]))
    assert chat.ids == prompt + chat.answer
    assert chat.answer == greedy_answer(model, prompt, 4, chat.stop, use_cache=False)


class Scripted:
    """A stand-in model whose `stream` yields the given tokens, one (1, 1) column at a time."""

    def __init__(self, tokens):
        self.tokens = tokens

    def stream(self, idx, max_new_tokens, **options):
        for token in self.tokens[:max_new_tokens]:
            yield torch.tensor([[token]])


def test_a_character_prints_whole_once_its_last_byte_has_come(tiny_folder):
    tokenizer = load_chat_model(str(tiny_folder))[1]
    byte_token = {token: i for i, token in tokenizer.vocab.items() if len(token) == 1}
    text = "né😀!"
    tokens = [byte_token[bytes([b])] for b in text.encode()]  # 1 + 2 + 4 + 1 byte tokens
    answer = []
    pieces = list(stream_text(Scripted(tokens), tokenizer, [0], 10, stop=[], answer=answer))
    assert pieces == ["n", "é", "😀", "!"]
    assert answer == tokens
    cut = list(stream_text(Scripted(tokens[:5]), tokenizer, [0], 10, stop=[], answer=[]))
    assert cut == ["n", "é", "\ufffd"]  # half an emoji at the end: one replacement character


# ---------------------------------------------------------------------------------------------
# fromscratch llm generate
# ---------------------------------------------------------------------------------------------
def test_llm_generate_answers_through_the_chat_template_or_continues_the_text(tiny_folder,
                                                                              capsys):
    model, tokenizer = load_chat_model(str(tiny_folder))
    stop = stop_ids(model, tokenizer)
    base = ["llm", "generate", "--model", str(tiny_folder), "--temperature", "0",
            "--max-new-tokens", "7", "--prompt", "the neuron"]

    assert main([*base, "--chat"]) == 0
    out, err = capsys.readouterr()
    ids = tokenizer.encode("<|im_start|>user\nthe neuron<|im_end|>\n<|im_start|>assistant\n")
    answer = greedy_answer(model, ids, 7, stop)
    assert out == tokenizer.decode([t for t in answer if t not in stop]) + "\n"
    assert "tokens/s]" in err

    assert main(base) == 0
    out, _ = capsys.readouterr()
    continued = greedy_answer(model, tokenizer.encode("the neuron"), 7, stop)
    assert out == "the neuron" + tokenizer.decode([t for t in continued if t not in stop]) + "\n"


def test_sampling_is_seeded(tiny_folder, capsys):
    base = ["llm", "generate", "--model", str(tiny_folder), "--max-new-tokens", "12",
            "--prompt", "the", "--temperature", "1.0", "--top-p", "0.95", "--min-p", "0.01"]
    outs = []
    for seed in ("1", "1", "2"):
        assert main([*base, "--seed", seed]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] != outs[2]


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit code 2
# ---------------------------------------------------------------------------------------------
def write_gguf(path, arch: str, quant_type=gguf.GGMLQuantizationType.F32):
    """A GGUF file with one token_embd tensor (4 × 32 zeros) of `quant_type` (F32 or Q5_0)."""
    writer = gguf.GGUFWriter(path, arch)
    if quant_type == gguf.GGMLQuantizationType.F32:
        writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    else:  # Q5_0: 22 bytes per block of 32 numbers
        writer.add_tensor("token_embd.weight", np.zeros((4, 22), np.uint8), raw_dtype=quant_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def bad_models(tmp_path, tiny_folder):
    no_tokenizer = tmp_path / "no-tokenizer"
    Llama.from_pretrained(tiny_folder).save_pretrained(no_tokenizer)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "junk.gguf").write_bytes(b"not a model at all")
    cut = write_gguf(tmp_path / "whole.gguf", "llama").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(cut[:40])
    return {
        "no-such-model": "unknown model 'no-such-model'",
        str(tmp_path / "notes.txt"): "not a .gguf file, a .safetensors file or a model folder",
        str(tmp_path / "junk.gguf"): "is not a GGUF file",
        str(tmp_path / "cut.gguf"): "damaged or cut short",
        str(write_gguf(tmp_path / "gpt2.gguf", "gpt2")): "holds a 'gpt2' model",
        str(write_gguf(tmp_path / "q5.gguf", "llama", gguf.GGMLQuantizationType.Q5_0)): "is Q5_0",
        str(no_tokenizer): "no tokenizer in",
    }


def test_bad_models_end_in_one_line_and_exit_code_2(tmp_path, tiny_folder, capsys):
    for model, message in bad_models(tmp_path, tiny_folder).items():
        for argv in (["chat", "--model", model], ["llm", "generate", "--model", model,
                                                  "--prompt", "hi"]):
            assert main(argv) == 2, model
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_bad_options_end_in_one_line_and_exit_code_2(capsys):
    for options in (["--temperature", "-1"], ["--top-p", "0"], ["--max-new-tokens", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["chat", *options])
        assert exit_info.value.code == 2
        assert len(capsys.readouterr().err.splitlines()) == 1


def test_ctrl_c_at_the_prompt_exits_130(tiny_folder, monkeypatch, capsys):
    def interrupted(prompt):
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupted)
    assert main(["chat", "--model", str(tiny_folder)]) == 130
    assert capsys.readouterr().err.endswith("interrupted\n")


# ---------------------------------------------------------------------------------------------
# the real SmolLM2-135M-Instruct
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_chats_in_two_turns_from_its_cache(smollm2_gguf, monkeypatch, capsys):
    argv = ["chat", "--temperature", "0", "--max-new-tokens", "12"]
    code, out, err = run_chat(monkeypatch, capsys, argv,
                              "What is the capital of France?\nAnd of Italy?\n")
    assert code == 0
    answers = out.split("> ")[1:3]
    assert "Paris" in answers[0] and "Rome" in answers[1]
    assert err.count("tokens/s]") == 2

    model, tokenizer = load_chat_model("smollm2-135m-instruct")
    chat = Chat(model, tokenizer, temperature=0.0)
    "".join(chat.reply("What is the capital of France?", 12))
    "".join(chat.reply("And of Italy?", 12))
    # the whole conversation tokenized from its text, and generated without any cache
    prompt = tokenizer.encode(tokenizer.apply_chat_template(chat.messages[:-1]))
    assert chat.ids == prompt + chat.answer
    assert chat.answer == greedy_answer(model, prompt, 12, chat.stop, use_cache=False)
