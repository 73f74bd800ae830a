"""The command line: `fromscratch <model> <verb>`; each model's verbs live in `commands/`.

    fromscratch gpt train|sample|eval ...
    fromscratch lessons list|solution ...

Problems the user can fix end in one line on stderr and exit code 2, never a traceback: a
UserError raised by a verb, and a usage error of any parser (commands/common.CommandParser).
"""

import importlib
import os
import sys

from fromscratch.commands.common import CommandParser
from fromscratch.errors import UserError

# the modules of `commands/`, in the order of the curriculum (and of `fromscratch --help`)
COMMANDS = ("gpt", "llm", "chat", "bert", "vit", "imagegpt", "arithmetic", "audio", "music",
            "diffusion", "sd", "neuro", "lessons")


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="fromscratch", description="Transformers and diffusion models built from scratch."
    )
    subparsers = parser.add_subparsers(dest="model", required=True)
    for name in COMMANDS:
        importlib.import_module(f"fromscratch.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the try, not at exit
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`fromscratch lessons list | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # drop what is left
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
