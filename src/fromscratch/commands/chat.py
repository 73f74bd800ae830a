"""`fromscratch chat`: a conversation with a released chat model, in the terminal.

    fromscratch chat [--model {smollm2-135m-instruct,FILE.gguf,DIR,ORG/NAME}] [--system TEXT]
                     [--temperature T] [--top-k K] [--top-p P] [--min-p P]
                     [--max-new-tokens N] [--seed S]

Type a message after "> "; the answer prints as it is written, then its speed. The model keeps
the conversation in its KV cache, so each turn reads only the new message (language/chat.py).
Ctrl-C stops an answer and returns to the prompt; Ctrl-D (end of input) ends the chat.
"""

import sys

from fromscratch.commands.llm import add_model_args, load_chat, print_answer


def cmd_chat(args) -> None:
    chat = load_chat(args)
    print(f"chatting with {args.model}: Ctrl-C stops an answer, Ctrl-D ends the chat",
          file=sys.stderr, flush=True)
    while True:
        try:
            text = input("> ")
        except EOFError:  # Ctrl-D, or the end of piped input
            print()
            return
        if not text.strip():
            continue
        try:
            print_answer(chat.reply(text, args.max_new_tokens), chat.answer)
        except KeyboardInterrupt:  # the answer so far stays in the conversation
            print("[stopped]", file=sys.stderr, flush=True)


def register(commands) -> None:
    p = commands.add_parser("chat", help="talk with a released chat model (SmolLM2, ...)")
    add_model_args(p)
    p.set_defaults(func=cmd_chat)
