"""The command line: `fromscratch <model> <verb>`; each model's verbs live in `commands/`.

    fromscratch gpt train|sample|eval ...
    fromscratch lessons list|solution ...

Problems the user can fix end in one line on stderr and exit code 2, never a traceback.
"""

import argparse
import importlib
import os
import pkgutil
import sys

from fromscratch import commands
from fromscratch.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fromscratch", description="Transformers and diffusion models built from scratch."
    )
    subparsers = parser.add_subparsers(dest="model", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        command = importlib.import_module(f"{commands.__name__}.{module.name}")
        if hasattr(command, "register"):  # helpers such as `common` register nothing
            command.register(subparsers)
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
