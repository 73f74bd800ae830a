"""What the command modules share: the parser, the argument types and the training options.

A usage error is one line on stderr and exit code 2, like a `UserError` that a verb raises later:

    error: fromscratch vit train: argument --max-steps: must be a whole number, got x (see ...)
"""

import argparse


class CommandParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; this parser prints the error and where
    to look. `add_subparsers` gives every sub-parser the class of its parent, so each verb too."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------------
# Argument types: the text of an option -> its value, or the reason it is refused
# ---------------------------------------------------------------------------------------------
def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def positive_float(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def probability(text: str) -> float:
    value = number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def ema_decay(text: str) -> float:
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), e.g. 0.999; got {text}")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def train_config(args, *, warmup_steps: int, weight_decay: float):
    """The TrainConfig a `train` verb's shared options ask for: evaluate and save 4 times a run."""
    from fromscratch.training.loop import TrainConfig

    quarter = max(1, args.max_steps // 4)
    return TrainConfig(
        max_steps=args.max_steps, max_time=args.max_time, lr=args.lr,
        warmup_steps=warmup_steps, weight_decay=weight_decay, eval_interval=quarter,
        log_interval=25, checkpoint_interval=quarter, seed=args.seed, device=args.device,
    )
