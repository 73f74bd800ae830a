"""Argument types shared by the commands: a bad value becomes argparse's one-line error (exit 2)."""

import argparse


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse prints the whole usage before an error; we print the error and where to look."""

    def error(message: str):
        parser.exit(2, f"error: {parser.prog}: {message} (see {parser.prog} --help)\n")

    parser.error = error
    return parser
