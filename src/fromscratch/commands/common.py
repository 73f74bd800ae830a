"""Argument types shared by the commands: a bad value becomes argparse's one-line error (exit 2)."""

import argparse


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
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


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse prints the whole usage before an error; we print the error and where to look."""

    def error(message: str):
        parser.exit(2, f"error: {parser.prog}: {message} (see {parser.prog} --help)\n")

    parser.error = error
    return parser


def train_config(args, *, warmup_steps: int, weight_decay: float):
    """The TrainConfig a `train` verb's shared options ask for: evaluate and save 4 times a run."""
    from fromscratch.training.loop import TrainConfig

    quarter = max(1, args.max_steps // 4)
    return TrainConfig(
        max_steps=args.max_steps, max_time=args.max_time, lr=args.lr,
        warmup_steps=warmup_steps, weight_decay=weight_decay, eval_interval=quarter,
        log_interval=25, checkpoint_interval=quarter, seed=args.seed, device=args.device,
    )
